"""Multiple-choice accuracy on SIVQA items (notebook 08): before and after fine-tuning, mini model or InternVL2-2B.

Two ways to score a 4-choice question, both reported by the notebook:

* **log-likelihood** (``loglik_scores``): the model reads image + question and we add up the log-probabilities of
  each choice's tokens as its answer; the most likely choice is the model's pick. No parsing, no format luck: what
  the model *believes*. Needs the model's logits, so it runs on transformers models (the mini track).
* **generated answer** (``generated_accuracy``): the model answers in free text through ``course_utils.infer``
  (transformers or LMDeploy) and ``parse_choice`` maps the text to a choice (a letter, an index or the choice's own
  text, as answers come in all three forms).

``eval_prompt`` is FoodieQA's Chinese evaluation prompt, character for character (lyan62/FoodieQA,
``model-eval/scripts/sivqa_utils.py``, template 0): the question, the choices as ``（A) ...`` lines, and an opening
bracket that invites the letter. ``question_only`` is the layout the fine-tune trained on (the bare question).

**Prompt layout.** XTuner's InternVL dataset trains on ``<img>…</img>\n{question}`` (image first) under
InternVL2's ChatML template; every engine here is asked with ``image_first=True`` so that evaluation sees the image
where training put it (lmdeploy would put it after a ``(text, image)`` prompt's text). What still differs: XTuner adds
its own system prompt ("You are an AI assistant whose name is InternLM (书生·浦语).", ``TRAINING_SYSTEM``), which
lmdeploy's template for InternVL2-2B (the model folder's chat template) does not send, and its InternLM2 template
writes no newline after ``<|im_end|>`` (``<|im_end|><|im_start|>assistant``) where the chat template writes one.

The same evaluation runs from the command line, so that notebook 08 (course kernel) can evaluate InternVL2-2B inside
the LMDeploy environment and read the result back as JSON:

    python -m course_utils.evaluate heldout.json IMAGE_ROOT --backend lmdeploy --model MODEL_DIR --out before.json
    python -m course_utils.evaluate heldout.json IMAGE_ROOT --backend mini --model MINI_DIR --prompt question foodieqa
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image

# the fine-tune's answers read "<choice>，图中的菜是<dish>" (foodieqa.to_llava): the choice is before the phrase
from .data import ANSWER_PHRASE

LETTERS = "ABCD"


# xtuner/dataset/internvl_dataset.py sets this system prompt for InternLM2-based InternVL models (InternVL2-2B)
TRAINING_SYSTEM = "You are an AI assistant whose name is InternLM (书生·浦语)."


def eval_prompt(item: dict) -> str:
    """FoodieQA's evaluation prompt (lyan62/FoodieQA, template 0): ``"{q} 选项有: {choices}, 请根据上图从所提供的选项中
    选择一个正确答案，为（"`` with each choice on its own line as ``"（A) choice"``."""
    choices = "".join(f"（{LETTERS[i]}) {c.strip()}\n" for i, c in enumerate(item["choices"]))
    return f"{item['question'].strip()} 选项有: {choices}, 请根据上图从所提供的选项中选择一个正确答案，为（"


def question_only(item: dict) -> str:
    """The bare question: the prompt the training data uses (choices not shown)."""
    return item["question"]


PROMPTS = {"question": question_only, "foodieqa": eval_prompt}


def parse_choice(text: str, choices: list[str]) -> int | None:
    """The choice a free-text answer names, or None when it names none or several.

    An answer in the training format ("黑龙江，图中的菜是锅包肉") is read only up to "，图中的菜是": the dish name after
    it may contain another choice ("四川，图中的菜是湖南小炒肉" picks 四川, not "ambiguous"). Then, in order: (1) the
    choices' own texts: if exactly one of the longest matching choices occurs, it wins; (2) one letter A–D standing
    alone ("B", "(B)", "（B)", "答案是B"); (3) "选项k" or "第k" (1-based). Bare digits are not read: "2" could be 0- or
    1-based.
    """
    text = (text or "").strip()
    if ANSWER_PHRASE in text:
        text = text.split(ANSWER_PHRASE, 1)[0].strip()
    if not text:
        return None
    found = [i for i, c in enumerate(choices) if c and c in text]
    if found:
        longest = max(len(choices[i]) for i in found)
        best = [i for i in found if len(choices[i]) == longest]
        if len(best) == 1:
            return best[0]
        return None
    letters = set(re.findall(r"(?<![A-Za-z])([A-D])(?![A-Za-z])", text.upper()))
    letters &= set(LETTERS[: len(choices)])
    if len(letters) == 1:
        return LETTERS.index(letters.pop())
    numbers = set(re.findall(r"(?:选项|第)\s*([1-9])", text))
    if len(numbers) == 1:
        k = int(numbers.pop()) - 1
        return k if k < len(choices) else None
    return None


def _photo(item: dict, image_root) -> Path:
    return Path(image_root) / item["food_meta"]["food_file"]


def _open(item: dict, image_root) -> Image.Image:
    path = _photo(item, image_root)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: photo of {item.get('question_id', 'an item')} not found (image_root?)"
        )
    return Image.open(path).convert("RGB")


@torch.no_grad()
def loglik_scores(model, processor, image: Image.Image, question: str, choices: list[str]) -> list[float]:
    """Sum of log-probabilities of each choice's tokens as the assistant's answer to (image, question)."""
    from .mini.sft import chat_prompt

    prompt = chat_prompt(processor, question)
    base = processor(images=[image], text=[prompt], return_tensors="pt")
    n = base["input_ids"].shape[1]
    tok = processor.tokenizer
    scores = []
    for choice in choices:
        ids = tok(choice, add_special_tokens=False, return_tensors="pt")["input_ids"]
        input_ids = torch.cat([base["input_ids"], ids], dim=1)
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                       pixel_values=base["pixel_values"]).logits  # fmt: skip
        logp = torch.log_softmax(logits[0, n - 1 : -1].float(), dim=-1)
        scores.append(logp.gather(1, ids[0][:, None]).sum().item())
    return scores


def _summary(hits: dict[str, list[bool]]) -> dict[str, float]:
    out = {k: sum(v) / len(v) for k, v in sorted(hits.items())}
    total = [h for v in hits.values() for h in v]
    out["all"] = sum(total) / len(total) if total else float("nan")
    return out


def choice_accuracy(score, items: list[dict], image_root, *, prompt_fn=None) -> dict[str, float]:
    """Accuracy per question_type (and "all") when the highest-scoring choice is the pick; ``score(image, question,
    choices)`` gives one number per choice (``loglik_scores`` here, a real model's ``realmodel`` engine ``.score``)."""
    prompt_fn = prompt_fn or question_only
    hits: dict[str, list[bool]] = defaultdict(list)
    for item in items:
        scores = score(_open(item, image_root), prompt_fn(item), item["choices"])
        hits[item.get("question_type", "?")].append(scores.index(max(scores)) == int(item["answer"]))
    return _summary(hits)


def loglik_accuracy(model, processor, items: list[dict], image_root, *, prompt_fn=None) -> dict[str, float]:
    """Accuracy per question_type (and "all") when the most likely choice is the model's pick."""
    scorer = lambda image, question, choices: loglik_scores(model, processor, image, question, choices)  # noqa: E731
    return choice_accuracy(scorer, items, image_root, prompt_fn=prompt_fn)


def generated_accuracy(engine, items: list[dict], image_root, *, prompt_fn=None, gen_config=None):
    """Accuracy per question_type of free-text answers parsed with ``parse_choice``; also returns the answers."""
    prompt_fn = prompt_fn or question_only
    hits: dict[str, list[bool]] = defaultdict(list)
    answers = []
    for item in items:
        # image first: where XTuner's InternVL dataset puts it in training (see the module docstring)
        question = (prompt_fn(item), _open(item, image_root))
        text = engine.chat(question, gen_config=gen_config, image_first=True).response.text
        answers.append(text)
        hits[item.get("question_type", "?")].append(
            parse_choice(text, item["choices"]) == int(item["answer"])
        )
    return _summary(hits), answers


def markdown_table(columns: dict[str, dict[str, float]], first: str = "question type") -> str:
    """A before/after table: one column per accuracy dict (``{question_type: accuracy, "all": ...}``), one row per type,
    "all" last; a type missing from a column shows "–"."""
    kinds = sorted({k for col in columns.values() for k in col if k != "all"}) + ["all"]
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for kind in kinds:
        cells = [f"{col[kind]:.0%}" if kind in col else "–" for col in columns.values()]
        lines.append(f"| {'**all**' if kind == 'all' else kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_model(
    engine, items: list[dict], image_root, prompts=("question",), max_new_tokens: int = 32
) -> dict:
    """``generated_accuracy`` for each prompt style in ``prompts`` ("question": the bare question, as in training;
    "foodieqa": ``eval_prompt`` with the choices), greedy, image first. Returns {prompt: {"accuracy": ..., "answers": [...]}}."""
    from .infer import GenConfig

    out = {}
    for name in prompts:
        accuracy, answers = generated_accuracy(engine, items, image_root, prompt_fn=PROMPTS[name],
                                               gen_config=GenConfig(max_new_tokens=max_new_tokens))  # fmt: skip
        out[name] = {"accuracy": accuracy, "answers": answers}
    return out


def _check_inputs(args) -> list[dict]:
    """Everything that can be wrong before a model is loaded (minutes on a GPU): items, photos, model folder, output."""
    from . import foodieqa, xtuner_run

    items = foodieqa.load_sivqa(args.items)
    for index, item in enumerate(items):
        if not _photo(item, args.image_root).is_file():
            raise FileNotFoundError(
                f"item {index} ({item.get('question_id', '?')}): photo {item['food_meta']['food_file']} "
                f"not found under {args.image_root}"
            )
    if args.model is not None:
        if not Path(args.model).is_dir():
            raise FileNotFoundError(f"{args.model}: no such model folder")
        missing = xtuner_run.missing_files(args.model)
        if missing:
            raise FileNotFoundError(
                f"{args.model}: not a complete model folder, missing {', '.join(missing)} "
                "(after convert_to_official.py, run xtuner_run.finalize)"
            )
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} already exists: pass --overwrite to replace it")
    return items


def in_subprocess(items_json, image_root, out, *, model=None, backend: str = "lmdeploy", python=None,
                  prompts=("question",), max_new_tokens: int = 32) -> dict:  # fmt: skip
    """Run this module's command line with an environment's ``python`` (default: this kernel's) and return the record
    it wrote to ``out``: ``{"backend", "model", "items", "n", "results": {prompt: {"accuracy", "answers"}}}``.

    Notebook 08 runs in the course kernel and evaluates InternVL2-2B inside the LMDeploy environment this way
    (``python=paths.lab_program("lmdeploy")``); the mini track runs the very same command with ``--backend mini``.
    """
    python = Path(python or sys.executable)
    cmd = [str(python), "-m", "course_utils.evaluate", str(items_json), str(image_root), "--backend", backend,
           "--prompt", *prompts, "--max-new-tokens", str(max_new_tokens), "--out", str(out), "--overwrite"]  # fmt: skip
    if model is not None:
        cmd += ["--model", str(model)]
    print("$", shlex.join(cmd), flush=True)
    path = f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the environment's own programs first
    run = subprocess.run(cmd, env={**os.environ, "PATH": path}, capture_output=True, text=True)
    print(run.stdout, end="")
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"the evaluation exited with {run.returncode}:\n{tail}")
    return json.loads(Path(out).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    from . import backends, foodieqa

    parser = argparse.ArgumentParser(prog="python -m course_utils.evaluate",
                                     description="Multiple-choice accuracy of a model's generated answers on SIVQA items.")  # fmt: skip
    parser.add_argument("items", help="SIVQA JSON (e.g. the held-out split)")
    parser.add_argument("image_root", help="folder that the items' food_meta.food_file paths are relative to")
    parser.add_argument("--backend", choices=backends.BACKENDS, default="mini")
    parser.add_argument(
        "--model", help="model folder (lmdeploy default: MLLM_COURSE_MODEL_DIR; mini default: shapes)"
    )
    parser.add_argument("--prompt", nargs="+", choices=list(PROMPTS), default=["question"],
                        help="question: the bare question (training format); foodieqa: FoodieQA's prompt with the choices")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--out", help="write the accuracies and answers to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    if args.model is None and args.backend == "lmdeploy":
        from . import paths

        args.model = str(paths.model_dir())
    try:
        items = _check_inputs(args)
    except (foodieqa.FoodieQAError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.backend == "mini":
        from . import env

        env.use_course_threads()  # the notebooks' count, so the cached mini model is the one they trained
    engine = backends.make_engine(args.backend, args.model)
    results = evaluate_model(engine, items, args.image_root, args.prompt, args.max_new_tokens)
    for name, result in results.items():
        shown = ", ".join(f"{k} {v:.0%}" for k, v in result["accuracy"].items())
        print(f"{args.backend} · {args.model or 'default model'} · prompt '{name}': {shown}")
    if args.out:
        record = {"backend": args.backend, "model": str(args.model or ""), "items": str(args.items),
                  "n": len(items), "results": results}  # fmt: skip
        foodieqa.write_json(record, args.out, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())

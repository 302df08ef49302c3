"""Multiple-choice accuracy on SIVQA items (notebook 08): before and after fine-tuning, mini model or InternVL2-2B.

Two ways to score a 4-choice question, both reported by the notebook:

* **log-likelihood** (``loglik_scores``): the model reads image + question and we add up the log-probabilities of
  each choice's tokens as its answer; the most likely choice is the model's pick. No parsing, no format luck: what
  the model *believes*. Needs the model's logits, so it runs on transformers models (the mini track).
* **generated answer** (``generated_accuracy``): the model answers in free text through ``course_utils.infer``
  (transformers or LMDeploy) and ``parse_choice`` maps the text to a choice (a letter, an index or the choice's own
  text, as answers come in all three forms).

``eval_prompt`` is FoodieQA's Chinese evaluation prompt: the question, the choices, and an opening bracket that invites
the answer (lyan62/FoodieQA).
"""

import re
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image

LETTERS = "ABCD"


def eval_prompt(item: dict) -> str:
    """FoodieQA's evaluation prompt: ``"{q} 选项有: {choices}, 请根据上图从所提供的选项中选择一个正确答案，为（"``."""
    choices = ", ".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item["choices"]))
    return f"{item['question']} 选项有: {choices}, 请根据上图从所提供的选项中选择一个正确答案，为（"


def parse_choice(text: str, choices: list[str]) -> int | None:
    """The choice a free-text answer names, or None when it names none or several.

    Tried in order: (1) the choices' own texts: if exactly one of the longest matching choices occurs in the answer,
    it wins ("黑龙江，图中的菜是锅包肉" → "黑龙江"); (2) one letter A–D standing alone ("B", "(B)", "答案是B");
    (3) "选项k" or "第k" (1-based). Bare digits are not read: "2" could be 0- or 1-based.
    """
    text = (text or "").strip()
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


def _open(item: dict, image_root) -> Image.Image:
    path = Path(image_root) / item["food_meta"]["food_file"]
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


def loglik_accuracy(model, processor, items: list[dict], image_root, *, prompt_fn=None) -> dict[str, float]:
    """Accuracy per question_type (and "all") when the most likely choice is the model's pick."""
    prompt_fn = prompt_fn or (lambda it: it["question"])
    hits: dict[str, list[bool]] = defaultdict(list)
    for item in items:
        scores = loglik_scores(model, processor, _open(item, image_root), prompt_fn(item), item["choices"])
        hits[item.get("question_type", "?")].append(scores.index(max(scores)) == int(item["answer"]))
    return _summary(hits)


def generated_accuracy(engine, items: list[dict], image_root, *, prompt_fn=None, gen_config=None):
    """Accuracy per question_type of free-text answers parsed with ``parse_choice``; also returns the answers."""
    prompt_fn = prompt_fn or (lambda it: it["question"])
    hits: dict[str, list[bool]] = defaultdict(list)
    answers = []
    for item in items:
        text = engine.chat((prompt_fn(item), _open(item, image_root)), gen_config=gen_config).response.text
        answers.append(text)
        hits[item.get("question_type", "?")].append(
            parse_choice(text, item["choices"]) == int(item["answer"])
        )
    return _summary(hits), answers

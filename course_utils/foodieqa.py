"""FoodieQA single-image VQA (SIVQA) files: load, validate, split, convert to XTuner's format, build your own.

    python -m course_utils.foodieqa convert sivqa_tidy.json sivqa_llava.json          # the original lab's process_food.py
    python -m course_utils.foodieqa split sivqa_tidy.json train.json heldout.json     # no photo in both
    python -m course_utils.foodieqa build my_photos/ my_sivqa.json --csv dishes.csv   # your own photos, same schema

A SIVQA item (Li et al., FoodieQA, 2024; lyan62/FoodieQA) looks like::

    {"question": "图片中的食物是哪个地区的特色菜？", "choices": ["四川", "广东", "东北", "上海"], "answer": "2",
     "question_type": "region-2", "food_name": "锅包肉", "question_id": "sivqa-001",
     "food_meta": {"food_name": "锅包肉", "food_file": "images/xxx.jpg", "food_location": "...", ...}}

``convert`` writes exactly what the original InternVL2 lab's ``process_food.py`` writes: ``image`` = ``food_meta.food_file``;
the human turn = question + ``"\\n<image>"``; the gpt turn = the correct choice + ``"，图中的菜是"`` +
``food_meta.food_name``; UTF-8 kept literally. ``choices_in_prompt=True`` also lists the choices in the question.

FoodieQA is CC BY-NC-ND 4.0 and its terms say *evaluation only*: the course converts it because the original InternVL2 lab does,
and recommends training on photos you may train on (``build``) and evaluating on FoodieQA.

Bad input stops with a ``FoodieQAError`` naming the item (index and question_id) and the field; nothing is written.
Outputs are written atomically and an existing file is never replaced unless ``overwrite=True``.
Introduced in notebook 08.
"""

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ANSWER_PHRASE = "，图中的菜是"  # the original lab's answer template: "<choice>，图中的菜是<dish>"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class FoodieQAError(ValueError):
    """Bad SIVQA input: the message names the file or item and the field, and says what to fix."""


def _where(index: int, item) -> str:
    qid = item.get("question_id") if isinstance(item, dict) else None
    return f"item {index}" + (f" ({qid})" if qid else "")


def validate_item(item, index: int = 0) -> dict:
    """Check one SIVQA item; returns it unchanged or raises ``FoodieQAError`` naming the item and the field."""
    where = _where(index, item)
    if not isinstance(item, dict):
        raise FoodieQAError(f"{where}: expected an object, got {type(item).__name__}")
    for field in ("question", "choices", "answer", "food_meta"):
        if field not in item:
            raise FoodieQAError(f"{where}: missing field '{field}'")
    if not isinstance(item["question"], str) or not item["question"].strip():
        raise FoodieQAError(f"{where}: field 'question' must be a non-empty string")
    choices = item["choices"]
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise FoodieQAError(f"{where}: field 'choices' must be a list of at least 2 strings")
    answer = item["answer"]
    try:
        k = int(answer)
        if isinstance(answer, bool) or (isinstance(answer, float) and not answer.is_integer()):
            raise ValueError
    except (TypeError, ValueError):
        raise FoodieQAError(
            f"{where}: field 'answer' must be a choice index such as \"2\", got {answer!r}"
        ) from None
    if not 0 <= k < len(choices):
        raise FoodieQAError(
            f"{where}: field 'answer' is {k}, outside the {len(choices)} choices (0–{len(choices) - 1})"
        )
    meta = item["food_meta"]
    if not isinstance(meta, dict):
        raise FoodieQAError(f"{where}: field 'food_meta' must be an object")
    for field in ("food_file", "food_name"):
        if not isinstance(meta.get(field), str) or not meta[field].strip():
            raise FoodieQAError(f"{where}: missing field 'food_meta.{field}'")
    return item


def load_sivqa(path) -> list[dict]:
    """Read and validate a SIVQA JSON file (a list of items)."""
    path = Path(path)
    if not path.is_file():
        raise FoodieQAError(
            f"{path}: no such file — FoodieQA lives under MLLM_COURSE_FOODIEQA_DIR (InternStudio: "
            "/root/share/datasets/FoodieQA); see README › Data"
        )
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FoodieQAError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    except UnicodeDecodeError:
        raise FoodieQAError(f"{path}: not UTF-8 text") from None
    if not isinstance(items, list):
        raise FoodieQAError(f"{path}: expected a JSON list of SIVQA items, got a {type(items).__name__}")
    return [validate_item(item, i) for i, item in enumerate(items)]


def find_sivqa(root) -> Path:
    """FoodieQA's single-image VQA file under ``root`` (``sivqa_tidy.json`` in lyan62/FoodieQA), not a converted
    ``*_llava.json``; its folder is the one ``food_meta.food_file`` paths are relative to."""
    root = Path(root)
    found = (
        sorted(p for p in root.glob("**/sivqa*.json") if not p.stem.endswith("_llava"))
        if root.is_dir()
        else []
    )
    if not found:
        raise FoodieQAError(
            f"{root}: no sivqa*.json (FoodieQA's SIVQA file, e.g. sivqa_tidy.json) — accept the dataset's terms on "
            "Hugging Face (lyan62/FoodieQA), put it there or point MLLM_COURSE_FOODIEQA_DIR at it"
        )
    return min(found, key=lambda p: (p.name != "sivqa_tidy.json", len(p.parts), str(p)))


def answer_text(item: dict) -> str:
    """The correct choice."""
    return item["choices"][int(item["answer"])]


def prompt(item: dict, choices_in_prompt: bool = False) -> str:
    """The human turn's text before the image tag (the original lab: the question alone)."""
    if not choices_in_prompt:
        return item["question"]
    listed = " ".join(f"{'ABCD'[i] if i < 4 else i}. {c}" for i, c in enumerate(item["choices"]))
    return f"{item['question']} 选项有: {listed}"


def to_llava(item: dict, *, choices_in_prompt: bool = False) -> dict:
    """One SIVQA item → one XTuner/LLaVA-format sample, as the original lab's ``process_food.py``."""
    meta = item["food_meta"]
    return {
        "image": meta["food_file"],
        "conversations": [
            {"from": "human", "value": prompt(item, choices_in_prompt) + "\n<image>"},
            {"from": "gpt", "value": answer_text(item) + ANSWER_PHRASE + meta["food_name"]},
        ],
    }


def convert(items: list[dict], *, choices_in_prompt: bool = False) -> list[dict]:
    """Validate every item first, then convert them all (so a bad item stops the conversion before any output)."""
    items = [validate_item(item, i) for i, item in enumerate(items)]
    return [to_llava(item, choices_in_prompt=choices_in_prompt) for item in items]


def split(items: list[dict], held_out: float = 0.25, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Deterministic train / held-out split by photo: every item of one photo lands on the same side.

    A dish can appear on both sides through different photos (that is what "learning a dish" means); a photo cannot.
    Photos are ordered by a hash of (seed, food_file), so the split does not depend on the file's order.
    """
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be between 0 and 1, got {held_out}")
    photos = sorted({item["food_meta"]["food_file"] for item in items},
                    key=lambda f: hashlib.sha1(f"{seed}:{f}".encode()).hexdigest())  # fmt: skip
    test_photos = set(photos[: max(1, round(len(photos) * held_out))]) if photos else set()
    train = [it for it in items if it["food_meta"]["food_file"] not in test_photos]
    test = [it for it in items if it["food_meta"]["food_file"] in test_photos]
    return train, test


def split_report(train: list[dict], test: list[dict]) -> dict[str, tuple[int, int]]:
    """Items per question_type: ``{type: (train, held-out)}``."""
    a = Counter(it.get("question_type", "?") for it in train)
    b = Counter(it.get("question_type", "?") for it in test)
    return {k: (a[k], b[k]) for k in sorted(a.keys() | b.keys())}


def build_from_folder(root, csv_path=None, *, seed: int = 0) -> list[dict]:
    """Your own photos → SIVQA items: ``root/<dish name>/<photo>.jpg`` (at least 4 dishes).

    Each photo gets a "which dish" question with 4 choices (the dish + 3 others). An optional CSV with columns
    ``dish,cuisine,region`` adds "which cuisine" / "which region" questions. ``food_file`` is relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FoodieQAError(f"{root}: no such folder (expected one sub-folder of photos per dish)")
    dishes = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
              for d in sorted(root.iterdir()) if d.is_dir()}  # fmt: skip
    dishes = {name: photos for name, photos in dishes.items() if photos}
    if len(dishes) < 4:
        raise FoodieQAError(
            f"{root}: found photos of {len(dishes)} dish(es); need at least 4 (one folder per dish)"
        )
    info = _read_dish_csv(csv_path, dishes) if csv_path else {}
    names = list(dishes)
    items = []
    for name, photos in dishes.items():
        for photo in photos:
            meta = {"food_name": name, "food_file": photo.relative_to(root).as_posix(), **info.get(name, {})}
            questions = [("food_name", "图中的菜是什么？", name, names)]
            for field, question in (
                ("food_type", "这道菜属于哪个菜系？"),
                ("food_location", "这道菜是哪个地区的特色菜？"),
            ):
                if meta.get(field):
                    pool = sorted({v[field] for v in info.values() if v.get(field)})
                    if len(pool) >= 4:
                        questions.append((field, question, meta[field], pool))
            for qtype, question, correct, pool in questions:
                items.append(_mc_item(question, correct, pool, qtype, meta, seed, len(items)))
    return items


def _read_dish_csv(csv_path, dishes) -> dict[str, dict]:
    path = Path(csv_path)
    if not path.is_file():
        raise FoodieQAError(f"{path}: no such file")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "dish" not in rows[0]:
        raise FoodieQAError(f"{path}: missing column 'dish' (columns: dish,cuisine,region)")
    out = {}
    for n, row in enumerate(rows, start=2):
        if row["dish"] not in dishes:
            raise FoodieQAError(f"{path}, line {n}: dish {row['dish']!r} has no photo folder")
        out[row["dish"]] = {"food_type": (row.get("cuisine") or "").strip(),
                            "food_location": (row.get("region") or "").strip()}  # fmt: skip
    return out


def _mc_item(question, correct, pool, qtype, meta, seed, n) -> dict:
    """4 choices: the correct one + 3 others, in an order fixed by (seed, n)."""
    key = lambda c: hashlib.sha1(f"{seed}:{n}:{c}".encode()).hexdigest()  # noqa: E731
    others = sorted((c for c in pool if c != correct), key=key)[:3]
    choices = sorted([correct, *others], key=key)
    return {"question": question, "choices": choices, "answer": str(choices.index(correct)),
            "question_type": qtype, "food_name": meta["food_name"], "question_id": f"own-{n:04d}",
            "food_meta": dict(meta)}  # fmt: skip


def write_json(obj, dst, *, overwrite: bool = False) -> Path:
    """Write ``obj`` as UTF-8 JSON atomically (temp file + rename); never replaces ``dst`` unless ``overwrite``."""
    return write_text(json.dumps(obj, ensure_ascii=False, indent=2), dst, overwrite=overwrite)


def write_text(text: str, dst, *, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) atomically; never replaces ``dst`` unless ``overwrite``."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists: pass --overwrite (overwrite=True) to replace it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.foodieqa", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "convert", help="SIVQA JSON → XTuner (LLaVA-format) JSON, as the original lab's process_food"
    )
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--choices-in-prompt", action="store_true", help="list the choices in the question")
    s = sub.add_parser("split", help="SIVQA JSON → train and held-out SIVQA JSON, no photo in both")
    s.add_argument("src")
    s.add_argument("train_dst")
    s.add_argument("test_dst")
    s.add_argument("--held-out", type=float, default=0.25)
    s.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("build", help="a folder of photos (one sub-folder per dish) → SIVQA JSON")
    b.add_argument("photos")
    b.add_argument("dst")
    b.add_argument("--csv", help="optional CSV with columns dish,cuisine,region")
    for p in (c, s, b):
        p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    try:
        if args.command == "convert":
            out = convert(load_sivqa(args.src), choices_in_prompt=args.choices_in_prompt)
            write_json(out, args.dst, overwrite=args.overwrite)
            print(f"wrote {len(out)} samples to {args.dst}")
        elif args.command == "split":
            for dst in (args.train_dst, args.test_dst):
                if Path(dst).exists() and not args.overwrite:
                    raise FileExistsError(f"{dst} already exists: pass --overwrite to replace it")
            train, test = split(load_sivqa(args.src), args.held_out, args.seed)
            write_json(train, args.train_dst, overwrite=args.overwrite)
            write_json(test, args.test_dst, overwrite=args.overwrite)
            for qtype, (a, b_) in split_report(train, test).items():
                print(f"{qtype}: {a} train, {b_} held out")
        else:
            items = build_from_folder(args.photos, args.csv)
            write_json(items, args.dst, overwrite=args.overwrite)
            print(f"wrote {len(items)} SIVQA items to {args.dst}")
    except (FoodieQAError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

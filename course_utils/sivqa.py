"""FoodieQA's single-image VQA (SIVQA) items: what one looks like, how to check, load and find them, and how to make
them from your own photos.

A SIVQA item (Li et al., FoodieQA, 2024; lyan62/FoodieQA) looks like::

    {"question": "图片中的食物是哪个地区的特色菜？", "choices": ["四川", "广东", "东北", "上海"], "answer": "2",
     "question_type": "region-2", "food_name": "锅包肉", "question_id": "sivqa-001",
     "food_meta": {"food_name": "锅包肉", "food_file": "images/xxx.jpg", "food_location": "...", ...}}

Bad input stops with a ``FoodieQAError`` naming the item (index and question_id) and the field. This is the schema
only (standard library, no course imports): ``paths`` uses it to tell whether FoodieQA is in place, ``minifood`` to
turn its photos into items; ``foodieqa`` (split, convert, the command line) re-exports all of it.
Introduced in notebook 08.
"""

import csv
import hashlib
import json
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# The original InternVL2 lab's training target (its process_food.py) joins the correct choice and the dish name with
# this phrase: "<choice>，图中的菜是<dish>".
ANSWER_PHRASE = "，图中的菜是"


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


def read_json_list(path, what: str = "SIVQA items") -> list:
    """A UTF-8 JSON file holding a list, or a ``FoodieQAError`` that names the file and what is wrong with it."""
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
        raise FoodieQAError(f"{path}: expected a JSON list of {what}, got a {type(items).__name__}")
    return items


def load_sivqa(path) -> list[dict]:
    """Read and validate a SIVQA JSON file (a list of items)."""
    return [validate_item(item, i) for i, item in enumerate(read_json_list(path))]


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

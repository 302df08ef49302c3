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
import hashlib
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .data import ANSWER_PHRASE  # the original lab's answer template: "<choice>，图中的菜是<dish>"

# The schema, loading and build-your-own live in ``sivqa`` (the bottom layer, so that ``paths`` can check FoodieQA);
# notebook 08 reaches them here.
from .sivqa import (  # noqa: F401
    IMAGE_SUFFIXES,
    FoodieQAError,
    build_from_folder,
    find_sivqa,
    load_sivqa,
    validate_item,
)
from .sivqa_llava import from_llava, load_folder  # noqa: F401  (the original lab's converted file, choices rebuilt)


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

"""The original InternVL2 lab's converted FoodieQA file (``sivqa_llava.json``) back to SIVQA items, choices rebuilt.

InternStudio's share holds FoodieQA as the original lab left it: the photos and ``sivqa_llava.json``, one LLaVA-format
sample per SIVQA item (``foodieqa.to_llava``): the human turn is the question + ``"\\n<image>"``, the gpt turn the
correct choice + ``"，图中的菜是"`` + the dish. The three wrong choices are gone, and notebook 08 scores four-choice
questions before and after fine-tuning. ``from_llava`` gives each item three wrong choices drawn from the answers the
*other* photos have to the *same* question (the same question text): a choice that is right for another dish, as
FoodieQA's distractors are. It is a different test from FoodieQA's own choices, and notebook 08 says so when it uses
it; a question asked of fewer than four distinct answers cannot get three such choices, and its items are left out
(counted). ``foodieqa.to_llava`` of a rebuilt item gives back the sample it came from.

Standard library only (``paths`` uses it to tell whether the share is usable). Introduced in notebook 08.
"""

from collections import defaultdict
from pathlib import Path

from .sivqa import ANSWER_PHRASE, FoodieQAError, _mc_item, read_json_list

IMAGE_TAG = "<image>"


def find_llava(root) -> Path | None:
    """The converted file under ``root`` (``sivqa_llava.json`` first, else another ``*_llava.json``), or None."""
    root = Path(root)
    found = sorted(root.glob("**/*_llava.json")) if root.is_dir() else []
    if not found:
        return None
    return min(found, key=lambda p: (p.name != "sivqa_llava.json", len(p.parts), str(p)))


def parse_sample(sample, index: int = 0) -> dict:
    """One converted sample → ``{"question", "answer", "food_name", "food_file"}``; a ``FoodieQAError`` names the
    sample and the field otherwise."""
    where = f"sample {index}"
    if (
        not isinstance(sample, dict)
        or not isinstance(sample.get("image"), str)
        or not sample["image"].strip()
    ):
        raise FoodieQAError(f"{where}: expected an object with an 'image' path")
    turns = sample.get("conversations")
    if (
        not isinstance(turns, list)
        or len(turns) != 2
        or [t.get("from") for t in turns if isinstance(t, dict)]
        != [
            "human",
            "gpt",
        ]
    ):
        raise FoodieQAError(f"{where}: 'conversations' must be one human turn and one gpt turn")
    human, gpt = (t.get("value") for t in turns)
    if not isinstance(human, str) or IMAGE_TAG not in human:
        raise FoodieQAError(f"{where}: the human turn has no {IMAGE_TAG} tag")
    if not isinstance(gpt, str) or ANSWER_PHRASE not in gpt:
        raise FoodieQAError(
            f"{where}: the gpt turn is not '<choice>{ANSWER_PHRASE}<dish>' (the original lab's format)"
        )
    answer, dish = gpt.split(ANSWER_PHRASE, 1)
    question = human.replace("\n" + IMAGE_TAG, "").replace(IMAGE_TAG, "").strip()
    if not question or not answer.strip() or not dish.strip():
        raise FoodieQAError(f"{where}: empty question, answer or dish name")
    return {"question": question, "answer": answer, "food_name": dish, "food_file": sample["image"]}


def from_llava(samples: list, *, seed: int = 0) -> tuple[list[dict], int]:
    """Converted samples → (SIVQA items with rebuilt choices, how many samples were left out).

    The wrong choices of an item are three distinct answers other items give to the same question, picked and ordered
    by a hash of (seed, sample index, choice), so the correct choice is not always first."""
    parsed = [parse_sample(s, i) for i, s in enumerate(samples)]
    pools: dict[str, set[str]] = defaultdict(set)
    for p in parsed:
        pools[p["question"]].add(p["answer"])
    items, left_out = [], 0
    for n, p in enumerate(parsed):
        pool = sorted(pools[p["question"]])
        if len(pool) < 4:
            left_out += 1
            continue
        meta = {"food_file": p["food_file"], "food_name": p["food_name"]}
        item = _mc_item(p["question"], p["answer"], pool, p["question"], meta, seed, n)
        item["question_id"] = f"llava-{n:04d}"
        item["choices_rebuilt"] = True
        items.append(item)
    return items, left_out


def load_llava(path, *, seed: int = 0) -> tuple[list[dict], int]:
    """``from_llava`` of a converted file."""
    return from_llava(read_json_list(path, "LLaVA-format samples"), seed=seed)


def load_folder(root, *, seed: int = 0) -> tuple[list[dict], Path, int | None]:
    """What notebook 08 reads from a FoodieQA folder: (items, the file they came from, left out). FoodieQA's raw SIVQA
    file when it is there (left out: None); else the original lab's converted file, choices rebuilt (``from_llava``).
    Neither: the ``FoodieQAError`` of ``find_sivqa``, which says where to get the dataset."""
    from .sivqa import find_sivqa, load_sivqa

    try:
        found = find_sivqa(root)
    except FoodieQAError:
        converted = find_llava(root)
        if converted is None:
            raise
        items, left_out = load_llava(converted, seed=seed)
        return items, converted, left_out
    return load_sivqa(found), found, None

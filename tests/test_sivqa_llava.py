"""sivqa_llava: the original lab's converted FoodieQA file back to four-choice SIVQA items."""

import json
import random

import pytest

from course_utils import foodieqa, minifood, sivqa_llava
from course_utils.sivqa import FoodieQAError, validate_item


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    return minifood.make_minifood(
        tmp_path_factory.mktemp("food"), dishes=8, photos_per_dish=3, image_size=16, seed=2
    )


def test_rebuilt_items_convert_back_to_the_same_samples(items):
    samples = foodieqa.convert(items)
    rebuilt, left_out = sivqa_llava.from_llava(samples)
    assert left_out == 0 and len(rebuilt) == len(items)
    assert [
        foodieqa.to_llava(it) for it in rebuilt
    ] == samples  # process_food.py of a rebuilt item: the sample
    for it, original in zip(rebuilt, items, strict=True):
        validate_item(it)
        assert len(it["choices"]) == 4 == len(set(it["choices"])) and it["choices_rebuilt"]
        assert foodieqa.answer_text(it) == foodieqa.answer_text(original)
        same_question = {foodieqa.answer_text(o) for o in items if o["question"] == it["question"]}
        assert (
            set(it["choices"]) <= same_question
        )  # every wrong choice is another photo's answer to this question


def test_the_correct_choice_is_not_always_in_one_place(items):
    rebuilt, _ = sivqa_llava.from_llava(foodieqa.convert(items))
    positions = {int(it["answer"]) for it in rebuilt}
    assert positions == {0, 1, 2, 3}, positions


def test_random_samples_keep_what_they_say(tmp_path):
    """Many random converted files: every item's answer and dish come back, wrong choices only from its question."""
    rng = random.Random(0)
    for case in range(200):
        questions = [f"问题{q}？" for q in range(rng.randint(1, 4))]
        answers = [f"答案{a}" for a in range(rng.randint(2, 9))]
        samples = [
            {"image": f"images/{i}.jpg", "conversations": [
                {"from": "human", "value": rng.choice(questions) + "\n<image>"},
                {"from": "gpt", "value": rng.choice(answers) + "，图中的菜是" + f"菜{i}"}]}
            for i in range(rng.randint(1, 30))
        ]  # fmt: skip
        rebuilt, left_out = sivqa_llava.from_llava(samples, seed=case)
        assert len(rebuilt) + left_out == len(samples)
        back = {s["image"]: s for s in samples}
        for it in rebuilt:
            assert foodieqa.to_llava(it) == back[it["food_meta"]["food_file"]]
            pool = {
                s["conversations"][1]["value"].split("，图中的菜是")[0]
                for s in samples
                if s["conversations"][0]["value"] == it["question"] + "\n<image>"
            }
            assert set(it["choices"]) <= pool and len(pool) >= 4


@pytest.mark.parametrize(
    "sample, message",
    [
        ({"conversations": []}, "'image' path"),
        ({"image": "a.jpg", "conversations": [{"from": "human", "value": "q\n<image>"}]}, "one human turn"),
        ({"image": "a.jpg", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "x，图中的菜是y"}]}, "no <image>"),
        ({"image": "a.jpg", "conversations": [{"from": "human", "value": "q\n<image>"}, {"from": "gpt", "value": "x"}]}, "original lab's format"),
    ],
)  # fmt: skip
def test_bad_samples_are_named(sample, message):
    with pytest.raises(FoodieQAError, match=message):
        sivqa_llava.from_llava([sample, sample])


def test_load_folder_prefers_the_raw_file(tmp_path, items):
    with pytest.raises(FoodieQAError, match="lyan62/FoodieQA"):
        sivqa_llava.load_folder(tmp_path)
    foodieqa.write_json(foodieqa.convert(items), tmp_path / "sivqa_llava.json")
    got, found, left_out = sivqa_llava.load_folder(tmp_path)
    assert found.name == "sivqa_llava.json" and left_out == 0 and all(it["choices_rebuilt"] for it in got)
    foodieqa.write_json(items, tmp_path / "sivqa_tidy.json")
    got, found, left_out = sivqa_llava.load_folder(tmp_path)
    assert found.name == "sivqa_tidy.json" and left_out is None and got == items
    (tmp_path / "broken_llava.json").write_text(json.dumps({"not": "a list"}))
    assert sivqa_llava.find_llava(tmp_path).name == "sivqa_llava.json"

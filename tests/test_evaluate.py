"""Multiple-choice scoring: the answer parser on tricky outputs, log-likelihoods checked against the model's own
loss, and evaluation end to end with a mini model on mini-food."""

import pytest
import torch

from course_utils import evaluate, infer, minifood
from course_utils.mini import build_internvl

CHOICES = ["四川", "广东", "黑龙江", "上海"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("黑龙江，图中的菜是锅包肉", 2),
        ("C", 2), ("(B)", 1), ("答案是D。", 3), ("选项1", 0), ("第3个", 2),
        ("广东或者上海", None),  # two choices named
        ("2", None),  # a bare digit is ambiguous
        ("", None), ("我不知道", None), ("A or B", None),
    ],
)  # fmt: skip
def test_parse_choice(text, expected):
    assert evaluate.parse_choice(text, CHOICES) == expected


def test_longest_choice_wins_when_one_contains_another():
    assert evaluate.parse_choice("这是四川菜", ["四川", "四川菜", "粤菜", "鲁菜"]) == 1


def test_eval_prompt_is_foodieqas():
    item = {"question": "这是哪里的菜？", "choices": CHOICES}
    assert evaluate.eval_prompt(item) == (
        "这是哪里的菜？ 选项有: A. 四川, B. 广东, C. 黑龙江, D. 上海, 请根据上图从所提供的选项中选择一个正确答案，为（"
    )


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_internvl(
        image_size=96, patch_size=8, vision_hidden=32, hidden=64, layers=1, max_tiles=1
    )
    return model.eval(), processor


def test_loglik_scores_match_the_models_own_loss(tiny, tmp_path):
    model, processor = tiny
    items = minifood.make_minifood(tmp_path, dishes=4, photos_per_dish=1)
    item = items[0]
    image = evaluate._open(item, tmp_path)
    scores = evaluate.loglik_scores(model, processor, image, item["question"], item["choices"])
    from course_utils.mini.sft import chat_prompt

    for choice, score in zip(item["choices"], scores, strict=True):
        inputs = processor(
            images=[image], text=[chat_prompt(processor, item["question"]) + choice], return_tensors="pt"
        )
        n_choice = len(processor.tokenizer(choice, add_special_tokens=False)["input_ids"])
        labels = inputs["input_ids"].clone()
        labels[:, :-n_choice] = -100
        with torch.no_grad():
            loss = model(**inputs, labels=labels).loss.item()
        assert score == pytest.approx(-loss * n_choice, rel=1e-4, abs=1e-4)


def test_accuracies_end_to_end(tiny, tmp_path):
    model, processor = tiny
    items = minifood.make_minifood(tmp_path, dishes=5, photos_per_dish=1)  # 5 dishes: 4 cuisines, 4 regions
    acc = evaluate.loglik_accuracy(model, processor, items, tmp_path)
    assert set(acc) == {"food_name", "food_type", "food_location", "all"} and 0 <= acc["all"] <= 1
    gen, answers = evaluate.generated_accuracy(infer.TransformersChat(model, processor), items[:3], tmp_path,
                                               prompt_fn=evaluate.eval_prompt,
                                               gen_config=infer.GenConfig(max_new_tokens=4))  # fmt: skip
    assert len(answers) == 3 and 0 <= gen["all"] <= 1
    with pytest.raises(FileNotFoundError, match="image_root"):
        evaluate.loglik_accuracy(model, processor, items, tmp_path / "elsewhere")

"""Multiple-choice scoring: the answer parser on tricky outputs, log-likelihoods checked against the model's own
loss, and evaluation end to end with a mini model on mini-food."""

import json
import subprocess
import sys

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


def test_training_format_answer_is_read_before_the_dish_name():
    """The dish name after "，图中的菜是" may hold another region's name: only the part before it is the choice."""
    assert evaluate.parse_choice("四川，图中的菜是湖南小炒肉", ["四川", "湖南", "广东", "上海"]) == 0
    assert evaluate.parse_choice("上海，图中的菜是上海小笼包", CHOICES) == 3
    assert evaluate.parse_choice("，图中的菜是锅包肉", CHOICES) is None  # no choice before the phrase


def test_eval_prompt_is_foodieqas():
    """lyan62/FoodieQA model-eval/scripts/sivqa_utils.py: format_choices + format_text_prompt(template=0, zh)."""
    item = {"question": "这是哪里的菜？ ", "choices": CHOICES}
    assert evaluate.eval_prompt(item) == (
        "这是哪里的菜？ 选项有: （A) 四川\n（B) 广东\n（C) 黑龙江\n（D) 上海\n, 请根据上图从所提供的选项中选择一个正确答案，为（"
    )
    assert evaluate.parse_choice("B) 广东", CHOICES) == 1 and evaluate.parse_choice("C)", CHOICES) == 2


def test_generated_answers_are_asked_image_first(tmp_path):
    """XTuner's InternVL dataset trains on "<img>...</img>\\n{question}": evaluation must ask the same way round."""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    item = {"question": "图中的菜是哪个地区的？", "choices": CHOICES, "answer": "2", "question_type": "food_location",
            "food_meta": {"food_file": "a.png"}}  # fmt: skip
    calls = []

    class Engine:
        def chat(self, prompt, session=None, gen_config=None, *, image_first=None):
            calls.append((prompt[0], image_first))
            return infer.Session(response=infer.Response("黑龙江，图中的菜是四川火锅", 1, 1, "stop"))

    accuracy, answers = evaluate.generated_accuracy(Engine(), [item], tmp_path)
    assert calls == [(item["question"], True)] and accuracy["all"] == 1.0


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


# ---- the command line, as notebook 08 runs it inside the LMDeploy environment ------------------------------------
@pytest.fixture
def saved(tiny, tmp_path):
    """The tiny model saved as a folder, and 6 mini-food items written as a SIVQA file with their photos."""
    from course_utils import foodieqa
    from course_utils.mini import save_atomic

    save_atomic(*tiny, tmp_path / "model")
    items = minifood.make_minifood(tmp_path / "photos", dishes=4, photos_per_dish=1)[:6]
    return tmp_path / "model", foodieqa.write_json(items, tmp_path / "items.json"), tmp_path / "photos", items


def test_cli_in_a_subprocess_gives_what_the_functions_give(tiny, saved, tmp_path):
    model_dir, items_json, root, items = saved
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "course_utils.evaluate", str(items_json), str(root), "--backend", "mini",
           "--model", str(model_dir), "--prompt", "question", "foodieqa", "--max-new-tokens", "4", "--out", str(out)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "prompt 'foodieqa'" in run.stdout
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["n"] == len(items) and record["backend"] == "mini"
    expected = evaluate.evaluate_model(
        infer.TransformersChat(*tiny), items, root, ("question", "foodieqa"), 4
    )
    assert record["results"] == json.loads(json.dumps(expected))


@pytest.mark.parametrize("problem", ["photo", "model", "out", "json"])
def test_cli_bad_input_is_one_line_and_writes_nothing(saved, tmp_path, capsys, problem):
    model_dir, items_json, root, items = saved
    out = tmp_path / "result.json"
    if problem == "photo":
        (root / items[2]["food_meta"]["food_file"]).unlink()
        expected = f"item 2 ({items[2]['question_id']}): photo"
    elif problem == "model":
        (model_dir / "config.json").unlink()
        expected = "missing config.json"
    elif problem == "out":
        out.write_text("keep me")
        expected = "already exists"
    else:
        items_json.write_text("[{", encoding="utf-8")
        expected = "not valid JSON"
    argv = [str(items_json), str(root), "--model", str(model_dir), "--out", str(out)]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and "\n" not in err, err
    assert (out.read_text() == "keep me") if problem == "out" else not out.exists()


def test_in_subprocess_returns_the_record_and_reports_failures(saved, tmp_path, capsys):
    model_dir, items_json, root, items = saved
    record = evaluate.in_subprocess(items_json, root, tmp_path / "r.json", model=model_dir, backend="mini",
                                    max_new_tokens=4)  # fmt: skip
    assert record["n"] == len(items) and set(record["results"]) == {"question"}
    assert "$ " in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="exited with 2:\nerror: .*missing config.json"):
        evaluate.in_subprocess(items_json, root, tmp_path / "r2.json", model=tmp_path, backend="mini")


def test_markdown_table_rows_are_types_and_all_comes_last():
    table = evaluate.markdown_table({"before": {"food_name": 0.25, "all": 0.25},
                                     "after": {"food_name": 1.0, "food_type": 0.5, "all": 0.8}})  # fmt: skip
    assert table.splitlines() == ["| question type | before | after |", "|---|---:|---:|",
                                  "| food_name | 25% | 100% |", "| food_type | – | 50% |", "| **all** | 25% | 80% |"]  # fmt: skip

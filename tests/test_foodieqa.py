"""FoodieQA SIVQA files: the original lab's conversion, validation errors that write nothing, the split, build-your-own."""

import json

import pytest
from PIL import Image

from course_utils import foodieqa


def item(i=0, **changes):
    """A schema-faithful SIVQA item (made up for the tests, not FoodieQA data)."""
    it = {
        "question": "图片中的食物是哪个地区的特色菜？",
        "choices": ["四川", "广东", "黑龙江", "上海"],
        "answer": "2",
        "question_type": "region-2",
        "food_name": "锅包肉",
        "question_id": f"sivqa-{i:03d}",
        "food_meta": {
            "main_ingredient": ["猪肉"],
            "id": i,
            "food_name": "锅包肉",
            "food_type": "东北菜",
            "food_location": "黑龙江",
            "food_file": f"images/{i // 2}.jpg",
        },  # fmt: skip
        "question_en": "Which region is this dish from?",
        "choices_en": ["Sichuan", "Guangdong", "Heilongjiang", "Shanghai"],
    }
    it.update(changes)
    return it


def test_convert_writes_the_seeds_format_with_literal_utf8(tmp_path):
    src, dst = tmp_path / "sivqa.json", tmp_path / "out" / "sivqa_llava.json"
    src.write_text(json.dumps([item(0), item(1, answer=0)], ensure_ascii=False), encoding="utf-8")
    assert foodieqa.main(["convert", str(src), str(dst)]) == 0
    text = dst.read_text(encoding="utf-8")
    assert "锅包肉" in text and "\\u" not in text  # UTF-8 kept literally
    assert json.loads(text) == [
        {"image": "images/0.jpg", "conversations": [
            {"from": "human", "value": "图片中的食物是哪个地区的特色菜？\n<image>"},
            {"from": "gpt", "value": "黑龙江，图中的菜是锅包肉"}]},
        {"image": "images/0.jpg", "conversations": [
            {"from": "human", "value": "图片中的食物是哪个地区的特色菜？\n<image>"},
            {"from": "gpt", "value": "四川，图中的菜是锅包肉"}]},
    ]  # fmt: skip


def test_choices_in_prompt_lists_them():
    human = foodieqa.to_llava(item(), choices_in_prompt=True)["conversations"][0]["value"]
    assert human == "图片中的食物是哪个地区的特色菜？ 选项有: A. 四川 B. 广东 C. 黑龙江 D. 上海\n<image>"


def _meta_without(field):
    meta = dict(item()["food_meta"])
    meta.pop(field)
    return meta


BAD = [
    ("not json", "{oops", "not valid JSON (line 1"),
    ("dict top level", json.dumps({"items": []}), "expected a JSON list"),
    ("missing field", json.dumps([item(0), {k: v for k, v in item(1).items() if k != "choices"}]),
     "item 1 (sivqa-001): missing field 'choices'"),
    ("answer not an index", json.dumps([item(answer="C")]), "field 'answer' must be a choice index"),
    ("answer out of range", json.dumps([item(answer="4")]), "field 'answer' is 4, outside the 4 choices"),
    ("no food_file", json.dumps([item(food_meta=_meta_without("food_file"))]), "missing field 'food_meta.food_file'"),
    ("choices not a list", json.dumps([item(choices="四川")]), "field 'choices' must be a list"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "content", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_item_and_field_and_writes_nothing(tmp_path, capsys, case, content, message):
    src, dst = tmp_path / "sivqa.json", tmp_path / "out.json"
    src.write_text(content, encoding="utf-8")
    assert foodieqa.main(["convert", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not dst.exists() and list(tmp_path.iterdir()) == [src]


def test_missing_source_and_existing_destination(tmp_path, capsys):
    assert foodieqa.main(["convert", str(tmp_path / "nope.json"), str(tmp_path / "out.json")]) == 2
    assert "no such file" in capsys.readouterr().err and not (tmp_path / "out.json").exists()
    src, dst = tmp_path / "sivqa.json", tmp_path / "out.json"
    src.write_text(json.dumps([item()]), encoding="utf-8")
    dst.write_text("keep me", encoding="utf-8")
    assert foodieqa.main(["convert", str(src), str(dst)]) == 2
    assert "--overwrite" in capsys.readouterr().err and dst.read_text(encoding="utf-8") == "keep me"
    assert foodieqa.main(["convert", str(src), str(dst), "--overwrite"]) == 0
    assert json.loads(dst.read_text(encoding="utf-8"))[0]["image"] == "images/0.jpg"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_split_shares_no_photo_is_deterministic_and_reports_types(tmp_path):
    items = [item(i, question_type=["region-2", "ingredients-1"][i % 2]) for i in range(40)]
    train, test = foodieqa.split(items, 0.25, seed=0)
    assert len(train) + len(test) == 40 and test
    photos = lambda xs: {x["food_meta"]["food_file"] for x in xs}  # noqa: E731
    assert not photos(train) & photos(test)
    assert foodieqa.split(list(reversed(items)), 0.25, seed=0)[1] == list(reversed(test))  # order-independent
    report = foodieqa.split_report(train, test)
    assert set(report) == {"region-2", "ingredients-1"} and sum(a + b for a, b in report.values()) == 40
    src = tmp_path / "s.json"
    src.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    assert foodieqa.main(["split", str(src), str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        foodieqa.split(items, 1.5)


def test_build_your_own_from_a_photo_folder(tmp_path):
    root = tmp_path / "photos"
    dishes = {"锅包肉": ("东北菜", "黑龙江"), "麻婆豆腐": ("川菜", "四川"), "白切鸡": ("粤菜", "广东"),
              "小笼包": ("沪菜", "上海"), "热干面": ("鄂菜", "湖北")}  # fmt: skip
    for n, dish in enumerate(dishes):
        (root / dish).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (8, 8), (n * 40, k * 100, 0)).save(root / dish / f"{k}.jpg")
    (root / "empty").mkdir()
    table = tmp_path / "dishes.csv"
    table.write_text("dish,cuisine,region\n" + "".join(f"{d},{c},{r}\n" for d, (c, r) in dishes.items()),
                     encoding="utf-8")  # fmt: skip
    items = foodieqa.build_from_folder(root, table)
    assert len(items) == 10 * 3  # 10 photos × (dish, cuisine, region)
    for it in items:
        foodieqa.validate_item(it)
        assert len(it["choices"]) == 4 and len(set(it["choices"])) == 4
        assert (root / it["food_meta"]["food_file"]).is_file()
    names = [it for it in items if it["question_type"] == "food_name"]
    assert all(foodieqa.answer_text(it) == it["food_meta"]["food_name"] for it in names)
    assert foodieqa.build_from_folder(root, table) == items  # deterministic
    converted = foodieqa.convert(items)
    assert converted[0]["conversations"][1]["value"].endswith("，图中的菜是" + items[0]["food_name"])
    with pytest.raises(foodieqa.FoodieQAError, match="need at least 4"):
        foodieqa.build_from_folder(root / "锅包肉")


def test_find_sivqa_prefers_the_original_file_over_converted_ones(tmp_path):
    with pytest.raises(foodieqa.FoodieQAError, match="lyan62/FoodieQA"):
        foodieqa.find_sivqa(tmp_path)
    (tmp_path / "sivqa_llava.json").write_text("[]")  # the original lab's converted file: not SIVQA
    with pytest.raises(foodieqa.FoodieQAError, match="no sivqa"):
        foodieqa.find_sivqa(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "sivqa_tidy.json").write_text("[]")
    (tmp_path / "sivqa_mine.json").write_text("[]")
    assert foodieqa.find_sivqa(tmp_path) == tmp_path / "sub" / "sivqa_tidy.json"
    (tmp_path / "sivqa_tidy.json").write_text("[]")
    assert foodieqa.find_sivqa(tmp_path) == tmp_path / "sivqa_tidy.json"

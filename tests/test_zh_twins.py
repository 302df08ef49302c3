"""course_utils.zh_twins: the Chinese edition (notebooks/zh/) in step with the English notebooks, and
``python -m course_utils.nbtools zh``."""

import json

import nbformat
import pytest

from course_utils import nbtools, paths, zh_twins

META = {"id": "01", "title": "t", "track": ["mini"], "runtime_min": {"mini": 1}, "min_vram_gb": None}


def zh_course(tmp_path):
    """A notebooks/ folder with one English notebook and its Chinese twin, translated and in step."""
    root = tmp_path / "notebooks"
    (root / "zh").mkdir(parents=True)
    en = nbformat.v4.new_notebook()
    en.cells = [
        nbformat.v4.new_markdown_cell("# 01 · Title\n\nWhat you'll do"),
        nbformat.v4.new_code_cell("from course_utils import env\n\nENV = env.init('01')"),
        nbformat.v4.new_markdown_cell("## Train it"),
        nbformat.v4.new_code_cell("print(1)"),
        nbformat.v4.new_markdown_cell("Next → [02](02_x.ipynb)"),
    ]
    for cell in en.cells:
        del cell["id"]  # like the course's notebooks (nbformat 4.4, no cell ids)
    en.nbformat_minor = 4
    en.metadata["course"] = META
    nbformat.write(en, root / "01_x.ipynb")
    zh = zh_twins.new_twin(json.loads((root / "01_x.ipynb").read_text()))
    for cell, text in zip(
        zh["cells"][::2], ["# 01 · 标题\n\n你将做什么", "## 训练", "下一课 → [02](02_x.ipynb)"], strict=True
    ):
        cell["source"] = text
    (root / "zh" / "01_x.ipynb").write_text(json.dumps(zh, ensure_ascii=False))
    assert zh_twins.accept(root / "zh" / "01_x.ipynb", root=root) == [0, 2, 4]
    return root, root / "01_x.ipynb", root / "zh" / "01_x.ipynb"


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def edit(path, index, text):
    nb = load(path)
    nb["cells"][index]["source"] = text
    path.write_text(json.dumps(nb, ensure_ascii=False))


def test_a_translated_twin_is_in_step(tmp_path):
    root, _, zh = zh_course(tmp_path)
    assert zh_twins.zh_check(root)[0] == []
    assert zh_twins.zh_check(root)[1] == [
        "notebooks/zh/01_x.ipynb: cell 4: links 02_x.ipynb, which has no Chinese twin yet"
    ]
    assert zh_twins.sync_twin(load(root / "01_x.ipynb"), load(zh))[1] == []


def test_a_changed_english_markdown_cell_makes_its_translation_stale(tmp_path):
    root, en, zh = zh_course(tmp_path)
    edit(en, 2, "## Train the projector only")
    found, _ = zh_twins.zh_check(root)
    assert len(found) == 1 and "cell 2: stale" in found[0] and "Train the projector only" in found[0]
    assert "zh --accept notebooks/zh/01_x.ipynb 2" in found[0]
    notes = zh_twins.sync_twin(load(en), load(zh))[1]
    assert [(n.cell, n.kind) for n in notes] == [(2, "stale")]


def test_accept_clears_staleness(tmp_path):
    root, en, zh = zh_course(tmp_path)
    edit(en, 2, "## Train the projector only")
    edit(zh, 2, "## 只训练投影层")
    assert zh_twins.accept(zh, [2], root=root) == [2]
    assert zh_twins.zh_check(root)[0] == []
    edit(en, 0, "# 01 · A new title")
    assert zh_twins.accept("01", None, root=root) == [0]  # --accept-all, by notebook number
    assert zh_twins.zh_check(root)[0] == []


def test_an_edited_chinese_code_cell_fails(tmp_path):
    root, _, zh = zh_course(tmp_path)
    edit(zh, 3, "print(2)")
    found, _ = zh_twins.zh_check(root)
    assert len(found) == 1 and "cell 3: code differs" in found[0] and "zh --write" in found[0]


@pytest.mark.parametrize("change", ["missing", "order"])
def test_a_missing_cell_or_a_wrong_order_fails(tmp_path, change):
    root, _, zh = zh_course(tmp_path)
    nb = load(zh)
    if change == "missing":
        del nb["cells"][3]
    else:
        nb["cells"][1], nb["cells"][3] = nb["cells"][3], nb["cells"][1]
    zh.write_text(json.dumps(nb, ensure_ascii=False))
    found, _ = zh_twins.zh_check(root)
    assert found and found[0].startswith("notebooks/zh/01_x.ipynb: cell ") and "zh --write" in found[0]
    if change == "order":
        assert "cell 1: code differs" in found[0]
    synced, _ = zh_twins.sync_twin(load(root / "01_x.ipynb"), load(zh))
    zh.write_text(json.dumps(synced, ensure_ascii=False))
    assert zh_twins.zh_check(root)[0] == []


def test_write_copies_code_and_keeps_the_chinese_markdown(tmp_path, monkeypatch):
    root, en, zh = zh_course(tmp_path)
    nb = load(en)
    nb["cells"][3]["source"] = "print(42)"  # the code changed
    nb["cells"].insert(3, nbformat.v4.new_markdown_cell("A new explanation."))  # and a new cell before it
    del nb["cells"][3]["id"]
    en.write_text(json.dumps(nb))
    monkeypatch.setattr(paths, "notebooks_dir", lambda: root)
    assert nbtools.main(["zh"]) == 1  # the report: out of step
    assert nbtools.main(["zh", "--write"]) == 0
    cells = load(zh)["cells"]
    assert [zh_twins.cell_text(c) for c in cells] == [
        "# 01 · 标题\n\n你将做什么",
        zh_twins.cell_text(nb["cells"][1]),
        "## 训练",
        "A new explanation.",  # inserted in English, marked untranslated
        "print(42)",
        "下一课 → [02](02_x.ipynb)",
    ]
    assert cells[3]["metadata"]["course_zh"]["untranslated"] is True
    found, _ = zh_twins.zh_check(root)
    assert len(found) == 1 and "cell 3: not translated yet" in found[0]
    assert zh_twins.accept(zh, None, root=root) == []  # still the English text: --accept-all leaves it
    edit(zh, 3, "新的解释。")
    assert zh_twins.accept(zh, None, root=root) == [3]
    assert zh_twins.zh_check(root)[0] == []


def test_deleting_an_english_cell_keeps_the_other_translations_in_place(tmp_path):
    root, en, zh = zh_course(tmp_path)
    nb = load(en)
    del nb["cells"][2:4]  # "## Train it" and its code
    en.write_text(json.dumps(nb))
    synced, notes = zh_twins.sync_twin(load(en), load(zh))
    assert [zh_twins.cell_text(c) for c in synced["cells"]][::2] == [
        "# 01 · 标题\n\n你将做什么",
        "下一课 → [02](02_x.ipynb)",
    ]
    assert [(n.kind, n.text) for n in notes] == [("dropped", "## 训练")]


def test_cell_ids_are_copied_from_the_english_notebook(tmp_path):
    root, en, zh = zh_course(tmp_path)
    nb = load(en)
    nb["nbformat_minor"] = 5
    for n, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{n}"
    en.write_text(json.dumps(nb))
    assert any("id None" in p for p in zh_twins.zh_check(root)[0])
    synced, notes = zh_twins.sync_twin(load(en), load(zh))
    assert notes == [] and [c["id"] for c in synced["cells"]] == [f"cell-{n}" for n in range(5)]


def test_repository_chinese_edition_is_in_step():
    found, warnings = zh_twins.zh_check()
    assert found == [], "\n".join(found)

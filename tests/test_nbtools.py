import json
import subprocess
import sys

import nbformat
import pytest

from course_utils import nbtools, paths

META = {"id": "01", "title": "t", "track": ["mini"], "runtime_min": {"mini": 1}, "min_vram_gb": None}


def make_notebook(path, *, outputs=False, meta=META):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)")
    if outputs:
        cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
        cell.execution_count = 1
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    if meta is not None:
        nb.metadata["course"] = meta
    nbformat.write(nb, path)
    return path


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    git("init", "-q", cwd=tmp_path)
    git("config", "user.email", "t@example.com", cwd=tmp_path)
    git("config", "user.name", "t", cwd=tmp_path)
    return tmp_path


def test_committed_outputs_fail_the_check(repo):
    nb = make_notebook(repo / "01_x.ipynb", outputs=True)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "x", cwd=repo)
    found = nbtools.check([nb])
    assert any("has outputs" in p for p in found) and any("execution count" in p for p in found)
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils.nbtools", "check", str(nb)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "has outputs" in proc.stderr


def test_outputs_only_in_the_working_tree_are_fine(repo):
    nb = make_notebook(repo / "01_x.ipynb")
    git("add", ".", cwd=repo)
    make_notebook(nb, outputs=True)  # a learner ran it; git still holds the clean version
    assert nbtools.check([nb]) == []


def test_untracked_notebooks_are_read_from_disk(tmp_path):
    nb = make_notebook(tmp_path / "01_x.ipynb", outputs=True)
    assert nbtools.check([nb])


def test_metadata_is_required_and_consistent(tmp_path):
    assert any("no `course`" in p for p in nbtools.check([make_notebook(tmp_path / "01_a.ipynb", meta=None)]))
    bad = dict(META, id="02")
    assert any("course.id" in p for p in nbtools.check([make_notebook(tmp_path / "01_b.ipynb", meta=bad)]))
    partial = {"id": "01"}
    assert any("lacks" in p for p in nbtools.check([make_notebook(tmp_path / "01_c.ipynb", meta=partial)]))


def test_strip_cleans_and_keeps_course_metadata(tmp_path):
    nb = make_notebook(tmp_path / "01_x.ipynb", outputs=True)
    data = json.loads(nb.read_text())
    data["metadata"]["widgets"] = {"state": {}}
    nb.write_text(json.dumps(data))
    assert nbtools.strip(nb) is True
    assert nbtools.check([nb]) == []
    clean = json.loads(nb.read_text())
    assert clean["metadata"]["course"] == META and "widgets" not in clean["metadata"]
    assert nbtools.strip(nb) is False  # idempotent


def test_cell_ids_in_a_4_4_notebook_are_reported_and_stripped(tmp_path):
    nb = make_notebook(tmp_path / "01_x.ipynb")  # nbformat 4.5: ids are part of the schema
    assert nbtools.check([nb]) == []
    data = json.loads(nb.read_text())
    data["nbformat_minor"] = 4  # as the course's older notebooks; nbformat.v4.new_*_cell still adds ids
    nb.write_text(json.dumps(data))
    assert any("nbformat 4.4" in p for p in nbtools.check([nb]))
    assert nbtools.strip(nb) is True
    assert nbtools.check([nb]) == [] and all("id" not in c for c in json.loads(nb.read_text())["cells"])


def test_repository_notebooks_are_clean_and_listed():
    files = nbtools.notebook_files()
    assert files, "the course has notebooks"
    assert nbtools.check(files) == []
    stems = {e["stem"] for e in nbtools.SYLLABUS}
    for f in files:
        if f.parent.name == "solutions":
            assert f.stem.endswith("_solutions") and f.stem.removesuffix("_solutions") in stems
        else:
            assert f.stem in stems, f"{f.name} is not in nbtools.SYLLABUS"


@pytest.mark.parametrize("name", ["README.md", "README_zh-CN.md"])
def test_readme_syllabus_is_the_generated_one(name):
    readme = (paths.repo_root() / name).read_text(encoding="utf-8")
    assert nbtools.readme_syllabus(name) in readme, f"{name}: the syllabus is stale: run `make syllabus`"


# ---- the Chinese edition (notebooks/zh/) -----------------------------------------------------------------------


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
    zh = nbtools.new_twin(json.loads((root / "01_x.ipynb").read_text()))
    for cell, text in zip(
        zh["cells"][::2], ["# 01 · 标题\n\n你将做什么", "## 训练", "下一课 → [02](02_x.ipynb)"], strict=True
    ):
        cell["source"] = text
    (root / "zh" / "01_x.ipynb").write_text(json.dumps(zh, ensure_ascii=False))
    assert nbtools.accept(root / "zh" / "01_x.ipynb", root=root) == [0, 2, 4]
    return root, root / "01_x.ipynb", root / "zh" / "01_x.ipynb"


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def edit(path, index, text):
    nb = load(path)
    nb["cells"][index]["source"] = text
    path.write_text(json.dumps(nb, ensure_ascii=False))


def test_a_translated_twin_is_in_step(tmp_path):
    root, _, zh = zh_course(tmp_path)
    assert nbtools.zh_check(root)[0] == []
    assert nbtools.zh_check(root)[1] == [
        "notebooks/zh/01_x.ipynb: cell 4: links 02_x.ipynb, which has no Chinese twin yet"
    ]
    assert nbtools.sync_twin(load(root / "01_x.ipynb"), load(zh))[1] == []


def test_a_changed_english_markdown_cell_makes_its_translation_stale(tmp_path):
    root, en, zh = zh_course(tmp_path)
    edit(en, 2, "## Train the projector only")
    found, _ = nbtools.zh_check(root)
    assert len(found) == 1 and "cell 2: stale" in found[0] and "Train the projector only" in found[0]
    assert "zh --accept notebooks/zh/01_x.ipynb 2" in found[0]
    notes = nbtools.sync_twin(load(en), load(zh))[1]
    assert [(n.cell, n.kind) for n in notes] == [(2, "stale")]


def test_accept_clears_staleness(tmp_path):
    root, en, zh = zh_course(tmp_path)
    edit(en, 2, "## Train the projector only")
    edit(zh, 2, "## 只训练投影层")
    assert nbtools.accept(zh, [2], root=root) == [2]
    assert nbtools.zh_check(root)[0] == []
    edit(en, 0, "# 01 · A new title")
    assert nbtools.accept("01", None, root=root) == [0]  # --accept-all, by notebook number
    assert nbtools.zh_check(root)[0] == []


def test_an_edited_chinese_code_cell_fails(tmp_path):
    root, _, zh = zh_course(tmp_path)
    edit(zh, 3, "print(2)")
    found, _ = nbtools.zh_check(root)
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
    found, _ = nbtools.zh_check(root)
    assert found and found[0].startswith("notebooks/zh/01_x.ipynb: cell ") and "zh --write" in found[0]
    if change == "order":
        assert "cell 1: code differs" in found[0]
    synced, _ = nbtools.sync_twin(load(root / "01_x.ipynb"), load(zh))
    zh.write_text(json.dumps(synced, ensure_ascii=False))
    assert nbtools.zh_check(root)[0] == []


def test_write_copies_code_and_keeps_the_chinese_markdown(tmp_path, monkeypatch):
    root, en, zh = zh_course(tmp_path)
    nb = load(en)
    nb["cells"][3]["source"] = "print(42)"  # the code changed
    nb["cells"].insert(3, nbformat.v4.new_markdown_cell("A new explanation."))  # and a new cell before it
    del nb["cells"][3]["id"]
    en.write_text(json.dumps(nb))
    monkeypatch.setattr(nbtools.paths, "notebooks_dir", lambda: root)
    assert nbtools.main(["zh"]) == 1  # the report: out of step
    assert nbtools.main(["zh", "--write"]) == 0
    cells = load(zh)["cells"]
    assert [nbtools.cell_text(c) for c in cells] == [
        "# 01 · 标题\n\n你将做什么",
        nbtools.cell_text(nb["cells"][1]),
        "## 训练",
        "A new explanation.",  # inserted in English, marked untranslated
        "print(42)",
        "下一课 → [02](02_x.ipynb)",
    ]
    assert cells[3]["metadata"]["course_zh"]["untranslated"] is True
    found, _ = nbtools.zh_check(root)
    assert len(found) == 1 and "cell 3: not translated yet" in found[0]
    assert nbtools.accept(zh, None, root=root) == []  # still the English text: --accept-all leaves it
    edit(zh, 3, "新的解释。")
    assert nbtools.accept(zh, None, root=root) == [3]
    assert nbtools.zh_check(root)[0] == []


def test_deleting_an_english_cell_keeps_the_other_translations_in_place(tmp_path):
    root, en, zh = zh_course(tmp_path)
    nb = load(en)
    del nb["cells"][2:4]  # "## Train it" and its code
    en.write_text(json.dumps(nb))
    synced, notes = nbtools.sync_twin(load(en), load(zh))
    assert [nbtools.cell_text(c) for c in synced["cells"]][::2] == [
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
    assert any("id None" in p for p in nbtools.zh_check(root)[0])
    synced, notes = nbtools.sync_twin(load(en), load(zh))
    assert notes == [] and [c["id"] for c in synced["cells"]] == [f"cell-{n}" for n in range(5)]


def test_repository_chinese_edition_is_in_step():
    found, warnings = nbtools.zh_check()
    assert found == [], "\n".join(found)

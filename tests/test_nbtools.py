"""course_utils.nbtools: the hygiene check and the stripper (as committed, with their command line)."""

import json
import subprocess
import sys

import nbformat
import pytest

from course_utils import nbtools

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


def test_repository_notebooks_are_clean():
    files = nbtools.notebook_files()
    assert files, "the course has notebooks"
    assert nbtools.check(files) == []

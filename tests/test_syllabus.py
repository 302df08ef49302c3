"""course_utils.syllabus: the planned notebooks and the READMEs' syllabus tables (``make syllabus``)."""

import pytest

from course_utils import nbfiles, nbtools, paths, syllabus


def test_every_notebook_is_in_the_syllabus():
    stems = {e["stem"] for e in syllabus.SYLLABUS}
    for f in nbfiles.notebook_files():
        if f.parent.name == "solutions":
            assert f.stem.endswith("_solutions") and f.stem.removesuffix("_solutions") in stems
        else:
            assert f.stem in stems, f"{f.name} is not in syllabus.SYLLABUS"


@pytest.mark.parametrize("name", ["README.md", "README_zh-CN.md"])
def test_readme_syllabus_is_the_generated_one(name):
    readme = (paths.repo_root() / name).read_text(encoding="utf-8")
    assert syllabus.readme_syllabus(name) in readme, f"{name}: the syllabus is stale: run `make syllabus`"


def test_the_command_prints_the_readme_table_and_notebook_00_finds_it_in_nbtools(capsys):
    assert nbtools.main(["syllabus"]) == 0
    assert capsys.readouterr().out == syllabus.readme_syllabus("README.md") + "\n"
    assert nbtools.SYLLABUS is syllabus.SYLLABUS and nbtools.syllabus_markdown is syllabus.syllabus_markdown

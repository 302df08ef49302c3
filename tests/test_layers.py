"""The layers of course_utils (pyproject.toml's [tool.importlinter]): kept by the real tree, broken by an upward import."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

REPO = Path(__file__).resolve().parents[1]
LAYERS = "course_utils layers: site > tools > labs > mini > concepts > data > base"


def lint_imports(package_parent: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run lint-imports on the course_utils found first in ``package_parent``, with the repository's contracts."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run(
        [sys.executable, "-c", code, str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_real_tree_keeps_every_contract(tmp_path):
    result = lint_imports(REPO, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(
        REPO / "course_utils", copy / "course_utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    env_py = copy / "course_utils" / "env.py"
    env_py.write_text(
        env_py.read_text(encoding="utf-8") + "\nfrom course_utils import demo  # noqa\n", "utf-8"
    )
    result = lint_imports(copy, tmp_path)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert LAYERS in broken
    assert "course_utils.env is not allowed to import course_utils.demo" in broken

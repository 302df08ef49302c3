"""The layers of course_utils (pyproject.toml's [tool.importlinter]): kept by the real tree, broken by an upward import;
and no import cycle between its modules, lazy imports inside functions included (grimp's import graph)."""

import json
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


# ---- no import cycles, lazy imports included ----------------------------------------------------------------------


def import_graph(package_parent: Path) -> dict[str, set[str]]:
    """Which course_utils modules each course_utils module imports (from the course_utils found first in
    ``package_parent``), as grimp reads them: every import statement, those inside functions too.

    Every module is its own node, the submodules of the packages ``course_utils.mini`` and ``course_utils.deploy``
    included (their ``__init__`` is the node ``course_utils.mini``, ``course_utils.deploy``), so a cycle between two
    of mini's modules counts as well as one between two top-level modules. Built in a subprocess, where
    ``package_parent`` comes first on the path."""
    code = ("import grimp, json; g = grimp.build_graph('course_utils', cache_dir=None); "
            "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=package_parent, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return {module: set(imported) - {module} for module, imported in json.loads(run.stdout).items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of ``graph`` (Tarjan's algorithm) that has
    more than one module; none when the imports form a DAG."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = {stack.pop()}
            while v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [shortest_cycle(graph, component) for component in components]


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest import path from the first module of ``component`` back to itself (breadth first)."""
    start = min(component)
    paths = {w: [start, w] for w in graph[start] & component}
    queue = list(paths)
    while start not in paths:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return paths[start]


def cycle_report(cycles: list[list[str]]) -> str:
    return "import cycles in course_utils (lazy imports count):\n" + "\n".join(" → ".join(c) for c in cycles)


def test_course_utils_has_no_import_cycle():
    cycles = import_cycles(import_graph(REPO))
    assert cycles == [], cycle_report(cycles)


def test_a_lazy_import_inside_a_function_makes_a_cycle(tmp_path):
    """The cycle the engine chooser made before it left infer for course_utils.backends: infer imported realmodel
    inside ``make_engine``, while realmodel imports infer at the top."""
    copy = tmp_path / "src"
    shutil.copytree(
        REPO / "course_utils", copy / "course_utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    infer_py = copy / "course_utils" / "infer.py"
    lazy = "\n\ndef make_engine(model=None):\n    from .realmodel import load\n\n    return load(model)\n"
    infer_py.write_text(infer_py.read_text(encoding="utf-8") + lazy, "utf-8")
    cycles = import_cycles(import_graph(copy))
    assert cycles == [["course_utils.infer", "course_utils.realmodel", "course_utils.infer"]], cycle_report(
        cycles
    )

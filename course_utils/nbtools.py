"""Notebook hygiene (what a committed notebook may hold), and the command line of the notebook tools.

    python -m course_utils.nbtools check      # fails if a notebook in git has outputs or lacks `course` metadata
    python -m course_utils.nbtools strip      # removes outputs and execution counts in place (keeps `course`)
    python -m course_utils.nbtools syllabus   # prints the README's syllabus table (--write: updates both READMEs)
    python -m course_utils.nbtools zh         # the Chinese edition: stale translations, cells out of step
    python -m course_utils.nbtools zh --write # copies the English code cells into every Chinese twin

The check reads what *git* holds (the staged version of a tracked notebook: ``nbfiles.read_committed``), so a
learner's own outputs in the working tree never fail ``make test``; untracked notebooks and checkouts without git are
read from disk. Run on the whole course it checks the Chinese twins as well (``zh_twins.zh_check``). ``syllabus``
and ``zh`` only dispatch: the table is ``course_utils.syllabus``'s job, the Chinese edition ``course_utils.zh_twins``'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import paths, zh_twins
from .nbfiles import KEEP_NOTEBOOK_METADATA, notebook_files, read_committed, read_nb, write_nb
from .syllabus import SYLLABUS, readme_syllabus, syllabus_markdown, write_syllabus  # noqa: F401  (notebook 00 calls nbtools.SYLLABUS and nbtools.syllabus_markdown)

REQUIRED_KEYS = ("id", "title", "track", "runtime_min", "min_vram_gb")


def cell_ids_allowed(nb: dict) -> bool:
    """Cell ids are part of the notebook schema from nbformat 4.5 on."""
    return (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5)


def problems(nb: dict, name: str) -> list[str]:
    """Hygiene problems of one notebook (as a dict); empty when clean."""
    out = []
    ids_allowed = cell_ids_allowed(nb)
    for i, cell in enumerate(nb.get("cells", [])):
        if "id" in cell and not ids_allowed:
            out.append(f"{name}: cell {i} has an id, which nbformat 4.4 does not allow (run `make strip`)")
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            out.append(f"{name}: code cell {i} has outputs (run `make strip`)")
        if cell.get("execution_count") is not None:
            out.append(f"{name}: code cell {i} has an execution count (run `make strip`)")
    meta = nb.get("metadata", {}).get("course")
    if not isinstance(meta, dict):
        out.append(f"{name}: notebook metadata has no `course` entry")
    else:
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            out.append(f"{name}: `course` metadata lacks {', '.join(missing)}")
        stem_id = Path(name).name[:2]
        if meta.get("id") != stem_id:
            out.append(f"{name}: `course.id` is {meta.get('id')!r} but the file name starts with {stem_id!r}")
    return out


def check(files: list[Path]) -> list[str]:
    """All hygiene problems of ``files``, read as committed."""
    found = []
    for f in files:
        found += problems(read_committed(f), str(f))
    return found


def strip(path: Path) -> bool:
    """Remove outputs, execution counts and volatile metadata in place; True if the file changed."""
    path = Path(path)
    nb = read_nb(path)
    ids_allowed = cell_ids_allowed(nb)
    for cell in nb.get("cells", []):
        if not ids_allowed:
            cell.pop("id", None)  # nbformat.v4.new_*_cell adds ids, which a 4.4 notebook's schema refuses
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in KEEP_NOTEBOOK_METADATA}
    return write_nb(path, nb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.nbtools", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("check", "strip"):
        p = sub.add_parser(name)
        p.add_argument(
            "files", nargs="*", type=Path, help="notebooks (default: every notebook under notebooks/)"
        )
    syl = sub.add_parser("syllabus")
    syl.add_argument("--write", action="store_true", help="update README.md and README_zh-CN.md in place")
    zh = sub.add_parser("zh", help="the Chinese edition (notebooks/zh/): report, sync, accept translations")
    zh.add_argument(
        "--write", action="store_true", help="copy the English code cells into every Chinese twin"
    )
    zh.add_argument(
        "--accept",
        nargs="+",
        metavar=("NOTEBOOK", "CELL"),
        help="mark these markdown cells of NOTEBOOK (a path or a number such as 07) as translated",
    )
    zh.add_argument(
        "--accept-all", metavar="NOTEBOOK", help="mark every translated cell of NOTEBOOK up to date"
    )
    zh.add_argument(
        "--new", nargs="+", metavar="NOTEBOOK", help="start Chinese twins of these English notebooks"
    )
    args = parser.parse_args(argv)
    if args.command == "zh":
        return zh_twins.zh_command(args)
    if args.command == "syllabus":
        if args.write:
            for name in ("README.md", "README_zh-CN.md"):
                changed = write_syllabus(paths.repo_root() / name)
                print(f"{name}: {'updated' if changed else 'up to date'}")
        else:
            print(readme_syllabus("README.md"))
        return 0
    files = args.files or notebook_files()
    if args.command == "strip":
        changed = [f for f in files if strip(f)]
        print(f"stripped {len(changed)} of {len(files)} notebook(s)")
        return 0
    found = check(files)
    warnings: list[str] = []
    if not args.files:  # the whole course: the Chinese twins must be in step with the English notebooks too
        zh_found, warnings = zh_twins.zh_check()
        found += zh_found
    for line in warnings:
        print(f"warning: {line}")
    for line in found:
        print(line, file=sys.stderr)
    print(f"notebook hygiene: {len(files)} notebook(s), {len(found)} problem(s), {len(warnings)} warning(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""The course's notebook files: where they are, what git holds of them, and how they are written.

Shared by the hygiene check (``nbtools``) and the Chinese twins (``zh_twins``). A tracked notebook is read as git's
index holds it (its staged version), so a learner's own outputs in the working tree never fail ``make test``;
untracked notebooks and checkouts without git are read from disk. Notebooks are written as Jupyter writes them
(indent 1, UTF-8 kept as is, a trailing newline).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from . import paths

# The notebook metadata a committed notebook keeps (``nbtools strip``; a Chinese twin is rebuilt with the same).
KEEP_NOTEBOOK_METADATA = ("course", "course_zh", "kernelspec", "language_info")


def notebook_files(root: Path | None = None) -> list[Path]:
    """Every notebook under ``root`` (default: the course's notebooks/), Chinese twins and solutions included."""
    root = Path(root) if root else paths.notebooks_dir()
    if root is None:
        raise FileNotFoundError("notebooks/ not found: run this from a checkout of the course repository")
    return sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def staged(path: Path) -> dict | None:
    """The notebook as git's index holds it; None if git does not track it (or there is no git)."""
    path = Path(path).resolve()
    blob = subprocess.run(
        ["git", "show", f":./{path.name}"], cwd=path.parent, capture_output=True, text=True, check=False
    )
    return json.loads(blob.stdout) if blob.returncode == 0 else None


def read_nb(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_committed(path: Path) -> dict:
    """The notebook as git holds it (staged version) if tracked, else as on disk."""
    nb = staged(path)
    return nb if nb is not None else read_nb(path)


def write_nb(path: Path, nb: dict) -> bool:
    """Write ``nb`` to ``path`` as Jupyter does; True if the file changed."""
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    if new != old:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new, encoding="utf-8")
        return True
    return False

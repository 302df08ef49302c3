"""Maintainer tools for the notebooks: hygiene check, output stripper, syllabus table.

    python -m course_utils.nbtools check      # fails if a notebook in git has outputs or lacks `course` metadata
    python -m course_utils.nbtools strip      # removes outputs and execution counts in place (keeps `course`)
    python -m course_utils.nbtools syllabus   # prints the README's syllabus table (--write: updates both READMEs)

The check reads what *git* holds (the staged version of a tracked notebook), so a learner's own outputs in the
working tree never fail ``make test``; untracked notebooks and checkouts without git are read from disk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from . import paths

REQUIRED_KEYS = ("id", "title", "track", "runtime_min", "min_vram_gb")
KEEP_NOTEBOOK_METADATA = ("course", "kernelspec", "language_info")

# The planned course; the notebooks' own `course` metadata overrides tracks and runtimes once they exist.
SYLLABUS: list[dict] = [
    {"id": "00", "stem": "00_welcome_and_setup", "title": "Welcome and setup", "topics": "course map, tracks, doctor, glossary EN/中文"},
    {"id": "01", "stem": "01_mllm_and_alignment", "title": "MLLMs and alignment (对齐)", "topics": "train a CLIP-style alignment live; retrieval before/after"},
    {"id": "02", "stem": "02_qformer_blip2", "title": "BLIP-2's Q-Former", "topics": "Q-Former from scratch; ITC/ITM/ITG and their masks"},
    {"id": "03", "stem": "03_llava", "title": "LLaVA and LLaVA-1.5", "topics": "ViT → projector → LLM; two-stage training of a mini LLaVA"},
    {"id": "04", "stem": "04_high_resolution", "title": "High resolution: LLaVA-1.5-HD, LLaVA-NeXT", "topics": "AnyRes tiling, unpadding, token budgets, explorer"},
    {"id": "05", "stem": "05_qformer_vs_mlp", "title": "Q-Former vs MLP", "topics": "a controlled experiment and the literature"},
    {"id": "06", "stem": "06_internvl", "title": "InternVL", "topics": "InternViT, pixel shuffle, dynamic resolution, training stages"},
    {"id": "07", "stem": "07_lmdeploy_inference", "title": "Lab: LMDeploy inference", "topics": "InternVL2-2B pipeline, multi-turn chat, serving, Gradio demo"},
    {"id": "08", "stem": "08_xtuner_finetune", "title": "Lab: XTuner LoRA fine-tuning", "topics": "FoodieQA → XTuner data, LoRA, convert, before/after accuracy"},
]  # fmt: skip


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def read_committed(path: Path) -> dict:
    """The notebook as git holds it (staged version) if tracked, else as on disk."""
    path = Path(path).resolve()
    tracked = _git("ls-files", "--error-unmatch", path.name, cwd=path.parent)
    if tracked.returncode == 0:
        blob = _git("show", f":./{path.name}", cwd=path.parent)
        if blob.returncode == 0:
            return json.loads(blob.stdout)
    return json.loads(path.read_text(encoding="utf-8"))


def problems(nb: dict, name: str) -> list[str]:
    """Hygiene problems of one notebook (as a dict); empty when clean."""
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
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


def notebook_files(root: Path | None = None) -> list[Path]:
    root = Path(root) if root else paths.notebooks_dir()
    if root is None:
        raise FileNotFoundError("notebooks/ not found: run this from a checkout of the course repository")
    return sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def check(files: list[Path]) -> list[str]:
    """All hygiene problems of ``files``, read as committed."""
    found = []
    for f in files:
        found += problems(read_committed(f), str(f))
    return found


def strip(path: Path) -> bool:
    """Remove outputs, execution counts and volatile metadata in place; True if the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in KEEP_NOTEBOOK_METADATA}
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def syllabus_rows(root: Path | None = None) -> list[dict]:
    """The syllabus, with each existing notebook's `course` metadata merged in."""
    root = Path(root) if root else paths.notebooks_dir()
    rows = []
    for entry in SYLLABUS:
        row = dict(entry)
        nb_path = (root / f"{entry['stem']}.ipynb") if root else None
        if nb_path is not None and nb_path.is_file():
            row.update(json.loads(nb_path.read_text(encoding="utf-8"))["metadata"]["course"])
            row["exists"] = True
        rows.append(row)
    return rows


def syllabus_markdown(root: Path | None = None, link_prefix: str = "notebooks/") -> str:
    """The README's syllabus table (generated; `make syllabus` prints it). Notebook 00 uses ``link_prefix=""``."""
    lines = [
        "| # | Notebook | What you do | Tracks | ⏱ mini | ⏱ full | GPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in syllabus_rows(root):
        if not row.get("exists"):
            lines.append(f"| {row['id']} | {row['title']} | {row['topics']} | *in preparation* | | | |")
            continue
        rt = row["runtime_min"]
        tracks = " · ".join(row["track"])
        vram = f"≥ {row['min_vram_gb']} GB" if row.get("min_vram_gb") else "not needed"
        link = f"[{row['title']}]({link_prefix}{row['stem']}.ipynb)"
        full = f"~{rt['full']} min" if rt.get("full") else "–"
        lines.append(
            f"| {row['id']} | {link} | {row['topics']} | {tracks} | ~{rt.get('mini', '?')} min | {full} | {vram} |"
        )
    return "\n".join(lines)


START, END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"


def write_syllabus(readme: Path) -> bool:
    """Replace the table between the syllabus markers of ``readme``; True if the file changed."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{syllabus_markdown()}\n{END}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
        return True
    return False


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
    args = parser.parse_args(argv)
    if args.command == "syllabus":
        if args.write:
            for name in ("README.md", "README_zh-CN.md"):
                changed = write_syllabus(paths.repo_root() / name)
                print(f"{name}: {'updated' if changed else 'up to date'}")
        else:
            print(syllabus_markdown())
        return 0
    files = args.files or notebook_files()
    if args.command == "strip":
        changed = [f for f in files if strip(f)]
        print(f"stripped {len(changed)} of {len(files)} notebook(s)")
        return 0
    found = check(files)
    for line in found:
        print(line, file=sys.stderr)
    print(f"notebook hygiene: {len(files)} notebook(s), {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""The course's syllabus: the planned notebooks, and the table README.md, README_zh-CN.md, notebook 00 and the
website's landing pages show of them.

    python -m course_utils.nbtools syllabus           # prints README.md's table
    python -m course_utils.nbtools syllabus --write   # updates the table in both READMEs (`make syllabus`)

``SYLLABUS`` is the plan; each existing notebook's ``course`` metadata (tracks, runtimes, GPU memory) and its Chinese
twin's ``course_zh`` metadata (title, topics) override it (``syllabus_rows``), so the tables follow the notebooks.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import paths

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
    {"id": "09", "stem": "09_efficient_deployment", "title": "Deploying efficiently", "topics": "KV cache, KV int8/int4, W4A16 and AWQ from scratch and with LMDeploy, batching, serving at scale"},
]  # fmt: skip


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
            zh_path = root / "zh" / nb_path.name
            if zh_path.is_file():  # the Chinese twin's title and topics (notebook metadata `course_zh`)
                row["zh"] = json.loads(zh_path.read_text(encoding="utf-8"))["metadata"].get("course_zh", {})
        rows.append(row)
    return rows


def syllabus_markdown(
    root: Path | None = None, link_prefix: str = "notebooks/", zh_links: bool = False
) -> str:
    """The README's syllabus table (generated; `make syllabus` prints it). Notebook 00 uses ``link_prefix=""``.

    ``zh_links`` adds a column linking each notebook's Chinese twin (README.md has it).
    """
    head = "| # | Notebook | What you do | Tracks | ⏱ mini | ⏱ full | GPU |"
    lines = [head + (" 中文 |" if zh_links else ""), "|---" * (8 if zh_links else 7) + "|"]
    for row in syllabus_rows(root):
        if not row.get("exists"):
            lines.append(f"| {row['id']} | {row['title']} | {row['topics']} | *in preparation* | | | |")
            lines[-1] += " |" if zh_links else ""
            continue
        rt = row["runtime_min"]
        tracks = " · ".join(row["track"])
        vram = f"≥ {row['min_vram_gb']} GB" if row.get("min_vram_gb") else "not needed"
        link = f"[{row['title']}]({link_prefix}{row['stem']}.ipynb)"
        full = f"~{rt['full']} min" if rt.get("full") else "–"
        lines.append(
            f"| {row['id']} | {link} | {row['topics']} | {tracks} | ~{rt.get('mini', '?')} min | {full} | {vram} |"
        )
        if zh_links:
            lines[-1] += f" [中文]({link_prefix}zh/{row['stem']}.ipynb) |" if "zh" in row else " – |"
    return "\n".join(lines)


def syllabus_markdown_zh(root: Path | None = None, link_prefix: str = "notebooks/") -> str:
    """README_zh-CN's syllabus table: the Chinese twins (their titles), the English notebook where none exists yet."""
    lines = ["| # | Notebook | 内容 | 路线 | ⏱ mini | ⏱ full | GPU |", "|---|---|---|---|---|---|---|"]
    for row in syllabus_rows(root):
        zh = row.get("zh")
        title, topics = (
            (zh.get("title", row["title"]), zh.get("topics", row["topics"]))
            if zh
            else (row["title"], row["topics"])
        )
        if not row.get("exists"):
            lines.append(f"| {row['id']} | {title} | {topics} | *准备中* | | | |")
            continue
        rt = row["runtime_min"]
        vram = f"≥ {row['min_vram_gb']} GB" if row.get("min_vram_gb") else "不需要"
        full = f"~{rt['full']} 分钟" if rt.get("full") else "–"
        link = (
            f"[{title}]({link_prefix}zh/{row['stem']}.ipynb)"
            if zh is not None
            else (f"[{title}]({link_prefix}{row['stem']}.ipynb)（英文，中文版翻译中）")
        )
        tracks = " · ".join(row["track"])
        lines.append(
            f"| {row['id']} | {link} | {topics} | {tracks} | ~{rt.get('mini', '?')} 分钟 | {full} | {vram} |"
        )
    return "\n".join(lines)


def readme_syllabus(readme: str) -> str:
    """The generated table each README holds: README.md links both editions, README_zh-CN.md the Chinese one."""
    return syllabus_markdown_zh() if "zh" in readme else syllabus_markdown(zh_links=True)


START, END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"


def write_syllabus(readme: Path) -> bool:
    """Replace the table between the syllabus markers of ``readme``; True if the file changed."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{readme_syllabus(readme.name)}\n{END}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
        return True
    return False

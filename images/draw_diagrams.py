"""Draw the course's architecture diagrams as SVG files next to this script.

    python images/draw_diagrams.py            # (re)draws every diagram

Each ``draw_*`` function draws one figure with matplotlib; the SVGs are committed and shown in the notebooks with
``viz.show_diagram(name)``. Diagrams are the project's own work.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent
# Keep text as text in the SVG: the browser renders it (Chinese included) with its own fonts.
plt.rcParams["svg.fonttype"] = "none"
warnings.filterwarnings("ignore", message="Glyph .* missing from font")
BLUE, ORANGE, GREEN, VERMILION, PURPLE, GREY = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#6b6b6b",
)


def _box(ax, x, y, w, h, text, color, *, fontsize=11, sub=None):
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="none", alpha=0.9
        )
    )
    ax.text(
        x + w / 2,
        y + h / 2 + (0.12 if sub else 0),
        text,
        ha="center",
        va="center",
        color="white",
        fontsize=fontsize,
        weight="bold",
    )
    if sub:
        ax.text(x + w / 2, y + h / 2 - 0.24, sub, ha="center", va="center", color="white", fontsize=8)


def _arrow(ax, x0, y0, x1, y1, color=GREY):
    ax.add_patch(
        FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14, lw=1.6, color=color)
    )


def _save(fig, name, fmt="svg"):
    fig.savefig(
        HERE / f"{name}.{fmt}",
        format=fmt,
        bbox_inches="tight",
        metadata={"Date": None} if fmt == "svg" else None,
    )
    plt.close(fig)


def draw_mllm_pipeline():
    """The common MLLM picture: image → vision encoder → connector → LLM ← text, with where each part is taught."""
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 3.6)
    ax.axis("off")
    ax.text(0.55, 2.4, "image", ha="center", fontsize=10)
    ax.add_patch(FancyBboxPatch((0.2, 1.3), 0.7, 0.9, boxstyle="round,pad=0.02", fc="#dfe9f3", ec=BLUE))
    _box(ax, 1.3, 1.2, 2.3, 1.1, "vision encoder", BLUE, sub="ViT · CLIP · InternViT")
    _box(ax, 4.1, 1.2, 2.3, 1.1, "connector", ORANGE, sub="Q-Former · MLP · pixel shuffle")
    _box(ax, 6.9, 1.2, 2.3, 1.1, "LLM", GREEN, sub="Vicuna · InternLM2 · Qwen2")
    ax.text(10.3, 1.75, "answer", ha="center", va="center", fontsize=10)
    _arrow(ax, 0.9, 1.75, 1.3, 1.75)
    _arrow(ax, 3.6, 1.75, 4.1, 1.75)
    _arrow(ax, 6.4, 1.75, 6.9, 1.75)
    _arrow(ax, 9.2, 1.75, 9.8, 1.75)
    ax.text(8.05, 3.25, "text prompt", ha="center", fontsize=10)
    _arrow(ax, 8.05, 3.1, 8.05, 2.3)
    ax.text(2.45, 0.95, "image features", ha="center", fontsize=8.5, color=GREY, va="top")
    ax.text(
        5.25,
        0.95,
        "visual tokens in the\nLLM's embedding space",
        ha="center",
        fontsize=8.5,
        color=GREY,
        va="top",
    )
    ax.text(
        5.25,
        2.65,
        "alignment (对齐):\nmake the two spaces meet",
        ha="center",
        fontsize=9.5,
        color=VERMILION,
        style="italic",
    )
    for x, label in [(2.45, "01 · 06"), (5.25, "02 · 03 · 05 · 06"), (8.05, "03 · 07 · 08")]:
        ax.text(x, 0.15, f"notebooks {label}", ha="center", fontsize=8.5, color=PURPLE)
    _save(fig, "mllm_pipeline")


DIAGRAMS = {"mllm_pipeline": draw_mllm_pipeline}

if __name__ == "__main__":
    for name, draw in DIAGRAMS.items():
        draw()
        print(f"wrote {HERE / (name + '.svg')}")

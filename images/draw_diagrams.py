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
plt.rcParams["svg.hashsalt"] = "mllm-course"  # stable ids: redrawing an unchanged diagram changes nothing
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


def _input_image(ax, x, y, w, h, label, arrow):
    """The input-image box of the high-resolution diagrams, its label above, and an arrow (x0, y, x1) out of it."""
    ax.add_patch(plt.Rectangle((x, y), w, h, fc="#dfe9f3", ec=BLUE, lw=1.5))
    ax.text(x + w / 2, y + h + 0.2, label, ha="center", fontsize=9)
    _arrow(ax, arrow[0], arrow[1], arrow[2], arrow[1])


def _canvas(width: float, height: float):
    """A blank figure whose data coordinates are inches: (0, 0) bottom left, (width, height) top right."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def _flow(ax, y: float, h: float, image: tuple[float, float, str], boxes, *, fontsize: float = 11):
    """An image placeholder at ``image`` = (x, width, label), then ``boxes`` = [(x, width, title, color, sub)] in a row
    of height ``h`` from ``y``, with an arrow from each element to the next."""
    ix, iw, label = image
    ax.add_patch(FancyBboxPatch((ix, y + 0.1), iw, h - 0.2, boxstyle="round,pad=0.02", fc="#dfe9f3", ec=BLUE))
    ax.text(ix + iw / 2, y + h + 0.1, label, ha="center", fontsize=9.5)
    for x, w, title, color, sub in boxes:
        _box(ax, x, y, w, h, title, color, fontsize=fontsize, sub=sub)
    ends = [ix + iw] + [x + w for x, w, *_ in boxes]
    for start, (x, *_) in zip(ends, boxes, strict=False):
        _arrow(ax, start, y + h / 2, x, y + h / 2)


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
    fig, ax = _canvas(11, 3.6)
    boxes = [
        (1.3, 2.3, "vision encoder", BLUE, "ViT · CLIP · InternViT"),
        (4.1, 2.3, "connector", ORANGE, "Q-Former · MLP · pixel shuffle"),
        (6.9, 2.3, "LLM", GREEN, "Vicuna · InternLM2 · Qwen2"),
    ]
    _flow(ax, 1.2, 1.1, (0.2, 0.7, "image"), boxes)
    ax.text(10.3, 1.75, "answer", ha="center", va="center", fontsize=10)
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


def draw_dual_encoder():
    """CLIP-style dual encoder: two towers, one shared embedding space, a similarity matrix trained with InfoNCE."""
    import numpy as np

    fig, ax = _canvas(10.5, 4.2)
    ax.text(0.6, 3.55, "images", ha="center", fontsize=10)
    ax.text(0.6, 0.95, "captions", ha="center", fontsize=10)
    for k in range(3):
        ax.add_patch(
            FancyBboxPatch(
                (0.25 + 0.08 * k, 2.55 - 0.08 * k), 0.6, 0.6, boxstyle="round,pad=0.01", fc="#dfe9f3", ec=BLUE
            )
        )
    for k, cap in enumerate(["a small red circle", "a big blue star", "..."]):
        ax.text(0.6, 0.6 - 0.25 * k, cap, ha="center", fontsize=7.5, color=GREY)
    _box(ax, 1.6, 2.5, 2.0, 0.8, "image encoder", BLUE, fontsize=10, sub="ViT + projection")
    _box(ax, 1.6, 0.4, 2.0, 0.8, "text encoder", GREEN, fontsize=10, sub="transformer + projection")
    _arrow(ax, 1.0, 2.9, 1.6, 2.9)
    _arrow(ax, 1.25, 0.8, 1.6, 0.8)
    ax.text(4.45, 2.9, "image\nembeddings", ha="center", va="center", fontsize=8.5, color=BLUE)
    ax.text(4.45, 0.8, "text\nembeddings", ha="center", va="center", fontsize=8.5, color=GREEN)
    _arrow(ax, 3.6, 2.9, 4.0, 2.9)
    _arrow(ax, 3.6, 0.8, 4.0, 0.8)
    _arrow(ax, 4.9, 2.9, 5.6, 2.3)
    _arrow(ax, 4.9, 0.8, 5.6, 1.4)
    n, x0, y0, c = 5, 5.7, 0.55, 0.5
    rng = np.random.default_rng(0)
    for i in range(n):
        for j in range(n):
            v = 0.85 if i == j else rng.uniform(0.05, 0.3)
            ax.add_patch(
                plt.Rectangle(
                    (x0 + j * c, y0 + (n - 1 - i) * c), c, c, fc=plt.cm.viridis(v), ec="white", lw=1
                )
            )
    ax.text(x0 + n * c / 2, y0 + n * c + 0.25, "cosine similarity / temperature", ha="center", fontsize=9)
    ax.text(
        x0 - 0.15, y0 + n * c / 2, "images", rotation=90, ha="right", va="center", fontsize=8.5, color=BLUE
    )
    ax.text(x0 + n * c / 2, y0 - 0.2, "captions", ha="center", va="top", fontsize=8.5, color=GREEN)
    ax.text(8.5, 2.6, "InfoNCE:", fontsize=9.5, weight="bold", color=VERMILION)
    ax.text(
        8.5,
        1.45,
        "each row and each\ncolumn is a softmax\nclassification whose\nright answer is the\ndiagonal",
        fontsize=8.5,
        color=GREY,
    )
    _save(fig, "dual_encoder")


def draw_qformer():
    """BLIP-2's Q-Former: queries and text share self-attention; only queries cross-attend to the frozen image."""
    from course_utils.qformer import attention_masks

    fig = plt.figure(figsize=(11, 4.6))
    ax = fig.add_axes([0, 0, 0.62, 1])
    ax.set_xlim(0, 6.8)
    ax.set_ylim(0, 4.6)
    ax.axis("off")
    _box(ax, 0.1, 1.2, 1.3, 1.0, "frozen\nimage encoder", GREY, fontsize=9)
    ax.text(
        0.75,
        0.85,
        "e.g. ViT-L/14 at 224 px:\n257 × 1024 features",
        ha="center",
        va="top",
        fontsize=7.5,
        color=GREY,
    )
    ax.add_patch(
        FancyBboxPatch((1.9, 0.45), 2.1, 3.5, boxstyle="round,pad=0.03", fc="#fff4dd", ec=ORANGE, lw=1.5)
    )
    ax.add_patch(
        FancyBboxPatch((4.3, 0.45), 2.1, 3.5, boxstyle="round,pad=0.03", fc="#e3f4ee", ec=GREEN, lw=1.5)
    )
    ax.text(2.95, 4.15, "query transformer", ha="center", fontsize=9.5, color=ORANGE, weight="bold")
    ax.text(5.35, 4.15, "text transformer", ha="center", fontsize=9.5, color=GREEN, weight="bold")
    for x, color in [(2.05, ORANGE), (4.45, GREEN)]:
        _box(ax, x, 3.0, 1.8, 0.55, "self-attention", color, fontsize=8.5)
        _box(ax, x, 1.05, 1.8, 0.55, "feed forward", color, fontsize=8.5)
    _box(ax, 2.05, 2.1, 1.8, 0.55, "cross-attention", ORANGE, fontsize=8.5)
    ax.text(4.15, 3.27, "shared", ha="center", va="center", fontsize=8, color=VERMILION, rotation=90)
    ax.plot([3.85, 4.45], [3.27, 3.27], color=VERMILION, lw=2, ls=":")
    ax.text(2.95, 1.82, "(in every other block)", ha="center", va="center", fontsize=7.5, color="#8a5a00")
    _arrow(ax, 1.4, 1.7, 2.05, 2.3)
    ax.text(2.95, 0.2, "32 learned queries → Z: 32 × 768", ha="center", fontsize=8.5, color=ORANGE)
    ax.text(5.35, 0.2, "text: [CLS] / [DEC] a small red circle", ha="center", fontsize=8.5, color=GREEN)
    masks = attention_masks(3, 4)
    titles = {"itc": "ITC: uni-modal", "itm": "ITM: bi-directional", "itg": "ITG: multimodal causal"}
    for k, (name, mask) in enumerate(masks.items()):
        mx = fig.add_axes([0.66 + 0.125 * k, 0.3, 0.095, 0.4])
        mx.imshow(mask.numpy(), cmap="Blues", vmin=0, vmax=1.25)
        mx.axhline(2.5, color=VERMILION, lw=1)
        mx.axvline(2.5, color=VERMILION, lw=1)
        mx.set_xticks([1, 4.5], ["Q", "T"], fontsize=8)
        mx.set_yticks([1, 4.5], ["Q", "T"], fontsize=8)
        mx.set_title(titles[name], fontsize=8)
    fig.text(
        0.82, 0.8, "self-attention masks (row attends to column; dark = allowed)", ha="center", fontsize=8.5
    )
    _save(fig, "qformer")


def draw_internvl():
    """ViT-MLP-LLM: InternViT → pixel shuffle → MLP projector → LLM, with InternVL2-2B's sizes."""
    fig, ax = _canvas(11, 3.4)
    boxes = [
        (1.3, 2.0, "InternViT-300M", BLUE, "24 layers · 1024-d"),
        (3.8, 1.8, "pixel shuffle", PURPLE, "1024 → 256 tokens"),
        (6.1, 1.7, "MLP (mlp1)", ORANGE, "12.6 M params"),
        (8.3, 2.4, "InternLM2-1.8B", GREEN, "internlm2-chat-1_8b"),
    ]
    _flow(ax, 1.15, 1.1, (0.15, 0.8, "448² tiles"), boxes, fontsize=10)
    ax.text(
        2.3, 0.8, "32×32 patches of 14 px\n→ 1024 × 1024-d", ha="center", va="top", fontsize=8, color=GREY
    )
    ax.text(4.7, 0.8, "2×2 neighbours → 1 token\n256 × 4096-d", ha="center", va="top", fontsize=8, color=GREY)
    ax.text(6.95, 0.8, "LayerNorm → Linear\n→ GELU → Linear", ha="center", va="top", fontsize=8, color=GREY)
    ax.text(
        9.5,
        0.8,
        "<img> 256·n <IMG_CONTEXT> </img>\n+ the text prompt",
        ha="center",
        va="top",
        fontsize=8,
        color=GREY,
    )
    ax.text(
        5.5,
        3.0,
        "InternVL2-2B = ViT + MLP + LLM ≈ 2.21 B parameters",
        ha="center",
        fontsize=10,
        weight="bold",
    )
    _save(fig, "internvl")


def draw_pixel_shuffle():
    """Pixel shuffle with scale 0.5: each 2×2 block of patch features becomes one token with 4× the channels."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1]})
    colors = [BLUE, ORANGE, GREEN, VERMILION]
    n = 8
    ax = axes[0]
    for r in range(n):
        for c in range(n):
            block = (r // 2) * (n // 2) + c // 2
            shade = 0.35 + 0.65 * ((r % 2) * 2 + c % 2) / 3
            ax.add_patch(plt.Rectangle((c, n - 1 - r), 1, 1, fc=colors[block % 4], alpha=shade, ec="white"))
    ax.set_xlim(0, n)
    ax.set_ylim(0, n)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("patch features: H × W × C\n(InternVL2: 32 × 32 × 1024)", fontsize=10)
    ax = axes[1]
    m = n // 2
    for r in range(m):
        for c in range(m):
            block = r * m + c
            for k in range(4):
                ax.add_patch(
                    plt.Rectangle(
                        (c + k * 0.25, m - 1 - r),
                        0.25,
                        1,
                        fc=colors[block % 4],
                        alpha=0.35 + 0.65 * k / 3,
                        ec="white",
                        lw=0.5,
                    )
                )
    ax.set_xlim(0, m)
    ax.set_ylim(0, m)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("tokens: H/2 × W/2 × 4C\n(InternVL2: 16 × 16 × 4096)", fontsize=10)
    fig.text(0.5, 0.5, "→", ha="center", va="center", fontsize=28, color=GREY)
    _save(fig, "pixel_shuffle")


def draw_dynamic_tiling():
    """Dynamic high resolution: closest-aspect grid of 448² tiles, row by row, plus a thumbnail."""
    fig, ax = _canvas(10, 3.6)
    _input_image(ax, 0.2, 0.9, 2.4, 1.6, "image 1344 × 896 (3:2)", (2.8, 1.7, 3.5))
    ax.text(3.15, 1.95, "closest\naspect ratio", ha="center", fontsize=7.5, color=GREY)
    x0, y0, t = 3.7, 0.8, 0.85
    k = 1
    for r in range(2):
        for c in range(3):
            ax.add_patch(plt.Rectangle((x0 + c * t, y0 + (1 - r) * t), t, t, fc="#dfe9f3", ec=ORANGE, lw=2))
            ax.text(
                x0 + c * t + t / 2,
                y0 + (1 - r) * t + t / 2,
                str(k),
                ha="center",
                va="center",
                fontsize=11,
                color=ORANGE,
            )
            k += 1
    ax.text(x0 + 1.5 * t, 2.6, "grid 3 × 2 of 448² tiles", ha="center", fontsize=9)
    ax.add_patch(plt.Rectangle((7.1, 1.2), t, t, fc="#e3f4ee", ec=GREEN, lw=2))
    ax.text(7.1 + t / 2, 1.2 + t / 2, "7", ha="center", va="center", fontsize=11, color=GREEN)
    ax.text(7.1 + t / 2, 2.25, "thumbnail\n(whole image)", ha="center", fontsize=8.5)
    ax.text(8.4, 1.65, "7 × 256\n= 1792 tokens", ha="left", va="center", fontsize=10, weight="bold")
    ax.text(5, 0.3, "1–12 tiles in training (35 grids), up to 40 at test; a thumbnail only when there is more than one tile",
            ha="center", fontsize=8.5, color=GREY)  # fmt: skip
    _save(fig, "dynamic_tiling")


def draw_multitask_routing():
    """VisionLLM v2's "super link": routing token, then learnable queries fed into the LLM; their output states → decoder."""
    fig, ax = _canvas(11.6, 3.9)
    _box(ax, 0.2, 1.2, 2.2, 1.0, "InternVL (LLM)", GREEN, fontsize=10, sub="image + instruction")
    ax.text(4.1, 3.05, "LLM sequence: text, routing token, then task queries", ha="center", fontsize=9)
    toks = [("the", GREY), ("cat", GREY), ("[DET]", VERMILION), ("q₁", PURPLE), ("q₂", PURPLE), ("…", PURPLE)]
    for i, (tok, fc) in enumerate(toks):
        ax.add_patch(
            FancyBboxPatch(
                (2.75 + i * 0.45, 2.45), 0.4, 0.3, boxstyle="round,pad=0.01", fc=fc, ec="none", alpha=0.85
            )
        )
        ax.text(2.95 + i * 0.45, 2.6, tok, ha="center", va="center", fontsize=6.5, color="white")
    ax.text(4.7, 2.25, "learnable queries, appended after [DET]\nand fed INTO the LLM", ha="center", va="top",
            fontsize=7, color=PURPLE)  # fmt: skip
    _arrow(ax, 2.4, 1.45, 3.3, 1.45)
    ax.text(4.35, 1.45, "LLM output states\nat the query\npositions", ha="center", va="center", fontsize=8)
    for name, y, c in [
        ("detection decoder", 2.25, ORANGE),
        ("segmentation decoder", 1.3, PURPLE),
        ("image generator", 0.35, BLUE),
    ]:
        _box(ax, 7.0, y, 2.4, 0.75, name, c, fontsize=9)
        _arrow(ax, 5.2, 1.45, 7.0, y + 0.37)
    for name, y in [("boxes", 2.62), ("masks", 1.67), ("images", 0.72)]:
        ax.text(10.0, y, name, va="center", fontsize=9)
        _arrow(ax, 9.4, y, 9.9, y)
    ax.text(
        5.8,
        3.55,
        'VisionLLM v2 "super link": [DET] picks the decoder; LLM and decoders trained end to end',
        ha="center",
        fontsize=9,
        color=VERMILION,
    )
    ax.text(
        5.8,
        0.0,
        "notebook 06's toy is simpler: a rule picks the route, and one frozen LLM state + a task embedding feeds the decoder",
        ha="center",
        fontsize=8,
        color=GREY,
    )
    _save(fig, "multitask_routing")


def draw_training_stages():
    """InternVL2's two stages as the original InternVL2 lab (InternLM's 书生 camp) summarises them: MLP, then all."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
    for ax, (title, trained) in zip(
        axes,
        [("stage 1: MLP warm-up", {"MLP"}), ("stage 2: instruction tuning", {"ViT", "MLP", "LLM"})],
        strict=True,
    ):
        ax.set_xlim(0, 5)
        ax.set_ylim(0, 2.4)
        ax.axis("off")
        ax.set_title(title, fontsize=10)
        for x, name, color in [(0.1, "ViT", BLUE), (1.8, "MLP", ORANGE), (3.4, "LLM", GREEN)]:
            on = name in trained
            ax.add_patch(
                FancyBboxPatch(
                    (x, 0.8), 1.4, 0.8, boxstyle="round,pad=0.02", fc=color if on else "#d9d9d9", ec="none"
                )
            )
            ax.text(
                x + 0.7,
                1.2,
                name,
                ha="center",
                va="center",
                color="white" if on else GREY,
                fontsize=10,
                weight="bold",
            )
            ax.text(x + 0.7, 0.45, "trained" if on else "frozen", ha="center", fontsize=8, color=GREY)
    _save(fig, "training_stages")


def draw_llava():
    """LLaVA: CLIP ViT (second-to-last layer, CLS dropped) → projector → LLM, with the visual tokens in the prompt."""
    fig, ax = _canvas(11, 3.6)
    boxes = [
        (1.3, 2.2, "CLIP ViT-L/14", BLUE, "second-to-last layer"),
        (4.0, 2.0, "projector", ORANGE, "linear → mlp2x_gelu"),
        (7.7, 2.4, "LLM", GREEN, "Vicuna-7B / 13B"),
    ]
    _flow(ax, 1.2, 1.1, (0.15, 0.8, "image 336²"), boxes, fontsize=10)
    ax.text(
        2.4,
        0.85,
        "577 = 24×24 patches + CLS\n(CLS dropped → 576)",
        ha="center",
        va="top",
        fontsize=8,
        color=GREY,
    )
    ax.text(
        5.0,
        0.85,
        "576 visual tokens in\nthe LLM's embedding space",
        ha="center",
        va="top",
        fontsize=8,
        color=GREY,
    )
    seq = ["USER:", "<image> ×576", "what is in it?", "ASSISTANT:"]
    x = 6.0
    for tok in seq:
        w = {"USER:": 0.55, "ASSISTANT:": 0.85}.get(tok, 1.05)
        ax.add_patch(
            FancyBboxPatch(
                (x, 2.75),
                w - 0.05,
                0.35,
                boxstyle="round,pad=0.01",
                fc=ORANGE if "image" in tok else GREY,
                ec="none",
                alpha=0.85,
            )
        )
        ax.text(x + (w - 0.05) / 2, 2.92, tok, ha="center", va="center", fontsize=6.5, color="white")
        x += w
    _arrow(ax, 8.9, 2.75, 8.9, 2.3)
    ax.text(10.75, 1.75, "answer", ha="center", va="center", fontsize=10)
    _arrow(ax, 10.1, 1.75, 10.4, 1.75)
    ax.text(
        5.5,
        0.15,
        "stage 1: projector only (558K captions) · stage 2: projector + LLM (665K instructions)",
        ha="center",
        fontsize=8.5,
        color=PURPLE,
    )
    _save(fig, "llava")


def draw_llava_hd():
    """LLaVA-1.5-HD as the course reads the paper's appendix: 224² tiles (at most 6) + a 224² global view."""
    fig, ax = _canvas(10.5, 3.4)
    _input_image(ax, 0.2, 0.9, 2.4, 1.6, "image (3:2)", (2.8, 1.7, 3.4))
    x0, y0, t = 3.6, 0.9, 0.8
    for r in range(2):
        for c in range(3):
            ax.add_patch(plt.Rectangle((x0 + c * t, y0 + (1 - r) * t), t, t, fc="#dfe9f3", ec=ORANGE, lw=2))
    ax.text(x0 + 1.5 * t, 2.7, "3 × 2 tiles of 224² (max 6)", ha="center", fontsize=9)
    ax.add_patch(plt.Rectangle((6.4, 1.3), t, t, fc="#e3f4ee", ec=GREEN, lw=2))
    ax.text(6.8, 2.3, "+ global 224²", ha="center", fontsize=9)
    _box(ax, 7.7, 1.15, 2.6, 1.1, "CLIP ViT-L/14-224", BLUE, fontsize=9.5, sub="16×16 features per view")
    _arrow(ax, 7.3, 1.7, 7.7, 1.7)
    ax.text(5.25, 0.3, "tile features stitched into one map, padding removed, a row-end token per row; global features added",
            ha="center", fontsize=8.5, color=GREY)  # fmt: skip
    ax.text(5.25, 3.15, "the course's reconstruction of the paper's appendix (no released code)", ha="center",
            fontsize=9, color=VERMILION, style="italic")  # fmt: skip
    _save(fig, "llava_hd")


def draw_llava_next_anyres():
    """LLaVA-NeXT AnyRes: best resolution → resize & pad → 336² tiles → unpad → newline per row, + base image."""
    fig, ax = _canvas(11.5, 3.8)
    _input_image(ax, 0.2, 1.2, 2.0, 1.125, "1920 × 1080", (2.3, 1.75, 2.8))
    ax.text(2.55, 2.0, "best:\n672×672", ha="center", fontsize=7.5, color=GREY)
    x0, y0, t = 2.9, 0.8, 0.95
    ax.add_patch(plt.Rectangle((x0, y0), 2 * t, 2 * t, fc="black"))
    ax.add_patch(plt.Rectangle((x0, y0 + 0.42), 2 * t, 2 * t - 0.84, fc="#dfe9f3"))
    for r in range(2):
        for c in range(2):
            ax.add_patch(plt.Rectangle((x0 + c * t, y0 + r * t), t, t, fill=False, ec=ORANGE, lw=2))
    ax.text(x0 + t, 2.95, "pad to 672², 4 tiles", ha="center", fontsize=9)
    _arrow(ax, 4.9, 1.75, 5.4, 1.75)
    gx, gy, g = 5.5, 0.8, 1.9
    ax.add_patch(plt.Rectangle((gx, gy), g, g, fc="#eeeeee", ec=GREY))
    ax.add_patch(plt.Rectangle((gx, gy + 0.42), g, g - 0.84, fc="#fff4dd", ec=VERMILION, lw=2))
    ax.add_patch(plt.Rectangle((gx + g, gy + 0.42), 0.12, g - 0.84, fc=GREEN))
    ax.text(gx + g / 2, 2.95, "48×48 features, 28 rows kept", ha="center", fontsize=9)
    ax.text(gx + g + 0.2, gy + g / 2, "newline\nper row", fontsize=7.5, color=GREEN, va="center")
    ax.text(
        8.7,
        1.9,
        "576 (base 336² image)\n+ 28 × (48 + 1)\n= 1948 tokens",
        fontsize=10,
        weight="bold",
        va="center",
    )
    ax.text(
        5.75,
        0.25,
        "the quoted '2880' = 5 × 576 ignores unpadding and newlines; the code gives at most 2928",
        ha="center",
        fontsize=8.5,
        color=GREY,
    )
    _save(fig, "llava_next_anyres")


DIAGRAMS = {
    "mllm_pipeline": draw_mllm_pipeline,
    "dual_encoder": draw_dual_encoder,
    "qformer": draw_qformer,
    "internvl": draw_internvl,
    "pixel_shuffle": draw_pixel_shuffle,
    "dynamic_tiling": draw_dynamic_tiling,
    "multitask_routing": draw_multitask_routing,
    "training_stages": draw_training_stages,
    "llava": draw_llava,
    "llava_hd": draw_llava_hd,
    "llava_next_anyres": draw_llava_next_anyres,
}

if __name__ == "__main__":
    for name, draw in DIAGRAMS.items():
        draw()
        print(f"wrote {HERE / (name + '.svg')}")

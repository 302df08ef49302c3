"""Pictures the course draws again and again: image grids, tile overlays, masks and similarity heatmaps.

Every function returns the matplotlib ``Figure`` (or draws into a given ``ax``) so notebooks can show it and
tests can check it. Sizes are (width, height) as in PIL.

Introduced in notebook 00; used throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches
from PIL import Image

# One palette for the whole course (colour-blind safe, Okabe–Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def image_grid(
    images: Sequence[Image.Image | np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    size: float = 2.2,
    suptitle: str | None = None,
):
    """Show images in a grid with optional titles; returns the figure."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)))
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def tile_boxes(image_size: tuple[int, int], grid: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """Boxes (x0, y0, x1, y1) of a ``grid`` = (cols, rows) laid over an image of ``image_size`` = (w, h), row by row."""
    (w, h), (cols, rows) = image_size, grid
    return [
        (c * w / cols, r * h / rows, (c + 1) * w / cols, (r + 1) * h / rows)
        for r in range(rows)
        for c in range(cols)
    ]


def draw_tiles(
    image: Image.Image,
    grid: tuple[int, int] | None = None,
    *,
    boxes: Sequence[tuple[float, float, float, float]] | None = None,
    labels: Sequence[str] | None = None,
    ax=None,
    title: str | None = None,
    color: str = PALETTE[1],
):
    """Draw a tiling on an image: either a regular ``grid`` = (cols, rows) or explicit ``boxes``."""
    if (grid is None) == (boxes is None):
        raise ValueError("give exactly one of grid=(cols, rows) or boxes=[...]")
    boxes = list(boxes) if boxes is not None else tile_boxes(image.size, grid)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5 * image.height / max(1, image.width)))
    ax.imshow(image)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2, ec=color))
        label = labels[i] if labels is not None else str(i + 1)
        ax.text(
            x0 + 4,
            y0 + 4,
            label,
            color="white",
            fontsize=9,
            va="top",
            bbox={"fc": color, "ec": "none", "pad": 1.5},
        )
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig if fig is not None else ax.figure


def mask_heatmap(
    mask,
    *,
    labels: Sequence[str] | None = None,
    ax=None,
    title: str | None = None,
    boundary: int | None = None,
):
    """Draw a boolean attention mask: row = the token that attends, column = the token attended to.

    Dark cells are allowed (True). ``boundary`` draws a line after that many tokens (e.g. queries | text).
    """
    m = np.asarray(mask, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1.25, interpolation="nearest")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    if boundary is not None:
        for line in (ax.axhline, ax.axvline):
            line(boundary - 0.5, color=PALETTE[3], lw=1.5)
    ax.set_xlabel("attends to (key)")
    ax.set_ylabel("token (query)")
    if title:
        ax.set_title(title, fontsize=10)
    return fig if fig is not None else ax.figure


def similarity_heatmap(
    sim,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    ax=None,
    title: str | None = None,
    annotate: bool = False,
):
    """Draw a similarity matrix (rows: images, columns: texts, say) with a colour bar."""
    s = np.asarray(sim.detach().cpu() if hasattr(sim, "detach") else sim, dtype=float)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(s, cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if row_labels is not None:
        ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    if col_labels is not None:
        ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
    if annotate:
        for (i, j), v in np.ndenumerate(s):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white")
    if title:
        ax.set_title(title, fontsize=10)
    return fig if fig is not None else ax.figure


def show_diagram(name: str):
    """An architecture diagram from ``images/`` (``images/draw_diagrams.py`` draws them), for display in a notebook.

    Returned as an IPython ``SVG`` object, so it shows wherever the notebook's server root is.
    """
    from IPython.display import SVG

    from . import paths

    folder = paths.images_dir()
    path = folder / f"{name}.svg" if folder else None
    if path is None or not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.svg")) if folder else []
        raise FileNotFoundError(
            f"no diagram {name!r} in images/ (available: {', '.join(available) or 'none'})"
        )
    return SVG(filename=str(path))

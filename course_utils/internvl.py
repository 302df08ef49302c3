"""InternVL's image geometry: dynamic high-resolution tiling, pixel shuffle, and the visual-token count.

How InternVL 1.5 / 2 turns one image into few enough tokens:

1. **Dynamic high resolution**: choose a grid of ``cols × rows`` 448-px tiles (1 to 12 tiles in training) whose aspect
   ratio is closest to the image's; resize the image to that grid and cut it into tiles, row by row; add a 448-px
   **thumbnail** of the whole image when there is more than one tile.
2. **InternViT** turns each tile into 32 × 32 = 1024 patch features (14-px patches).
3. **Pixel shuffle** (scale 0.5) folds each 2 × 2 block of neighbouring patches into one token with 4× the channels:
   1024 → 256 tokens per tile.
4. **mlp1** (LayerNorm → Linear → GELU → Linear) maps them into the LLM's embedding space.

Also here: the order of the image tokens in the LLM's input (``image_token_layout``) and the visual-token count of
InternVL3.5-Flash, whose router gives some tiles 64 tokens instead of 256 (``visual_tokens``).

Sizes are (width, height) as in PIL; grids are (cols, rows).
Mirrors: the official ``dynamic_preprocess`` / ``find_closest_aspect_ratio`` (OpenGVLab/InternVL, also copied into
LMDeploy and XTuner) and ``InternVLChatModel.pixel_shuffle`` (``ps_version`` v1 and v2); transformers'
``GotOcr2ImageProcessor`` tiling and ``InternVLModel.pixel_shuffle`` agree with them (tested).
Introduced in notebook 06.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn


def candidate_grids(min_num: int = 1, max_num: int = 12) -> list[tuple[int, int]]:
    """Every (cols, rows) with ``min_num ≤ cols·rows ≤ max_num``, by tile count (the official order).

    The official code builds a ``set`` and sorts it by area; within one area the set's order decides, and for
    small integer tuples CPython's set order is deterministic, so the same list comes out here.
    """
    if not 1 <= min_num <= max_num:
        raise ValueError(f"need 1 <= min_num <= max_num, got min_num={min_num}, max_num={max_num}")
    grids = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    return sorted(grids, key=lambda g: g[0] * g[1])


def dynamic_grid(
    width: int, height: int, *, min_num: int = 1, max_num: int = 12, image_size: int = 448
) -> tuple[int, int]:
    """The (cols, rows) grid InternVL picks for a ``width × height`` image.

    Closest aspect ratio wins; on an exact tie the later (larger) grid replaces the current one only when the image's
    area exceeds half of that grid's area (so small images are not blown up to many tiles).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(min_num, max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def num_tiles(
    width: int,
    height: int,
    *,
    min_num: int = 1,
    max_num: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> int:
    """Tiles the model sees for one image, the thumbnail included."""
    cols, rows = dynamic_grid(width, height, min_num=min_num, max_num=max_num, image_size=image_size)
    return cols * rows + (1 if use_thumbnail and cols * rows > 1 else 0)


def dynamic_preprocess(
    image: Image.Image,
    *,
    min_num: int = 1,
    max_num: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> list[Image.Image]:
    """Resize ``image`` to its grid and cut it into ``image_size``² tiles, row by row; the thumbnail comes last."""
    cols, rows = dynamic_grid(*image.size, min_num=min_num, max_num=max_num, image_size=image_size)
    resized = image.resize(
        (cols * image_size, rows * image_size)
    )  # PIL's default filter, as the official code
    tiles = [
        resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
        for r in range(rows)
        for c in range(cols)
    ]
    if use_thumbnail and len(tiles) > 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5, version: str = "v2") -> torch.Tensor:
    """Fold neighbouring patches into channels: (N, H, W, C) → (N, H·s, W·s, C/s²).

    With s = 0.5 each output token holds a 2 × 2 block of input patches. ``version="v1"`` returns the result with
    its two spatial axes swapped (the legacy layout of the InternVL 1.2 era: ``--ps_version 'v1'`` in the
    ``internvl_chat/shell/internvl1.2`` scripts); v2, used by the 1.5, 2.0 and 2.5 scripts, keeps the input's orientation.
    """
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
    n, h, w, c = x.shape
    if (h * scale_factor) % 1 or (w * scale_factor) % 1 or (c / scale_factor**2) % 1:
        raise ValueError(f"shape {tuple(x.shape)} cannot be pixel-shuffled with scale {scale_factor}")
    # merge pairs along the second spatial axis into channels
    x = x.reshape(n, h, int(w * scale_factor), int(c / scale_factor))
    x = x.permute(0, 2, 1, 3)  # swap the spatial axes
    # merge pairs along the (now second) first spatial axis into channels
    x = x.reshape(n, int(w * scale_factor), int(h * scale_factor), int(c / scale_factor**2))
    return x if version == "v1" else x.permute(0, 2, 1, 3).contiguous()


def tokens_per_tile(*, image_size: int = 448, patch_size: int = 14, downsample_ratio: float = 0.5) -> int:
    """Visual tokens per tile after pixel shuffle: (448/14)² · 0.5² = 256."""
    return int((image_size // patch_size) ** 2 * downsample_ratio**2)


def num_image_tokens(
    num_tiles: int, *, image_size: int = 448, patch_size: int = 14, downsample_ratio: float = 0.5
) -> int:
    """``<IMG_CONTEXT>`` tokens for an image of ``num_tiles`` tiles (thumbnail included): 256 per 448-px tile."""
    if num_tiles < 1:
        raise ValueError(f"an image has at least one tile, got {num_tiles}")
    return num_tiles * tokens_per_tile(
        image_size=image_size, patch_size=patch_size, downsample_ratio=downsample_ratio
    )


def image_token_layout(
    cols: int, rows: int, *, use_thumbnail: bool = True, tokens_per_tile: int = 256
) -> list[tuple[str, int]]:
    """What the LLM's input holds for one image of a ``cols × rows`` grid, in order, as (what, how many tokens).

    ``<img>``, then every tile's tokens (tiles row by row, each 448-px tile's 16 × 16 tokens row by row inside it), the
    thumbnail last, then ``</img>``. The labels are for us: the LLM sees one ``<IMG_CONTEXT>`` placeholder per token,
    with no marker between tiles or rows, so a 2 × 1 and a 1 × 2 grid give the same token sequence.
    Mirrors the official ``InternVLChatModel.chat`` (``IMG_START_TOKEN + IMG_CONTEXT_TOKEN * num_image_token *
    num_patches + IMG_END_TOKEN``; the training code's ``preprocess_internvl2_5`` builds the same string) and
    transformers' ``InternVLProcessor.replace_image_token``. Shown in notebook 06.
    """
    if cols < 1 or rows < 1:
        raise ValueError(f"a grid has at least one column and one row, got {cols}×{rows}")
    tiles = [
        (f"tile {r * cols + c + 1} (row {r + 1}, col {c + 1})", tokens_per_tile)
        for r in range(rows)
        for c in range(cols)
    ]
    thumbnail = [("thumbnail", tokens_per_tile)] if use_thumbnail and cols * rows > 1 else []
    return [("<img>", 1), *tiles, *thumbnail, ("</img>", 1)]


def visual_tokens(
    width: int,
    height: int,
    *,
    max_num: int = 12,
    compressed_tiles: int = 0,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> int:
    """Visual tokens for a ``width × height`` image: InternVL2's count, or InternVL3.5-Flash's for a router decision.

    InternVL 1.5 to 3.5 give every tile (thumbnail included) 256 tokens: ``compressed_tiles=0``, the default, equals
    ``num_image_tokens(num_tiles(width, height))``. InternVL3.5-Flash adds the Visual Resolution Router (ViR), which
    sends each tile either to the usual pixel shuffle (1/4 of the 1024 patches: 256 tokens) or to a stronger one
    (1/16: 64 tokens). Which tiles go where is the learned router's decision for each image, so it is a parameter
    here: ``compressed_tiles`` of the image's tiles take the 64-token path. Counted are the ``<IMG_CONTEXT>`` tokens
    (``<img>`` and ``</img>`` left out, as in ``num_image_tokens``). The thumbnail is counted like any tile
    (the InternVL3.5 documentation says the router decides "for each patch", its word for a tile, and names no
    exception).
    Sources: InternVL3.5, Wang et al., 2025 (arXiv:2508.18265) and its documentation
    (``docs/en/internvl3.5/introduction.md`` in ErfeiCui/InternVL-doc); the router's code is not in the
    OpenGVLab/InternVL repository. Introduced in notebook 06.
    """
    tiles = num_tiles(width, height, max_num=max_num, image_size=image_size, use_thumbnail=use_thumbnail)
    if not 0 <= compressed_tiles <= tiles:
        raise ValueError(
            f"compressed_tiles must be between 0 and the image's {tiles} tiles, got {compressed_tiles}"
        )
    full = tokens_per_tile(image_size=image_size)  # pixel shuffle 0.5: 256 for a 448-px tile
    small = tokens_per_tile(image_size=image_size, downsample_ratio=0.25)  # 1/16 of the patches: 64
    return (tiles - compressed_tiles) * full + compressed_tiles * small


def build_mlp1(vit_hidden: int, llm_hidden: int, downsample_ratio: float = 0.5) -> nn.Sequential:
    """InternVL's projector: LayerNorm(C·4) → Linear(C·4 → H) → GELU → Linear(H → H), state-dict keys 0, 1, 3."""
    c = int(vit_hidden / downsample_ratio**2)
    return nn.Sequential(
        nn.LayerNorm(c), nn.Linear(c, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden)
    )


def tiling_figure(image: Image.Image, *, max_num: int = 12, image_size: int = 448, title: str | None = None):
    """Draw InternVL's tiling of ``image``: the grid on the image, then the tiles and the thumbnail as the ViT sees them.

    The callback of notebook 06's interactive explorer (and its static fallback).
    """
    import matplotlib.pyplot as plt

    from . import viz

    cols, rows = dynamic_grid(*image.size, max_num=max_num, image_size=image_size)
    tiles = dynamic_preprocess(image, max_num=max_num, image_size=image_size)
    tokens = num_image_tokens(len(tiles), image_size=image_size)
    fig = plt.figure(figsize=(11, 4))
    ax = fig.add_axes([0.0, 0.05, 0.45, 0.85])
    viz.draw_tiles(image, (cols, rows), ax=ax)
    ax.set_title(title or f"{image.width}×{image.height} → grid {cols}×{rows}", fontsize=10)
    n = len(tiles)
    per_row = max(cols, 1) + (1 if n > 1 else 0)
    for i, tile in enumerate(tiles):
        r, c = (i // cols, i % cols) if i < cols * rows else (0, cols)
        w = 0.5 / per_row
        sub = fig.add_axes(
            [
                0.48 + c * w,
                0.9 - (r + 1) * min(w * 2.2, 0.85 / max(rows, 1)),
                w * 0.95,
                min(w * 2.2, 0.85 / max(rows, 1)) * 0.95,
            ]
        )
        sub.imshow(tile)
        sub.set_xticks([])
        sub.set_yticks([])
        sub.set_title("thumbnail" if i == cols * rows else str(i + 1), fontsize=7)
    fig.suptitle(f"{n} tile(s) × {tokens // n} tokens = {tokens} visual tokens", fontsize=11)
    return fig

"""LLaVA's connector and image arithmetic: projectors, visual-token counts, LLaVA-NeXT's AnyRes tiling.

* LLaVA: CLIP ViT-L/14 (second-to-last layer, CLS dropped) → a **linear** projector → LLM; 224 px → 256 tokens.
* LLaVA-1.5: 336 px → 576 tokens; projector ``mlp2x_gelu`` = Linear → GELU → Linear. In instruction tuning and at
  inference a non-square image is first **padded** to a square with CLIP's mean colour (``--image_aspect_ratio pad``
  in ``scripts/v1_5/finetune.sh``), then resized: ``expand2square``; pretraining keeps ``train.py``'s default
  (``square``: shortest edge resized, centre crop).
* LLaVA-NeXT (1.6): **AnyRes**. Pick the best grid resolution from ``grid_pinpoints``, resize-and-pad the image to it,
  encode each 336-px tile plus a 336-px base image, **unpad** the tile features back to the image's aspect ratio and
  append a learned **newline** token after every feature row.
* LLaVA-OneVision: the same AnyRes on 384-px SigLIP tiles (27 × 27 = 729 tokens each) with every grid from 1 × 1 to
  6 × 6 (``"(1x1),...,(6x6)"``), and ``anyres_max_9``: a kept feature map much larger than 9 tiles' worth is shrunk
  with bilinear interpolation before the newline tokens are added.

Sizes are (width, height) as in PIL; grid pinpoints are (width, height) as in the official LLaVA repository
(transformers reads the same lists as (height, width): see notebook 04).
Mirrors: haotian-liu/LLaVA ``llava/model/multimodal_projector/builder.py`` (``build_vision_projector``),
``llava/mm_utils.py`` (``expand2square``, ``select_best_resolution``, ``get_anyres_image_grid_shape``) and
``llava/model/llava_arch.py`` (``unpad_image`` and the ``spatial_unpad`` merge); for OneVision, LLaVA-VL/LLaVA-NeXT
``llava/train/train.py`` and ``llava/mm_utils.py`` (the ``"(AxB)"`` range syntax) and ``llava/model/llava_arch.py``
(the ``anyres_max`` branch of ``prepare_inputs_labels_for_multimodal``).
Introduced in notebooks 03 and 04.
"""

from __future__ import annotations

import ast
import math
import re

from torch import nn

LLAVA_NEXT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


def build_projector(kind: str, vision_dim: int, llm_dim: int) -> nn.Module:
    """``"linear"`` → ``nn.Linear``; ``"mlp2x_gelu"`` → ``Sequential(Linear, GELU, Linear)`` (keys ``0.*``, ``2.*``)."""
    if kind == "linear":
        return nn.Linear(vision_dim, llm_dim)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(vision_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim))
    raise ValueError(f"unknown projector {kind!r}: use 'linear' or 'mlp2x_gelu'")


def check_feature_strategy(strategy: str, name: str = "strategy") -> None:
    """Refuse a feature-selection strategy transformers' LLaVA does not know (``"default"`` or ``"full"``)."""
    if strategy not in ("default", "full"):
        raise ValueError(f'{name} must be "default" (drop CLS) or "full" (keep it), not {strategy!r}')


def select_features(hidden_states, layer: int = -2, strategy: str = "default"):
    """What LLaVA hands to its projector: the ViT's hidden states of ``layer``, CLS (token 0) dropped or kept.

    ``hidden_states`` is the ViT's tuple (embeddings, then one entry per layer). ``strategy`` is transformers' name:
    ``"default"`` drops CLS (LLaVA's choice, with ``layer=-2``), ``"full"`` keeps it. Mirrors haotian-liu/LLaVA
    ``CLIPVisionTower.feature_select`` (``llava/model/multimodal_encoder/clip_encoder.py``: ``mm_vision_select_layer``,
    ``select_feature`` ``"patch"`` / ``"cls_patch"``) and transformers' ``LlavaModel.get_image_features``
    (``vision_feature_layer``, ``vision_feature_select_strategy``); the tests compare it with what the mini LLaVA's
    projector receives. Shown in notebook 03.
    """
    check_feature_strategy(strategy)
    states = hidden_states[layer]
    return states[:, 1:] if strategy == "default" else states


def vit_tokens(image_size: int = 336, patch_size: int = 14, *, cls: bool = False) -> int:
    """Patch tokens of a square ViT input (+1 with ``cls``): 224/14 → 256, 336/14 → 576."""
    return (image_size // patch_size) ** 2 + (1 if cls else 0)


# CLIP's image_mean (0.48145466, 0.4578275, 0.40821073) as the official code turns it into a fill colour: int(x * 255)
CLIP_MEAN_RGB = (122, 116, 104)


def expand2square(image, background_color: tuple[int, int, int] = CLIP_MEAN_RGB):
    """Pad ``image`` to a square of side max(width, height), centred on ``background_color``: LLaVA-1.5's ``pad``.

    LLaVA-1.5's instruction tuning sets ``--image_aspect_ratio pad`` (``scripts/v1_5/finetune.sh``; the flag is saved in
    the model's config, so ``process_images`` pads at inference too; ``pretrain.sh`` keeps the default ``square``,
    a centre crop): the image is padded like this
    (mean colour, the original centred, the odd pixel of padding going below or to the right) and only then resized
    to 336 × 336, so a wide photo is shrunk, not squashed. Mirrors ``expand2square`` in haotian-liu/LLaVA
    ``llava/mm_utils.py``. Introduced in notebook 04.
    """
    from PIL import Image

    width, height = image.size
    side = max(width, height)
    if width == height:
        return image
    square = Image.new(image.mode, (side, side), background_color)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def select_best_resolution(image_size: tuple[int, int], possible_resolutions) -> tuple[int, int]:
    """The official rule: the resolution that keeps the most of the image's pixels, then the one that wastes least."""
    width, height = image_size
    best, best_effective, best_waste = None, 0, float("inf")
    for w, h in possible_resolutions:
        scale = min(w / width, h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        waste = w * h - effective
        if effective > best_effective or (effective == best_effective and waste < best_waste):
            best, best_effective, best_waste = (w, h), effective, waste
    return best


def anyres_grid_shape(image_size: tuple[int, int], grid_pinpoints, patch_size: int = 336) -> tuple[int, int]:
    """(cols, rows) of ``patch_size`` tiles for the best resolution."""
    w, h = select_best_resolution(image_size, grid_pinpoints)
    return w // patch_size, h // patch_size


def unpadded_shape(image_size: tuple[int, int], feature_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the tile feature map after ``unpad_image`` removes the padding rows or columns."""
    width, height = image_size
    cur_w, cur_h = feature_size
    if width / height > cur_w / cur_h:  # padding was added above and below
        new_h = int(height * (cur_w / width))
        pad = (cur_h - new_h) // 2
        return cur_w, cur_h - 2 * pad
    new_w = int(width * (cur_h / height))
    pad = (cur_w - new_w) // 2
    return cur_w - 2 * pad, cur_h


def anyres_num_tokens(
    image_size: tuple[int, int],
    grid_pinpoints=LLAVA_NEXT_PINPOINTS,
    *,
    patch_size: int = 336,
    tokens_per_side: int = 24,
    merge: str = "spatial_unpad",
) -> int:
    """Visual tokens the official LLaVA-1.6 code inserts for one image.

    ``spatial_unpad``: base 576 + every unpadded feature row of the tiles, each followed by a newline token;
    ``spatial``: base + 576 per tile; ``flat``: the same count, all features in a row.
    """
    cols, rows = anyres_grid_shape(image_size, grid_pinpoints, patch_size)
    base = tokens_per_side**2
    if merge in ("spatial", "flat"):
        return base + cols * rows * base
    if merge != "spatial_unpad":
        raise ValueError(f"unknown merge {merge!r}: use 'spatial_unpad', 'spatial' or 'flat'")
    w, h = unpadded_shape(image_size, (cols * tokens_per_side, rows * tokens_per_side))
    return base + h * (w + 1)


def expand_grid_pinpoints(grid_pinpoints, patch_size: int) -> list[list[int]]:
    """Grid pinpoints as a list of (width, height) pixel sizes, from any form the official configs write them in.

    ``"(1x1),...,(6x6)"`` (LLaVA-OneVision's scripts): the first and the last ``(AxB)`` span a range, expanded to every
    grid ``(i, j)`` for i from A₁ to A₂ (outer loop) and j from B₁ to B₂, times ``patch_size``: 36 grids for
    OneVision, 384 to 2304 px. A string such as ``"[(336, 672), (672, 336)]"`` is read as a Python literal; a list
    is kept. Mirrors the expansion in LLaVA-VL/LLaVA-NeXT ``llava/train/train.py`` (which stores the list in the
    model's config) and ``llava/mm_utils.py`` (``get_anyres_image_grid_shape``, ``process_anyres_image``), including
    its check on ``patch_size``. Shown in notebook 04.
    """
    if isinstance(grid_pinpoints, str) and "x" in grid_pinpoints:
        if patch_size not in (224, 336, 384, 448, 512):
            raise ValueError(f"patch_size should be in [224, 336, 384, 448, 512], not {patch_size}")
        matches = re.findall(r"\((\d+)x(\d+)\)", grid_pinpoints)
        (a1, b1), (a2, b2) = (tuple(map(int, m)) for m in (matches[0], matches[-1]))
        return [[i * patch_size, j * patch_size] for i in range(a1, a2 + 1) for j in range(b1, b2 + 1)]
    if isinstance(grid_pinpoints, str):
        grid_pinpoints = ast.literal_eval(grid_pinpoints)
    return [list(p) for p in grid_pinpoints]


# LLaVA-OneVision: ``--image_grid_pinpoints "(1x1),...,(6x6)"`` (scripts/train/finetune_ov.sh), tiles of SigLIP's 384 px
ONEVISION_PINPOINTS = expand_grid_pinpoints("(1x1),...,(6x6)", 384)


def anyres_max_shape(
    feature_size: tuple[int, int], max_num_patches: int, tokens_per_side: int
) -> tuple[int, int]:
    """(width, height) of the unpadded tile feature map after ``anyres_max_N`` (``max_num_patches`` = N).

    ``times = sqrt(h·w / (N · tokens_per_side²))``: how many times wider and taller the map is than N tiles' worth.
    Only if ``times > 1.1`` is it resized, with bilinear interpolation, to ``int(h // times)`` rows and
    ``int(w // times)`` columns; up to 1.1 (1.21 × N tiles of features) it is kept as it is. Mirrors the ``unpad``
    + ``anyres_max`` branch of ``prepare_inputs_labels_for_multimodal`` in LLaVA-VL/LLaVA-NeXT
    ``llava/model/llava_arch.py`` (same float arithmetic; the tests run ``torch`` interpolation on it). Notebook 04.
    """
    w, h = feature_size
    times = math.sqrt(h * w / (max_num_patches * tokens_per_side**2))
    if times > 1.1:
        return int(w // times), int(h // times)
    return w, h


def anyres_max_num_tokens(
    image_size: tuple[int, int],
    grid_pinpoints=ONEVISION_PINPOINTS,
    *,
    image_aspect_ratio: str = "anyres_max_9",
    patch_size: int = 384,
    tokens_per_side: int = 27,
) -> int:
    """Visual tokens the official LLaVA-OneVision code inserts for one image (``spatial_unpad`` merge).

    Base image (``tokens_per_side²`` = 729) + the kept tile features after ``anyres_max_shape``, each row followed by
    a newline token. ``image_aspect_ratio`` is the config's string: ``"anyres_max_N"`` caps at N tiles' worth,
    ``"anyres"`` does not (then this equals ``anyres_num_tokens`` with the same grids and sizes).
    ``grid_pinpoints`` may be any form ``expand_grid_pinpoints`` reads. Sizes and pinpoints are (width, height), the
    official convention. Mirrors LLaVA-VL/LLaVA-NeXT ``llava/model/llava_arch.py`` (N read from the string with the
    same regular expression, then the ``anyres_max`` branch) for a single image; multi-image and video inputs take
    other paths there. Shown in notebook 04.
    """
    matched = re.match(r"anyres_max_(\d+)", image_aspect_ratio)
    if image_aspect_ratio != "anyres" and not matched:
        raise ValueError(f'image_aspect_ratio must be "anyres" or "anyres_max_N", not {image_aspect_ratio!r}')
    pinpoints = expand_grid_pinpoints(grid_pinpoints, patch_size)
    cols, rows = anyres_grid_shape(image_size, pinpoints, patch_size)
    w, h = unpadded_shape(image_size, (cols * tokens_per_side, rows * tokens_per_side))
    if matched:
        w, h = anyres_max_shape((w, h), int(matched.group(1)), tokens_per_side)
    return tokens_per_side**2 + h * (w + 1)


# LLaVA-1.5-HD (Improved Baselines, appendix): 224-px tiles from CLIP-224, at most 6 tiles (up to 672 × 448), plus a
# 224-px global image. The paper describes it without released code; these pinpoints are the course's reading of it.
LLAVA_HD_PINPOINTS = [[224 * c, 224 * r] for r in range(1, 4) for c in range(1, 4) if c * r <= 6]


def hd_num_tokens(image_size: tuple[int, int]) -> int:
    """LLaVA-1.5-HD, as the course reconstructs it: global 256 + unpadded tile rows of 16 tokens, each + a row-end token."""
    return anyres_num_tokens(image_size, LLAVA_HD_PINPOINTS, patch_size=224, tokens_per_side=16)


def resize_and_pad(image, target_resolution: tuple[int, int]):
    """Fit ``image`` inside ``target_resolution`` keeping its aspect ratio, centred on black (official LLaVA-NeXT)."""
    import math

    from PIL import Image

    width, height = image.size
    tw, th = target_resolution
    scale_w, scale_h = (
        tw / width,
        th / height,
    )  # computed as the official code does: float rounding decides ceil()
    if scale_w < scale_h:
        new_w, new_h = tw, min(math.ceil(height * scale_w), th)
    else:
        new_w, new_h = min(math.ceil(width * scale_h), tw), th
    canvas = Image.new("RGB", (tw, th), (0, 0, 0))
    canvas.paste(image.resize((new_w, new_h)), ((tw - new_w) // 2, (th - new_h) // 2))
    return canvas


def anyres_figure(
    image, grid_pinpoints=LLAVA_NEXT_PINPOINTS, *, patch_size: int = 336, tokens_per_side: int = 24
):
    """Draw LLaVA-NeXT's AnyRes on ``image``: the padded canvas with its tiles, and the kept feature rows.

    The callback of notebook 04's explorer (and its static fallback).
    """
    import matplotlib.pyplot as plt
    from matplotlib import patches

    from . import viz

    target = select_best_resolution(image.size, grid_pinpoints)
    cols, rows = target[0] // patch_size, target[1] // patch_size
    canvas = resize_and_pad(image, target)
    fw, fh = cols * tokens_per_side, rows * tokens_per_side
    kw, kh = unpadded_shape(image.size, (fw, fh))
    total = anyres_num_tokens(
        image.size, grid_pinpoints, patch_size=patch_size, tokens_per_side=tokens_per_side
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    viz.draw_tiles(
        canvas,
        (cols, rows),
        ax=axes[0],
        title=f"{image.width}×{image.height} → best {target[0]}×{target[1]}, padded",
    )
    ax = axes[1]
    ax.imshow(canvas.resize((fw, fh)), extent=(0, fw, fh, 0), alpha=0.35)
    x0, y0 = (fw - kw) // 2, (fh - kh) // 2
    ax.add_patch(patches.Rectangle((x0, y0), kw, kh, fill=False, ec=viz.PALETTE[3], lw=2))
    ax.add_patch(patches.Rectangle((fw, y0), max(fw / 40, 0.6), kh, color=viz.PALETTE[2]))
    ax.set_xlim(0, fw + max(fw / 20, 1.5))
    ax.set_ylim(fh, 0)
    ax.set_title(f"features {fw}×{fh} → kept {kw}×{kh} (+1 newline per row)", fontsize=10)
    base = tokens_per_side**2
    fig.suptitle(f"{base} (base image) + {kh} × ({kw} + 1) = {total} visual tokens", fontsize=11)
    return fig

"""The mini CLIP of notebook 01 as a model: built untrained, or trained once and kept in the course cache.

``alignment`` teaches the recipe (InfoNCE, the training loop, retrieval); this module makes the model it trains
(transformers' ``CLIPModel`` at mini size) and caches the *pretrained* one whose vision tower notebooks 02, 03 and 05
reuse as a frozen "CLIP", as BLIP-2 and LLaVA start from OpenAI's CLIP.

The cache folder is ``<cache>/models/dual_encoder-<hash of the AlignConfig and the conditions>`` (``mini.cache``): one
trained copy per configuration, thread count and library versions.
Introduced in notebook 01.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .. import alignment
from . import cache
from .models import build_clip, load, save


def build_dual_encoder(config: alignment.AlignConfig):
    """An untrained mini CLIP ``(model, processor)`` (transformers ``CLIPModel``) with the config's sizes."""
    return build_clip(
        image_size=config.image_size,
        patch_size=config.patch_size,
        hidden=config.hidden,
        layers=config.layers,
        seed=config.seed,
    )


def _cache_path(config: alignment.AlignConfig) -> Path:
    return cache.folder("dual_encoder", asdict(config))


def pretrained_dual_encoder(config: alignment.AlignConfig | None = None, *, progress: bool = True):
    """A trained mini CLIP ``(model, processor)``: loaded from the course cache, or trained once and cached.

    Later notebooks use its vision tower as the frozen, pretrained image encoder (as BLIP-2 and LLaVA start from CLIP).
    """
    config = config or alignment.AlignConfig()

    def train_and_save(folder: Path) -> None:
        model, processor = build_dual_encoder(config)
        alignment.train_dual_encoder(model, processor, config, progress=progress)
        save(model, processor, folder)

    return load("clip", cache.build_once(_cache_path(config), train_and_save))


def store_pretrained(model, processor, config: alignment.AlignConfig) -> Path:
    """Keep a dual encoder you trained as the cached pretrained one for ``config`` (notebook 01 → 02, 03, 05)."""
    return cache.build_once(_cache_path(config), lambda folder: save(model, processor, folder))

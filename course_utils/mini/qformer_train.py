"""The stage-1 Q-Former of notebook 02 as a model: trained once with ITC + ITM + ITG and kept in the course cache.

``qformer`` teaches the Q-Former and its three stage-1 losses; this module runs notebook 02's stage 1 (the same
frozen mini CLIP features, captions, sizes, steps and seeds) and caches the result, so notebook 05 can start BLIP-2's
stage 2 from a *pretrained* Q-Former, as BLIP-2 does, without training stage 1 again in every run.

The cache folder is ``<cache>/models/qformer_stage1-<hash of the Stage1Config, the mini CLIP's AlignConfig and the
conditions>`` (``mini.cache``): one trained copy per configuration. Notebook 02 stores the Q-Former it trains (``store_pretrained_qformer``);
``pretrained_qformer`` loads it, or trains it once if it is missing. Introduced in notebook 05.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import alignment, data, qformer
from . import cache, clip_train


@dataclass(frozen=True)
class Stage1Config:
    """Notebook 02's stage 1: its Q-Former sizes, its training images and its optimisation (mini sizes)."""

    steps: int = 1200  # notebook 02: 1200 (mini and CI: at 800 ITM stayed on its plateau at seed 1, no vector kernels), 3000 (full)
    batch_size: int = 24
    lr: float = (
        3e-3  # 2e-3 left ITM on its plateau after 800 steps at seeds 1 and 2 (benchmarks/robustness.py)
    )
    seed: int = 0  # batches and hard negatives
    init_seed: int = 0  # torch.manual_seed before the Q-Former is built
    pool_images: int = 48 * 20  # 20 training images per caption
    pool_seed: int = 5
    num_queries: int = 8
    hidden: int = 64
    heads: int = 4
    layers: int = 4


def _cache_path(config: Stage1Config) -> Path:
    """Keyed by the mini CLIP's config too: its frozen features are the Q-Former's input."""
    return cache.folder("qformer_stage1", {"stage1": asdict(config), "clip": asdict(alignment.AlignConfig())})


@torch.no_grad()
def frozen_features(clip, processor, items) -> torch.Tensor:
    """The frozen mini CLIP's last-layer features, CLS included: (images, 1 + patches, vision_dim), as notebook 02."""
    pixels = processor.image_processor([it.image for it in items], return_tensors="pt")["pixel_values"]
    return clip.vision_model(pixel_values=pixels).last_hidden_state


def train_stage1_qformer(config: Stage1Config | None = None, *, progress: bool = True):
    """``(qformer, history)``: notebook 02's stage 1 run from scratch on the frozen mini CLIP's features."""
    config = config or Stage1Config()
    clip, processor = clip_train.pretrained_dual_encoder(alignment.AlignConfig(), progress=progress)
    tokenizer = processor.tokenizer
    pool = data.make_shapes(
        config.pool_images, image_size=clip.config.vision_config.image_size, seed=config.pool_seed
    )
    feats = frozen_features(clip, processor, pool)
    captions = sorted({it.caption for it in pool})
    index = {c: i for i, c in enumerate(captions)}
    owner = torch.tensor([index[it.caption] for it in pool])
    text = qformer.caption_ids(tokenizer, captions)
    torch.manual_seed(config.init_seed)
    model = qformer.QFormer(_qformer_config(config, len(tokenizer), feats.shape[-1], text.input_ids.shape[1]))
    history = qformer.train_stage1(
        model, feats, owner, text.input_ids, text.attention_mask,
        dec_token_id=tokenizer.convert_tokens_to_ids("[DEC]"), steps=config.steps,
        batch_size=config.batch_size, lr=config.lr, seed=config.seed, progress=progress,
    )  # fmt: skip
    return model, history


def _qformer_config(config: Stage1Config, vocab_size: int, vision_dim: int, max_text_len: int):
    return qformer.QFormerConfig(
        vocab_size=vocab_size, vision_dim=vision_dim, max_text_len=max_text_len, hidden=config.hidden,
        heads=config.heads, layers=config.layers, num_queries=config.num_queries,
    )  # fmt: skip


def store_pretrained_qformer(model: qformer.QFormer, config: Stage1Config) -> Path:
    """Keep a stage-1 Q-Former you trained with ``config`` as the cached one (notebook 02 → 05); returns its folder.

    Refuses a model whose sizes differ from the config's. An existing copy is kept (one per configuration).
    """
    sizes = {k: getattr(model.cfg, k) for k in ("num_queries", "hidden", "heads", "layers")}
    wanted = {k: getattr(config, k) for k in sizes}
    if sizes != wanted:
        raise ValueError(f"this Q-Former has sizes {sizes}, but the config says {wanted}")
    return cache.build_once(_cache_path(config), lambda folder: _save(model, config, folder))


def _save(model: qformer.QFormer, config: Stage1Config, folder: Path) -> None:
    """The weights (``model.pt``) and the sizes (``config.json``, written last: ``cache.ready`` looks for it)."""
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(
        json.dumps({"qformer": asdict(model.cfg), "stage1": asdict(config)}, indent=1)
    )


def pretrained_qformer(config: Stage1Config | None = None, *, progress: bool = True) -> qformer.QFormer:
    """The stage-1 Q-Former of notebook 02 for ``config``: loaded from the course cache, or trained once and cached."""
    config = config or Stage1Config()
    path = cache.build_once(  # two processes that need it train it once
        _cache_path(config),
        lambda folder: _save(train_stage1_qformer(config, progress=progress)[0], config, folder),
    )
    saved = json.loads((path / "config.json").read_text())
    model = qformer.QFormer(qformer.QFormerConfig(**saved["qformer"]))
    model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()

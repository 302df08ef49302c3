"""The trained mini InternVL: the CPU stand-in for InternVL2-2B in notebooks 06–08.

Recipe, as the real models are built (towers pretrained first, then connected):

0. **Pretrain the towers.** The vision tower (InternViT-style ``InternVLVisionModel``) learns contrastively against
   bag-of-words caption embeddings (a mini CLIP); the LLM (``Qwen2``) learns the chat format on text only.
1. **Stage 1: MLP only.** ViT and LLM frozen, only ``mlp1`` learns to describe images (captioning).
2. **Stage 2: everything.** ViT + MLP + LLM learn captions and questions together, as multi-turn chats (one ViT pass
   per image serves its four answers). The ViT's 10× smaller learning rate (``vision_lr_scale``) is this course's
   choice for a tiny ViT, not InternVL's recipe: OpenGVLab/InternVL's scripts use one learning rate for all parts with
   drop-path on the ViT, and their stage scripts for the 1.8 B LLM train the ViT in both stages
   (``shell/internvl1.5/internlm2_1_8b/*.sh``: ``--freeze_backbone False``; the ``--freeze_backbone True`` of
   ``internvl2_2b_..._2nd_finetune_full.sh`` is for fine-tuning the released model again on one's own data).

Stage 1 trains only the projector, so the towers are pretrained first (the ViT contrastively, the LLM on text), as the
real models' towers are.
The model keeps InternVL's structure (ViT → pixel shuffle 0.5 → mlp1 → LLM, ``<img><IMG_CONTEXT>…</img>``) at a
96-px tile with 8-px patches (36 visual tokens per tile) instead of 448 px with 14-px patches (256), so it trains in
one to two minutes on a CPU (the contrastive ViT pretraining is about half of that; fewer ViT steps or smaller
contrastive batches cost the star/triangle distinction).
Measured by executing notebook 06 (``benchmarks/robustness.py``, 1 thread; 06 asserts a stage-1 caption gain > 0.1 and
stage-2 exact match >= 0.85): seeds 0 / 1 / 2 give 0.58 / 0.77 / 0.33 and 0.96 / 0.97 / 0.89. With 600 ViT steps,
seed 2's ViT stayed weak on shape (62 %, all 0.84): whether shape is learned in time varies with the seed (a frozen
ViT's nearest-centroid shape accuracy after pretraining: 0.78 / 0.81 / 0.55 at 600 steps). Notebook 08's LoRA on
this model (seed 0) reaches 0.885 / 0.896 / 0.885 held-out at LoRA seeds 0 / 1 / 2 (1 thread; 0.958 at 2 threads).
Measured: with 8 × 8 patches per tile (112 px / 14) the ViT never learns to tell a star from a triangle (shape
accuracy ~50 %); 12 × 12 patches and a well-pretrained ViT (contrastive loss ≈ 0.2) reach ~95 % overall.

Introduced in notebook 06; ``load_mini_internvl()`` is what notebooks 07 and 08 call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .. import data
from . import cache, sft
from .models import build_internvl, load, save
from .sft import Conversations, chat_prompt  # noqa: F401  (re-exported: notebook 06 uses T.Conversations)


@dataclass(frozen=True)
class Recipe:
    """Sizes and steps; the defaults are the cached model the labs use."""

    tile: int = 96  # InternVL2: 448
    patch: int = 8  # 14; 12 × 12 patches per tile → 36 tokens after pixel shuffle (InternVL2: 32 × 32 → 256)
    vision_hidden: int = 64  # 1024
    hidden: int = 128  # 2048 (internlm2-chat-1_8b)
    layers: int = 2
    batch_size: int = 32  # answers per step (stage 2: 8 images × 4 turns)
    vision_batch: int = 32  # captions per contrastive batch (48 = every caption once)
    vision_steps: int = 900  # 600 left the ViT weak on shape at seed 2 (see above)
    llm_steps: int = 150
    stage1_steps: int = (
        300  # 100 left a stage-1 caption gain of 0.04-0.13 across seeds (benchmarks/mini_internvl.py)
    )
    stage2_steps: int = 450
    lr: float = 2e-3
    vision_lr_scale: float = 0.1  # ours, not InternVL's: stage 2 fine-tunes the pretrained mini ViT gently
    train_images: int = 1920
    seed: int = 0


def qa_samples(
    items: list[data.ShapeItem], kinds: tuple[str, ...] = tuple(data.QUESTIONS)
) -> list[tuple[int, str, str]]:
    """(item index, question, answer) for every item and question kind."""
    keys = list(data.QUESTIONS)
    return [
        (i, q, a) for i, it in enumerate(items) for k, (q, a) in zip(keys, it.qa(), strict=True) if k in kinds
    ]


def pretrain_vision(model, processor, items, recipe: Recipe, progress=True) -> list[float]:
    """Contrastive pretraining of the vision tower against bag-of-words caption embeddings (a mini CLIP)."""
    vision = model.model.vision_tower
    tok = processor.tokenizer
    captions = sorted({it.caption for it in items})
    sampler = data.CaptionSampler([captions.index(it.caption) for it in items])
    words = tok(captions, add_special_tokens=False, padding=True, return_tensors="pt")
    text_emb = torch.nn.EmbeddingBag(
        len(tok), recipe.vision_hidden, mode="mean", padding_idx=tok.pad_token_id
    )
    proj = torch.nn.Linear(recipe.vision_hidden, recipe.vision_hidden)
    pixels = processor.image_processor([it.image for it in items], return_tensors="pt")["pixel_values"]
    scale = torch.nn.Parameter(torch.tensor(2.66))  # log(1 / 0.07), as CLIP

    def step(g):
        chosen, picks = sampler.sample(recipe.vision_batch, g)
        img = proj(vision(pixel_values=pixels[picks]).last_hidden_state.mean(1))
        txt = text_emb(words.input_ids[chosen])
        logits = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T * scale.exp().clamp(max=100)
        target = torch.arange(len(chosen))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    params = [*vision.parameters(), *text_emb.parameters(), *proj.parameters(), scale]
    return sft.train_loop(params, recipe.vision_steps, recipe.lr, recipe.seed, step, "pretrain ViT", progress)


def pretrain_llm(model, processor, items, recipe: Recipe, progress=True) -> list[float]:
    """Text-only pretraining of the LLM: the chat format and the answer vocabulary, no image."""
    return sft.pretrain_llm(
        model, processor, items, steps=recipe.llm_steps, lr=recipe.lr, batch_size=recipe.batch_size,
        seed=recipe.seed + 1, progress=progress,
    )  # fmt: skip


def set_trainable(model, stage: int) -> dict[str, int]:
    """Stage 1: only the projector (mlp1); stage 2: everything. Returns trainable parameter counts per part."""
    counts = sft.set_trainable(model, ("projector",) if stage == 1 else ("vision", "projector", "llm"))
    return {"vision": counts["vision"], "mlp1": counts["projector"], "llm": counts["llm"]}


def train_stage(
    model, chats: Conversations, stage: int, steps: int, recipe: Recipe, progress=True
) -> list[float]:
    """Supervised fine-tuning on multi-turn chats with the stage's trainable parts (``batch_size`` answers per step)."""
    set_trainable(model, stage)
    return sft.train_stage(
        model, chats, steps, lr=recipe.lr, batch_size=recipe.batch_size, seed=recipe.seed + 1 + stage,
        vision_lr_scale=recipe.vision_lr_scale, desc=f"stage {stage}", progress=progress,
    )  # fmt: skip


@torch.no_grad()
def answer(model, processor, images, questions, max_new_tokens: int = 8) -> list[str]:
    """Greedy answers, one per (image, question)."""
    prompts = [chat_prompt(processor, q) for q in questions]
    inputs = processor(images=list(images), text=prompts, return_tensors="pt", padding=True)
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return [
        s.strip()
        for s in processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    ]


def evaluate(model, processor, items, batch: int = 64) -> dict[str, float]:
    """Exact-match accuracy per question kind (and overall) on ``items``."""
    samples = qa_samples(items)
    kinds = list(data.QUESTIONS)
    correct: dict[str, list[bool]] = {k: [] for k in kinds}
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        got = answer(model, processor, [items[i].image for i, _, _ in chunk], [q for _, q, _ in chunk])
        for (_, q, a), g in zip(chunk, got, strict=True):
            correct[kinds[list(data.QUESTIONS.values()).index(q)]].append(g == a)
    out = {k: sum(v) / len(v) for k, v in correct.items()}
    out["all"] = sum(sum(v) for v in correct.values()) / len(samples)
    return out


def train_mini_internvl(recipe: Recipe | None = None, progress: bool = True, after=None):
    """Run the whole recipe; returns ``(model, processor, history)``.

    ``after(moment, model, processor)``, if given, is called at "random towers", "after stage 1" and "after stage 2",
    the moments notebook 06 evaluates (``benchmarks/mini_internvl.py`` measures them this way)."""
    recipe = recipe or Recipe()
    after = after or (lambda *_: None)
    model, processor = build_internvl(
        image_size=recipe.tile, patch_size=recipe.patch, vision_hidden=recipe.vision_hidden, hidden=recipe.hidden,
        layers=recipe.layers, seed=recipe.seed, max_tiles=1,
    )  # fmt: skip
    after("random towers", model, processor)
    items = data.make_shapes(recipe.train_images, image_size=recipe.tile, seed=recipe.seed + 10)
    history = {"vision": pretrain_vision(model, processor, items, recipe, progress)}
    history["llm"] = pretrain_llm(model, processor, items, recipe, progress)
    captions = Conversations(processor, items, ("caption",))
    history["stage1"] = train_stage(model, captions, 1, recipe.stage1_steps, recipe, progress)
    after("after stage 1", model, processor)
    history["stage2"] = train_stage(
        model, Conversations(processor, items), 2, recipe.stage2_steps, recipe, progress
    )
    after("after stage 2", model, processor)
    return model, processor, history


def load_mini_internvl(recipe: Recipe | None = None, progress: bool = True):
    """The trained mini InternVL ``(model, processor)``: from the course cache, or trained once (1-2 min) and cached.

    The cache is keyed by the recipe and the conditions (torch threads, library versions; ``mini.cache``), and two
    processes that need it at once train it once."""
    recipe = recipe or Recipe()
    path = cache.build_once(
        cache_path(recipe), lambda folder: save(*train_mini_internvl(recipe, progress)[:2], folder)
    )
    return load("internvl", path)


def cache_path(recipe: Recipe | None = None):
    """Where ``load_mini_internvl`` keeps the model trained with ``recipe`` under this kernel's conditions."""
    return cache.folder("mini_internvl", asdict(recipe or Recipe()))


def store_mini_internvl(model, processor, recipe: Recipe | None = None):
    """Keep a model trained with ``recipe`` (e.g. live in notebook 06) as the cached one notebooks 07 and 08 load."""
    return cache.build_once(cache_path(recipe), lambda folder: save(model, processor, folder))

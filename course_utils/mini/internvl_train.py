"""The trained mini InternVL: the CPU stand-in for InternVL2-2B in notebooks 06–08.

Recipe, as the real models are built (towers pretrained first, then connected):

0. **Pretrain the towers.** The vision tower (InternViT-style ``InternVLVisionModel``) learns contrastively against
   bag-of-words caption embeddings (a mini CLIP); the LLM (``Qwen2``) learns the chat format on text only.
1. **Stage 1: MLP only.** ViT and LLM frozen, only ``mlp1`` learns to describe images (captioning).
2. **Stage 2: everything.** ViT + MLP + LLM learn captions and questions together, as multi-turn chats (one ViT pass
   per image serves its four answers).

A projector between two *random* towers learns nothing (LAB_NOTES); with pretrained towers stage 1 already works.
The model keeps InternVL's structure (ViT → pixel shuffle 0.5 → mlp1 → LLM, ``<img><IMG_CONTEXT>…</img>``) at a
96-px tile with 8-px patches (36 visual tokens per tile) instead of 448 px with 14-px patches (256), so it trains in
about 70 s on 2 CPU threads (tests/benchmarks/bench_mini_internvl.py: ~91 % held-out exact match; the contrastive ViT
pretraining is half of that time, and fewer ViT steps or smaller contrastive batches cost the star/triangle distinction).
Measured: with 8 × 8 patches per tile (112 px / 14) the ViT never learns to tell a star from a triangle (shape
accuracy ~50 %); 12 × 12 patches and a well-pretrained ViT (contrastive loss ≈ 0.2) reach ~95 % overall.

Introduced in notebook 06; ``load_mini_internvl()`` is what notebooks 07 and 08 call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .. import data, paths
from .models import build_internvl, load, save_atomic


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
    vision_steps: int = 600
    llm_steps: int = 150
    stage1_steps: int = 100
    stage2_steps: int = 450
    lr: float = 2e-3
    vision_lr_scale: float = 0.1  # stage 2 fine-tunes the pretrained ViT gently, as InternVL does
    train_images: int = 1920
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def chat_prompt(processor, question: str) -> str:
    """The ChatML prompt with one image before the question, ending where the assistant starts."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def qa_samples(
    items: list[data.ShapeItem], kinds: tuple[str, ...] = tuple(data.QUESTIONS)
) -> list[tuple[int, str, str]]:
    """(item index, question, answer) for every item and question kind."""
    keys = list(data.QUESTIONS)
    return [
        (i, q, a) for i, it in enumerate(items) for k, (q, a) in zip(keys, it.qa(), strict=True) if k in kinds
    ]


class Conversations:
    """Multi-turn chats about training images, tokenised once and assembled per step.

    Each image gets one conversation with a turn per question kind, in a fresh random order every time it is drawn
    (so every question is sometimes the first turn, right after the image). This is the shape of InternVL's SFT data
    (several QA turns per image) and it is cheap: the image block and the ViT pass are shared by all its turns.
    Rows are exactly what ``processor.apply_chat_template`` + ``processor(...)`` produce for the same conversation
    (tested); labels are -100 except on each answer and its ``<|im_end|>``.
    """

    def __init__(self, processor, items, kinds: tuple[str, ...] = tuple(data.QUESTIONS)):
        tok = processor.tokenizer
        self.pad = tok.pad_token_id
        self.kinds = kinds
        end = tok.convert_tokens_to_ids("<|im_end|>")
        ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        ctx = processor.image_token_id
        # <img> + <IMG_CONTEXT> × tokens + </img>, as the processor expands it for a one-tile image
        expanded = processor(images=[items[0].image], text=[chat_prompt(processor, "")], return_tensors="pt")
        expanded = expanded["input_ids"][0].tolist()
        block = expanded[expanded.index(ctx) - 1 : len(expanded) - expanded[::-1].index(ctx) + 1]
        self.first, self.later = {}, {}
        for kind in kinds:
            question = data.QUESTIONS[kind]
            prompt = ids(chat_prompt(processor, question))
            at = prompt.index(ctx)
            self.first[kind] = prompt[:at] + block + prompt[at + 1 :]
            self.later[kind] = ids("\n<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n")
        self.answers = [
            {k: ids(a) + [end] for k, (_, a) in zip(data.QUESTIONS, it.qa(), strict=True)} for it in items
        ]
        images = [it.image for it in items]
        self.pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]

    def __len__(self) -> int:
        return len(self.answers)

    def rows(self, images: list[int], orders: list[list[str]]) -> dict[str, torch.Tensor]:
        """Model inputs for the given images, each with its turns in the given order (right-padded)."""
        rows, labels = [], []
        for i, order in zip(images, orders, strict=True):
            row, lab = [], []
            for n, kind in enumerate(order):
                prompt = self.first[kind] if n == 0 else self.later[kind]
                row += prompt + self.answers[i][kind]
                lab += [-100] * len(prompt) + self.answers[i][kind]
            rows.append(row)
            labels.append(lab)
        width = max(map(len, rows))
        return {
            "input_ids": torch.tensor([r + [self.pad] * (width - len(r)) for r in rows]),
            "labels": torch.tensor([r + [-100] * (width - len(r)) for r in labels]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
            "pixel_values": self.pixels[list(images)],
        }

    def sample(self, answers: int, generator) -> dict[str, torch.Tensor]:
        """A random batch of about ``answers`` answers: ``answers // len(kinds)`` images with all their turns."""
        n = max(1, answers // len(self.kinds))
        images = torch.randperm(len(self), generator=generator)[:n].tolist()
        orders = [
            [self.kinds[j] for j in torch.randperm(len(self.kinds), generator=generator)] for _ in images
        ]
        return self.rows(images, orders)


def _loop(params, steps, lr, seed, step_fn, desc, progress):
    """AdamW with 5 % warm-up and cosine decay; ``params`` may be parameter groups with an ``lr_scale``."""
    from tqdm.auto import tqdm

    if not (params and isinstance(params[0], dict)):
        params = [{"params": list({id(p): p for p in params}.values())}]  # tied weights appear twice
    groups = params
    max_lrs = [lr * gr.pop("lr_scale", 1.0) for gr in groups]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lrs, total_steps=max(steps, 1), pct_start=0.05
    )
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        loss = step_fn(g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


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
    return _loop(params, recipe.vision_steps, recipe.lr, recipe.seed, step, "pretrain ViT", progress)


def pretrain_llm(model, processor, items, recipe: Recipe, progress=True) -> list[float]:
    """Text-only pretraining of the LLM: the chat format and the answer vocabulary, no image."""
    tok = processor.tokenizer
    texts = []
    for it in items[:200]:
        for q, a in it.qa():
            texts.append(f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n")
    batch = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    lm = model.model.language_model

    def step(g):
        idx = torch.randint(len(texts), (recipe.batch_size,), generator=g)
        hidden = lm(
            input_ids=batch.input_ids[idx], attention_mask=batch.attention_mask[idx]
        ).last_hidden_state
        logits = model.lm_head(hidden[:, :-1])
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[idx][:, 1:].reshape(-1), ignore_index=-100
        )

    params = [*lm.parameters(), *model.lm_head.parameters()]
    return _loop(
        params,
        recipe.llm_steps,
        recipe.lr,
        recipe.seed + 1,
        step,
        "pretrain LLM",
        progress,
    )


def set_trainable(model, stage: int) -> dict[str, int]:
    """Stage 1: only the projector (mlp1); stage 2: everything. Returns trainable parameter counts per part."""
    parts = {
        "vision": model.model.vision_tower,
        "mlp1": model.model.multi_modal_projector,
        "llm": model.model.language_model,
    }
    for name, module in parts.items():
        module.requires_grad_(stage == 2 or name == "mlp1")
    model.lm_head.requires_grad_(stage == 2)
    return {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m in parts.items()}


def train_stage(
    model, chats: Conversations, stage: int, steps: int, recipe: Recipe, progress=True
) -> list[float]:
    """Supervised fine-tuning on multi-turn chats with the stage's trainable parts (``batch_size`` answers per step)."""
    set_trainable(model, stage)
    model.train()

    def step(g):
        return model(**chats.sample(recipe.batch_size, g)).loss

    vision = {id(p) for p in model.model.vision_tower.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    params = [
        {"params": [p for p in trainable if id(p) not in vision]},
        {"params": [p for p in trainable if id(p) in vision], "lr_scale": recipe.vision_lr_scale},
    ]
    params = [g for g in params if g["params"]]
    losses = _loop(params, steps, recipe.lr, recipe.seed + 1 + stage, step, f"stage {stage}", progress)
    model.eval()
    model.requires_grad_(True)
    return losses


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


def train_mini_internvl(recipe: Recipe | None = None, progress: bool = True):
    """Run the whole recipe; returns ``(model, processor, history)``."""
    recipe = recipe or Recipe()
    model, processor = build_internvl(
        image_size=recipe.tile, patch_size=recipe.patch, vision_hidden=recipe.vision_hidden, hidden=recipe.hidden,
        layers=recipe.layers, seed=recipe.seed, max_tiles=1,
    )  # fmt: skip
    items = data.make_shapes(recipe.train_images, image_size=recipe.tile, seed=recipe.seed + 10)
    history = {"vision": pretrain_vision(model, processor, items, recipe, progress)}
    history["llm"] = pretrain_llm(model, processor, items, recipe, progress)
    captions = Conversations(processor, items, ("caption",))
    history["stage1"] = train_stage(model, captions, 1, recipe.stage1_steps, recipe, progress)
    history["stage2"] = train_stage(
        model, Conversations(processor, items), 2, recipe.stage2_steps, recipe, progress
    )
    return model, processor, history


def load_mini_internvl(recipe: Recipe | None = None, progress: bool = True):
    """The trained mini InternVL ``(model, processor)``: from the course cache, or trained once (~1 min) and cached."""
    recipe = recipe or Recipe()
    path = cache_path(recipe)
    if not (path / "config.json").is_file():
        model, processor, _ = train_mini_internvl(recipe, progress)
        store_mini_internvl(model, processor, recipe)
    return load("internvl", path)


def cache_path(recipe: Recipe | None = None):
    """Where ``load_mini_internvl`` keeps the model trained with ``recipe``."""
    return paths.cache_dir() / "models" / f"mini_internvl-{(recipe or Recipe()).key()}"


def store_mini_internvl(model, processor, recipe: Recipe | None = None):
    """Keep a model trained with ``recipe`` (e.g. live in notebook 06) as the cached one notebooks 07 and 08 load."""
    path = cache_path(recipe)
    if not (path / "config.json").is_file():
        save_atomic(model, processor, path)
    return path

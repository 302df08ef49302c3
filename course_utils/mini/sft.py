"""Supervised fine-tuning of the mini MLLMs: chat data, trainable parts, training stages, answers.

Shared by the mini LLaVA (notebooks 03 and 05) and the mini InternVL (06): both are transformers models with
``model.model.vision_tower``, ``model.model.multi_modal_projector`` (the connector), ``model.model.language_model``
and ``model.lm_head``, and both read ChatML prompts in which the processor expands one image placeholder into the
image's visual tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from .. import data

PART_NAMES = ("vision", "projector", "llm")


def chat_prompt(processor, question: str) -> str:
    """The ChatML prompt with one image before the question, ending where the assistant starts."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def shapes_tasks() -> dict[str, tuple[str, object]]:
    """The shapes world's question kinds: ``{kind: (question, answer_of(item))}`` (``data.QUESTIONS``, ``item.qa()``)."""
    return {
        kind: (question, lambda item, n=n: item.qa()[n][1])
        for n, (kind, question) in enumerate(data.QUESTIONS.items())
    }


class Conversations:
    """Multi-turn chats about training images, tokenised once and assembled per step.

    Each image gets one conversation with a turn per question kind, in a fresh random order every time it is drawn
    (so every question is sometimes the first turn, right after the image). This is the shape of LLaVA's and
    InternVL's instruction data (several QA turns per image) and it is cheap: the image block and the ViT pass are
    shared by all its turns. Rows are exactly what ``processor.apply_chat_template`` + ``processor(...)`` produce for
    the same conversation (tested); labels are -100 except on each answer and its ``<|im_end|>``.

    ``image_tokens`` replaces the processor's count of visual tokens per image (a connector that outputs another
    number of tokens, such as a Q-Former's queries, notebook 05).

    ``tasks`` maps each kind to ``(question, answer_of(item))``; by default the four questions of the shapes world
    (``data.QUESTIONS``) with each item's own answers. Notebook 03's response-format experiment passes its own
    (``mini.response_format``): the same questions with a format instruction, and sentence answers.
    """

    def __init__(self, processor, items, kinds: tuple[str, ...] | None = None, image_tokens=None, tasks=None):
        tasks = tasks or shapes_tasks()
        kinds = tuple(tasks) if kinds is None else tuple(kinds)
        unknown = [k for k in kinds if k not in tasks]
        if unknown:
            raise ValueError(f"unknown question kind(s) {unknown}: choose from {list(tasks)}")
        tok = self.tokenizer = processor.tokenizer
        self.pad = tok.pad_token_id
        self.kinds = kinds
        end = tok.convert_tokens_to_ids("<|im_end|>")
        ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        ctx = processor.image_token_id
        # the span of ids that the processor puts where the one image placeholder was
        prompt = ids(chat_prompt(processor, ""))
        at = prompt.index(ctx)
        images = [it.image for it in items]
        expanded = processor(images=images[:1], text=[chat_prompt(processor, "")], return_tensors="pt")
        expanded = expanded["input_ids"][0].tolist()
        block = expanded[at : len(expanded) - (len(prompt) - at - 1)]
        if image_tokens is not None:
            first, n = block.index(ctx), block.count(ctx)
            block = block[:first] + [ctx] * image_tokens + block[first + n :]
        self.image_tokens = block.count(ctx)
        self.first, self.later = {}, {}
        for kind in kinds:
            question = tasks[kind][0]
            prompt = ids(chat_prompt(processor, question))
            at = prompt.index(ctx)
            self.first[kind] = prompt[:at] + block + prompt[at + 1 :]
            self.later[kind] = ids("\n<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n")
        self.truth = [{k: answer_of(it) for k, (_, answer_of) in tasks.items()} for it in items]
        self.answers = [{k: ids(a) + [end] for k, a in truth.items()} for truth in self.truth]
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
        return {**pad_right(rows, labels, self.pad), "pixel_values": self.pixels[list(images)]}

    def sample(self, answers: int, generator) -> dict[str, torch.Tensor]:
        """A random batch of about ``answers`` answers: ``answers // len(kinds)`` images with all their turns."""
        n = max(1, answers // len(self.kinds))
        images = torch.randperm(len(self), generator=generator)[:n].tolist()
        orders = [
            [self.kinds[j] for j in torch.randperm(len(self.kinds), generator=generator)] for _ in images
        ]
        return self.rows(images, orders)

    def prompts(self, images: list[int], kind: str) -> dict[str, torch.Tensor]:
        """First-turn prompts (image + question ``kind``) for generation: all the same length, no padding."""
        row = self.first[kind]
        n = len(images)
        return {
            "input_ids": torch.tensor([row] * n),
            "attention_mask": torch.ones(n, len(row), dtype=torch.long),
            "pixel_values": self.pixels[list(images)],
        }


def pad_right(rows: list[list[int]], labels: list[list[int]], pad: int) -> dict[str, torch.Tensor]:
    """Right-pad token rows (with ``pad``) and their labels (with -100) into tensors, plus the attention mask."""
    width = max(map(len, rows))
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([r + [-100] * (width - len(r)) for r in labels]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
    }


def train_loop(
    params, steps, lr, seed, step_fn, desc, progress, after_step=None, log=None, max_norm=None
) -> list[float]:
    """AdamW with 5 % warm-up and cosine decay; ``params`` may be parameter groups with an ``lr_scale``.

    ``max_norm`` (optional): clip the gradients' global norm to it before each step, as XTuner's configs do
    (``clip_grad=dict(max_norm=1)``).

    ``after_step(n)`` (optional) is called after step n = 1, 2, …; ``log`` (a list, optional) receives one record per
    step, ``{"iter", "loss", "lr"}``, the shape of mmengine's training log (``xtuner_run.read_log``).
    """
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
    for n in tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False):
        loss = step_fn(g)
        opt.zero_grad()
        loss.backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for gr in groups for p in gr["params"]], max_norm)
        lr_now = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log is not None:
            log.append({"iter": n, "loss": losses[-1], "lr": lr_now})
        if after_step is not None:
            after_step(n)
    return losses


def pretrain_llm(model, processor, items, *, steps, lr, batch_size, seed, progress=True) -> list[float]:
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
        idx = torch.randint(len(texts), (batch_size,), generator=g)
        hidden = lm(
            input_ids=batch.input_ids[idx], attention_mask=batch.attention_mask[idx]
        ).last_hidden_state
        logits = model.lm_head(hidden[:, :-1])
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[idx][:, 1:].reshape(-1), ignore_index=-100
        )

    params = [*lm.parameters(), *model.lm_head.parameters()]
    return train_loop(params, steps, lr, seed, step, "pretrain LLM", progress)


def parts(model) -> dict[str, torch.nn.Module]:
    """The three parts of an MLLM: vision tower, projector (connector), LLM."""
    return {
        "vision": model.model.vision_tower,
        "projector": model.model.multi_modal_projector,
        "llm": model.model.language_model,
    }


def set_trainable(model, trainable: Iterable[str]) -> dict[str, int]:
    """Freeze everything but the named parts (the LM head goes with "llm"); returns trainable counts per part."""
    trainable = set(trainable)
    unknown = trainable - set(PART_NAMES)
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)}: choose from {PART_NAMES}")
    for name, module in parts(model).items():
        module.requires_grad_(name in trainable)
    model.lm_head.requires_grad_("llm" in trainable)
    return {
        name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m in parts(model).items()
    }


def train_stage(
    model, chats: Conversations, steps: int, *, lr: float, batch_size: int, seed: int,
    vision_lr_scale: float = 1.0, projector_lr_scale: float = 1.0, desc: str = "train", progress: bool = True,
    probe=None,
) -> list[float]:  # fmt: skip
    """Train the currently trainable parameters on ``chats`` (``batch_size`` answers per step); returns the losses.

    A trainable vision tower gets ``vision_lr_scale`` × the learning rate, the projector ``projector_lr_scale`` × (a
    pretrained connector fine-tuned gently: notebook 05's stage-1 Q-Former). ``probe=(every, fn)`` calls ``fn(step)``
    in eval mode without gradients at step 0 and every ``every`` steps (e.g. to record accuracy while training).
    The model is left in eval mode with every parameter trainable again.
    """

    def look(n):
        if probe is not None and n % probe[0] == 0:
            model.eval()
            with torch.no_grad():
                probe[1](n)
            model.train()

    look(0)
    model.train()

    def step(g):
        return model(**chats.sample(batch_size, g)).loss

    vision = {id(p) for p in model.model.vision_tower.parameters()}
    # a scale of 1 leaves the projector in the first group (the same optimiser as before the option existed)
    projector = (
        {id(p) for p in model.model.multi_modal_projector.parameters()}
        if projector_lr_scale != 1.0
        else set()
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("nothing to train: call set_trainable(model, [...]) with at least one part first")
    groups = [
        {"params": [p for p in trainable if id(p) not in vision and id(p) not in projector]},
        {"params": [p for p in trainable if id(p) in vision], "lr_scale": vision_lr_scale},
        {"params": [p for p in trainable if id(p) in projector], "lr_scale": projector_lr_scale},
    ]
    groups = [g for g in groups if g["params"]]
    losses = train_loop(groups, steps, lr, seed, step, desc, progress, after_step=look)
    model.eval()
    model.requires_grad_(True)
    return losses


@torch.no_grad()
def generate(model, chats: Conversations, images: list[int], kind: str, max_new_tokens: int = 8) -> list[str]:
    """Greedy answers to question ``kind`` about the given images of ``chats``."""
    inputs = chats.prompts(images, kind)
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=chats.pad)
    end = inputs["input_ids"].shape[1]
    return [t.strip() for t in chats.tokenizer.batch_decode(out[:, end:], skip_special_tokens=True)]


def answers(model, chats: Conversations, kind: str, batch: int = 64, max_new_tokens: int = 8) -> list[str]:
    """Greedy answers to question ``kind`` about every image of ``chats``, ``batch`` images at a time."""
    out = []
    for start in range(0, len(chats), batch):
        images = list(range(start, min(start + batch, len(chats))))
        out += generate(model, chats, images, kind, max_new_tokens)
    return out


def accuracy(model, chats: Conversations, kinds=None, batch: int = 64) -> dict[str, float]:
    """Exact-match accuracy of greedy answers per question kind (and "all") on every image of ``chats``."""
    kinds = list(kinds or chats.kinds)
    out = {}
    for kind in kinds:
        got = answers(model, chats, kind, batch)
        out[kind] = sum(g == truth[kind] for g, truth in zip(got, chats.truth, strict=True)) / len(chats)
    out["all"] = sum(out.values()) / len(kinds)
    return out

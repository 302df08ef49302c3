"""LLaVA-1.5's response-format prompt, on the mini LLaVA: one question, two wanted answer lengths.

LLaVA-1.5 (Liu et al., *Improved Baselines with Visual Instruction Tuning*, 2023, Sec. 3.2) mixes academic VQA data
(short answers: "red") into the conversation data (full sentences). Asked the same question in both, a model cannot
know which length is wanted. The paper's fix is one instruction appended to every short-answer question, "Answer the
question using a single word or phrase."; then the user chooses the format. This module builds that mix for the shapes
world, with and without the instruction, and measures which format the model answers in.

The mini tokenizer knows only the shapes world's words (``mini.tokenizer``), so the mini instruction is
``FORMAT_PROMPT`` below, written in words it knows, where LLaVA-1.5 writes ``LLAVA_FORMAT_PROMPT``.

Shown in notebook 03 (the experiment is written out there; ``FormatMix`` is the data it trains on).
"""

from __future__ import annotations

import torch

from .. import data
from . import sft

LLAVA_FORMAT_PROMPT = "Answer the question using a single word or phrase."  # LLaVA-1.5's VQA suffix
FORMAT_PROMPT = "please answer with one colour, shape or size."  # the mini stand-in, in the mini vocabulary
KINDS = ("colour", "shape", "size")
STYLES = ("short", "sentence")


def sentence(item: data.ShapeItem, kind: str) -> str:
    """The conversational answer: a full sentence ("the shape is red.", "it is a star.", "the star is big.")."""
    return {
        "colour": f"the shape is {item.colour}.",
        "shape": f"it is a {item.shape}.",
        "size": f"the {item.shape} is {item.size}.",
    }[kind]


def tasks(format_prompt: bool) -> dict[str, tuple[str, object]]:
    """``{"colour, short": (question, answer_of), "colour, sentence": ..., ...}`` for ``sft.Conversations``.

    The short-answer (VQA) variant of each question gets ``FORMAT_PROMPT`` after it when ``format_prompt``; the
    sentence (conversation) variant is always the bare question. Without the prompt both variants ask the same text.
    """
    out = {}
    for kind in KINDS:
        question = data.QUESTIONS[kind]
        short = f"{question}\n{FORMAT_PROMPT}" if format_prompt else question
        out[f"{kind}, short"] = (short, lambda item, k=kind: getattr(item, k))
        out[f"{kind}, sentence"] = (question, lambda item, k=kind: sentence(item, k))
    return out


class FormatMix(sft.Conversations):
    """Half VQA-style, half conversation-style chats: each drawn image gets the three questions in one style."""

    def __init__(self, processor, items, format_prompt: bool):
        super().__init__(processor, items, tasks=tasks(format_prompt))

    def sample(self, answers: int, generator) -> dict[str, torch.Tensor]:
        n = max(1, answers // len(KINDS))
        images = torch.randperm(len(self), generator=generator)[:n].tolist()
        orders = []
        for _ in images:
            style = STYLES[int(torch.randint(len(STYLES), (1,), generator=generator))]
            orders.append([f"{KINDS[j]}, {style}" for j in torch.randperm(len(KINDS), generator=generator)])
        return self.rows(images, orders)


def answer_style(text: str) -> str:
    """ "short" (one word, no full stop), "sentence" (several words ending with "."), or "other"."""
    words = text.split()
    if len(words) == 1 and not text.endswith("."):
        return "short"
    if len(words) > 1 and text.endswith("."):
        return "sentence"
    return "other"


def measure(model, chats: FormatMix, batch: int = 64) -> dict[str, dict[str, float]]:
    """For each wanted style: how often the greedy answer comes in that style, and how often it is exactly right.

    Each style is asked with its own prompt (the short one with ``FORMAT_PROMPT`` when the mix has it), over every
    image of ``chats`` and the three question kinds.
    """
    out = {}
    for style in STYLES:
        styled = right = 0
        for kind in KINDS:
            name = f"{kind}, {style}"
            got = sft.answers(model, chats, name, batch, max_new_tokens=10)
            styled += sum(answer_style(g) == style for g in got)
            right += sum(g == truth[name] for g, truth in zip(got, chats.truth, strict=True))
        total = len(KINDS) * len(chats)
        out[style] = {"in the wanted style": styled / total, "exact match": right / total}
    return out

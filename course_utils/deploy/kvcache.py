"""The KV cache from scratch, on the mini InternVL's language model (notebook 09).

``forward`` is the Qwen2 decoder of the mini InternVL written out (RMSNorm, rotary positions, grouped-query attention,
SwiGLU MLP) so that its cache is visible: a ``KVCache`` is a list with one ``(K, V)`` pair of tensors per layer, each
``(batch, kv_heads, tokens, head_dim)``, the layout of Hugging Face's legacy cache. ``generate`` decodes greedily with
or without it; ``kv_bytes_per_token`` and ``kv_budget`` are the memory arithmetic an engine such as LMDeploy does
(its ``cache_max_entry_count`` is the share of *free* GPU memory given to the cache; lmdeploy docs › "Inference
engine config").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


class KVCache:
    """Per-layer keys and values: ``layers[i] = (K, V)``, each ``(batch, kv_heads, tokens, head_dim)``."""

    def __init__(self):
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def update(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new tokens' ``k``, ``v`` to layer ``i``; return all keys and values seen so far."""
        if i == len(self.layers):
            self.layers.append((k, v))
        else:
            old_k, old_v = self.layers[i]
            self.layers[i] = (torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2))
        return self.layers[i]

    def tokens(self) -> int:
        return 0 if not self.layers else self.layers[0][0].shape[2]

    def nbytes(self) -> int:
        """Bytes the cache holds (every tensor's elements × element size)."""
        return sum(t.numel() * t.element_size() for pair in self.layers for t in pair)


def rms_norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))


def rotate(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (RoFormer, arXiv:2104.09864) in the half-split layout Qwen2 and Llama use."""
    angles = positions[:, None].float() * inv_freq[None, :]
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def attention(layer, x: torch.Tensor, positions: torch.Tensor, inv_freq, cache, i: int) -> torch.Tensor:
    """Causal self-attention of decoder layer ``layer`` on ``x`` (batch, new tokens, hidden) at ``positions``; with
    a cache the new keys and values are appended and the queries attend to every cached token."""
    a, cfg = layer.self_attn, layer.self_attn.config
    b, t, _ = x.shape
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    d = cfg.hidden_size // heads
    q = a.q_proj(x).view(b, t, heads, d).transpose(1, 2)
    k = a.k_proj(x).view(b, t, kv_heads, d).transpose(1, 2)
    v = a.v_proj(x).view(b, t, kv_heads, d).transpose(1, 2)
    q, k = rotate(q, positions, inv_freq), rotate(k, positions, inv_freq)
    if cache is not None:
        k, v = cache.update(i, k, v)
    k, v = k.repeat_interleave(heads // kv_heads, 1), v.repeat_interleave(heads // kv_heads, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # (b, heads, t, all tokens)
    key_pos = torch.arange(k.shape[2])
    scores = scores.masked_fill(key_pos[None, :] > positions[:, None], float("-inf"))
    out = scores.softmax(-1) @ v
    return a.o_proj(out.transpose(1, 2).reshape(b, t, heads * d))


def forward(lm, embeds: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
    """The mini InternVL's Qwen2 decoder (``model.model.language_model``) on ``embeds`` (batch, tokens, hidden) whose
    first token sits at position ``start``; returns the last hidden states (before the LM head)."""
    positions = torch.arange(start, start + embeds.shape[1])
    inv_freq = lm.rotary_emb.inv_freq
    h = embeds
    for i, layer in enumerate(lm.layers):
        h = h + attention(layer, rms_norm(h, layer.input_layernorm), positions, inv_freq, cache, i)
        m, x = layer.mlp, rms_norm(h, layer.post_attention_layernorm)
        h = h + m.down_proj(nn.functional.silu(m.gate_proj(x)) * m.up_proj(x))
    return rms_norm(h, lm.norm)


@torch.no_grad()
def prompt_embeds(model, processor, images, questions) -> torch.Tensor:
    """Token embeddings of the chat prompts with the image features put in place of the image tokens (as
    ``InternVLModel.forward`` does); all prompts must have the same length (same question kind)."""
    from ..mini.sft import chat_prompt  # lazily: the GPU-lab kernel cannot import the mini models

    prompts = [chat_prompt(processor, q) for q in questions]
    inputs = processor(images=list(images), text=prompts, return_tensors="pt")
    if not bool(inputs["attention_mask"].all()):
        raise ValueError("prompt_embeds takes prompts of one length (group questions by kind)")
    lm = model.model.language_model
    embeds = lm.embed_tokens(inputs["input_ids"])
    features = model.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    mask = inputs["input_ids"] == model.config.image_token_id
    embeds[mask] = features.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
    return embeds


@torch.no_grad()
def generate(model, embeds: torch.Tensor, max_new_tokens: int = 8, *, use_cache: bool = True, cache=None,
             eos: int | None = None, on_step: Callable[[int], None] | None = None) -> torch.Tensor:  # fmt: skip
    """Greedy decoding from prompt ``embeds``: new token ids (batch, max_new_tokens). Without a cache every step runs
    the whole sequence again; with one (a fresh ``KVCache`` unless ``cache`` is given) only the newest token.
    Stops early once every row has produced ``eos``. ``on_step(n)`` is called after each new token."""
    lm = model.model.language_model
    cache = (cache if cache is not None else KVCache()) if use_cache else None
    seq, new, done = embeds, [], torch.zeros(embeds.shape[0], dtype=torch.bool)
    h = forward(lm, embeds, 0, cache)
    for n in range(max_new_tokens):
        token = model.lm_head(h[:, -1]).argmax(-1)
        new.append(token)
        if on_step:
            on_step(n)
        if eos is not None:
            done |= token == eos
        if bool(done.all()) or n == max_new_tokens - 1:
            break
        step = lm.embed_tokens(token)[:, None]
        if cache is None:
            seq = torch.cat([seq, step], 1)
            h = forward(lm, seq, 0, None)
        else:
            h = forward(lm, step, seq.shape[1] + n, cache)
    return torch.stack(new, 1)


def decode(processor, ids: torch.Tensor, eos: int) -> list[str]:
    """Token ids → answers, each cut at its first ``eos``."""
    rows = []
    for row in ids.tolist():
        rows.append(row[: row.index(eos)] if eos in row else row)
    return [s.strip() for s in processor.batch_decode(rows, skip_special_tokens=True)]


@torch.no_grad()
def evaluate(
    model, processor, items, *, make_cache: Callable[[], KVCache] | None = None, kinds=None
) -> float:
    """Exact-match accuracy on every question of ``items`` (as ``mini.internvl_train.evaluate``), decoding with this
    module's ``generate`` and a cache from ``make_cache`` (default: a float ``KVCache``)."""
    from .. import data

    eos, right, total = processor.tokenizer.eos_token_id, 0, 0
    for kind, question in data.QUESTIONS.items():
        if kinds and kind not in kinds:
            continue
        truth = [dict(it.qa())[question] for it in items]
        embeds = prompt_embeds(model, processor, [it.image for it in items], [question] * len(items))
        cache = make_cache() if make_cache else KVCache()
        got = decode(processor, generate(model, embeds, 8, cache=cache, eos=eos), eos)
        right += sum(g == t for g, t in zip(got, truth, strict=True))
        total += len(items)
    return right / total


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, bytes_per_value: float = 2) -> float:
    """Cache bytes one token costs: K and V, in every layer, for every KV head (fp16: 2 bytes a value)."""
    return 2 * layers * kv_heads * head_dim * bytes_per_value


def kv_budget(gpu_gb: float, weights_gb: float, cache_max_entry_count: float, bytes_per_token: float,
              session_len: int) -> dict[str, float]:  # fmt: skip
    """What an engine that gives ``cache_max_entry_count`` of the *free* memory (GPU memory minus weights) to the KV
    cache can hold: cache GB, tokens, and full-length sessions of ``session_len`` tokens (GB = 1e9 bytes)."""
    cache_bytes = (gpu_gb - weights_gb) * 1e9 * cache_max_entry_count
    tokens = cache_bytes / bytes_per_token
    return {"cache_gb": cache_bytes / 1e9, "tokens": tokens, "sessions": tokens / session_len}

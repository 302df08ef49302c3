"""Quantization from scratch (notebook 09): the KV cache in int8/int4, and 4-bit weights with RTN and AWQ.

- ``quantize_kv``/``dequantize_kv``: asymmetric integers per head and per token, computed online as tokens arrive,
  the scheme of LMDeploy's ``quant_policy=8`` (int8) and ``quant_policy=4`` (int4) (lmdeploy docs › "KV Cache
  Quantization"). ``QuantKVCache`` stores the codes (int4 packed two to a byte) with fp16 scales and zero points.
- ``quantize_weight``: group-wise asymmetric round-to-nearest (RTN) along the input dimension, the W4A16 format of
  ``lmdeploy lite auto_awq`` (default ``--w-group-size 128``).
- ``awq_search``/``quantize_llm``: AWQ (Lin et al., arXiv:2306.00978): scale input channel j of a linear layer by
  ``s_j = mean|x_j| ** alpha`` before quantizing and by ``1/s_j`` after, with ``alpha`` searched on a grid to
  minimise the error of the layer's output on calibration activations.
"""

from __future__ import annotations

import torch
from torch import nn

from .kvcache import KVCache


def quantize_kv(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` (..., head_dim) → (uint8 codes, fp16 scale, fp16 zero), one scale and zero per vector (per head, per
    token): ``x ≈ codes * scale + zero``, codes in [0, 2**bits - 1]."""
    if bits not in (4, 8):
        raise ValueError(f"KV cache bits must be 4 or 8 (LMDeploy's quant_policy), not {bits}")
    levels = 2**bits - 1
    lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    scale = ((hi - lo) / levels).clamp(min=1e-8).half()
    zero = lo.half()
    codes = torch.round((x - zero.float()) / scale.float()).clamp(0, levels).to(torch.uint8)
    return codes, scale, zero


def dequantize_kv(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return codes.float() * scale.float() + zero.float()


def pack4(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte along the last dimension (even index in the low nibble)."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack4(packed: torch.Tensor) -> torch.Tensor:
    return torch.stack([packed & 15, packed >> 4], dim=-1).flatten(-2)


class QuantKVCache(KVCache):
    """A ``KVCache`` that keeps keys and values as ``bits``-bit codes with fp16 scale and zero per head per token.
    ``layers[i]`` holds ``(K codes, K scale, K zero, V codes, V scale, V zero)``; ``update`` quantizes only the new
    tokens (online, as LMDeploy does) and returns the dequantized keys and values attention reads."""

    def __init__(self, bits: int):
        super().__init__()
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, not {bits}")
        self.bits = bits

    def _store(self, x):
        codes, scale, zero = quantize_kv(x, self.bits)
        return (pack4(codes) if self.bits == 4 else codes), scale, zero

    def _load(self, codes, scale, zero):
        return dequantize_kv(unpack4(codes) if self.bits == 4 else codes, scale, zero)

    def update(self, i, k, v):
        new = self._store(k) + self._store(v)
        if i == len(self.layers):
            self.layers.append(new)
        else:
            self.layers[i] = tuple(torch.cat([a, b], dim=2) for a, b in zip(self.layers[i], new, strict=True))
        stored = self.layers[i]
        return self._load(*stored[:3]), self._load(*stored[3:])


def check_group_size(in_features: int, group_size: int) -> None:
    if group_size <= 0 or in_features % group_size:
        raise ValueError(f"group size {group_size} does not divide the layer's input width {in_features}: choose a "
                         f"divisor of {in_features} (LMDeploy's AWQ kernels use 128)")  # fmt: skip


def quantize_weight(w: torch.Tensor, bits: int = 4, group_size: int = 128) -> tuple[torch.Tensor, ...]:
    """Group-wise asymmetric RTN of a linear weight ``w`` (out, in): each row is cut into groups of ``group_size``
    input channels with their own scale and zero. Returns (codes (out, in) uint8, scale, zero (out, in/group))."""
    check_group_size(w.shape[1], group_size)
    levels = 2**bits - 1
    g = w.reshape(w.shape[0], -1, group_size)
    lo, hi = g.amin(-1), g.amax(-1)
    scale = ((hi - lo) / levels).clamp(min=1e-8)
    zero = torch.round(-lo / scale).clamp(
        0, levels
    )  # the code that stands for 0.0, itself a 4-bit value (AWQ clamps too)
    codes = torch.clamp(torch.round(g / scale[..., None]) + zero[..., None], 0, levels)
    return codes.reshape(w.shape).to(torch.uint8), scale, zero


def dequantize_weight(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    g = codes.reshape(codes.shape[0], scale.shape[1], -1).float()
    return ((g - zero[..., None]) * scale[..., None]).reshape(codes.shape)


def fake_quantize(w: torch.Tensor, bits: int = 4, group_size: int = 128) -> torch.Tensor:
    """``w`` after a round trip through ``bits``-bit group-wise RTN (what a W4A16 kernel computes with)."""
    return dequantize_weight(*quantize_weight(w, bits, group_size))


def weight_bytes(shape: tuple[int, int], bits: int, group_size: int) -> float:
    """Storage of one quantized linear weight: packed codes plus an fp16 scale and zero per group."""
    out_f, in_f = shape
    return out_f * in_f * bits / 8 + out_f * (in_f // group_size) * 2 * 2


def awq_loss(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, bits: int, group_size: int) -> float:
    """Output error of quantizing ``w`` with input channels scaled by ``s``: ``||x Wᵀ - (x / s) Q(W·s)ᵀ||²`` mean."""
    q = fake_quantize(w * s[None, :], bits, group_size) / s[None, :]
    return float(((x @ w.T - x @ q.T) ** 2).mean())


def awq_search(x: torch.Tensor, weights: list[torch.Tensor], bits: int = 4, group_size: int = 128,
               grid: int = 20) -> tuple[torch.Tensor, float, dict[float, float]]:  # fmt: skip
    """AWQ's search for linear layers that read the same input ``x`` (tokens, in): for alpha in 0, 1/grid, ...,
    (grid-1)/grid, ``s = mean|x| ** alpha`` (normalised so max·min = 1) and the summed output error of all
    ``weights``; returns (best s, best alpha, {alpha: loss}). alpha = 0 (s = 1) is plain RTN, so AWQ never does
    worse than RTN on the calibration data."""
    importance = x.abs().mean(0).clamp(min=1e-6)
    losses, best = {}, (float("inf"), None, 0.0)
    for n in range(grid):
        alpha = n / grid
        s = importance**alpha
        s = s / (s.max() * s.min()).sqrt()
        loss = sum(awq_loss(x, w, s, bits, group_size) for w in weights)
        losses[alpha] = loss
        if loss < best[0]:
            best = (loss, s, alpha)
    return best[1], best[2], losses


GROUPS = (
    ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    ("self_attn.o_proj",),
    ("mlp.gate_proj", "mlp.up_proj"),
    ("mlp.down_proj",),
)  # fmt: skip  (linears that share one input)


def llm_linears(model) -> dict[str, nn.Linear]:
    """The decoder's linear layers of the mini InternVL's LLM (what W4A16 quantizes; embeddings and head stay)."""
    lm = model.model.language_model
    return {f"layers.{i}.{name}": layer.get_submodule(name) for i, layer in enumerate(lm.layers)
            for group in GROUPS for name in group}  # fmt: skip


@torch.no_grad()
def calibration_inputs(model, run: callable, max_tokens: int = 512, seed: int = 0) -> dict[str, torch.Tensor]:
    """The input activations (tokens, in) of every LLM linear layer while ``run()`` drives the model (at most
    ``max_tokens`` rows each, drawn at random with ``seed``: the search's cost grows with them)."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [lin.register_forward_hook(lambda mod, args, out, key=key: seen.setdefault(key, []).append(
        args[0].reshape(-1, args[0].shape[-1])))
             for key, lin in llm_linears(model).items()]  # fmt: skip
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    rows = {k: torch.cat(v) for k, v in seen.items()}
    pick = torch.Generator().manual_seed(seed)
    return {k: v[torch.randperm(len(v), generator=pick)[:max_tokens]] for k, v in rows.items()}


@torch.no_grad()
def quantize_llm(model, bits: int = 4, group_size: int = 128, calib: dict[str, torch.Tensor] | None = None,
                 grid: int = 20) -> dict[str, float]:  # fmt: skip
    """Replace the LLM's linear weights in place by their ``bits``-bit group-wise round trip: RTN, or AWQ when
    ``calib`` (from ``calibration_inputs``) is given. Returns the alpha chosen for each group of linears (AWQ)."""
    linears, alphas = llm_linears(model), {}
    for key in linears:
        check_group_size(linears[key].in_features, group_size)
    for i in range(len(model.model.language_model.layers)):
        for group in GROUPS:
            keys = [f"layers.{i}.{name}" for name in group]
            ws = [linears[k].weight.data for k in keys]
            s = torch.ones(ws[0].shape[1])
            if calib is not None:
                s, alphas[keys[0]], _ = awq_search(calib[keys[0]], ws, bits, group_size, grid)
            for k, w in zip(keys, ws, strict=True):
                linears[k].weight.data = fake_quantize(w * s[None, :], bits, group_size) / s[None, :]
    return alphas


def llm_weight_bytes(model, bits: int | None = None, group_size: int = 128) -> float:
    """Bytes of the LLM's linear weights: fp16 (``bits=None``) or ``bits``-bit with fp16 scale/zero per group."""
    shapes = [tuple(lin.weight.shape) for lin in llm_linears(model).values()]
    if bits is None:
        return sum(o * i * 2 for o, i in shapes)
    return sum(weight_bytes(s, bits, group_size) for s in shapes)

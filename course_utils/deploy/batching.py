"""Batching (notebook 09): what a batch buys on the mini engine, and static vs persistent (continuous) batching.

``measure_batches`` times the decode steps of greedy decoding (``kvcache.generate`` with a KV cache) at several batch
sizes.
``simulate`` replays requests arriving over time through an engine whose decode step takes ``step_time(batch)``
seconds: *static* batching starts a batch only when the engine is free and keeps every slot until the batch's longest
answer is done, and returns the batch's answers together (one batched ``generate`` call); *persistent* batching (LMDeploy's "persistent batch", also called continuous batching) lets a finished
request leave and a waiting one join at every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from . import kvcache


@torch.no_grad()
def measure_batches(model, embeds: torch.Tensor, sizes: list[int], new_tokens: int = 32,
                    repeats: int = 2) -> list[dict[str, float]]:  # fmt: skip
    """For each batch size: the best of ``repeats`` timings of the decode steps alone (``new_tokens - 1`` greedy steps
    after the first token: reading the prompt is left out) on the first ``size`` rows of ``embeds`` →
    {"batch", "seconds" (those steps), "step_s" (one step), "tokens_per_s"}."""
    if new_tokens < 2:
        raise ValueError("new_tokens must be at least 2: the decode steps are timed after the first token")
    rows = []
    for size in sizes:
        if size > embeds.shape[0]:
            raise ValueError(f"batch {size} needs {size} prompts, got {embeds.shape[0]}")
        best = float("inf")
        for _ in range(repeats):
            marks: list[float] = []
            kvcache.generate(
                model, embeds[:size], new_tokens, on_step=lambda n, at=marks: at.append(time.perf_counter())
            )
            best = min(best, marks[-1] - marks[0])
        steps = new_tokens - 1
        rows.append(
            {"batch": size, "seconds": best, "step_s": best / steps, "tokens_per_s": size * steps / best}
        )
    return rows


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile: the smallest value that at least ``p`` % of ``values`` do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def simulate(arrivals: list[float], lengths: list[int], max_batch: int, step_time: Callable[[int], float],
             persistent: bool) -> dict[str, float]:  # fmt: skip
    """Serve requests (arrival times in seconds, answer lengths in tokens) with at most ``max_batch`` in flight.
    Returns mean and p90 latency (arrival → last token), tokens/s over the whole run, and the finish times."""
    order = sorted(range(len(arrivals)), key=lambda i: arrivals[i])
    waiting, running, finish = (
        list(order),
        {},
        [0.0] * len(arrivals),
    )  # running: request → tokens still to make
    now = 0.0
    while waiting or running:
        if not running and waiting and arrivals[waiting[0]] > now:
            now = arrivals[waiting[0]]  # idle until the next request
        if persistent or not running:  # static batching admits only into an empty engine
            while waiting and len(running) < max_batch and arrivals[waiting[0]] <= now:
                i = waiting.pop(0)
                running[i] = lengths[i]
        now += step_time(len(running))
        for i in list(running):
            running[i] -= 1
            if running[i] == 0 and persistent:
                finish[i] = now
                del running[i]
        if not persistent and all(left <= 0 for left in running.values()):
            for i in running:  # the whole static batch returns together, as one batched generate call does
                finish[i] = now
            running.clear()
    latency = sorted(f - a for f, a in zip(finish, arrivals, strict=True))
    return {"mean_latency": sum(latency) / len(latency), "p90_latency": percentile(latency, 90),
            "tokens_per_s": sum(lengths) / (max(finish) - min(arrivals)), "finish": finish}  # fmt: skip

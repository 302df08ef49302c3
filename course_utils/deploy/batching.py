"""Batching (notebook 09): what a batch buys on the mini engine, and static vs persistent (continuous) batching.

``measure_batches`` times greedy decoding (``kvcache.generate`` with a KV cache) at several batch sizes.
``simulate`` replays requests arriving over time through an engine whose decode step takes ``step_time(batch)``
seconds: *static* batching starts a batch only when the engine is free and keeps every slot until the batch's longest
answer is done, and returns the batch's answers together (one batched ``generate`` call); *persistent* batching (LMDeploy's "persistent batch", also called continuous batching) lets a finished
request leave and a waiting one join at every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from . import kvcache


@torch.no_grad()
def measure_batches(model, embeds: torch.Tensor, sizes: list[int], new_tokens: int = 32,
                    repeats: int = 2) -> list[dict[str, float]]:  # fmt: skip
    """For each batch size: the best of ``repeats`` timings of ``new_tokens`` greedy steps (no early stop) on the
    first ``size`` rows of ``embeds`` → {"batch", "seconds" (latency of the batch), "tokens_per_s"}."""
    rows = []
    for size in sizes:
        if size > embeds.shape[0]:
            raise ValueError(f"batch {size} needs {size} prompts, got {embeds.shape[0]}")
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            kvcache.generate(model, embeds[:size], new_tokens)
            best = min(best, time.perf_counter() - start)
        rows.append({"batch": size, "seconds": best, "tokens_per_s": size * new_tokens / best})
    return rows


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
    return {"mean_latency": sum(latency) / len(latency), "p90_latency": latency[int(0.9 * (len(latency) - 1))],
            "tokens_per_s": sum(lengths) / (max(finish) - min(arrivals)), "finish": finish}  # fmt: skip

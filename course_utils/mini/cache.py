"""The course cache of trained mini models: one folder per recipe *and* per conditions, built once, under a lock.

A trained model depends on more than its recipe. PyTorch gives different results at different thread counts (each
bit-reproducible at a fixed count) and with different CPU kernels (``torch.backends.cpu.get_cpu_capability()``:
AVX512, AVX2 or DEFAULT, which ``ATEN_CPU_CAPABILITY`` can lower), and a new torch or transformers can change the
numerics. So a folder's name hashes the recipe together with the conditions it was trained under (torch threads, CPU
kernel, torch and transformers versions): a model
trained in one mode (a learner's kernel with one thread) is never silently reused in another (CI's two threads), and
a notebook that asserts a result gets the model its own conditions produce, warm cache or cold.

Building happens under a file lock beside the folder, so two processes that need the same model (two notebooks open
at once, two test workers) train it once: the second waits, then loads what the first saved. It also happens with the
caller's random state set aside and restored (torch, NumPy, ``random``): training draws thousands of random numbers,
loading draws none, so without this what a notebook draws next (LoRA's initial adapters in notebook 08) would depend
on whether the cache was warm.

    path = cache.folder("mini_internvl", asdict(recipe))     # <cache>/models/mini_internvl-<hash>
    cache.build_once(path, lambda tmp: save(*train(), tmp))  # one builder at a time, renamed into place last

Used by ``mini.internvl_train``, ``mini.clip_train`` and ``mini.qformer_train``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import paths


def conditions() -> dict:
    """What besides the recipe decides the trained weights: torch's thread count, its CPU kernel, the library versions."""
    import torch
    import transformers

    return {
        "threads": torch.get_num_threads(),
        "cpu_kernel": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def folder(kind: str, recipe: dict) -> Path:
    """``<cache>/models/<kind>-<hash of recipe and conditions>``."""
    key = json.dumps({"recipe": recipe, "conditions": conditions()}, sort_keys=True, default=str)
    return paths.cache_dir() / "models" / f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def ready(path: Path) -> bool:
    """True once a complete model was saved there (``write_atomic`` renames the folder into place last)."""
    return (Path(path) / "config.json").is_file()


@contextmanager
def building(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (POSIX ``flock``; no lock where the platform has none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        # Windows: no flock; two builders would only waste time, write_atomic keeps the folder whole
        yield
        return
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` into a temporary sibling folder, then rename it to ``path``: a half-written copy is never seen.

    If another process finished ``path`` first, its copy is kept and ours discarded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        write(tmp)
        if not path.exists():
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


@contextmanager
def keeping_random_state() -> Iterator[None]:
    """Run a block and give the caller back the random state it had before: torch's (CPU and every CUDA device),
    NumPy's global one and Python's ``random``."""
    import random

    import numpy as np
    import torch

    saved_python, saved_numpy = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(saved_python)
        np.random.set_state(saved_numpy)


def build_once(path: Path, write: Callable[[Path], None]) -> Path:
    """Unless a complete copy is at ``path`` already: under ``building``'s lock, ``write_atomic(path, write)``.

    ``write`` runs at most once per folder even when several processes ask at the same time (the others wait, then
    find it ready), and under ``keeping_random_state``: a warm cache and a cold one leave the caller the same random
    numbers to draw next."""
    path = Path(path)
    if not ready(path):
        with building(path):
            if not ready(path):
                with keeping_random_state():
                    write_atomic(path, write)
    return path

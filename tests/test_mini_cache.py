"""mini.cache: a trained model is keyed by its recipe *and* the conditions it was trained under, and built once."""

import os
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from course_utils.mini import cache


def test_folder_changes_with_the_thread_count_and_the_recipe(clean_env):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cache.folder("mini_internvl", {"steps": 10})
        assert cache.folder("mini_internvl", {"steps": 10}) == one  # deterministic
        assert cache.folder("mini_internvl", {"steps": 11}) != one
        torch.set_num_threads(2)
        assert cache.folder("mini_internvl", {"steps": 10}) != one  # a 2-thread model is another model
    finally:
        torch.set_num_threads(before)
    assert one.parent == clean_env / "cache" / "models" and one.name.startswith("mini_internvl-")
    assert set(cache.conditions()) == {"threads", "cpu_kernel", "torch", "transformers"}


def test_another_cpu_kernel_is_another_model(clean_env):
    """torch picks its CPU kernels at start-up (``ATEN_CPU_CAPABILITY`` lowers them): a model trained with AVX-512
    kernels rounds differently from one trained with AVX2 or none, so each kernel gets its own folder."""
    code = (
        "import torch; from course_utils.mini import cache; "
        "print(torch.backends.cpu.get_cpu_capability(), cache.folder('mini_internvl', {'steps': 10}))"
    )
    seen = {}
    for kernel in ("default", "avx2"):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": kernel}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        capability, folder = out.stdout.split()
        seen[capability] = folder
    if len(seen) < 2:
        pytest.skip(f"this CPU runs only {list(seen)} kernels")
    assert len(set(seen.values())) == 2, seen


def test_building_lets_one_builder_in_at_a_time(clean_env):
    path = cache.folder("demo", {"x": 1})
    inside, overlaps = [], []

    def build():
        with cache.building(path):
            overlaps.append(len(inside))
            inside.append(1)
            time.sleep(0.2)
            inside.pop()

    workers = [threading.Thread(target=build) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert overlaps == [0, 0, 0]
    assert not cache.ready(path)


def test_build_once_writes_whole_folders_once(clean_env):
    path = cache.folder("demo", {"x": 2})
    calls = []

    def write(folder):
        calls.append(folder)
        (folder / "config.json").write_text("{}")

    assert cache.build_once(path, write) == path and cache.ready(path)
    assert cache.build_once(path, write) == path and len(calls) == 1  # ready: not written again
    assert calls[0] != path and not calls[0].exists()  # written beside it, then renamed into place

    def crash(folder):
        (folder / "model.pt").write_text("half")
        raise RuntimeError("killed while saving")

    other = cache.folder("demo", {"x": 3})
    with pytest.raises(RuntimeError, match="killed"):
        cache.build_once(other, crash)
    assert not other.exists() and [
        p.name for p in other.parent.iterdir() if p.name.startswith(other.name + ".")
    ] == [other.name + ".lock"]  # no half-written copy left behind


def test_build_once_leaves_the_callers_random_numbers_alone(clean_env):
    """Notebook 08 draws LoRA's adapters right after loading the mini InternVL: a cold cache (which trains, drawing
    random numbers) and a warm one (which only loads) must leave it the same numbers to draw."""

    def draws():
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]

    def write(folder):
        torch.manual_seed(123)  # what the mini model builders do
        torch.randn(1000), np.random.rand(10), random.random()
        (folder / "config.json").write_text("{}")

    path = cache.folder("demo", {"x": 4})
    after_build = []
    for _ in ("cold", "warm"):
        torch.manual_seed(0), np.random.seed(0), random.seed(0)
        cache.build_once(path, write)
        after_build.append(draws())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    assert after_build[0] == after_build[1] == draws()  # as if nothing had been built

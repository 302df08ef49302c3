"""mini.cache: a trained model is keyed by its recipe *and* the conditions it was trained under, and built once."""

import threading
import time

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
    assert set(cache.conditions()) == {"threads", "torch", "transformers"}


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

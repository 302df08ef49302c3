import os
import random

import numpy as np
import pytest
import torch

from course_utils import env


@pytest.fixture
def assets(clean_env, monkeypatch):
    """Create the full-track assets on demand."""

    def make(model=True, foodieqa=True):
        if model:
            d = clean_env / "no-model"
            d.mkdir(exist_ok=True)
            (d / "config.json").write_text("{}")
        if foodieqa:
            d = clean_env / "no-data"
            d.mkdir(exist_ok=True)
            (d / "sivqa_tidy.json").write_text("[]")

    return make


def fake_gpu(monkeypatch, present: bool, lmdeploy: bool = True):
    monkeypatch.setattr(env, "cuda_info", lambda: ("NVIDIA A100-SXM4-80GB", 40.0) if present else None)
    monkeypatch.setattr(
        env, "lmdeploy_problem", lambda nb="": None if lmdeploy else "no LMDeploy in this kernel"
    )


def test_auto_without_cuda_runs_the_weights_through_transformers(clean_env, monkeypatch, assets):
    """Weights on a laptop: the labs run the real model through transformers; 01-06 stay on the mini models."""
    assets()
    fake_gpu(monkeypatch, False)
    for lab in ("07", "08", "09"):
        track, reason = env.choose_track(lab)
        assert track == "transformers" and "no CUDA GPU" in reason and "transformers" in reason, (lab, reason)
    assert env.choose_track("03")[0] == "mini"


def test_auto_without_weights_is_mini(clean_env, monkeypatch):
    fake_gpu(monkeypatch, False)
    track, reason = env.choose_track("07")
    assert track == "mini" and "model not found" in reason


def test_auto_with_cuda_and_assets_is_full(clean_env, monkeypatch, assets):
    assets()
    fake_gpu(monkeypatch, True)
    assert env.choose_track("07")[0] == "full"


def test_gpu_without_lmdeploy_runs_transformers_on_cuda(clean_env, monkeypatch, assets):
    assets()
    fake_gpu(monkeypatch, True, lmdeploy=False)
    track, reason = env.choose_track("07")
    assert track == "transformers" and "LMDeploy" in reason
    assert env.init("07", quiet=True).device == "cuda"


def test_course_track_transformers_forces_it_and_falls_back_without_weights(clean_env, monkeypatch, assets):
    fake_gpu(monkeypatch, True)
    monkeypatch.setenv("COURSE_TRACK", "transformers")
    track, reason = env.choose_track("07")
    assert track == "mini" and "falling back" in reason
    assets()
    assert env.choose_track("07")[0] == "transformers"
    e = env.init("08", quiet=True)
    assert e.transformers and e.real and not e.full and e.pick(mini=1, full=2, smoke=3) == 2


def test_auto_with_cuda_but_no_model_is_mini(clean_env, monkeypatch):
    fake_gpu(monkeypatch, True)
    track, reason = env.choose_track("07")
    assert track == "mini" and "model not found" in reason


def test_notebook_08_also_needs_foodieqa(clean_env, monkeypatch, assets):
    assets(foodieqa=False)
    fake_gpu(monkeypatch, True)
    assert env.choose_track("07")[0] == "full"
    track, reason = env.choose_track("08")
    assert track == "transformers" and "foodieqa" in reason.lower() and "MLLM_COURSE_FOODIEQA_DIR" in reason


def test_course_track_mini_forces_mini(clean_env, monkeypatch, assets):
    assets()
    fake_gpu(monkeypatch, True)
    monkeypatch.setenv("COURSE_TRACK", "mini")
    assert env.choose_track("07") == ("mini", "COURSE_TRACK=mini")


def test_course_track_full_without_gpu_falls_back_and_says_why(clean_env, monkeypatch, assets):
    assets()
    fake_gpu(monkeypatch, False)
    monkeypatch.setenv("COURSE_TRACK", "full")
    track, reason = env.choose_track("07")
    assert track == "transformers" and "no CUDA GPU" in reason
    track, reason = env.choose_track("03")
    assert track == "mini" and "requested" in reason and "falling back" in reason


def test_bad_course_track_is_a_clear_error(clean_env, monkeypatch):
    monkeypatch.setenv("COURSE_TRACK", "gpu")
    with pytest.raises(ValueError, match="auto, mini, transformers, full"):
        env.choose_track("01")


@pytest.mark.parametrize("value", ["1", "true", "True", "yes"])
def test_ci_means_mini_with_smoke_sizes(clean_env, monkeypatch, assets, value):
    assets()
    fake_gpu(monkeypatch, True)
    monkeypatch.setenv("CI", value)
    assert env.choose_track("07")[0] == "mini"
    e = env.init("07", quiet=True)
    assert e.smoke and e.threads == min(2, os.cpu_count()) and torch.get_num_threads() == e.threads
    assert e.pick(mini=800, full=5000, smoke=100) == 100
    assert e.pick(mini=800, full=5000) == 800


def test_course_smoke_gives_smoke_sizes_without_forcing_the_track(clean_env, monkeypatch):
    """make test sets COURSE_SMOKE=1: CI's small sizes, but the track is still chosen as for a learner."""
    monkeypatch.setenv("COURSE_SMOKE", "1")
    e = env.init("03", quiet=True)
    assert e.mini and e.smoke and e.pick(mini=800, full=5000, smoke=100) == 100
    assert env.choose_track("03")[1].startswith("auto")


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_ci_false_values(clean_env, monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert not env.in_ci()


def test_ci_with_explicit_full_on_a_gpu_runner(clean_env, monkeypatch, assets):
    assets()
    fake_gpu(monkeypatch, True)
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("COURSE_TRACK", "full")
    e = env.init("07", quiet=True)
    assert e.full and not e.smoke and e.device == "cuda"
    assert e.pick(mini=1, full=2, smoke=3) == 2


def test_init_reports_versions_and_seeds(clean_env, monkeypatch, capsys):
    fake_gpu(monkeypatch, False)
    e = env.init("03", seed=123)
    printed = capsys.readouterr().out
    assert "Track: MINI" in printed and "torch" in printed and "CPU only" in printed
    assert set(e.versions) == {"python", "torch", "transformers", "course_utils"}
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    env.init("03", seed=123, quiet=True)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    assert env.current() is not e  # the latest init wins
    assert env.pick(mini="m", full="f") == "m"


def test_threads_from_env_var(clean_env, monkeypatch):
    monkeypatch.setenv("COURSE_THREADS", "2")
    assert env.default_threads() == 2
    monkeypatch.delenv("COURSE_THREADS")
    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr(env.os, "cpu_count", lambda: 16)
    assert env.default_threads() == 2


def test_a_kernel_with_old_transformers_says_which_kernel_runs_the_mini_track(clean_env, monkeypatch, capsys):
    import importlib

    import course_utils.mini._requires as requires

    assert env.mini_problem() is None
    real = env._version
    monkeypatch.setattr(
        env, "_version", lambda m: "4.57.6" if m == "transformers" else real(m)
    )  # the LMDeploy lab's
    problem = env.mini_problem()
    assert "4.57.6" in problem and "Python (mllm-course)" in problem
    env.init("07")
    assert f"⚠ {problem}" in capsys.readouterr().out
    with pytest.raises(ImportError, match="transformers >= 5.20"):
        importlib.reload(requires)


def test_course_seed_sets_the_seed_unless_given(clean_env, monkeypatch):
    assert env.init("03", quiet=True).seed == 0
    monkeypatch.setenv("COURSE_SEED", "2")
    assert env.init("03", quiet=True).seed == 2
    assert env.init("03", seed=5, quiet=True).seed == 5

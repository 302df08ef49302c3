"""Shared fixtures: every test runs offline, in a clean environment, with a private cache."""

import os
import sys

import pytest

COURSE_VARS = ("COURSE_TRACK", "COURSE_THREADS", "COURSE_SMOKE", "COURSE_SEED", "CI", "MLLM_COURSE_MODEL_DIR", "MLLM_COURSE_FOODIEQA_DIR",
               "MLLM_COURSE_XTUNER_ENV", "MLLM_COURSE_LMDEPLOY_ENV", "MLLM_COURSE_CACHE", "MLLM_COURSE_WORK_DIR")  # fmt: skip

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    """Tests run torch with the notebooks' thread count (``COURSE_THREADS``, ``env.default_threads``).

    Two reasons, both measured in ``make test`` (two workers, two cores): a test process left at torch's default of
    one thread per core beside a busy notebook kernel oversubscribes the cores (training the mini InternVL took 445 s
    instead of about 100 s), and the course cache is keyed by the thread count, so a test at another count than the
    notebooks trains its own copy of a model they have already trained."""
    from course_utils import env

    env.use_course_threads()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No course variables set, the cache in a temp folder, and no real model/dataset folders."""
    for var in COURSE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLLM_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLLM_COURSE_MODEL_DIR", str(tmp_path / "no-model"))
    monkeypatch.setenv("MLLM_COURSE_FOODIEQA_DIR", str(tmp_path / "no-data"))
    return tmp_path


@pytest.fixture
def no_conda(monkeypatch, tmp_path):
    """No conda on this machine, as far as ``paths.lab_env`` can tell."""
    monkeypatch.setenv("CONDA_EXE", str(tmp_path / "no-conda"))


@pytest.fixture
def fake_env():
    """A factory for stand-in lab environments: ``fake_env(folder, programs)`` links each program to this python."""

    def make(folder, programs=("python",)):
        (folder / "bin").mkdir(parents=True)
        for name in programs:
            (folder / "bin" / name).symlink_to(sys.executable)
        return folder

    return make

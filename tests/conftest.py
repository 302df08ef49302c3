"""Shared fixtures: every test runs offline, in a clean environment, with a private cache."""

import os

import pytest

COURSE_VARS = ("COURSE_TRACK", "COURSE_THREADS", "CI", "MLLM_COURSE_MODEL_DIR", "MLLM_COURSE_FOODIEQA_DIR",
               "MLLM_COURSE_XTUNER_ENV", "MLLM_COURSE_LMDEPLOY_ENV", "MLLM_COURSE_CACHE", "MLLM_COURSE_WORK_DIR")  # fmt: skip

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No course variables set, the cache in a temp folder, and no real model/dataset folders."""
    for var in COURSE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLLM_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLLM_COURSE_MODEL_DIR", str(tmp_path / "no-model"))
    monkeypatch.setenv("MLLM_COURSE_FOODIEQA_DIR", str(tmp_path / "no-data"))
    return tmp_path

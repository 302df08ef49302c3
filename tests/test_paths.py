import json
from pathlib import Path

import pytest

from course_utils import paths


def test_defaults_are_internstudio_layout(clean_env, monkeypatch):
    for var in paths.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    assert paths.model_dir() == Path("/root/share/new_models/OpenGVLab/InternVL2-2B")
    assert paths.foodieqa_dir() == Path("/root/share/datasets/FoodieQA")
    assert paths.cache_dir() == Path("~/.cache/mllm-course").expanduser()
    assert paths.work_dir() == paths.cache_dir() / "work"


def test_env_vars_override_at_call_time(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MLLM_COURSE_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("MLLM_COURSE_FOODIEQA_DIR", str(tmp_path / "f"))
    monkeypatch.setenv("MLLM_COURSE_CACHE", "~/elsewhere")
    monkeypatch.setenv("MLLM_COURSE_WORK_DIR", str(tmp_path / "w"))
    assert paths.model_dir() == tmp_path / "m"
    assert paths.foodieqa_dir() == tmp_path / "f"
    assert paths.cache_dir() == Path.home() / "elsewhere"  # ~ is expanded
    assert paths.work_dir() == tmp_path / "w"
    described = paths.describe()
    assert "$MLLM_COURSE_MODEL_DIR" in described["model_dir"]


def test_blank_override_means_default(clean_env, monkeypatch):
    monkeypatch.setenv("MLLM_COURSE_FOODIEQA_DIR", "   ")
    assert paths.foodieqa_dir() == Path("/root/share/datasets/FoodieQA")


def test_readiness_checks(clean_env, tmp_path, monkeypatch):
    model = tmp_path / "model"
    assert not paths.model_dir_ready(model)
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert paths.model_dir_ready(model)
    data = tmp_path / "foodie"
    (data / "FoodieQA").mkdir(parents=True)
    assert not paths.foodieqa_ready(data)
    (data / "FoodieQA" / "sivqa_tidy.json").write_text("[]")
    assert not paths.foodieqa_ready(data) and "no items" in paths.foodieqa_problem(data)


def test_foodieqa_ready_means_what_notebook_08_uses(tmp_path):
    """Presence and use agree: the raw SIVQA file, or the original lab's converted JSON (InternStudio's share) when
    its questions have enough distinct answers to rebuild the choices, with every photo."""
    from course_utils import foodieqa, minifood

    data = tmp_path / "FoodieQA"
    items = minifood.make_minifood(data, dishes=4, photos_per_dish=1, image_size=16)
    few = [it for it in items if it["question_type"] == "food_name"][
        :3
    ]  # 3 dishes: 3 distinct answers, not 4
    foodieqa.write_json(foodieqa.convert(few), data / "sivqa_llava.json")
    assert not paths.foodieqa_ready(data) and "four distinct answers" in paths.foodieqa_problem(data)
    foodieqa.write_json(
        foodieqa.convert(items), data / "sivqa_llava.json", overwrite=True
    )  # what the lab leaves
    assert paths.foodieqa_ready(data), paths.foodieqa_problem(data)
    foodieqa.write_json(items, data / "sivqa_tidy.json")
    assert paths.foodieqa_ready(data) and paths.foodieqa_problem(data) is None
    (data / items[0]["food_meta"]["food_file"]).unlink()
    assert not paths.foodieqa_ready(data) and "photos missing" in paths.foodieqa_problem(data)


def test_repo_folders_found_in_checkout():
    root = paths.repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert paths.notebooks_dir() == root / "notebooks"
    assert paths.images_dir() == root / "images"


def test_lab_env_from_variable_folder(clean_env, monkeypatch, tmp_path, fake_env):
    env = fake_env(tmp_path / "envs" / "xt", ("python", "xtuner"))
    monkeypatch.setenv("MLLM_COURSE_XTUNER_ENV", str(env))
    assert paths.lab_env("xtuner") == env
    assert paths.lab_program("xtuner", "xtuner") == env / "bin" / "xtuner"
    with pytest.raises(FileNotFoundError, match="lmdeploy.*not installed in the xtuner environment"):
        paths.lab_program("xtuner", "lmdeploy")


def test_lab_env_found_by_name_through_conda(clean_env, monkeypatch, tmp_path, fake_env):
    env = fake_env(tmp_path / "conda" / "envs" / "mllm-course-lmdeploy")
    other = fake_env(tmp_path / "conda" / "envs" / "other")
    conda = tmp_path / "conda" / "bin" / "conda"
    conda.parent.mkdir(parents=True)
    listing = json.dumps({"envs": [str(tmp_path / "conda"), str(other), str(env)]})
    conda.write_text(f"#!/bin/sh\necho '{listing}'\n")
    conda.chmod(0o755)
    monkeypatch.setenv("CONDA_EXE", str(conda))
    assert paths.lab_env("lmdeploy") == env
    monkeypatch.setenv("MLLM_COURSE_LMDEPLOY_ENV", "other")  # a name instead of a folder
    assert paths.lab_env("lmdeploy") == other
    assert paths.describe()["lmdeploy_env"] == str(other)


def test_missing_lab_env_says_how_to_create_it(clean_env, no_conda):
    with pytest.raises(
        FileNotFoundError, match=r"conda env create -f envs/xtuner.yml.*MLLM_COURSE_XTUNER_ENV"
    ):
        paths.lab_env("xtuner")
    assert paths.describe()["xtuner_env"].startswith("not found")
    with pytest.raises(ValueError, match="unknown lab"):
        paths.lab_env("vllm")


def test_an_environment_created_later_is_found_without_a_restart(clean_env, monkeypatch, tmp_path, fake_env):
    conda = tmp_path / "conda"
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps({"envs": []}))
    conda.write_text(f"#!/bin/sh\ncat {listing}\n")
    conda.chmod(0o755)
    monkeypatch.setenv("CONDA_EXE", str(conda))
    with pytest.raises(FileNotFoundError):
        paths.lab_env("xtuner")
    env = fake_env(tmp_path / "envs" / "mllm-course-xtuner")
    listing.write_text(json.dumps({"envs": [str(env)]}))
    assert paths.lab_env("xtuner") == env

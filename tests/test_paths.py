from pathlib import Path

from course_utils import paths


def test_defaults_are_internstudio_layout(clean_env, monkeypatch):
    for var in paths.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    assert paths.model_dir() == Path("/root/share/new_models/OpenGVLab/InternVL2-2B")
    assert paths.foodieqa_dir() == Path("/root/share/datasets/FoodieQA")
    assert paths.xtuner_dir() == Path("/root/xtuner")
    assert paths.cache_dir() == Path("~/.cache/mllm-course").expanduser()
    assert paths.work_dir() == paths.cache_dir() / "work"


def test_env_vars_override_at_call_time(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MLLM_COURSE_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("MLLM_COURSE_FOODIEQA_DIR", str(tmp_path / "f"))
    monkeypatch.setenv("MLLM_COURSE_XTUNER_DIR", str(tmp_path / "x"))
    monkeypatch.setenv("MLLM_COURSE_CACHE", "~/elsewhere")
    monkeypatch.setenv("MLLM_COURSE_WORK_DIR", str(tmp_path / "w"))
    assert paths.model_dir() == tmp_path / "m"
    assert paths.foodieqa_dir() == tmp_path / "f"
    assert paths.xtuner_dir() == tmp_path / "x"
    assert paths.cache_dir() == Path.home() / "elsewhere"  # ~ is expanded
    assert paths.work_dir() == tmp_path / "w"
    described = paths.describe()
    assert "$MLLM_COURSE_MODEL_DIR" in described["model_dir"]


def test_blank_override_means_default(clean_env, monkeypatch):
    monkeypatch.setenv("MLLM_COURSE_XTUNER_DIR", "   ")
    assert paths.xtuner_dir() == Path("/root/xtuner")


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
    assert paths.foodieqa_ready(data)


def test_repo_folders_found_in_checkout():
    root = paths.repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert paths.notebooks_dir() == root / "notebooks"
    assert paths.images_dir() == root / "images"

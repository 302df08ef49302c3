"""Every external path the course touches, in one place.

Each path has an environment variable that overrides it, read at call time (so a notebook, a test or a
teacher can point the course somewhere else without editing code). Defaults are InternStudio's layout.

| function            | environment variable          | default                                          |
|---------------------|-------------------------------|--------------------------------------------------|
| ``model_dir()``     | ``MLLM_COURSE_MODEL_DIR``     | ``/root/share/new_models/OpenGVLab/InternVL2-2B`` |
| ``foodieqa_dir()``  | ``MLLM_COURSE_FOODIEQA_DIR``  | ``/root/share/datasets/FoodieQA``                 |
| ``xtuner_dir()``    | ``MLLM_COURSE_XTUNER_DIR``    | ``/root/xtuner``                                  |
| ``cache_dir()``     | ``MLLM_COURSE_CACHE``         | ``~/.cache/mllm-course``                          |
| ``work_dir()``      | ``MLLM_COURSE_WORK_DIR``      | ``<cache_dir>/work``                              |

Introduced in notebook 00.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_DIR = "/root/share/new_models/OpenGVLab/InternVL2-2B"
DEFAULT_FOODIEQA_DIR = "/root/share/datasets/FoodieQA"
DEFAULT_XTUNER_DIR = "/root/xtuner"
DEFAULT_CACHE_DIR = "~/.cache/mllm-course"

ENV_VARS = {
    "model_dir": "MLLM_COURSE_MODEL_DIR",
    "foodieqa_dir": "MLLM_COURSE_FOODIEQA_DIR",
    "xtuner_dir": "MLLM_COURSE_XTUNER_DIR",
    "cache_dir": "MLLM_COURSE_CACHE",
    "work_dir": "MLLM_COURSE_WORK_DIR",
}


def _from_env(var: str, default: str | Path) -> Path:
    value = os.environ.get(var, "").strip()
    return Path(value or default).expanduser()


def model_dir() -> Path:
    """Folder of the real InternVL2-2B weights (full track of notebooks 07 and 08)."""
    return _from_env(ENV_VARS["model_dir"], DEFAULT_MODEL_DIR)


def foodieqa_dir() -> Path:
    """Folder of the FoodieQA dataset (gated, evaluation-only licence; never shipped with the course)."""
    return _from_env(ENV_VARS["foodieqa_dir"], DEFAULT_FOODIEQA_DIR)


def xtuner_dir() -> Path:
    """A checkout of XTuner (InternStudio keeps one at /root/xtuner); only the full track of 08 uses it."""
    return _from_env(ENV_VARS["xtuner_dir"], DEFAULT_XTUNER_DIR)


def cache_dir() -> Path:
    """Where built mini models, tokenizers and generated data are cached (safe to delete)."""
    return _from_env(ENV_VARS["cache_dir"], DEFAULT_CACHE_DIR)


def work_dir() -> Path:
    """Where the labs write their outputs (converted data, training runs, merged checkpoints)."""
    return _from_env(ENV_VARS["work_dir"], cache_dir() / "work")


def repo_root() -> Path | None:
    """The course repository this package was installed from (editable install), or None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file() else None


def images_dir() -> Path | None:
    """The repository's ``images/`` folder (diagrams), or None outside a checkout."""
    root = repo_root()
    return root / "images" if root else None


def notebooks_dir() -> Path | None:
    """The repository's ``notebooks/`` folder, or None outside a checkout."""
    root = repo_root()
    return root / "notebooks" if root else None


def model_dir_ready(path: Path | None = None) -> bool:
    """True when ``path`` (default ``model_dir()``) looks like a Hugging Face model folder."""
    path = model_dir() if path is None else Path(path)
    return (path / "config.json").is_file()


def foodieqa_ready(path: Path | None = None) -> bool:
    """True when ``path`` (default ``foodieqa_dir()``) holds FoodieQA's single-image VQA file."""
    path = foodieqa_dir() if path is None else Path(path)
    return path.is_dir() and any(path.glob("**/sivqa*.json"))


def describe() -> dict[str, str]:
    """Each path with where it came from, for reports (notebook 00, the doctor)."""
    out = {}
    for name, var in ENV_VARS.items():
        value = globals()[name]()
        source = f"${var}" if os.environ.get(var, "").strip() else "default"
        out[name] = f"{value}  ({source})"
    return out

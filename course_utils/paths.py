"""Every external path the course touches, in one place.

Each path has an environment variable that overrides it, read at call time (so a notebook, a test or a
teacher can point the course somewhere else without editing code). Defaults are InternStudio's layout.

| function            | environment variable          | default                                          |
|---------------------|-------------------------------|--------------------------------------------------|
| ``model_dir()``     | ``MLLM_COURSE_MODEL_DIR``     | ``/root/share/new_models/OpenGVLab/InternVL2-2B`` |
| ``foodieqa_dir()``  | ``MLLM_COURSE_FOODIEQA_DIR``  | ``/root/share/datasets/FoodieQA``                 |
| ``cache_dir()``     | ``MLLM_COURSE_CACHE``         | ``~/.cache/mllm-course``                          |
| ``work_dir()``      | ``MLLM_COURSE_WORK_DIR``      | ``<cache_dir>/work``                              |

The GPU labs also use two conda environments of their own (``envs/lmdeploy.yml``, ``envs/xtuner.yml``): notebook 08
runs in the course kernel and calls their programs (``xtuner train``, the converter, the LMDeploy evaluation) by
absolute path. ``lab_env("xtuner")`` finds the environment named ``mllm-course-xtuner`` through ``conda env list``,
or the folder (or name) in ``MLLM_COURSE_XTUNER_ENV``; likewise ``lab_env("lmdeploy")`` with
``MLLM_COURSE_LMDEPLOY_ENV``.

Introduced in notebook 00.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

from . import sivqa, sivqa_llava

DEFAULT_MODEL_DIR = "/root/share/new_models/OpenGVLab/InternVL2-2B"
DEFAULT_FOODIEQA_DIR = "/root/share/datasets/FoodieQA"
DEFAULT_CACHE_DIR = "~/.cache/mllm-course"

ENV_VARS = {
    "model_dir": "MLLM_COURSE_MODEL_DIR",
    "foodieqa_dir": "MLLM_COURSE_FOODIEQA_DIR",
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


def foodieqa_problem(path: Path | None = None) -> str | None:
    """Why notebook 08's full track cannot use the FoodieQA folder ``path`` (default ``foodieqa_dir()``), or None.

    08 reads FoodieQA's raw SIVQA file (``sivqa_tidy.json`` in lyan62/FoodieQA: the four choices and the answer) or,
    where only the original InternVL2 lab's converted ``sivqa_llava.json`` is there (InternStudio's share), that file
    with its wrong choices rebuilt (``sivqa_llava.from_llava``); and every photo its items name.
    """
    path = foodieqa_dir() if path is None else Path(path)
    try:
        items, found, left_out = sivqa_llava.load_folder(path)
    except sivqa.FoodieQAError as err:
        return str(err)
    if not items:
        if left_out:
            return (f"{found}: no question has four distinct answers among its {left_out} samples, so no wrong "
                    "choices can be rebuilt: put FoodieQA's raw sivqa_tidy.json there")  # fmt: skip
        return f"{found}: no items"
    missing = [
        it["food_meta"]["food_file"]
        for it in items
        if not (found.parent / it["food_meta"]["food_file"]).is_file()
    ]
    if missing:
        return (f"{found}: {len(missing)} of {len(items)} photos missing under {found.parent} "
                f"(e.g. {missing[0]}): notebook 08 needs the images folder beside the SIVQA file")  # fmt: skip
    return None


def foodieqa_ready(path: Path | None = None) -> bool:
    """True when ``path`` (default ``foodieqa_dir()``) holds what notebook 08's full track uses: FoodieQA's raw SIVQA
    file or the original lab's converted one, and its photos (``foodieqa_problem`` says what is missing otherwise)."""
    return foodieqa_problem(path) is None


LAB_ENVS = {"lmdeploy": "mllm-course-lmdeploy", "xtuner": "mllm-course-xtuner"}


def _conda_envs() -> list[Path]:
    """Prefixes of the conda environments on this machine ([] without conda)."""
    conda = os.environ.get("CONDA_EXE") or shutil.which("conda")
    return [Path(p) for p in _list_envs(conda)] if conda else []


@functools.lru_cache(maxsize=8)
def _list_envs(conda: str) -> tuple[str, ...]:
    """``conda env list`` (a second or two), once per conda per process."""
    try:
        out = subprocess.run(
            [conda, "env", "list", "--json"], capture_output=True, text=True, timeout=60, check=True
        )
        return tuple(json.loads(out.stdout).get("envs", []))
    except (OSError, subprocess.SubprocessError, ValueError):
        return ()


def lab_env(lab: str) -> Path:
    """The folder (prefix) of a GPU lab's environment: ``lab`` is "lmdeploy" or "xtuner".

    ``MLLM_COURSE_<LAB>_ENV`` may hold the folder itself or an environment name; otherwise the conda environment named
    ``mllm-course-<lab>`` (the name in ``envs/<lab>.yml``) is looked up. Raises FileNotFoundError with what to do.
    """
    if lab not in LAB_ENVS:
        raise ValueError(f"unknown lab {lab!r}: use one of {sorted(LAB_ENVS)}")
    var = f"MLLM_COURSE_{lab.upper()}_ENV"
    value = os.environ.get(var, "").strip() or LAB_ENVS[lab]
    folder = Path(value).expanduser()
    if not folder.is_dir():
        folder = next((p for p in _conda_envs() if p.name == value), None)
        if folder is None:  # created since the listing was cached? list again
            _list_envs.cache_clear()
            folder = next((p for p in _conda_envs() if p.name == value), None)
    if folder is None or not (folder / "bin" / "python").exists():
        raise FileNotFoundError(
            f"no '{value}' environment with a bin/python found: create it with `conda env create -f envs/{lab}.yml` "
            f"(README, GPU labs) or set {var} to its folder"
        )
    return folder


def lab_program(lab: str, program: str = "python") -> Path:
    """The absolute path of ``program`` (python, xtuner, lmdeploy, ...) inside the ``lab`` environment."""
    path = lab_env(lab) / "bin" / program
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: not installed in the {lab} environment (envs/{lab}.yml installs it)"
        )
    return path


def describe() -> dict[str, str]:
    """Each path with where it came from, for reports (notebook 00, the doctor)."""
    out = {}
    for name, var in ENV_VARS.items():
        value = globals()[name]()
        source = f"${var}" if os.environ.get(var, "").strip() else "default"
        out[name] = f"{value}  ({source})"
    for lab in LAB_ENVS:
        try:
            out[f"{lab}_env"] = str(lab_env(lab))
        except FileNotFoundError:
            out[f"{lab}_env"] = (
                f"not found (the full track of {'07 and 08' if lab == 'lmdeploy' else '08'} needs it)"
            )
    return out

"""The setup cell of every notebook: versions, device, track, seeds and threads in one call.

``ENV = env.init("03")`` is the second cell of each notebook. It

* seeds ``random``, NumPy and PyTorch (same seed, same numbers, at a fixed thread count);
* sets PyTorch's thread count, here and nowhere else (a fixed 2 in CI: results are bit-identical at a fixed count);
* keeps Hugging Face libraries offline (the course never downloads weights at run time);
* chooses the **track**, how the labs (07–09) run:

  - ``mini``: the tiny models trained in notebooks 01–06, on the CPU, in seconds;
  - ``transformers``: the real InternVL weights in ``MLLM_COURSE_MODEL_DIR`` through plain transformers, on a laptop's
    CPU or any GPU (``course_utils.realmodel``), where LMDeploy cannot run;
  - ``full``: InternVL2-2B with LMDeploy and XTuner on an NVIDIA GPU (InternStudio).

Track selection, from the environment variables:

* ``COURSE_TRACK=mini``, ``transformers`` or ``full`` forces a track; ``auto`` (the default) picks ``full`` when a
  CUDA GPU (``gpu_problem``: for 08 and 09, one the lab environments' torch can use), LMDeploy (``lmdeploy_problem``)
  *and* the assets the notebook needs exist (the model folder; for 08 also FoodieQA), else ``transformers`` when the model folder exists, else ``mini``.
* ``COURSE_SMOKE=1`` gives the mini track's *smoke* sizes (``pick(..., smoke=...)``), CI's small sizes (``make test``
  sets it; a learner's JupyterLab keeps the mini sizes).
* ``CI`` set to a true value (``1``, ``true``) means mini with smoke sizes, unless
  ``COURSE_TRACK=full`` is given explicitly (a GPU runner).
* a forced track that cannot run falls back (``full`` → ``transformers`` when the weights are there, else ``mini``)
  and says why: a notebook never stops on a missing GPU.

Introduced in notebook 00.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import paths

T = TypeVar("T")

TRACKS = ("auto", "mini", "transformers", "full")
# Which full-track assets each notebook needs; notebooks not listed need the model only.
FULL_TRACK_ASSETS: dict[str, tuple[str, ...]] = {"08": ("model", "foodieqa")}
# The labs: the notebooks whose track can be ``transformers`` (01–06 teach on the mini models on every track).
LAB_NOTEBOOKS = ("07", "08", "09")

_CURRENT: CourseEnv | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set to a true value (CI systems set ``CI=true``)."""
    return _truthy(os.environ.get("CI"))


def cuda_info() -> tuple[str, float] | None:
    """(GPU name, VRAM in GiB) of CUDA device 0, or None without a usable CUDA GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        return props.name, props.total_memory / 2**30
    except Exception:  # a broken driver is "no GPU" for the course
        return None


def _asset_problem(name: str) -> str | None:
    """Why the full-track asset ``name`` ("model" or "foodieqa") cannot be used, or None when it can."""
    if name == "foodieqa":
        return paths.foodieqa_problem()
    return None if paths.model_dir_ready() else f"model not found at {paths.model_dir()}"


def lmdeploy_problem(notebook_id: str = "") -> str | None:
    """Why LMDeploy cannot serve this notebook's full track, or None. 07 runs LMDeploy in its own kernel (the
    ``mllm-course-lmdeploy`` kernel); 08 and 09 run in the course kernel and call the LMDeploy lab environment's
    programs (``paths.lab_env``)."""
    import importlib.util

    if notebook_id in ("08", "09"):
        try:
            paths.lab_env("lmdeploy")
            return None
        except FileNotFoundError:
            return "no LMDeploy lab environment (mllm-course-lmdeploy)"
    if importlib.util.find_spec("lmdeploy") is None:
        return 'no LMDeploy in this kernel (the "mllm-course-lmdeploy" kernel has it)'
    return None


# Notebooks whose full-track GPU work runs in the lab environments, not in their own kernel (cuda_builds' docstring)
LAB_GPU_ENVS = {"08": ("xtuner", "lmdeploy"), "09": ("lmdeploy",)}


def gpu_problem(notebook_id: str = "") -> str | None:
    """Why this notebook's full track has no GPU to run on, or None. 08 and 09 ask the lab environments they run their
    GPU work in (their torch build against the driver, ``cuda_builds``): on InternStudio the course kernel's own
    torch, a CUDA 13 build, cannot see the GPU that the lab environments' CUDA 12 builds use. Without those
    environments, and for every other notebook, the kernel's own torch decides (``cuda_info``)."""
    found = []
    for lab in LAB_GPU_ENVS.get(notebook_id, ()):
        try:
            found.append((lab, paths.lab_env(lab) / "bin" / "python"))
        except FileNotFoundError:
            continue
    if not found:
        return None if cuda_info() is not None else "no CUDA GPU"
    from . import cuda_builds

    driver = cuda_builds.driver_cuda()
    for lab, python in found:
        problem = cuda_builds.build_problem(cuda_builds.torch_cuda_of(python), driver)
        if problem:
            return f"no GPU for {paths.LAB_ENVS[lab]} ({problem}; python -m course_utils.doctor says how to fix it)"
    return None


def choose_track(notebook_id: str = "") -> tuple[str, str]:
    """Return ``(track, reason)`` following the rules in this module's docstring."""
    requested = os.environ.get("COURSE_TRACK", "auto").strip().lower() or "auto"
    if requested not in TRACKS:
        raise ValueError(
            f"COURSE_TRACK={requested!r} is not one of {', '.join(TRACKS)}: unset it or pick one"
        )
    if requested == "mini":
        return "mini", "COURSE_TRACK=mini"
    if in_ci() and requested == "auto":
        return "mini", "CI run (smoke sizes)"
    weights = _asset_problem("model")
    if requested == "transformers":
        if weights is None:
            return "transformers", "COURSE_TRACK=transformers: model weights found"
        return "mini", f"COURSE_TRACK=transformers requested but {weights}: falling back to mini"
    gpu = gpu_problem(notebook_id)
    problems = [gpu] if gpu else []
    for name in FULL_TRACK_ASSETS.get(notebook_id, ("model",)):
        problem = _asset_problem(name)
        if problem:
            problems.append(problem)
    if not problems and notebook_id in LAB_NOTEBOOKS:
        problem = lmdeploy_problem(notebook_id)
        problems += [problem] if problem else []
    how = "COURSE_TRACK=full" if requested == "full" else "auto"
    if not problems:
        return "full", f"{how}: CUDA GPU, LMDeploy and assets found"
    why = "; ".join(problems)
    if weights is None and notebook_id in LAB_NOTEBOOKS:
        return "transformers", f"{how}: {why}; the model weights run through transformers instead"
    if requested == "full":
        return "mini", f"COURSE_TRACK=full requested but {why}: falling back to mini"
    return "mini", f"auto: {why}"


MINI_TRANSFORMERS = (5, 20)  # the mini models use transformers 5 classes (pyproject's lower bound)


def mini_problem() -> str | None:
    """Why the mini models cannot run in this kernel (its transformers is too old, as in the GPU-lab environments),
    or None when they can."""
    version = _version("transformers")
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return None  # a development build: let it try
    if found >= MINI_TRANSFORMERS:
        return None
    need = ".".join(map(str, MINI_TRANSFORMERS))
    return (
        f"the mini models need transformers >= {need} and this kernel has {version} (a GPU-lab environment?): "
        'for the mini track pick the kernel "Python (mllm-course)"'
    )


def default_threads() -> int:
    """``COURSE_THREADS``; else in CI a fixed ``min(2, cores)`` (bit-reproducible); else half the cores, at most 8."""
    if os.environ.get("COURSE_THREADS", "").strip():
        return max(1, int(os.environ["COURSE_THREADS"]))
    if in_ci():
        return min(2, os.cpu_count() or 1)
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def use_course_threads() -> int:
    """Run torch at ``default_threads()`` and return the count: what ``init`` does for a notebook, and what any
    other process that trains or loads a cached mini model must do too (the cache is keyed by the thread count:
    ``mini.cache``), e.g. the test processes and ``python -m course_utils.evaluate``."""
    import torch

    threads = default_threads()
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "?")
    except Exception:
        return "not installed"


@dataclass
class CourseEnv:
    """What ``init`` found and chose; ``print(ENV)`` shows it as a short report."""

    notebook_id: str
    track: str
    reason: str
    smoke: bool
    seed: int
    threads: int
    device: str
    gpu_name: str | None = None
    vram_gb: float | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return self.track == "full"

    @property
    def mini(self) -> bool:
        return self.track == "mini"

    @property
    def transformers(self) -> bool:
        """The real weights through plain transformers (CPU or any GPU), no LMDeploy."""
        return self.track == "transformers"

    @property
    def real(self) -> bool:
        """Real InternVL weights on this track (``full`` or ``transformers``), not the mini models."""
        return self.track in ("full", "transformers")

    def pick(self, mini: T, full: T, smoke: T | None = None) -> T:
        """The size for this track: ``full`` with real weights (full and transformers tracks), ``smoke`` (if given)
        in CI, else ``mini``."""
        if self.real:
            return full
        if self.smoke and smoke is not None:
            return smoke
        return mini

    def __str__(self) -> str:
        v = self.versions
        hw = (
            f"CUDA GPU {self.gpu_name} ({self.vram_gb:.0f} GiB)"
            if self.gpu_name
            else "CPU only (no CUDA GPU)"
        )
        lines = [
            f"Notebook {self.notebook_id} · course_utils {v.get('course_utils')} · Python {v.get('python')} · "
            f"torch {v.get('torch')} · transformers {v.get('transformers')}",
            f"Hardware: {hw} · {os.cpu_count()} CPU cores, torch uses {self.threads} thread(s) · device '{self.device}'",
            f"Track: {self.track.upper()} ({self.reason}){' · smoke sizes' if self.smoke else ''} · seed {self.seed}",
        ]
        problem = mini_problem() if self.track == "mini" else None
        if problem:
            lines.append(f"⚠ {problem}")
        return "\n".join(lines)


def init(notebook_id: str, seed: int | None = None, *, quiet: bool = False) -> CourseEnv:
    """Set up a notebook: offline hubs, threads, seeds, track. Prints a three-line report unless ``quiet``.

    ``seed``: the course seed (``ENV.seed``), which the notebooks also pass to their training recipes; default
    ``COURSE_SEED`` or 0 (``benchmarks/robustness.py`` runs the notebooks under other seeds this way)."""
    global _CURRENT
    if seed is None:
        seed = int(os.environ.get("COURSE_SEED", "").strip() or 0)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from . import __version__

    threads = use_course_threads()
    seed_everything(seed)
    track, reason = choose_track(notebook_id)
    gpu = cuda_info()
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "course_utils": __version__,
    }
    _CURRENT = CourseEnv(
        notebook_id=notebook_id,
        track=track,
        reason=reason,
        smoke=(in_ci() or _truthy(os.environ.get("COURSE_SMOKE"))) and track == "mini",
        seed=seed,
        threads=threads,
        device="cuda" if (gpu and track in ("full", "transformers")) else "cpu",
        gpu_name=gpu[0] if gpu else None,
        vram_gb=gpu[1] if gpu else None,
        versions=versions,
    )
    if not quiet:
        print(_CURRENT, file=sys.stdout)
    return _CURRENT


def current() -> CourseEnv:
    """The environment of the last ``init`` call (``init("")`` quietly if none yet)."""
    return _CURRENT if _CURRENT is not None else init("", quiet=True)


def pick(mini: Any, full: Any, smoke: Any = None) -> Any:
    """``current().pick(...)``: choose a size for the running track."""
    return current().pick(mini=mini, full=full, smoke=smoke)

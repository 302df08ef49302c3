"""Which CUDA build of torch an environment has, which CUDA version the NVIDIA driver supports, and whether the one
can run on the other: read from the artefacts (``nvidia-smi``, ``torch.version.cuda``), without starting CUDA.

A torch wheel built with CUDA X.y needs a driver that supports CUDA X (CUDA's minor-version compatibility: a CUDA 12.8
build runs on a 12.2 driver, a CUDA 13.0 build does not start on it). PyPI's Linux wheels of torch 2.12 and 2.13 are
CUDA 13 builds; InternStudio's Cuda12.2 image has a CUDA 12.2 driver. So on InternStudio the course kernel's torch
(``environment.yml``) sees no GPU, while the two lab environments (``envs/*.yml``: ``+cu128``, ``+cu121``) do.
Notebooks 08 and 09 run their GPU work in those environments, so they ask them (``env.choose_track``);
``doctor`` reports each environment's build against the driver with the command that fixes a mismatch.
"""

import re
import subprocess


def driver_cuda() -> tuple[int, int] | None:
    """The highest CUDA version the NVIDIA driver supports ("CUDA Version: 12.2" in ``nvidia-smi``), or None."""
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def driver_gpu() -> tuple[str, float] | None:
    """(name, memory in GiB) of GPU 0 as ``nvidia-smi`` reports it, or None."""
    query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        name, mib = (part.strip() for part in out[0].rsplit(",", 1))
        return name, float(mib) / 1024
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


def torch_cuda_of(python) -> str | None:
    """``torch.version.cuda`` in the environment of ``python`` ("" for a CPU build; None when torch does not import)."""
    code = "import torch; print(torch.version.cuda or '')"
    try:
        run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    if run.returncode != 0:
        return None
    lines = run.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def build_problem(torch_cuda: str | None, driver: tuple[int, int] | None) -> str | None:
    """Why a torch build ``torch_cuda`` cannot use the GPU of a driver supporting CUDA ``driver``, or None when it can."""
    if torch_cuda is None:
        return "torch does not import"
    if torch_cuda == "":
        return "a CPU-only torch build"
    if driver is None:
        return "no NVIDIA driver (nvidia-smi not found)"
    built = int(torch_cuda.split(".")[0])
    if built > driver[0]:
        return f"a CUDA {torch_cuda} build of torch, but the driver supports CUDA {driver[0]}.{driver[1]}"
    return None

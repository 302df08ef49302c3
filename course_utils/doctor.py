"""``python -m course_utils.doctor``: is this machine ready for the course, and which track will run?

One line per check, ``[OK]``, ``[WARN]`` or ``[FAIL]``; every FAIL comes with a one-line fix. The exit code is 0
whenever the mini track can run (warnings are fine: no GPU, no InternVL2-2B weights, no FoodieQA), non-zero
otherwise. Teachers on InternStudio run it once per machine; notebook 00 runs it in-process.

``python -m course_utils.doctor --labs`` also *runs* the two GPU-lab environments once (a few minutes, before class):
XTuner loads the course's config and finds its converter, and LMDeploy loads InternVL2-2B and answers four questions
through ``python -m course_utils.evaluate``, the command notebook 08 runs.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import cuda_builds, env, paths
from .cuda_builds import driver_cuda
from .cuda_builds import torch_cuda_of as env_torch_cuda

OK, WARN, FAIL = "OK", "WARN", "FAIL"
MIN_PYTHON = (3, 10)
# notebook 07's full track runs in this kernel; 08 calls the lab environments' programs (check_lab_envs)
LAB_KERNELS = {"mllm-course-lmdeploy": "envs/lmdeploy.yml"}


@dataclass
class Check:
    status: str
    label: str
    detail: str = ""
    fix: str = ""

    def lines(self) -> list[str]:
        out = [
            f"[{self.status}]{' ' * (5 - len(self.status))}{self.label}{': ' + self.detail if self.detail else ''}"
        ]
        if self.fix and self.status != OK:
            out.append(f"       fix: {self.fix}")
        return out


def check_python() -> Check:
    v = sys.version_info
    label = f"Python {v.major}.{v.minor}.{v.micro}"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check(
            FAIL, label, "the course needs Python ≥ 3.10", "create the env with `make lab` or environment.yml"
        )
    return Check(OK, label)


def pinned_packages(env_file: Path | None = None) -> dict[str, str]:
    """``{name: version}`` from environment.yml's pip section (the exact versions CI tests)."""
    import yaml

    root = paths.repo_root()
    env_file = env_file or (root / "environment.yml" if root else None)
    if env_file is None or not env_file.is_file():
        return {}
    spec = yaml.safe_load(env_file.read_text(encoding="utf-8"))
    pins = {}
    for dep in spec.get("dependencies", []):
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
                if m:
                    pins[m.group(1).lower()] = m.group(2)
    return pins


def core_requirements() -> set[str]:
    """Packages course_utils itself needs (its non-optional requirements)."""
    try:
        reqs = md.requires("course_utils") or []
    except md.PackageNotFoundError:
        return set()
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in reqs if "extra ==" not in r}


def _installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def check_packages(pins: dict[str, str] | None = None) -> list[Check]:
    pins = pinned_packages() if pins is None else pins
    core = core_requirements()
    names = sorted(set(pins) | core)
    missing_core, missing_other, different = [], [], []
    for name in names:
        have = _installed(name)
        if have is None:
            (missing_core if name in core else missing_other).append(name)
        elif name in pins and have.split("+")[0] != pins[name]:
            different.append(f"{name} {have} (tested {pins[name]})")
    out = []
    if missing_core:
        out.append(
            Check(
                FAIL,
                "packages",
                f"missing {', '.join(missing_core)}",
                'run `make lab` (or `pip install -e ".[dev]"`)',
            )
        )
    if missing_other:
        out.append(
            Check(
                WARN,
                "packages",
                f"missing {', '.join(missing_other)} (tests only)",
                'pip install -e ".[dev]"',
            )
        )
    if different:
        out.append(
            Check(
                WARN,
                "package versions",
                "; ".join(different),
                "fine to try; CI tests the pins in environment.yml",
            )
        )
    if not out:
        out.append(
            Check(OK, "packages", f"{len(names)} checked" + (" against environment.yml" if pins else ""))
        )
    return out


def check_torchvision() -> Check | None:
    """PyPI's torchvision beside a CPU torch breaks transformers' imports (measured on the course's CPU machines)."""
    if _installed("torchvision") is None:
        return None
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # the failure is an odd RuntimeError about torchvision::nms
        return Check(
            FAIL,
            "torchvision",
            f"installed but broken ({type(exc).__name__})",
            "pip uninstall -y torchvision",
        )
    return Check(OK, "torchvision", "imports")


def check_gpu() -> Check:
    gpu = env.cuda_info()
    seen = cuda_builds.driver_gpu() if gpu is None else None
    if (
        seen is not None
    ):  # nvidia-smi sees one that this kernel's torch cannot use (the "kernel torch" line says why)
        return Check(WARN, "GPU", f"{seen[0]}, {seen[1]:.1f} GiB (nvidia-smi), but not usable from this kernel's torch",
                     "see the kernel torch line; the lab environments are checked on their own")  # fmt: skip
    if gpu is None:
        return Check(WARN, "GPU", "no CUDA GPU: the mini track runs on CPU; the labs' full track needs an NVIDIA GPU",
                     "nothing to do for the mini track; use InternStudio (50 % A100) for the full track")  # fmt: skip
    name, vram = gpu
    return Check(OK, "GPU", f"{name}, {vram:.1f} GiB VRAM")


def check_model(folder: Path | None = None, available: int | None = None) -> Check:
    """The model folder (``MLLM_COURSE_MODEL_DIR``): its format, size, and whether it fits in memory, read from the
    config and safetensors headers without loading it (``course_utils.checkpoint``)."""
    from . import checkpoint

    folder = paths.model_dir() if folder is None else Path(folder)
    if not paths.model_dir_ready(folder):
        return Check(WARN, "model weights", f"not found at {folder} (the labs' transformers and full tracks)",
                     "download InternVL2-1B, InternVL2-2B or InternVL3-1B-hf yourself and set MLLM_COURSE_MODEL_DIR "
                     "(README › Run the real model on your laptop), or stay on the mini track")  # fmt: skip
    try:
        ckpt = checkpoint.inspect(folder)
    except checkpoint.CheckpointError as err:
        return Check(WARN, "model weights", str(err), "fix the folder, or stay on the mini track")
    gpu = env.cuda_info() is not None
    need = checkpoint.estimate(ckpt, "bfloat16")
    free = checkpoint.available_bytes("cuda" if gpu else "cpu") if available is None else available
    detail = (f"{folder} ({ckpt.format} format, {ckpt.llm}, {ckpt.parameters / 1e9:.2f} B parameters); "
              f"{need}; {free / 1e9:.1f} GB {'GPU memory' if gpu else 'RAM'} free")  # fmt: skip
    if need.total > free:
        return Check(
            WARN, "model weights", detail, f"free memory, or try a smaller model: {checkpoint.SMALLER}"
        )
    return Check(OK, "model weights", detail)


def _existing_parent(path: Path) -> Path:
    path = path.expanduser()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(path: Path | None = None) -> Check:
    path = _existing_parent(path or paths.cache_dir())
    free = shutil.disk_usage(path).free / 2**30
    label = "disk"
    detail = f"{free:.1f} GiB free at {path}"
    if free < 0.5:
        return Check(
            FAIL, label, detail, "free some space (the mini track needs ~0.5 GiB) or set MLLM_COURSE_CACHE"
        )
    if free < 10:
        return Check(
            WARN, label, detail + " (the full-track labs need ~10 GiB)", "free space before the full track"
        )
    return Check(OK, label, detail)


def _kernels() -> set[str]:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return set(KernelSpecManager().find_kernel_specs())
    except Exception:
        return set()


def check_kernels(kernels: set[str] | None = None, gpu: bool | None = None) -> list[Check]:
    """The course kernel, and (warned about only on a GPU machine) notebook 07's LMDeploy kernel."""
    kernels = _kernels() if kernels is None else kernels
    gpu = (env.cuda_info() is not None) if gpu is None else gpu
    out = []
    if "mllm-course" in kernels:
        out.append(Check(OK, "Jupyter kernel", "mllm-course"))
    else:
        out.append(Check(WARN, "Jupyter kernel", "mllm-course not registered",
                         "make lab  (or: python -m ipykernel install --user --name mllm-course)"))  # fmt: skip
    for name, yml in LAB_KERNELS.items():
        if name in kernels:
            out.append(Check(OK, "Jupyter kernel", name))
        elif gpu:
            out.append(Check(WARN, "Jupyter kernel", f"{name} not registered",
                             f"create it from {yml} and register it (README, GPU lab environments)"))  # fmt: skip
    return out


def check_torch_cuda(lab: str, torch_cuda: str | None, driver: tuple[int, int] | None) -> Check:
    """A lab environment's torch build against the driver: a CUDA 13 build on a CUDA 12.x driver cannot start."""
    label, fix = (
        f"{lab} torch",
        f"reinstall the pinned CUDA 12 build: conda env update -n {paths.LAB_ENVS[lab]} -f envs/{lab}.yml",
    )
    if torch_cuda is None:
        return Check(FAIL, label, "torch does not import in the environment", fix)
    if torch_cuda == "":
        return Check(WARN, label, "a CPU-only torch build: the lab needs a CUDA build", fix)
    built = tuple(int(x) for x in torch_cuda.split(".")[:2])
    if driver is None:
        return Check(OK, label, f"CUDA {torch_cuda} build (driver's CUDA version unknown: no nvidia-smi)")
    have = f"{driver[0]}.{driver[1]}"
    if built[0] > driver[0]:
        return Check(WARN, label, f"CUDA {torch_cuda} build, but the driver supports CUDA {have}: it needs a newer driver", fix)  # fmt: skip
    if built > driver:
        return Check(OK, label, f"CUDA {torch_cuda} build on a CUDA {have} driver (CUDA {built[0]}.x minor-version compatibility)")  # fmt: skip
    return Check(OK, label, f"CUDA {torch_cuda} build, driver supports CUDA {have}")


def check_xtuner_launcher(env_dir: Path, path: str | None = None) -> Check:
    """`xtuner train` re-runs `python` from PATH (xtuner/entry_point.py): which python would that be here?"""
    found = shutil.which("python", path=path)
    own = env_dir / "bin" / "python"
    if found and Path(found).parent.resolve() == own.parent.resolve():
        return Check(OK, "xtuner launcher", f"`xtuner train` here would run {own}")
    return Check(WARN, "xtuner launcher",
                 f"`xtuner train` re-runs `python` from PATH, here {found or 'none'}, not {own}; its failures are ignored",
                 f"use the command notebook 08 prints ({own} -m xtuner.tools.train ...), or activate the environment first")  # fmt: skip


def check_kernel_torch(torch_cuda: str | None, driver: tuple[int, int] | None) -> Check | None:
    """The course kernel's own torch build against the driver (on a machine with an NVIDIA driver; else None). PyPI's
    torch 2.13 is a CUDA 13 build: on a CUDA 12 driver (InternStudio) this kernel runs on the CPU."""
    if driver is None:
        return None
    problem = cuda_builds.build_problem(torch_cuda, driver)
    if problem is None:
        return Check(
            OK, "kernel torch", f"CUDA {torch_cuda} build, driver supports CUDA {driver[0]}.{driver[1]}"
        )
    return Check(WARN, "kernel torch",
                 f"{problem}: this kernel runs on the CPU (the mini track; 08 and 09 run their GPU work in the lab "
                 "environments, which doctor checks below); the transformers track on this GPU needs a CUDA 12 build",
                 "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126")  # fmt: skip


def check_lab_envs(gpu: bool | None = None, driver: tuple[int, int] | None = None) -> list[Check]:
    """The two GPU-lab environments (found by ``paths.lab_env``); missing ones are warned about only on a GPU machine
    (the kernel sees a GPU, or ``nvidia-smi`` reports a driver: the kernel's own torch may be a build the driver cannot
    run). There, each environment's torch CUDA build is compared with the driver (``check_torch_cuda``)."""
    driver = driver_cuda() if driver is None and gpu is not False else driver
    gpu = (env.cuda_info() is not None or driver is not None) if gpu is None else gpu
    out = []
    for lab in paths.LAB_ENVS:
        try:
            folder = paths.lab_env(lab)
        except FileNotFoundError:
            if gpu:
                out.append(Check(WARN, "lab environment", f"{paths.LAB_ENVS[lab]} not found",
                                 f"conda env create -f envs/{lab}.yml (README), or set MLLM_COURSE_{lab.upper()}_ENV"))  # fmt: skip
            continue
        out.append(Check(OK, "lab environment", f"{lab}: {folder}"))
        if lab == "xtuner":
            out.append(check_xtuner_launcher(folder))
        if gpu:
            out.append(check_torch_cuda(lab, env_torch_cuda(folder / "bin" / "python"), driver))
    return out


def run_checks() -> list[Check]:
    checks = [check_python(), *check_packages()]
    tv = check_torchvision()
    if tv:
        checks.append(tv)
    checks.append(check_gpu())
    import torch

    kernel = check_kernel_torch(torch.version.cuda or "", driver_cuda())
    checks += [kernel] if kernel else []
    checks.append(check_model())
    problem = paths.foodieqa_problem()
    checks.append(Check(OK, "FoodieQA", str(paths.foodieqa_dir())) if problem is None else
                  Check(WARN, "FoodieQA", f"{problem} (full track of 08)", "stay on the mini track, or follow README › Data"))  # fmt: skip
    checks.append(check_disk())
    checks += check_kernels()
    checks += check_lab_envs()
    return checks


_XTUNER_PROBE = """
import importlib.util, sys
import xtuner
from mmengine.config import Config
cfg = Config.fromfile(sys.argv[1])
assert importlib.util.find_spec(sys.argv[2]), sys.argv[2] + " not found"
print(f"xtuner {xtuner.__version__}: the course config loads ({cfg.model.type.__name__}), the converter is there")
"""


def run_labs(gpu: bool | None = None) -> list[Check]:
    """Run each GPU-lab environment once (``--labs``): see the module docstring. Slow: it loads InternVL2-2B."""
    import subprocess
    import tempfile

    from . import evaluate, foodieqa, minifood, xtuner_run

    gpu = (env.cuda_info() is not None) if gpu is None else gpu
    out = []
    try:
        python = paths.lab_program("xtuner")
        run = subprocess.run([str(python), "-c", _XTUNER_PROBE, xtuner_run.CONFIG, xtuner_run.CONVERTER],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        last = (run.stdout.strip() or run.stderr.strip() or "no output").splitlines()[-1]
        out.append(Check(OK if run.returncode == 0 else FAIL, "XTuner lab", last,
                         "recreate it: conda env remove -n mllm-course-xtuner, then conda env create -f envs/xtuner.yml"))  # fmt: skip
    except FileNotFoundError as err:
        out.append(Check(WARN, "XTuner lab", "environment not found", str(err)))
    try:
        python = paths.lab_program("lmdeploy")
    except FileNotFoundError as err:
        return [*out, Check(WARN, "LMDeploy lab", "environment not found", str(err))]
    if not gpu or not paths.model_dir_ready():
        why = "no CUDA GPU" if not gpu else f"no InternVL2-2B at {paths.model_dir()}"
        return [
            *out,
            Check(WARN, "LMDeploy lab", f"not run: {why}", "run --labs on the GPU machine with the model"),
        ]
    with tempfile.TemporaryDirectory() as tmp:
        items = minifood.make_minifood(Path(tmp) / "photos", dishes=4, photos_per_dish=1)[:4]
        foodieqa.write_json(items, Path(tmp) / "items.json")
        try:
            record = evaluate.in_subprocess(Path(tmp) / "items.json", Path(tmp) / "photos", Path(tmp) / "out.json",
                                            model=paths.model_dir(), python=python, max_new_tokens=24)  # fmt: skip
            answer = record["results"]["question"]["answers"][0]
            out.append(
                Check(OK, "LMDeploy lab", f"InternVL2-2B answered {items[0]['question']!r} with {answer!r}")
            )
        except RuntimeError as err:
            out.append(Check(FAIL, "LMDeploy lab", str(err).splitlines()[-1],
                             "see the error above; to recreate it: conda env remove -n mllm-course-lmdeploy, then conda env create -f envs/lmdeploy.yml"))  # fmt: skip
    return out


def report(checks: list[Check] | None = None, out=print) -> int:
    """Print every check and the track verdict; return the exit code (0 when the mini track can run)."""
    checks = run_checks() if checks is None else checks
    for check in checks:
        for line in check.lines():
            out(line)
    fails = [c for c in checks if c.status == FAIL]
    if fails:
        out(f"==> {len(fails)} problem(s) to fix before the course can run (see the fix lines above).")
        return 1
    labs = {nb: env.choose_track(nb) for nb in env.LAB_NOTEBOOKS}
    for nb, (track, reason) in labs.items():
        out(f"==> {nb} runs on the {track.upper()} track ({reason})")
    theory, _ = env.choose_track("01")
    tracks = {track for track, _ in labs.values()}
    if tracks == {theory}:
        out(f"==> Ready. Track that will run: {theory.upper()}.")
    else:
        out(f"==> Ready. Track that will run: {theory.upper()} for 01-06; the labs as above.")
    return 0


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m course_utils.doctor", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--labs", action="store_true", help="also run the two GPU-lab environments once (slow)"
    )
    args = parser.parse_args(argv)
    sys.exit(report(run_checks() + (run_labs() if args.labs else [])))


if __name__ == "__main__":
    main()

"""Benchmark (not a test): set-up time, `make test` time, and each notebook's time and peak memory at both sizes.

    make bench                                   # everything below, one table (about 45 min on 2 cores)
    python benchmarks/bench.py --no-setup --no-make-test        # notebooks only
    python benchmarks/bench.py --no-setup --no-make-test 06 08  # notebooks whose name starts with these ids
    python benchmarks/bench.py --sizes ci                       # only CI's sizes

Rows:
* set-up: `make setup` into a fresh venv (pip's cache as it is on this machine);
* `make test`: in a fresh clone of this checkout's HEAD with a fresh course cache (CI's cold start), everything it runs;
* every notebook (solutions included) executed alone, once at CI's sizes (``CI=1``: smoke sizes, 2 torch threads)
  and once at a learner's (what JupyterLab runs by default: mini sizes, half the cores), each with a fresh cache that
  the notebooks before it have filled, as in a course run in order. Peak RSS is the kernel's (the notebook's process).

Prints a Markdown table. Numbers depend on the machine and on what else runs: quote the machine, run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    "ci": {"CI": "1", "COURSE_THREADS": ""},
    "learner": {"CI": "", "COURSE_THREADS": ""},
}


def time_setup() -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        start = time.perf_counter()
        proc = subprocess.run(["make", "setup", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        size = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout.split("\t")[0]
        status = "ok" if proc.returncode == 0 else f"failed: {proc.stderr.strip().splitlines()[-1:]}"
        return seconds, f"{status}, venv {size}"


def time_make_test() -> tuple[float, str]:
    """`make test` in a fresh clone (the venv is made there too: its set-up time is reported apart)."""
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {**os.environ, "MLLM_COURSE_CACHE": str(Path(tmp) / "cache")}
        setup = subprocess.run(["make", "setup"], cwd=clone, env=env, capture_output=True, text=True)
        if setup.returncode:
            return 0.0, "set-up failed"
        start = time.perf_counter()
        proc = subprocess.run(["make", "test"], cwd=clone, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        summary = (proc.stdout.strip().splitlines() or ["?"])[-1]
        return seconds, ("ok: " if proc.returncode == 0 else "FAILED: ") + summary


def run_one(path: Path) -> None:
    """Child mode: execute one notebook, print its seconds, status and the kernel's peak RSS as JSON."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=1800, resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except Exception as exc:  # report, do not stop the table
        status = f"error: {type(exc).__name__}"
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the kernel, reaped by now
    print(json.dumps({"seconds": seconds, "status": status, "peak_mib": peak_mib}))


def time_notebook(path: Path, sizes: str, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SIZES[sizes]}
    env |= {k: v for k, v in SIZES[sizes].items() if v} | {"MLLM_COURSE_CACHE": str(cache)}
    proc = subprocess.run(
        [sys.executable, __file__, "--one", str(path)], env=env, capture_output=True, text=True
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {
            "seconds": 0.0,
            "status": f"crashed: {proc.stderr.strip().splitlines()[-1:]}",
            "peak_mib": 0.0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="notebook id prefixes to time (default: all)")
    parser.add_argument("--no-setup", action="store_true", help="skip timing a fresh venv set-up")
    parser.add_argument("--no-make-test", action="store_true", help="skip timing make test in a fresh clone")
    parser.add_argument("--sizes", choices=["ci", "learner", "both"], default="both")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(Path(args.one))
    rows = []
    if not args.no_setup:
        seconds, status = time_setup()
        rows.append(("set-up (make setup, fresh venv)", "", seconds, status, ""))
        print(f"  set-up: {seconds:.0f} s ({status})", file=sys.stderr, flush=True)
    if not args.no_make_test:
        seconds, status = time_make_test()
        rows.append(("make test (fresh clone, cold cache)", "", seconds, status, ""))
        print(f"  make test: {seconds:.0f} s ({status})", file=sys.stderr, flush=True)
    notebooks = sorted(  # the English notebooks; the Chinese twins run the same code
        p for p in (ROOT / "notebooks").rglob("*.ipynb") if not {".ipynb_checkpoints", "zh"} & set(p.parts)
    )
    if args.ids:
        notebooks = [p for p in notebooks if any(p.name.startswith(i) for i in args.ids)]
    for sizes in ("ci", "learner") if args.sizes == "both" else (args.sizes,):
        with tempfile.TemporaryDirectory() as cache:
            for path in notebooks:
                r = time_notebook(path, sizes, Path(cache))
                name = str(path.relative_to(ROOT))
                rows.append((name, sizes, r["seconds"], r["status"], f"{r['peak_mib']:.0f}"))
                print(
                    f"  {name} [{sizes}]: {r['seconds']:.0f} s ({r['status']})", file=sys.stderr, flush=True
                )
    cpu = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print(f"\nMachine: {cpu}\n")
    print("| step | sizes | seconds | status | peak RSS (MiB) |\n|---|---|---:|---|---:|")
    for name, sizes, seconds, status, rss in rows:
        print(f"| {name} | {sizes} | {seconds:.0f} | {status} | {rss} |")
    for sizes in ("ci", "learner"):
        picked = [r for r in rows if r[1] == sizes]
        if picked:
            worst = max(picked, key=lambda r: r[2])
            print(f"| **notebooks, {sizes} sizes** | | **{sum(r[2] for r in picked):.0f}** | "
                  f"slowest: {Path(worst[0]).name} {worst[2]:.0f} s | {max(float(r[4]) for r in picked):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()

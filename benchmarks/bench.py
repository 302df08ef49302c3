"""Benchmark (not a test): set-up time of a fresh environment and each notebook's execution time.

    python tests/benchmarks/bench_setup.py              # fresh venv set-up + every notebook
    python tests/benchmarks/bench_setup.py --no-setup   # notebooks only
    python tests/benchmarks/bench_setup.py 00 06        # only notebooks whose name starts with these ids

Prints a Markdown table. Set CI=1 to time the CI (smoke) sizes. Numbers depend on the machine: quote the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def time_setup() -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        start = time.perf_counter()
        proc = subprocess.run(["make", "setup", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        size = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout.split("\t")[0]
        status = "ok" if proc.returncode == 0 else f"failed: {proc.stderr.strip().splitlines()[-1:]}"
        return seconds, f"{status}, venv {size}"


def time_notebook(path: Path) -> tuple[float, str]:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=1200, resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except Exception as exc:  # report, do not stop the table
        status = f"error: {type(exc).__name__}"
    return time.perf_counter() - start, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="notebook id prefixes to time (default: all)")
    parser.add_argument("--no-setup", action="store_true", help="skip timing a fresh venv set-up")
    args = parser.parse_args()
    rows = []
    if not args.no_setup:
        seconds, status = time_setup()
        rows.append(("set-up (make setup, fresh venv)", seconds, status))
    notebooks = sorted((ROOT / "notebooks").rglob("*.ipynb"))
    notebooks = [p for p in notebooks if ".ipynb_checkpoints" not in p.parts]
    if args.ids:
        notebooks = [p for p in notebooks if any(p.name.startswith(i) for i in args.ids)]
    for path in notebooks:
        seconds, status = time_notebook(path)
        rows.append((str(path.relative_to(ROOT)), seconds, status))
        print(f"  {path.name}: {seconds:.1f} s ({status})", file=sys.stderr, flush=True)
    cpu = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print(
        f"\nMachine: {cpu}; CI={os.environ.get('CI', '')!r}; COURSE_THREADS={os.environ.get('COURSE_THREADS', '')!r}\n"
    )
    print("| step | seconds | status |\n|---|---:|---|")
    for name, seconds, status in rows:
        print(f"| {name} | {seconds:.1f} | {status} |")
    print(f"| **total** | **{sum(r[1] for r in rows):.1f}** | |")


if __name__ == "__main__":
    main()

"""Benchmark (not a test): does every asserted result of the notebooks hold, with margin, under a learner's conditions?

    python benchmarks/robustness.py                      # every asserted notebook, every condition (long: hours)
    python benchmarks/robustness.py 06 08 --jobs 2       # some notebooks, two runs at a time (1-thread runs only)
    python benchmarks/robustness.py --conditions seed1 ci
    python benchmarks/robustness.py 08 --conditions threads1 seed1 --kernels default avx2 avx512 --jobs 2
    python benchmarks/robustness.py 02 06 --conditions learner --cache /tmp/lw   # then, later, alone:
    python benchmarks/robustness.py 02 06 --conditions warm --cache /tmp/lw

Run the 2-thread conditions (``ci``, ``warm``) alone on a 2-core machine: beside another busy process torch's two
threads wait for each other at every operation, and a 2-minute notebook took over 15 minutes (measured).

A notebook's assertions hold in CI; a learner re-runs it, with another thread count, another seed, a cache that an
earlier run in another mode filled. This script executes each notebook that asserts a trained result under each
condition (errors allowed, so one failing assertion does not hide the others), then reads the asserted quantities
from the kernel and prints one Markdown table: value, threshold, margin (value - threshold; an assertion needs a
positive margin, and a margin of a few points is a bug in the recipe or the threshold).

Conditions (each a set of environment variables; ``COURSE_SEED`` is the course seed that ``env.init`` uses and the
notebooks pass to their training recipes):
* ``ci``: CI's sizes (``CI=1``, 2 threads), cold cache — the reference;
* ``threads1``: CI's sizes at 1 thread; ``seed1``, ``seed2``: other seeds (1 thread);
* ``learner``: a learner's JupyterLab (no CI: mini sizes, half the cores = 1 thread here), cold cache;
* ``learner2``: the same at 2 threads (``make test-learner``, and what ``make site`` executes in CI; run it alone);
* ``warm``: CI's sizes after a ``learner`` run filled the same cache (the cache is keyed by the conditions, so this
  must give the ``ci`` numbers).

Kernels (``--kernels``, each crossed with every condition): torch's CPU kernels round differently, the way another
seed draws differently, so one machine rehearses other CPUs by lowering them at start-up with
``ATEN_CPU_CAPABILITY``: ``native`` (whatever this CPU runs best; the variable unset), ``avx512``, ``avx2``,
``default`` (no vectorised kernels). A kernel the CPU lacks is skipped with a line saying so (forced, it kills the
process: ``cpu_kernels.py``); the table names the kernel each run actually used (``torch.backends.cpu.get_cpu_capability()``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cpu_kernels  # benchmarks/cpu_kernels.py: python puts this script's folder first on the path

ROOT = Path(__file__).resolve().parents[1]

# notebook → (what is asserted, the asserted quantity as an expression in the notebook's namespace, threshold)
CHECKS = {
    "01_mllm_and_alignment": [
        ("retrieval i2t@1", 'after["i2t@1"]', 0.7),
        ("i2t@1 gain", 'after["i2t@1"] - before["i2t@1"]', 0.65),
        ("retrieval t2i@1", 'after["t2i@1"]', 0.7),
        ("retrieval i2t@5", 'after["i2t@5"]', 0.95),
        ("seen pairs i2t@1", "seen_acc", 0.55),
        ("unseen pairs i2t@1", "unseen_acc", "4 / len(CAPTIONS)"),
        ("seen - unseen pairs", "seen_acc - unseen_acc", 0.15),
        ("zero-shot shape, template ensemble", "shape_acc[ENSEMBLE]", 0.45),
        ("zero-shot ensemble - one template", "shape_acc[ENSEMBLE] - shape_acc[ONE]", 0.01),
        ("zero-shot shape, a photo of a {}.", "shape_acc[CLIPS]", 0.45),
        ("zero-shot: best caption - ensemble", "shape_by_retrieval - shape_acc[ENSEMBLE]", 0.1),
    ],
    "02_qformer_blip2": [
        ("ITC i2t top-1", 'after["ITC image→text top-1"]', 0.75),
        ("ITC gain", 'after["ITC image→text top-1"] - before["ITC image→text top-1"]', 0.7),
        ("ITG exact captions", 'after["ITG exact captions"]', 0.75),
        ("ITM gain", 'after["ITM accuracy (own vs random caption)"] - before["ITM accuracy (own vs random caption)"]', 0.3),
        ("near misses, 24 held-out batches: mass / uniform share", "share_all / uniform_all", 1.1),
    ],
    "03_llava": [
        ("stage 1 caption gain", 'results["stage 1, mlp2x_gelu"]["caption"] - results["pretrained towers, random projector"]["caption"]', 0.1),
        ("stage 2 all", 'results["stage 2, mlp2x_gelu"]["all"]', 0.65),
        ("stage 2 colour", 'results["stage 2, mlp2x_gelu"]["colour"]', 0.9),
        ("shape probe: last + CLS over LLaVA's layer", 'probes["last, with CLS"] - probes["second-to-last, no CLS (LLaVA)"]', 0.1),
        ("format instruction: worst wanted style", 'styled["with the instruction"]', 0.9),
        ("format instruction over the same question", 'styled["with the instruction"] - styled["without (same question)"]', 0.4),
    ],
    "05_qformer_vs_mlp": [
        ("worst arm, final all", 'min(run["final"]["all"] for run in runs.values())', 0.65),
        ("Q-Former + stage 1, final all", 'final["Q-Former + stage 1"]', 0.8),
        ("scratch Q-Former's final loss / stage-1 Q-Former's", 'loss["Q-Former"] / loss["Q-Former + stage 1"]', 1.4),
        ("scratch Q-Former's final loss / MLP's", 'loss["Q-Former"] / loss["MLP"]', 1.0),
        ("stage-1 Q-Former keeps pace: final all - MLP's", 'final["Q-Former + stage 1"] - final["MLP"]', -0.05),
        ("stage-1 Q-Former keeps pace: MLP's loss / its loss", 'loss["MLP"] / loss["Q-Former + stage 1"]', 1.0),
    ],
    "06_internvl": [
        ("stage 1 caption gain", 'results["after stage 1"]["caption"] - results["random towers"]["caption"]', 0.1),
        ("stage 2 all", 'results["after stage 2"]["all"]', 0.85),
        ("router IoU over the best baseline", "iou_after - max(iou_before, iou_mean_box)", 0.1),
    ],
    "07_lmdeploy_inference": [
        ("four-turn chats on 48 held-out images, exactly right", "multi_turn", 0.85),
    ],
    "08_xtuner_finetune": [
        ("after LoRA, log-lik", 'after["all"]', 0.85),
        ("before LoRA below 0.5 (value: 1 - before)", '1 - before["all"]', 0.5),
    ],
    "09_efficient_deployment": [
        ("fp32 baseline", "baseline", 0.85),
        ("KV int8 within 0.03 of baseline", 'rows["int8"][2] - baseline', -0.03),
        ("KV int4 within 0.08 of baseline", 'rows["int4"][2] - baseline', -0.08),
        ("RTN 4-bit within 0.05", 'results["RTN 4-bit"][2] - baseline', -0.05),
        ("AWQ 4-bit within 0.05", 'results["AWQ 4-bit"][2] - baseline', -0.05),
        ("no cache / cache, last quarter", "late_slow / late_fast", 1.5),
        ("batch 16 / batch 1 decode throughput", "gain", 2.0),
        ("static / persistent mean latency under capacity", 'static["mean_latency"] / persistent["mean_latency"]', 1.0),
    ],
}  # fmt: skip

CONDITIONS = {
    "ci": {"CI": "1", "COURSE_SEED": "0"},
    "threads1": {"CI": "1", "COURSE_THREADS": "1", "COURSE_SEED": "0"},
    "seed1": {"CI": "1", "COURSE_THREADS": "1", "COURSE_SEED": "1"},
    "seed2": {"CI": "1", "COURSE_THREADS": "1", "COURSE_SEED": "2"},
    "learner": {"COURSE_SEED": "0"},
    "learner2": {"COURSE_SEED": "0", "COURSE_THREADS": "2"},  # `make test-learner`, and `make site` in CI
    "warm": {"CI": "1", "COURSE_SEED": "0"},  # run after "learner", in its cache
}
CLEARED = ("CI", "COURSE_SMOKE", "COURSE_THREADS", "COURSE_SEED", "COURSE_TRACK", "ATEN_CPU_CAPABILITY")
KERNELS = ("native", "avx512", "avx2", "default")


def run_one(path: Path) -> None:
    """Child mode: execute the notebook (errors allowed), then print the asserted quantities as JSON."""
    import nbformat
    from nbclient import NotebookClient

    name = path.stem
    probe = ["import json as _json", "import torch as _torch", "_out = {}"]
    for label, value, threshold in CHECKS[name]:
        limit = threshold if isinstance(threshold, str) else repr(float(threshold))
        probe.append(
            f"try:\n    _out[{label!r}] = [float({value}), float({limit})]\n"
            f"except Exception as _e:\n    _out[{label!r}] = [None, repr(_e)]"
        )
    probe.append(
        "print('@@' + _json.dumps({'values': _out, 'kernel': _torch.backends.cpu.get_cpu_capability()}))"
    )
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("\n".join(probe)))
    client = NotebookClient(nb, kernel_name="python3", timeout=3600, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()
    errors = [
        o.get("ename") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    text = "".join(
        o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream"
    )
    found = json.loads(text.split("@@", 1)[1]) if "@@" in text else {"values": {}, "kernel": "?"}
    print("@@" + json.dumps(found | {"errors": errors}))


def execute(path: Path, condition: str, kernel: str, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env |= CONDITIONS[condition] | {"MLLM_COURSE_CACHE": str(cache)}
    if kernel != "native":
        env["ATEN_CPU_CAPABILITY"] = kernel
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--one", str(path)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    out = proc.stdout.rsplit("@@", 1)
    if len(out) < 2:
        return {
            "values": {},
            "kernel": "?",
            "errors": [f"crashed: {proc.stderr.strip().splitlines()[-1:]}"],
            "seconds": seconds,
        }
    return json.loads(out[1]) | {"seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="notebook id prefixes (default: every notebook that asserts)")
    parser.add_argument("--conditions", nargs="*", default=list(CONDITIONS), choices=list(CONDITIONS))
    parser.add_argument("--kernels", nargs="*", default=["native"], choices=KERNELS,
                        help="torch CPU kernels, each crossed with every condition (ATEN_CPU_CAPABILITY)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (give 1-thread conditions only)")
    parser.add_argument(
        "--cache", type=Path,
        help="the learner-then-warm cache (default: a temporary one); give the same folder to a `learner` run "
        "and a later `warm` run to run them apart, e.g. the 1-thread learner runs beside other work",
    )  # fmt: skip
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(Path(args.one))
    names = [n for n in CHECKS if not args.ids or any(n.startswith(i) for i in args.ids)]
    here = cpu_kernels.available()
    lacking = [k for k in args.kernels if k != "native" and k not in here]
    if lacking:
        print(f"skipped: {', '.join(lacking)} (this CPU runs only {' '.join(here)})", flush=True)
    runs = [(c, k) for k in args.kernels if k not in lacking for c in args.conditions]
    with tempfile.TemporaryDirectory() as tmp:

        def job(item):
            name, condition, kernel = item
            # learner then warm share a cache per kernel (the cache is keyed by the kernel as well)
            shared = (args.cache or Path(tmp) / "learner-then-warm") / kernel
            cache = shared if condition in ("learner", "warm") else Path(tmp) / f"{name}-{condition}-{kernel}"
            result = execute(ROOT / "notebooks" / f"{name}.ipynb", condition, kernel, cache)
            values = ", ".join(
                f"{label} {v[0]:.3f}" if v[0] is not None else f"{label} –"
                for label, v in result["values"].items()
            )
            print(
                f"  {name} [{condition}, {kernel} → {result['kernel']}]: {result['errors'] or 'no errors'}, "
                f"{result['seconds']:.0f} s; {values}", file=sys.stderr, flush=True,
            )  # fmt: skip
            return item, result

        plain = [(n, c, k) for n in names for c, k in runs if c not in ("learner", "warm")]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = dict(pool.map(job, plain))
        for name in names:  # learner first, then warm in the cache it filled, one notebook at a time
            for kernel in args.kernels:
                for condition in ("learner", "warm"):
                    if condition in args.conditions:
                        results[(name, condition, kernel)] = job((name, condition, kernel))[1]
    print(
        "\n| notebook | asserted | condition | kernel | value | threshold | margin |\n|---|---|---|---|---:|---:|---:|"
    )
    worst, per_assert = [], {}
    for name in names:
        for label, *_ in CHECKS[name]:
            for condition, kernel in runs:
                result = results[(name, condition, kernel)]
                value, threshold = result["values"].get(label, [None, "not reached"])
                used = result["kernel"]
                if value is None:
                    print(
                        f"| {name[:2]} | {label} | {condition} | {used} | – | {threshold} | **not measured** |"
                    )
                    per_assert.setdefault((name, label), []).append((float("-inf"), condition, used))
                    continue
                margin = value - threshold
                worst.append((margin, name, label, condition, used))
                per_assert.setdefault((name, label), []).append((margin, condition, used))
                flag = " ⚠" if margin <= 0.02 else ""
                print(
                    f"| {name[:2]} | {label} | {condition} | {used} | {value:.3f} | {threshold:.3f} | "
                    f"{margin:+.3f}{flag} |"
                )
    print(f"\nSmallest margin per assert, over {len(runs)} runs each (conditions × kernels):\n")
    print("| notebook | asserted | smallest margin | where | runs |\n|---|---|---:|---|---:|")
    for (name, label), margins in per_assert.items():
        margin, condition, used = min(margins)
        print(f"| {name[:2]} | {label} | {margin:+.3f} | {condition}, {used} | {len(margins)} |")
    if worst:
        margin, name, label, condition, used = min(worst)
        print(
            f"\nSmallest margin: {margin:+.3f} ({name[:2]} · {label} · {condition} · {used}); "
            "⚠ marks a margin of 0.02 or less."
        )


if __name__ == "__main__":
    main()

"""Benchmark (not a test): train the mini InternVL from scratch, as notebook 06 does, and report what 06 asserts.

    python benchmarks/mini_internvl.py                            # the default recipe, seed 0, 2 torch threads (CI)
    python benchmarks/mini_internvl.py --seeds 0 1 2 --threads 1  # the conditions a learner creates
    python benchmarks/mini_internvl.py --set stage1_steps=200 vision_steps=800   # try another recipe

Notebook 06 asserts, on 96 held-out images: caption exact match after stage 1 > random towers' + 0.1, and every
question's exact match after stage 2 >= 0.85. This prints both per seed with their margins, the per-kind accuracies,
the training time, and whether a second run is bit-identical (``--repeat``). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import fields, replace

import torch

from course_utils import data
from course_utils.mini import internvl_train as T


def run(recipe: T.Recipe) -> dict:
    """The recipe, evaluated on 06's 96 held-out images at the moments 06 evaluates (time includes evaluation)."""
    test = data.make_shapes(96, image_size=recipe.tile, seed=999)
    out = {}
    start = time.perf_counter()
    model, _, _ = T.train_mini_internvl(
        recipe, progress=False, after=lambda moment, m, p: out.__setitem__(moment, T.evaluate(m, p, test))
    )
    out["seconds"] = time.perf_counter() - start
    out["state"] = model.state_dict()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--threads", type=int, default=int(os.environ.get("COURSE_THREADS", "2")))
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="recipe fields to change")
    parser.add_argument("--repeat", action="store_true", help="train seed 0 twice and compare the weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    types = {f.name: f.type for f in fields(T.Recipe)}
    changes = {}
    for item in args.set:
        key, value = item.split("=", 1)
        changes[key] = float(value) if types[key] in ("float", float) else int(value)
    print(
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)"
    )
    print(f"Recipe changes: {changes or 'none (the default recipe)'}\n")
    print(
        "| seed | time | stage-1 caption gain (> 0.1) | stage-2 all (≥ 0.85) | stage 2: colour / shape / size / caption |"
    )
    print("|---:|---:|---:|---:|---|")
    for seed in args.seeds:
        r = run(replace(T.Recipe(), seed=seed, **changes))
        gain = r["after stage 1"]["caption"] - r["random towers"]["caption"]
        s2 = r["after stage 2"]
        kinds = " / ".join(f"{s2[k]:.0%}" for k in data.QUESTIONS)
        print(
            f"| {seed} | {r['seconds']:.0f} s | {gain:.3f} ({gain - 0.1:+.3f}) | {s2['all']:.3f} ({s2['all'] - 0.85:+.3f})"
            f" | {kinds} |",
            flush=True,
        )
        if args.repeat and seed == args.seeds[0]:
            again = run(replace(T.Recipe(), seed=seed, **changes))
            same = all(torch.equal(a, again["state"][k]) for k, a in r["state"].items())
            print(f"| {seed} again | {again['seconds']:.0f} s | bit-identical: {same} | | |", flush=True)


if __name__ == "__main__":
    main()

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
    """06's cells in order: build, evaluate random towers, pretrain towers, stage 1, evaluate, stage 2, evaluate."""
    start = time.perf_counter()
    model, processor = T.build_internvl(
        image_size=recipe.tile, patch_size=recipe.patch, vision_hidden=recipe.vision_hidden, hidden=recipe.hidden,
        layers=recipe.layers, seed=recipe.seed, max_tiles=1,
    )  # fmt: skip
    items = data.make_shapes(recipe.train_images, image_size=recipe.tile, seed=recipe.seed + 10)
    test = data.make_shapes(96, image_size=recipe.tile, seed=999)
    out = {"random": T.evaluate(model, processor, test)}
    T.pretrain_vision(model, processor, items, recipe, progress=False)
    T.pretrain_llm(model, processor, items, recipe, progress=False)
    T.train_stage(
        model, T.Conversations(processor, items, ("caption",)), 1, recipe.stage1_steps, recipe, False
    )
    out["stage1"] = T.evaluate(model, processor, test)
    T.train_stage(model, T.Conversations(processor, items), 2, recipe.stage2_steps, recipe, progress=False)
    out["stage2"] = T.evaluate(model, processor, test)
    out["seconds"] = time.perf_counter() - start
    out["state"] = {k: v.clone() for k, v in model.state_dict().items()}
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
        gain = r["stage1"]["caption"] - r["random"]["caption"]
        s2 = r["stage2"]
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

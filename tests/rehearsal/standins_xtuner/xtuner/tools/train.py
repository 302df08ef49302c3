"""Stand-in for ``xtuner/tools/train.py``: check the config and its inputs, then lay out a finished run.

Checks what would make the real run fail in its first minute: the config file, the model folder (``config.json``), the
training JSON (LLaVA format, every image under ``data_root``), the DeepSpeed preset name. Then writes
``iter_N.pth`` every ``save_steps`` iterations and at the end (a folder under ``--deepspeed``, as a ZeRO checkpoint is)
and mmengine's ``<timestamp>/vis_data/scalars.json``. The numbers in that log are placeholders of the right shape,
not a measurement: this is a rehearsal of the plumbing.
"""

import argparse
import ast
import json
import math
import sys
from pathlib import Path

DEEPSPEED = (
    "deepspeed_zero1",
    "deepspeed_zero2",
    "deepspeed_zero2_offload",
    "deepspeed_zero3",
    "deepspeed_zero3_offload",
)


def settings(config: Path) -> dict:
    """The config's top-level plain assignments (what ``xtuner_run.configure`` rewrites)."""
    values = {}
    for node in ast.parse(config.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser("xtuner train (rehearsal stand-in)")
    parser.add_argument("config")
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--deepspeed", choices=DEEPSPEED)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", type=str, default=None)
    args = parser.parse_args(argv)
    config = Path(args.config)
    if not config.is_file():
        raise SystemExit(f"{config}: no such config")
    cfg = settings(config)
    model = Path(cfg["path"])
    if not (model / "config.json").is_file():
        raise SystemExit(f"{model}: no config.json (the model folder)")
    samples = json.loads(Path(cfg["data_path"]).read_text(encoding="utf-8"))
    for sample in samples:
        assert set(sample) >= {"image", "conversations"}, sample
        if not (Path(cfg["data_root"]) / sample["image"]).is_file():
            raise SystemExit(f"{sample['image']}: not under data_root {cfg['data_root']}")
    iters = math.ceil(len(samples) / cfg["batch_size"]) * cfg["max_epochs"]
    work = Path(args.work_dir)
    start = 0
    if args.resume:  # mmengine restores the iteration of the checkpoint and trains on from there
        resume = Path(args.resume)
        if not resume.exists():
            raise SystemExit(f"{resume}: no such checkpoint to resume from")
        start = int(resume.stem.split("_")[1])
    log = (
        work / ("20261201_010000" if start else "20261201_000000") / "vis_data" / "scalars.json"
    )  # a run's own folder
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        for i in range(start + 10, iters + 1, 10):
            f.write(json.dumps({"lr": cfg["lr"], "loss": 2.0 / (1 + i / 100), "iter": i}) + "\n")
    for i in [i for i in [*range(cfg["save_steps"], iters, cfg["save_steps"]), iters] if i > start]:
        checkpoint = work / f"iter_{i}.pth"
        if args.deepspeed:
            (checkpoint / "checkpoint").mkdir(parents=True, exist_ok=True)
            (checkpoint / "checkpoint" / "mp_rank_00_model_states.pt").write_bytes(b"rehearsal")
        else:
            checkpoint.write_bytes(b"rehearsal")
    (work / "last_checkpoint").write_text(str(work / f"iter_{iters}.pth"))
    print(f"rehearsal: {len(samples)} samples, iterations {start + 1}-{iters}, checkpoints in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

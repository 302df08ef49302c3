"""Stand-in for ``xtuner/tools/train.py``: check the config and its inputs, then lay out the run mmengine would.

Checks what would make the real run fail in its first minute: the config file, the model folder (``config.json``), the
training JSON (LLaVA format, every image under ``data_root``), the DeepSpeed preset name. Then writes ``iter_N.pth``
every ``save_steps`` iterations and at the end, in the layout mmengine 0.10.6 writes for this config
(``mmengine/_strategy/deepspeed.py``, ``DeepSpeedStrategy.save_checkpoint``): with ``--deepspeed`` and the config's
``CheckpointHook(save_optimizer=True)`` a folder holding DeepSpeed's ``mp_rank_00_model_states.pt`` (mmengine's
``optim_wrapper``, ``param_schedulers`` and ``meta`` inside) and the bf16 ZeRO optimizer partition; with
``save_optimizer=False`` a plain file ``{"state_dict", "meta", "param_schedulers"}``; without DeepSpeed a plain file
with the optimizer inside (mmengine's default strategy). ``--resume`` reads a checkpoint as
``DeepSpeedStrategy.resume`` does (DeepSpeed's ``load_checkpoint(dirname, tag)`` globs
``tag/mp_rank_*_model_states.pt``, then mmengine pops ``optim_wrapper``), so a layout the real run cannot resume from
fails here too. mmengine's ``<timestamp>/vis_data/scalars.json`` gets numbers of the right shape, not a measurement:
this is a rehearsal of the plumbing.
"""

import argparse
import ast
import json
import math
import shutil
import sys
from pathlib import Path

import torch

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


def save_optimizer(config: Path) -> bool:
    """The config's ``CheckpointHook(save_optimizer=...)``: mmengine's default is True."""
    for node in ast.walk(ast.parse(config.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            kw = {k.arg: k.value for k in node.keywords}
            if isinstance(kw.get("type"), ast.Name) and kw["type"].id == "CheckpointHook":
                return ast.literal_eval(kw["save_optimizer"]) if "save_optimizer" in kw else True
    return True


def save(checkpoint: Path, iteration: int, *, deepspeed: bool, save_optimizer: bool) -> None:
    """Write ``checkpoint`` as mmengine 0.10.6 would (module docstring); the weights are a placeholder tensor."""
    extra = {"meta": {"seed": 0, "iter": iteration}, "param_schedulers": [{"last_step": iteration}]}
    weights = {"mlp1.1.weight": torch.zeros(2, 2)}
    if (
        deepspeed and save_optimizer
    ):  # DeepSpeed's engine.save_checkpoint(dirname, tag=basename, client_state=extra)
        checkpoint.mkdir(parents=True, exist_ok=True)
        extra["optim_wrapper"] = {"state": {}, "param_groups": [{"lr": 3e-5}]}
        torch.save({"module": weights, "optimizer": None, **extra}, checkpoint / "mp_rank_00_model_states.pt")
        torch.save(
            {"optimizer_state_dict": {}}, checkpoint / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"
        )
    elif deepspeed:  # the `else` branch: module_state_dict() into one file, no optimizer
        torch.save({"state_dict": weights, **extra}, checkpoint)
    else:  # mmengine's default strategy: one file, the optimizer inside
        torch.save({"state_dict": weights, "optimizer": {"state": {}}, **extra}, checkpoint)


def resume(checkpoint: Path, *, deepspeed: bool) -> int:
    """Read ``checkpoint`` as mmengine's ``resume`` does; the iteration it resumes from."""
    if not checkpoint.exists():
        raise SystemExit(f"{checkpoint}: no such checkpoint to resume from")
    if deepspeed:  # DeepSpeedStrategy.resume -> engine.load_checkpoint(dirname, tag=basename)
        states = sorted(checkpoint.glob("mp_rank_*_model_states.pt")) if checkpoint.is_dir() else []
        if (
            not states
        ):  # DeepSpeed finds no file: load_checkpoint returns (None, None) and mmengine pops from None
            raise SystemExit(
                f"AttributeError: 'NoneType' object has no attribute 'pop' (resuming {checkpoint})"
            )
        extra = torch.load(states[0], weights_only=False)
        if not sorted(checkpoint.glob("*zero_pp_rank_*_optim_states.pt")):
            raise SystemExit(f"{checkpoint}: DeepSpeed finds no ZeRO optimizer state to load")
        extra.pop("optim_wrapper")  # KeyError for a checkpoint written without the optimizer
    else:
        extra = torch.load(checkpoint, weights_only=False)
        extra.pop("optimizer")
    return int(checkpoint.stem.split("_")[1])


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
        start = resume(Path(args.resume), deepspeed=bool(args.deepspeed))
    log = (
        work / ("20261201_010000" if start else "20261201_000000") / "vis_data" / "scalars.json"
    )  # a run's own folder
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        for i in range(start + 10, iters + 1, 10):
            f.write(json.dumps({"lr": cfg["lr"], "loss": 2.0 / (1 + i / 100), "iter": i}) + "\n")
    for i in [i for i in [*range(cfg["save_steps"], iters, cfg["save_steps"]), iters] if i > start]:
        save(work / f"iter_{i}.pth", i, deepspeed=bool(args.deepspeed), save_optimizer=save_optimizer(config))
    keep = cfg.get("save_total_limit", -1)  # CheckpointHook(max_keep_ckpts=...) removes the older ones
    if keep > 0:
        for old in sorted(work.glob("iter_*.pth"), key=lambda p: int(p.stem[5:]))[:-keep]:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    (work / "last_checkpoint").write_text(str(work / f"iter_{iters}.pth"))
    print(f"rehearsal: {len(samples)} samples, iterations {start + 1}-{iters}, checkpoints in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

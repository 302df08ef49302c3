"""What XTuner's ``iter_N.pth`` is on disk, and whether ``--resume`` can read it (notebook 08's full track).

XTuner 0.2.0 trains through mmengine 0.10.6; with ``--deepspeed`` its checkpoints are written by mmengine's
``DeepSpeedStrategy.save_checkpoint`` (``mmengine/_strategy/deepspeed.py``), which has two branches:

* ``CheckpointHook(save_optimizer=True)``: DeepSpeed's ``engine.save_checkpoint(work_dir, tag="iter_N.pth")`` writes a
  **folder** ``iter_N.pth/`` holding ``mp_rank_00_model_states.pt`` (the trained weights: xtuner's ``tools/train.py``
  passes ``exclude_frozen_parameters=True``; and mmengine's own state: ``optim_wrapper``, ``param_schedulers``,
  ``meta``) and the ZeRO optimizer partition, ``bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt`` in bf16
  (``zero_pp_rank_0_…`` in fp16); the names are DeepSpeed 0.16.2's ``_get_ckpt_name`` and ``_get_rank_zero_ckpt_name``
  (``deepspeed/runtime/engine.py``).
* ``save_optimizer=False`` (the original InternVL2 lab's config): a **plain file** ``iter_N.pth``,
  ``torch.save({"state_dict", "meta", "param_schedulers"})``, no optimizer.

``--resume`` goes to ``DeepSpeedStrategy.resume``: DeepSpeed's ``load_checkpoint(work_dir, tag="iter_N.pth")`` reads
``iter_N.pth/mp_rank_*_model_states.pt``, then mmengine pops ``optim_wrapper``. Only the folder resumes; the plain file
fails either way (XTuner's issue #1034 is this failure). XTuner's converter reads both (``guess_load_checkpoint``).
Without DeepSpeed, mmengine's default strategy writes one file with the optimizer inside, and that file resumes.

Checked by the rehearsal: its XTuner stand-in writes and reads these layouts the way the two branches above do.
"""

from pathlib import Path

MODEL_STATES = "mp_rank_00_model_states.pt"


def optim_states_name(*, bf16: bool = True, dp_rank: int = 0) -> str:
    """DeepSpeed's file for one data-parallel rank's ZeRO optimizer state (one GPU: rank 0)."""
    return f"{'bf16_' if bf16 else ''}zero_pp_rank_{dp_rank}_mp_rank_00_optim_states.pt"


def layout(*, deepspeed: bool, save_optimizer: bool, bf16: bool = True) -> list[str]:
    """The files one checkpoint ``iter_N.pth`` consists of, relative to it: ``[]`` when it is a plain file."""
    if deepspeed and save_optimizer:
        return [MODEL_STATES, optim_states_name(bf16=bf16)]
    return []


def resume_problem(checkpoint, *, deepspeed: bool = True) -> str | None:
    """Why ``--resume checkpoint`` cannot work, or None when its layout is one that resumes."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        return f"{checkpoint}: no such checkpoint"
    if not deepspeed:
        return (
            None
            if checkpoint.is_file()
            else f"{checkpoint} is a DeepSpeed folder: resume it with --deepspeed"
        )
    if checkpoint.is_file():
        return (f"{checkpoint.name} is a plain file, written with save_optimizer=False: it holds the weights but not "
                "the optimizer, and DeepSpeed's resume reads a folder")  # fmt: skip
    if not sorted(checkpoint.glob("mp_rank_*_model_states.pt")):
        return f"{checkpoint.name} has no mp_rank_*_model_states.pt: not a checkpoint DeepSpeed wrote"
    if not sorted(checkpoint.glob("*zero_pp_rank_*_optim_states.pt")):
        return f"{checkpoint.name} has no *_optim_states.pt: the optimizer state is missing"
    return None


def save_optimizer_of(config) -> bool:
    """The ``save_optimizer`` of the ``CheckpointHook`` in an XTuner config file (mmengine's default: True)."""
    import ast

    for node in ast.walk(ast.parse(Path(config).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and any(
            k.arg == "type" and isinstance(k.value, ast.Name) and k.value.id == "CheckpointHook"
            for k in node.keywords
        ):
            for k in node.keywords:
                if k.arg == "save_optimizer":
                    return bool(ast.literal_eval(k.value))
            return True
    return True

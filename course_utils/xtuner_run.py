"""The full track of notebook 08: XTuner on a GPU, driven from the notebook (the mini track's LoRA: ``finetune``).

The course's XTuner config and a configured copy of it (:func:`configure`), the training and conversion command
lines with the xtuner environment's interpreter (:func:`train_command`, :func:`convert_command`, run by
:func:`run_program`), a run recorded as finished only after training exits 0 (:func:`mark_finished`,
:func:`training_state`), a converted folder rebuilt when its checkpoint changed (:func:`convert`), the training log
as a plot (:func:`read_log`, :func:`plot_log`) and the model's own code copied next to the merged weights
(:func:`finalize`). Checked against xtuner 0.2 by ``make test-full-stack``; rehearsed on CPU by ``make rehearsal``.
"""

from pathlib import Path

from . import foodieqa, paths

CONFIG_NAME = "configs/xtuner/internvl_v2_internlm2_2b_lora_finetune_food.py"
# absolute in a checkout, so that notebooks (which run in notebooks/) and terminals find it alike
CONFIG = str((paths.repo_root() or Path()) / CONFIG_NAME)
# what `from_pretrained(..., trust_remote_code=True)` needs besides the weights; convert_to_official.py
# writes weights, config and tokenizer but not the model's own code (XTuner's convert_to_official.py)
MODEL_CODE_GLOBS = ("*.py", "*.tiktoken", "preprocessor_config.json", "generation_config.json")


# `xtuner train` is a thin launcher (xtuner/entry_point.py): it runs `subprocess.run(["python", train.py, ...])`, so it
# starts whichever `python` comes first on PATH (not its own environment's) and ignores that run's exit status. The
# course runs xtuner's training script itself, with the environment's interpreter: same script, same arguments, no
# wrong interpreter, and a failure is a failure.
TRAINER = "xtuner.tools.train"


def train_command(config=CONFIG, work_dir="work_dirs/food_lora", *, deepspeed: str | None = "deepspeed_zero2",
                  resume=None, python="python") -> list[str]:  # fmt: skip
    """What ``xtuner train CONFIG --work-dir DIR --deepspeed deepspeed_zero2`` runs, as a list for ``subprocess``:
    ``python -m xtuner.tools.train ...``. ``python``: the xtuner environment's interpreter by absolute path
    (``paths.lab_program("xtuner")``), so the command works in any terminal, activated or not.

    ``deepspeed``: a file, or a name xtuner resolves to its bundled JSON (``deepspeed_zero2``); None trains without
    DeepSpeed (then the config's fp16 AmpOptimWrapper applies). ``resume``: a checkpoint of an unfinished run
    (``--resume``: mmengine restores the weights, the optimizer and the iteration, and trains on from there)."""
    cmd = [str(python), "-m", TRAINER, str(config), "--work-dir", str(work_dir)]
    return (
        cmd
        + (["--deepspeed", deepspeed] if deepspeed else [])
        + (["--resume", str(resume)] if resume else [])
    )


def run_program(cmd: list[str], log_file, *, show: tuple[str, ...] = ("Iter(train)", "Saving checkpoint"),
                cwd=None) -> None:  # fmt: skip
    """Run a lab program from the notebook: every line goes to ``log_file``, the lines containing one of ``show``
    are printed as they come (XTuner's loss lines), and a non-zero exit raises RuntimeError with the last lines.

    The program's own folder (``cmd[0]``'s) goes first on PATH, so anything it starts by name (``python``, ``ninja``)
    comes from the same environment.
    """
    import collections
    import os
    import shlex
    import subprocess

    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{Path(cmd[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print("$", shlex.join(cmd), flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=20)
    with open(log_file, "w", encoding="utf-8") as log, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
        errors="replace",
    ) as proc:  # fmt: skip
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip())
            if any(key in line for key in show):
                print(line.rstrip(), flush=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"exit status {proc.returncode} (whole log: {log_file}); last lines:\n" + "\n".join(tail)
        )


# xtuner 0.2.0 installs its configs as a package, converter included: no XTuner checkout needed (the original lab ran
# /root/xtuner/xtuner/configs/internvl/v1_5/convert_to_official.py from a 0.1.x checkout)
CONVERTER = "xtuner.configs.internvl.v1_5.convert_to_official"


def convert_command(config, checkpoint, out_dir, *, python="python") -> list[str]:
    """XTuner's InternVL converter: merge the LoRA checkpoint into a Hugging Face folder; ``python``: the xtuner
    environment's interpreter (``paths.lab_program("xtuner")``)."""
    return [str(python), "-m", CONVERTER, str(config), str(checkpoint), str(out_dir)]


def last_checkpoint(work_dir) -> Path | None:
    """The newest ``iter_N.pth`` in ``work_dir`` (a file or a DeepSpeed folder: ``xtuner_checkpoint``), or None."""
    found = [(int(p.stem[5:]), p) for p in Path(work_dir).glob("iter_*.pth") if p.stem[5:].isdigit()]
    return max(found)[1] if found else None


FINISHED = "course_run_finished.json"  # written by the course after `xtuner train` exits 0
CONVERTED_FROM = (
    "course_converted_from.json"  # written into a merged folder: the checkpoint it was converted from
)


def _stamp(checkpoint: Path) -> dict:
    """What identifies a checkpoint: its name, and the newest modification time in it (a file, or a DeepSpeed folder)."""
    files = [checkpoint, *checkpoint.rglob("*")] if checkpoint.is_dir() else [checkpoint]
    return {"checkpoint": checkpoint.name, "mtime": max(f.stat().st_mtime for f in files)}


def set_aside(work_dir) -> Path:
    """Move the checkpoints of an unfinished run that cannot be resumed (``xtuner_checkpoint.resume_problem``) into a
    new ``set_aside_K/`` folder of ``work_dir``, so that training starts again from iteration 0 without losing them.
    Returns that folder."""
    import shutil

    work_dir = Path(work_dir)
    k = 1
    while (work_dir / f"set_aside_{k}").exists():
        k += 1
    aside = work_dir / f"set_aside_{k}"
    aside.mkdir()
    for path in [*work_dir.glob("iter_*.pth"), work_dir / "last_checkpoint", work_dir / FINISHED]:
        if path.exists():
            shutil.move(str(path), str(aside / path.name))
    return aside


def mark_finished(work_dir) -> Path:
    """Record that the training in ``work_dir`` ended normally, with its last checkpoint (call it after ``xtuner train``
    exited 0). Returns that checkpoint."""
    import json

    checkpoint = last_checkpoint(work_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{work_dir}: the training exited without writing any iter_*.pth")
    (Path(work_dir) / FINISHED).write_text(json.dumps(_stamp(checkpoint)), encoding="utf-8")
    return checkpoint


def training_state(work_dir) -> tuple[str, Path | None]:
    """("none", None) before any training; ("finished", checkpoint) when ``mark_finished`` recorded the last
    checkpoint and it is still the newest; else ("unfinished", newest checkpoint): a run that died (out of memory,
    a closed notebook) after saving ``iter_N.pth``, which must not be converted and scored as the fine-tuned model."""
    import json

    checkpoint = last_checkpoint(work_dir)
    if checkpoint is None:
        return "none", None
    record = Path(work_dir) / FINISHED
    if record.is_file() and json.loads(record.read_text(encoding="utf-8")) == _stamp(checkpoint):
        return "finished", checkpoint
    return "unfinished", checkpoint


def converted_from(merged_dir) -> dict | None:
    """The checkpoint stamp a merged folder was converted from (``convert``), or None (no folder, or not recorded)."""
    import json

    record = Path(merged_dir) / CONVERTED_FROM
    return json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None


def convert(config, checkpoint, merged_dir, base_model_dir, *, python="python", log_file=None) -> str:
    """``merged_dir`` as the converted ``checkpoint``: "reused" when it already is (same checkpoint name and time),
    else "converted": XTuner's converter writes into a temporary sibling folder, ``finalize`` completes it from
    ``base_model_dir``, the stamp is recorded, and only then does it replace ``merged_dir`` (a failed conversion
    leaves the old folder as it was)."""
    import json
    import shutil

    checkpoint, merged_dir = Path(checkpoint), Path(merged_dir)
    if converted_from(merged_dir) == _stamp(checkpoint) and not missing_files(merged_dir):
        return "reused"
    tmp = merged_dir.with_name(merged_dir.name + ".converting")
    shutil.rmtree(tmp, ignore_errors=True)
    run_program(
        convert_command(config, checkpoint, tmp, python=python),
        log_file or merged_dir.with_name("convert.log"),
        show=(),
    )  # fmt: skip  (it prints the whole model)
    finalize(base_model_dir, tmp)
    (tmp / CONVERTED_FROM).write_text(json.dumps(_stamp(checkpoint)), encoding="utf-8")
    shutil.rmtree(merged_dir, ignore_errors=True)
    tmp.rename(merged_dir)
    return "converted"


def read_log(work_dir) -> list[dict]:
    """Training records (iteration, loss, lr, ...) from mmengine's ``vis_data/scalars.json`` files under ``work_dir``."""
    import json

    files = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))
    if not files:
        raise FileNotFoundError(
            f"{work_dir}: no */vis_data/scalars.json yet — has `xtuner train` logged anything?"
        )
    records = []
    for line in files[-1].read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if "loss" in record:
                records.append(record)
    return records


def plot_log(records: list[dict], title: str = "", smooth: int = 1):
    """Loss (left, log scale, moving average over ``smooth`` records) and learning rate (right) per iteration, from
    ``read_log`` (XTuner) or ``lora_finetune(log=...)`` (mini track). Returns the figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    if not records:
        raise ValueError("no training records to plot (has the run logged anything yet?)")
    iters = np.array([r["iter"] for r in records])
    loss = np.array([r["loss"] for r in records], dtype=float)
    k = max(1, min(smooth, len(loss)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 2.8))
    left.plot(iters[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"))
    left.set(yscale="log", xlabel="iteration", ylabel="loss" + (f" (mean of {k})" if k > 1 else ""))
    if all("lr" in r for r in records):
        right.plot(iters, [r["lr"] for r in records], color="tab:orange")
    right.set(xlabel="iteration", ylabel="learning rate")
    right.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def finalize(base_model_dir, converted_dir) -> list[str]:
    """Copy the files the conversion left out (model code, processor files) from the base model; returns their names.

    Files already in ``converted_dir`` are never replaced.
    """
    base, out = Path(base_model_dir), Path(converted_dir)
    for folder in (base, out):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
    copied = []
    for pattern in MODEL_CODE_GLOBS:
        for src in sorted(base.glob(pattern)):
            dst = out / src.name
            if not dst.exists():
                dst.write_bytes(src.read_bytes())
                copied.append(src.name)
    return copied


def missing_files(model_dir) -> list[str]:
    """What a model folder still lacks to load with ``trust_remote_code`` (empty when complete)."""
    import json

    folder = Path(model_dir)
    missing = [name for name in ("config.json",) if not (folder / name).is_file()]
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        missing.append("weights (*.safetensors or *.bin)")
    if (folder / "config.json").is_file():
        auto_map = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("auto_map", {})
        for ref in auto_map.values():
            module = (ref[0] if isinstance(ref, list) else ref).split(".")[0] + ".py"
            if not (folder / module).is_file() and module not in missing:
                missing.append(module)
    return missing


def configure(dst, config=CONFIG, *, overwrite: bool = False, **values) -> Path:
    """Write a copy of the XTuner ``config`` with top-level settings replaced, e.g. ``path=``, ``data_root=``,
    ``data_path=``, ``batch_size=``, ``lora_rank=``. Each name must be a plain assignment in the config.

    (mmengine parses XTuner configs in lazy-import mode, so a config cannot read environment variables itself.)
    """
    import re

    text = Path(config).read_text(encoding="utf-8")
    for name, value in values.items():
        pattern = re.compile(rf"^{re.escape(name)} = .*$", re.MULTILINE)
        if not pattern.search(text):
            raise KeyError(f"{config} has no top-level setting '{name}'")
        line = f"{name} = {value!r}"
        text = pattern.sub(lambda _, line=line: line, text, count=1)
    return foodieqa.write_text(text, dst, overwrite=overwrite)

"""The full track of notebook 08 driven from the notebook (course_utils.xtuner_run): XTuner's command lines with the
environment's own python, a run finished only after training exits 0, conversion, logs, the config and its copies."""

import os
from pathlib import Path

import pytest

from course_utils import xtuner_run


def test_commands():
    python = Path("/envs/xt/bin/python")
    assert xtuner_run.train_command(work_dir="w", python=python) == [
        "/envs/xt/bin/python", "-m", "xtuner.tools.train", xtuner_run.CONFIG, "--work-dir", "w",
        "--deepspeed", "deepspeed_zero2"]  # fmt: skip
    assert "--deepspeed" not in xtuner_run.train_command(deepspeed=None)
    cmd = xtuner_run.convert_command("cfg.py", "w/iter_640.pth", "out", python=python)
    assert cmd == ["/envs/xt/bin/python", "-m", "xtuner.configs.internvl.v1_5.convert_to_official", "cfg.py",
                   "w/iter_640.pth", "out"]  # fmt: skip


def _fake_python(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_train_command_runs_the_environments_own_python_whatever_path_says(tmp_path, monkeypatch):
    """`xtuner train` re-runs `python` from PATH (xtuner/entry_point.py) and ignores its exit status; the course's
    command names the environment's interpreter and its failures surface."""
    wrong = _fake_python(tmp_path / "other" / "python", 'echo "wrong python" >&2; exit 3')
    right = _fake_python(tmp_path / "env" / "bin" / "python", 'echo "$0 $*" > "$(dirname "$0")/ran"\n'
                         'echo "Iter(train) [ 10/640]  lr: 3e-05  loss: 1.5"')  # fmt: skip
    monkeypatch.setenv("PATH", f"{wrong.parent}:{os.environ['PATH']}")
    cmd = xtuner_run.train_command("cfg.py", tmp_path / "runs", python=right)
    xtuner_run.run_program(cmd, tmp_path / "runs" / "train.log")
    ran = (right.parent / "ran").read_text()
    assert ran.startswith(str(right)) and "-m xtuner.tools.train cfg.py --work-dir" in ran
    assert "Iter(train)" in (tmp_path / "runs" / "train.log").read_text()


def test_run_program_raises_with_the_last_lines_on_failure(tmp_path):
    bad = _fake_python(tmp_path / "env" / "bin" / "python", 'echo "CUDA out of memory" >&2; exit 1')
    with pytest.raises(RuntimeError, match="(?s)exit status 1.*CUDA out of memory"):
        xtuner_run.run_program(
            xtuner_run.train_command("cfg.py", tmp_path, python=bad), tmp_path / "train.log"
        )


def test_last_checkpoint_is_the_highest_iteration_file_or_folder(tmp_path):
    assert xtuner_run.last_checkpoint(tmp_path) is None
    (tmp_path / "iter_64.pth").write_bytes(b"")
    (tmp_path / "iter_640.pth").mkdir()  # DeepSpeed writes a folder
    (tmp_path / "iter_128.pth").write_bytes(b"")
    (tmp_path / "iter_x.pth").write_bytes(b"")
    (tmp_path / "last_checkpoint").write_text("iter_640.pth")
    assert xtuner_run.last_checkpoint(tmp_path) == tmp_path / "iter_640.pth"


def test_read_log_reads_mmengine_scalars(tmp_path):
    with pytest.raises(FileNotFoundError, match="scalars.json"):
        xtuner_run.read_log(tmp_path)
    run = tmp_path / "20261125_120000" / "vis_data"
    run.mkdir(parents=True)
    lines = ['{"lr": 1e-06, "loss": 2.5, "iter": 10, "step": 10}', "", '{"lr": 3e-05, "loss": 1.5, "iter": 20, "step": 20}',
             '{"time": 0.1}']  # fmt: skip
    (run / "scalars.json").write_text("\n".join(lines), encoding="utf-8")
    assert [r["loss"] for r in xtuner_run.read_log(tmp_path)] == [2.5, 1.5]


def test_finalize_copies_exactly_what_is_missing(tmp_path):
    import json

    base, out = tmp_path / "InternVL2-2B", tmp_path / "converted"
    base.mkdir()
    out.mkdir()
    auto_map = {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                "AutoModel": "modeling_internvl_chat.InternVLChatModel"}  # fmt: skip
    for name in ("modeling_internvl_chat.py", "configuration_internvl_chat.py", "conversation.py",
                 "preprocessor_config.json", "config.json", "model.safetensors"):  # fmt: skip
        (base / name).write_text(name, encoding="utf-8")
    (out / "config.json").write_text(json.dumps({"auto_map": auto_map}), encoding="utf-8")
    (out / "model.safetensors").write_text("merged weights", encoding="utf-8")
    (out / "conversation.py").write_text("already here", encoding="utf-8")
    assert xtuner_run.missing_files(out) == ["configuration_internvl_chat.py", "modeling_internvl_chat.py"]
    copied = xtuner_run.finalize(base, out)
    assert sorted(copied) == [
        "configuration_internvl_chat.py",
        "modeling_internvl_chat.py",
        "preprocessor_config.json",
    ]
    assert (out / "conversation.py").read_text(encoding="utf-8") == "already here"  # never replaced
    assert (out / "model.safetensors").read_text(encoding="utf-8") == "merged weights"
    assert xtuner_run.missing_files(out) == []
    with pytest.raises(FileNotFoundError):
        xtuner_run.finalize(tmp_path / "nope", out)


def test_xtuner_config_has_the_seeds_settings():
    import ast
    from pathlib import Path

    source = (Path(__file__).parents[1] / xtuner_run.CONFIG_NAME).read_text(encoding="utf-8")
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    expected = {"batch_size": 4, "accumulative_counts": 2, "max_epochs": 10, "lr": 3e-5, "weight_decay": 0.05,
                "warmup_ratio": 0.03, "save_steps": 64, "lora_rank": 128, "lora_alpha": 256, "max_length": 8192}  # fmt: skip
    assert {k: values.get(k) for k in expected} == expected
    for default in (
        "/root/share/new_models/OpenGVLab/InternVL2-2B",
        "/root/share/datasets/FoodieQA",
        "sivqa_llava.json",
    ):
        assert default in source


def test_configure_writes_a_copy_with_other_values(tmp_path):
    dst = xtuner_run.configure(tmp_path / "mine.py", path="/models/x", data_path="/data/y.json", lora_rank=16)
    text = dst.read_text(encoding="utf-8")
    assert "path = '/models/x'" in text and "data_path = '/data/y.json'" in text and "lora_rank = 16" in text
    assert "lora_alpha = 256" in text  # untouched
    with pytest.raises(KeyError, match="no top-level setting 'lora_rnak'"):
        xtuner_run.configure(tmp_path / "other.py", lora_rnak=8)
    assert not (tmp_path / "other.py").exists()
    with pytest.raises(FileExistsError):
        xtuner_run.configure(dst, lora_rank=8)
    assert "lora_rank = 16" in dst.read_text(encoding="utf-8")


def test_training_state_tells_a_finished_run_from_an_interrupted_one(tmp_path):
    """A run counts as finished only once mark_finished recorded its last checkpoint; a checkpoint written after the
    record (another run in the same folder) makes it unfinished again."""
    import os

    assert xtuner_run.training_state(tmp_path) == ("none", None)
    (tmp_path / "iter_64.pth").write_bytes(b"x")
    assert xtuner_run.training_state(tmp_path) == ("unfinished", tmp_path / "iter_64.pth")
    (tmp_path / "iter_128.pth").mkdir()
    (tmp_path / "iter_128.pth" / "model.pt").write_bytes(b"x")
    assert xtuner_run.mark_finished(tmp_path) == tmp_path / "iter_128.pth"
    assert xtuner_run.training_state(tmp_path) == ("finished", tmp_path / "iter_128.pth")
    later = (tmp_path / "iter_128.pth" / "model.pt").stat().st_mtime + 10
    os.utime(tmp_path / "iter_128.pth" / "model.pt", (later, later))  # the checkpoint was written again
    assert xtuner_run.training_state(tmp_path)[0] == "unfinished"
    assert xtuner_run.train_command("c.py", tmp_path, resume=tmp_path / "iter_64.pth")[-2:] == [
        "--resume",
        str(tmp_path / "iter_64.pth"),
    ]


def test_convert_reuses_only_a_folder_from_the_same_checkpoint(tmp_path, monkeypatch):
    """convert writes into a temporary folder and replaces merged/ at the end; a failed conversion leaves the old one."""
    import json

    base = tmp_path / "base"
    base.mkdir()
    (base / "modeling_internvl_chat.py").write_text("# model code")
    checkpoint = tmp_path / "iter_8.pth"
    checkpoint.write_bytes(b"x")
    calls = []

    def fake_run(cmd, log_file, **kw):
        calls.append(cmd)
        out = Path(cmd[-1])
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_internvl_chat.X"}}))
        (out / "model.safetensors").write_bytes(b"w")

    monkeypatch.setattr(xtuner_run, "run_program", fake_run)
    merged = tmp_path / "merged"
    assert xtuner_run.convert("cfg.py", checkpoint, merged, base) == "converted"
    assert (
        not xtuner_run.missing_files(merged)
        and xtuner_run.converted_from(merged)["checkpoint"] == "iter_8.pth"
    )
    assert xtuner_run.convert("cfg.py", checkpoint, merged, base) == "reused" and len(calls) == 1
    newer = tmp_path / "iter_16.pth"
    newer.write_bytes(b"y")
    assert xtuner_run.convert("cfg.py", newer, merged, base) == "converted" and len(calls) == 2

    def failing_run(cmd, log_file, **kw):
        raise RuntimeError("exit status 1")

    monkeypatch.setattr(xtuner_run, "run_program", failing_run)
    with pytest.raises(RuntimeError):
        xtuner_run.convert("cfg.py", checkpoint, merged, base)
    assert xtuner_run.converted_from(merged)["checkpoint"] == "iter_16.pth"  # the old folder, untouched

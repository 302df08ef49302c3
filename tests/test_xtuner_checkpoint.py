"""course_utils.xtuner_checkpoint against the layouts the rehearsal's XTuner stand-in writes the way mmengine 0.10.6
does (tests/rehearsal/standins_xtuner/xtuner/tools/train.py), and the course's config."""

import importlib.util
from pathlib import Path

import pytest

from course_utils import xtuner_checkpoint, xtuner_run

STANDIN = Path(__file__).parent / "rehearsal" / "standins_xtuner" / "xtuner" / "tools" / "train.py"


@pytest.fixture(scope="module")
def standin():
    spec = importlib.util.spec_from_file_location("standin_train", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "deepspeed, save_optimizer, resumes",
    [(True, True, True), (True, False, False), (False, True, True), (False, False, True)],
)
def test_resume_problem_agrees_with_what_resume_does(tmp_path, standin, deepspeed, save_optimizer, resumes):
    checkpoint = tmp_path / "iter_64.pth"
    standin.save(checkpoint, 64, deepspeed=deepspeed, save_optimizer=save_optimizer)
    written = sorted(p.name for p in checkpoint.iterdir()) if checkpoint.is_dir() else []
    assert written == sorted(xtuner_checkpoint.layout(deepspeed=deepspeed, save_optimizer=save_optimizer))
    problem = xtuner_checkpoint.resume_problem(checkpoint, deepspeed=deepspeed)
    assert (problem is None) == resumes, problem
    if resumes:
        assert standin.resume(checkpoint, deepspeed=deepspeed) == 64
    else:
        assert "save_optimizer=False" in problem
        with pytest.raises(SystemExit):
            standin.resume(checkpoint, deepspeed=deepspeed)


def test_a_folder_without_the_optimizer_state_is_named(tmp_path, standin):
    checkpoint = tmp_path / "iter_64.pth"
    standin.save(checkpoint, 64, deepspeed=True, save_optimizer=True)
    (checkpoint / xtuner_checkpoint.optim_states_name()).unlink()
    assert "optimizer state is missing" in xtuner_checkpoint.resume_problem(checkpoint)
    (checkpoint / xtuner_checkpoint.MODEL_STATES).unlink()
    assert "no mp_rank_*_model_states.pt" in xtuner_checkpoint.resume_problem(checkpoint)
    assert "no such checkpoint" in xtuner_checkpoint.resume_problem(tmp_path / "iter_128.pth")


def test_the_course_config_saves_what_resume_reads(tmp_path, standin):
    assert xtuner_checkpoint.save_optimizer_of(xtuner_run.CONFIG) is True
    assert standin.save_optimizer(Path(xtuner_run.CONFIG)) is True
    lab = tmp_path / "original_lab.py"  # the original lab's hook
    lab.write_text("checkpoint = dict(type=CheckpointHook, save_optimizer=False, interval=64)\n")
    assert xtuner_checkpoint.save_optimizer_of(lab) is False and standin.save_optimizer(lab) is False
    default = tmp_path / "default.py"
    default.write_text("checkpoint = dict(type=CheckpointHook, interval=64)\n")
    assert xtuner_checkpoint.save_optimizer_of(default) is True and standin.save_optimizer(default) is True


def test_set_aside_keeps_the_checkpoints_and_clears_the_run(tmp_path, standin):
    runs = tmp_path / "runs"
    runs.mkdir()
    standin.save(runs / "iter_64.pth", 64, deepspeed=True, save_optimizer=False)
    (runs / "last_checkpoint").write_text(str(runs / "iter_64.pth"))
    aside = xtuner_run.set_aside(runs)
    assert (
        aside == runs / "set_aside_1"
        and (aside / "iter_64.pth").is_file()
        and (aside / "last_checkpoint").is_file()
    )
    assert xtuner_run.training_state(runs) == ("none", None)
    standin.save(runs / "iter_64.pth", 64, deepspeed=True, save_optimizer=False)
    assert xtuner_run.set_aside(runs) == runs / "set_aside_2"

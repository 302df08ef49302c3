"""The rehearsal: every full-track cell of notebooks 07, 08 and 09 executed on CPU (``make rehearsal``).

A class on InternStudio runs the full track (InternVL2-2B with LMDeploy and XTuner on a GPU), which CI cannot. So CI
runs the same cells with ``COURSE_TRACK=full`` against an InternStudio-shaped tree in a temp folder
(``tests/rehearsal/internstudio.py``: a model folder shaped like InternVL2-2B's, FoodieQA's raw layout, the two lab
environments), with stand-ins only at the GPU boundary: a fake GPU for ``env.cuda_info``, a no-op ``.cuda()``, an
``lmdeploy`` whose engine runs the mini InternVL, and an XTuner whose training checks its inputs and lays out a
finished run. A wrong name, path or argument in a full-track cell fails here; whether the real lmdeploy 0.18 and
xtuner 0.2 accept what the cells produce is checked by ``make test-full-stack``.

08 runs XTuner's training, the converter and LMDeploy's evaluation as programs of the two lab environments, so the
rehearsal goes through the same ``paths.lab_program`` and ``xtuner_run``/``evaluate`` command lines a class does. Its
mini-model cells (the mini LoRA, before/after, merge, demo) are nbval's: the rehearsal leaves them out.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbclient")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
import internstudio  # noqa: E402

# What a full-track cell prints when it could not do its work: none may appear in a rehearsal.
SKIPPED = (
    "skipped",
    "full track only",
    "not found",
    "waits for",
    "no checkpoint",
    "falling back",
    "Traceback",
)


def full_track_cells(nb) -> list[int]:
    """Indexes of the code cells that hold full-track code (they branch on ``ENV.full``)."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "ENV.full" in c.source]


def text_of(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", "") + out["data"].get("text/markdown", ""))
        elif out.get("output_type") == "error":
            parts.append("\n".join(out.get("traceback", [])))
    return "".join(parts)


# The cells of 08 that train and use the mini model and hold no full-track code. nbval runs them on the mini track with
# the same code and sizes (``mini_only_cells`` checks that each size is the same on every track), so the rehearsal
# leaves them out: the mini LoRA alone was 55 of the 94 seconds 08's rehearsal took, twice that on two busy cores.
MINI_MODEL_NAMES = ("load_mini_internvl", "lora_model", "reloaded")


def mini_only_cells(nb) -> list[int]:
    """Code cells that use the mini model (``MINI_MODEL_NAMES``) and never branch on ``ENV.full``."""
    cells = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and "ENV.full" not in c.source
        and any(n in c.source for n in MINI_MODEL_NAMES)
    ]
    for i in cells:
        for mini, full in re.findall(r"ENV\.pick\(mini=([^,]+), full=([^,)]+)", nb.cells[i].source):
            assert mini == full, (
                f"cell {i} sizes the mini model differently on the full track: mini={mini}, full={full}"
            )
    return cells


def rehearse(name: str, env: dict[str, str], leave_out=None):
    """Execute ``notebooks/<name>`` in a fresh kernel with ``env``; returns the executed notebook.

    ``leave_out(nb)`` names code cells not to execute (they stay in the returned notebook without outputs)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    skipped = {}
    for i in leave_out(nb) if leave_out else ():
        skipped[i], nb.cells[i] = nb.cells[i], nbformat.v4.new_markdown_cell(f"(left out: cell {i})")
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=900,
            allow_errors=False,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for i, cell in skipped.items():
        nb.cells[i] = cell
    return nb


def check_full_track(nb, name: str) -> int:
    cells = full_track_cells(nb)
    assert cells, f"{name}: no full-track cells found"
    assert "Track: FULL" in text_of(nb.cells[1]), text_of(nb.cells[1])
    for i in cells:
        out = text_of(nb.cells[i])
        hit = [marker for marker in SKIPPED if marker in out]
        assert not hit, f"{name} cell {i} did not run its full-track work ({hit}):\n{out[-2000:]}"
    return len(cells)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, str]:
    """The environment of a class on InternStudio, pointing into a temp tree shaped like it."""
    return internstudio.build(tmp_path_factory.mktemp("internstudio"))


def test_07_full_track_rehearsed(tree):
    env = dict(tree)  # 07 runs in the LMDeploy environment's kernel, with its torch build
    env["MLLM_COURSE_REHEARSAL_TORCH_CUDA"] = internstudio.declared_cuda(ROOT / "envs" / "lmdeploy.yml")
    nb = rehearse("07_lmdeploy_inference.ipynb", env)
    count = check_full_track(nb, "07")
    print(f"07: {count} full-track cells executed")


@pytest.mark.parametrize("original_lab", [False, True], ids=["course", "original-lab"])
def test_08_full_track_rehearsed(tree, tmp_path, original_lab):
    """08's full track, starting where a run that died after iter_64.pth left off (with a merged/ folder converted from
    that checkpoint): the training cell must resume a checkpoint in the layout the course's config writes; in the
    original lab's setting (its plain-file checkpoint, which --resume cannot read, and InternStudio's share holding
    only the converted sivqa_llava.json) it sets the checkpoint aside, trains anew and scores rebuilt choices. The
    conversion cell converts the finished run again."""
    env = dict(tree)
    runs = Path(env["MLLM_COURSE_WORK_DIR"]) / "08_xtuner"
    shutil.rmtree(runs, ignore_errors=True)
    save_optimizer = not original_lab
    if original_lab:
        env["MLLM_COURSE_FOODIEQA_DIR"] = str(
            internstudio.write_foodieqa(tmp_path / "FoodieQA", converted_only=True)
        )
    internstudio.write_interrupted_run(runs, save_optimizer=save_optimizer)
    nb = rehearse("08_xtuner_finetune.ipynb", env, leave_out=mini_only_cells)
    count = check_full_track(nb, "08")
    assert sorted(runs.glob("iter_*.pth")), "no XTuner checkpoint written"
    out = "".join(text_of(c) for c in nb.cells)
    if save_optimizer:
        assert (
            "iter_64.pth is from a run that did not finish: resuming from it" in out and "--resume" in out
        ), out[-3000:]
    else:
        assert "training again from iteration 0" in out and "--resume" not in out, out[-3000:]
        assert (runs / "set_aside_1" / "iter_64.pth").is_file()
        assert "sivqa_llava.json holds no wrong choices" in out, out[:3000]
    assert ": converted now" in out and "reused" not in out, out[-3000:]
    from course_utils import xtuner_run

    state, checkpoint = xtuner_run.training_state(runs)
    assert state == "finished" and checkpoint.name != "iter_64.pth", (state, checkpoint)
    assert xtuner_run.converted_from(runs / "merged")["checkpoint"] == checkpoint.name
    assert "still missing: nothing" in out, out[-3000:]
    assert "FoodieQA held-out" in out, out[-3000:]
    print(f"08: {count} full-track cells executed")


def test_09_full_track_rehearsed(tree):
    env = tree
    nb = rehearse("09_efficient_deployment.ipynb", env)
    count = check_full_track(nb, "09")
    awq = Path(env["MLLM_COURSE_WORK_DIR"]) / "09_internvl2_2b_w4a16"
    assert (awq / "config.json").is_file(), "no W4A16 folder written by `lmdeploy lite auto_awq`"
    out = "".join(text_of(c) for c in nb.cells)
    assert "W4A16 + KV int8" in out and "concurrent" in out, out[-3000:]
    print(f"09: {count} full-track cells executed")


def test_mini_only_cells_are_the_mini_lora_and_its_uses():
    nb = nbformat.read(NOTEBOOKS / "08_xtuner_finetune.ipynb", as_version=4)
    cells = mini_only_cells(nb)
    sources = [nb.cells[i].source for i in cells]
    assert any("finetune.lora_finetune(" in s for s in sources) and any(
        "load_mini_internvl()" in s for s in sources
    )
    assert not set(cells) & set(full_track_cells(nb))
    bad = nbformat.v4.new_code_cell("lora_model(ENV.pick(mini=600, full=2000))")
    nb.cells.append(bad)
    with pytest.raises(AssertionError, match="differently on the full track"):
        mini_only_cells(nb)


def test_08_takes_the_share_with_only_sivqa_llava(tmp_path, monkeypatch):
    """FoodieQA as InternStudio's share holds it (the original lab's converted file and the photos): the full track is
    chosen (it used to be refused because sivqa_tidy.json was missing)."""
    from course_utils import env as course_env

    tree = internstudio.build(tmp_path / "tree")
    tree["MLLM_COURSE_FOODIEQA_DIR"] = str(
        internstudio.write_foodieqa(tmp_path / "FoodieQA", converted_only=True)
    )
    for key, value in tree.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(
        course_env, "cuda_info", lambda: None
    )  # the course kernel's CUDA 13 torch on a 12.2 driver
    track, reason = course_env.choose_track("08")
    assert track == "full", reason


@pytest.mark.parametrize(
    "driver, kernel_build, track",
    [("12.2", "13.0", "full"), ("11.8", "13.0", "transformers")],
)
def test_08_and_09_ask_the_lab_environments_for_the_gpu(tmp_path, monkeypatch, driver, kernel_build, track):
    """InternStudio's driver (CUDA 12.2) cannot start the course kernel's CUDA 13 torch, but the lab environments'
    CUDA 12 builds run on it: 08 and 09 take the full track (they used to take the transformers track there); a
    driver too old for the lab environments' builds as well (11.8) gives the reason."""
    from course_utils import cuda_builds
    from course_utils import env as course_env

    tree = internstudio.build(tmp_path)
    for key in ("MLLM_COURSE_MODEL_DIR", "MLLM_COURSE_FOODIEQA_DIR", "MLLM_COURSE_XTUNER_ENV", "MLLM_COURSE_LMDEPLOY_ENV",
                "COURSE_TRACK"):  # fmt: skip
        monkeypatch.setenv(key, tree[key])
    internstudio.write_nvidia_smi(tmp_path / "bin", driver)
    monkeypatch.setenv("PATH", tree["PATH"])
    monkeypatch.setenv("MLLM_COURSE_REHEARSAL_DRIVER", driver)
    kernel_sees = cuda_builds.build_problem(kernel_build, tuple(int(x) for x in driver.split("."))) is None
    monkeypatch.setattr(course_env, "cuda_info", lambda: ("A100", 40.0) if kernel_sees else None)
    for notebook in ("08", "09"):
        got, reason = course_env.choose_track(notebook)
        assert got == track, reason
        if track != "full":
            assert "build of torch, but the driver supports CUDA 11.8" in reason, reason

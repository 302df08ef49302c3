"""The transformers track (real weights through plain transformers) executed on tiny checkpoints of both formats.

CI has no weights, so ``tests/rehearsal/laptop.py`` builds tiny random-weight InternVL folders: the native format
from transformers' own ``InternVLConfig``, the original InternVL2 format with the course's stand-in remote code (with
InternVL2-2B's InternLM2 LLM, and with InternVL2-1B's Qwen2 for 07). 07
runs whole with ``COURSE_TRACK=transformers`` (its engine is the real-model engine from the start); 08 and 09 run
their setup cell and their real-model sections, which are self-contained. Same rule as the rehearsal: a real-model
cell that raises or prints that it did not do its work fails. These runs check the path, the shapes and the prompts;
a random tiny model's answers and accuracies mean nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("nbclient")

import nbformat  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
import laptop  # noqa: E402
from test_rehearsal import NOTEBOOKS, SKIPPED, rehearse, text_of  # noqa: E402

REAL_SKIPPED = (*SKIPPED, "this section runs on the transformers track", "mini model knows only")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    return laptop.build(tmp_path_factory.mktemp("laptop"))


def real_cells(nb) -> list[int]:
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and ("ENV.real" in c.source or "realmodel.load" in c.source)
    ]


def run(name: str, folder: Path, tmp_path: Path, *, only_real: bool):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if only_real:
        nb.cells = [nb.cells[0], nb.cells[1], *(nb.cells[i] for i in real_cells(nb))]
    env = {
        "COURSE_TRACK": "transformers",
        "MLLM_COURSE_MODEL_DIR": str(folder),
        "MLLM_COURSE_WORK_DIR": str(tmp_path / "work"),
        "MLLM_COURSE_FOODIEQA_DIR": str(tmp_path / "no-foodieqa"),
    }
    path = tmp_path / name
    nbformat.write(nb, path)
    executed = rehearse(str(path), env)  # NOTEBOOKS / absolute path = the absolute path
    assert "Track: TRANSFORMERS" in text_of(executed.cells[1]), text_of(executed.cells[1])
    cells = real_cells(executed)
    assert cells, f"{name}: no real-model cells"
    for i in cells:
        out = text_of(executed.cells[i])
        hit = [marker for marker in REAL_SKIPPED if marker in out]
        assert not hit, f"{name} cell {i} did not run its real-model work ({hit}):\n{out[-2000:]}"
    return "".join(text_of(c) for c in executed.cells)


@pytest.mark.parametrize("fmt", ["native", "remote", "remote-qwen2"])
def test_07_on_real_weights(checkpoints, tmp_path, fmt):
    """07 whole, on each format; ``remote-qwen2`` is InternVL2-1B's layout (its Qwen2 LLM crashed the first answer)."""
    out = run("07_lmdeploy_inference.ipynb", checkpoints[fmt], tmp_path, only_real=False)
    assert (
        f"{fmt.split('-')[0]} format" in out
        and "tokens/s (transformers, cpu)" in out
        and "peak memory of this kernel" in out
    )
    assert "the demo answered:" in out


@pytest.mark.parametrize("fmt", ["native", "remote"])
def test_08_before_on_real_weights(checkpoints, tmp_path, fmt):
    out = run("08_xtuner_finetune.ipynb", checkpoints[fmt], tmp_path, only_real=True)
    assert (
        "before: log-lik" in out
        and "mini-food drawings" in out
        and "XTuner's LoRA recipe at this speed" in out
    )


@pytest.mark.parametrize("fmt", ["native", "remote"])
def test_09_cache_and_quantization_on_real_weights(checkpoints, tmp_path, fmt):
    out = run("09_efficient_deployment.ipynb", checkpoints[fmt], tmp_path, only_real=True)
    assert "measured" in out and "KV int4" in out and "AWQ W4" in out

"""The suite's file order (tests/heavy_first.py): the files it names exist, and producers come before consumers."""

from pathlib import Path

from tests import heavy_first

ROOT = Path(__file__).resolve().parents[1]


def test_every_file_named_exists():
    missing = [path for path in heavy_first.HEAVY_FIRST if not (ROOT / path).is_file()]
    assert not missing, f"renamed or removed: {missing} (update tests/heavy_first.py)"


def test_the_notebooks_that_store_a_model_run_before_those_that_load_it():
    order = [
        heavy_first.rank(f"notebooks/{name}.ipynb::Cell 0")
        for name in ("01_mllm_and_alignment", "06_internvl", "02_qformer_blip2", "05_qformer_vs_mlp")
    ]
    assert order == sorted(order)
    assert heavy_first.rank("tests/test_data.py::test_x") == len(heavy_first.HEAVY_FIRST)

"""nbval's output wait is lengthened in every pytest run, one that collects only notebooks included (tests/nbval_timeout.py)."""

import os
import subprocess
import sys
from pathlib import Path

from tests import nbval_timeout

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
def pytest_collection_finish(session):
    print("OUTPUT_TIMEOUTS", sorted({getattr(item, "output_timeout", None) for item in session.items}))
"""


def test_a_notebook_only_run_waits_60_s_for_output(tmp_path):
    (tmp_path / "output_timeout_probe.py").write_text(PROBE)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "output_timeout_probe",
            "-p",
            "no:xdist",
            "--nbval-lax",
            "notebooks/00_welcome_and_setup.ipynb",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"OUTPUT_TIMEOUTS [{nbval_timeout.OUTPUT_TIMEOUT_S}]" in run.stdout

"""make test-kernel's second kernel and robustness.py's kernels (benchmarks/cpu_kernels.py): never above the CPU's own."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "cpu_kernels", Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_kernels.py"
)
cpu_kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_kernels)


def test_kernels_stop_at_the_cpus_own():
    assert cpu_kernels.available("AVX512") == ["default", "avx2", "avx512"]
    assert cpu_kernels.available("avx2") == ["default", "avx2"]
    assert cpu_kernels.available("DEFAULT") == ["default"]
    assert cpu_kernels.available("ZVECTOR") == [
        "default"
    ]  # not x86: only the non-vectorised kernels are named


def test_the_second_kernel_is_the_best_one_below():
    assert cpu_kernels.second("AVX512") == "avx2"
    assert cpu_kernels.second("AVX2") == "default"
    assert cpu_kernels.second("DEFAULT") == "default"


def test_this_machine_runs_its_own_kernel():
    here = cpu_kernels.available()
    assert here[0] == "default" and cpu_kernels.native() in (*here, "zvector", "vsx")

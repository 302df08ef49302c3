"""torch's CPU kernels on this machine: which ``ATEN_CPU_CAPABILITY`` values can run here, and the second kernel CI uses.

    python benchmarks/cpu_kernels.py            # the kernels this CPU runs, best last: e.g. "default avx2"
    python benchmarks/cpu_kernels.py second     # the best kernel below this CPU's own (what make test-kernel uses)

``ATEN_CPU_CAPABILITY`` can only *lower* torch's kernels. Set above what the CPU has, torch still dispatches to those
kernels and the process dies on the first illegal instruction (measured on an AMD EPYC without AVX-512, torch 2.13:
``ATEN_CPU_CAPABILITY=avx512`` kills the kernel within seconds while ``get_cpu_capability()`` reports ``AVX512``). So
``make test-kernel`` runs under the best kernel *below* the machine's own (``avx2`` on an AVX-512 CPU, ``default`` on an
AVX2 one: a second rounding on every machine), and ``robustness.py`` skips kernels the CPU lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys

ORDER = ("default", "avx2", "avx512")  # ATEN_CPU_CAPABILITY values, weakest first (x86)


def native() -> str:
    """This CPU's own kernel as ``ATEN_CPU_CAPABILITY`` spells it, asked of a fresh python without the variable."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().lower()


def available(best: str | None = None) -> list[str]:
    """The kernels that run here, weakest first: ``ORDER`` up to ``best`` (this CPU's own; ``default`` only when torch
    names one outside ``ORDER``, e.g. ``zvector`` or ``vsx``)."""
    best = (best or native()).lower()
    return list(ORDER[: ORDER.index(best) + 1]) if best in ORDER else ["default"]


def second(best: str | None = None) -> str:
    """The best kernel below this CPU's own, or ``default`` when there is none below."""
    kernels = available(best)
    return kernels[-2] if len(kernels) > 1 else kernels[0]


if __name__ == "__main__":
    print(second() if sys.argv[1:] == ["second"] else " ".join(available()))

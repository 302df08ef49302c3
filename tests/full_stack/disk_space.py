"""Stop `make test-full-stack` early, with a clear message, when the disk cannot hold a GPU-lab venv.

    python tests/full_stack/disk_space.py GB VENV

A lab venv holds a CUDA build of torch and its NVIDIA libraries (8.3 GB for lmdeploy's, 6.5 GB for XTuner's,
measured in the README). Without this check, pip fails halfway through with "[Errno 28] No space left on device"
and leaves a half-installed venv.
Standard library only: it runs before any venv exists.
"""

import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    needed_gb, venv = float(argv[1]), argv[2]
    where = Path(venv).resolve().parent
    free_gb = shutil.disk_usage(where).free / 2**30
    if free_gb < needed_gb:
        print(
            f"make test-full-stack: {venv} needs about {needed_gb:g} GB of free disk space, and {where} has "
            f"{free_gb:.1f} GB free. Free some space (e.g. `make clean` in other clones of the course, or remove "
            f"the other lab venv once it is checked), or set FULL_STACK_GB to try with less.",
            file=sys.stderr,
        )
        return 1
    print(f">> {free_gb:.0f} GB free for {venv} (about {needed_gb:g} GB needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

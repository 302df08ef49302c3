"""``xtuner train ...`` → the stand-in train tool (xtuner's entry point runs its tools/train.py)."""

import sys

from xtuner.tools import train

if __name__ == "__main__":
    if sys.argv[1:2] != ["train"]:
        raise SystemExit(f"rehearsal stand-in: only `xtuner train` is rehearsed, got {sys.argv[1:]}")
    sys.exit(train.main(sys.argv[2:]))

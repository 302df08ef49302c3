"""Stand-in for XTuner's ``convert_to_official.py`` (CONFIG PTH SAVE_PATH): writes the base model's weights, config and
tokenizer into SAVE_PATH but not its ``*.py`` code files, which is what the real converter leaves out."""

import argparse
import shutil
import sys
from pathlib import Path

from xtuner.tools.train import settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser("convert_to_official (rehearsal stand-in)")
    parser.add_argument("config")
    parser.add_argument("pth_model")
    parser.add_argument("save_path")
    args = parser.parse_args(argv)
    if not Path(args.pth_model).exists():
        raise SystemExit(f"{args.pth_model}: no such checkpoint")
    base, out = Path(settings(Path(args.config))["path"]), Path(args.save_path)
    out.mkdir(parents=True, exist_ok=True)
    for src in base.iterdir():
        if src.is_file() and src.suffix != ".py":
            shutil.copy(src, out / src.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stand-in for XTuner's ``convert_to_official.py`` (CONFIG PTH SAVE_PATH): writes the base model's weights, config and
tokenizer into SAVE_PATH but not its ``*.py`` code files, which is what the real converter leaves out. It reads the
checkpoint as xtuner's ``guess_load_checkpoint`` does: a file with ``torch.load`` (its ``state_dict``), a DeepSpeed
folder through its ``mp_rank_*_model_states.pt``."""

import argparse
import shutil
import sys
from pathlib import Path

import torch

from xtuner.tools.train import settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser("convert_to_official (rehearsal stand-in)")
    parser.add_argument("config")
    parser.add_argument("pth_model")
    parser.add_argument("save_path")
    args = parser.parse_args(argv)
    pth = Path(args.pth_model)
    if pth.is_file():
        assert "state_dict" in torch.load(pth, weights_only=False), pth
    elif pth.is_dir():
        states = sorted(pth.glob("mp_rank_*_model_states.pt"))
        if not states:
            raise SystemExit(f"{pth}: not a DeepSpeed checkpoint (no mp_rank_*_model_states.pt)")
        assert "module" in torch.load(states[0], weights_only=False), pth
    else:
        raise SystemExit(f"FileNotFoundError: Cannot find {pth}")
    base, out = Path(settings(Path(args.config))["path"]), Path(args.save_path)
    out.mkdir(parents=True, exist_ok=True)
    for src in base.iterdir():
        if src.is_file() and src.suffix != ".py":
            shutil.copy(src, out / src.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

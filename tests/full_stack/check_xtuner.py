"""Full-stack check (not part of `make test`): our XTuner config against the real xtuner of envs/xtuner.yml.

    make test-full-stack          # builds .venv-xtuner from the pins, then runs this file

Loads configs/xtuner/...food.py with mmengine (as `xtuner train` does) and checks that it resolves to xtuner's
classes with the seed's settings. Training itself needs a GPU.
"""

from pathlib import Path

from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    ROOT / "configs/xtuner/internvl_v2_internlm2_2b_lora_finetune_food.py"
)  # = course_utils.finetune.CONFIG


def main() -> None:
    import xtuner
    from xtuner.dataset import InternVL_V1_5_Dataset
    from xtuner.model import InternVL_V1_5

    print("xtuner", xtuner.__version__)
    cfg = Config.fromfile(str(CONFIG))
    assert cfg.model.type is InternVL_V1_5, cfg.model.type
    assert cfg.model.freeze_llm and cfg.model.freeze_visual_encoder
    assert (cfg.model.llm_lora.r, cfg.model.llm_lora.lora_alpha) == (128, 256)
    assert cfg.train_dataloader.dataset.type is InternVL_V1_5_Dataset
    assert cfg.train_dataloader.batch_size == 4 and cfg.optim_wrapper.accumulative_counts == 2
    assert cfg.optim_wrapper.optimizer.lr == 3e-5 and cfg.train_cfg.max_epochs == 10
    assert cfg.default_hooks.checkpoint.interval == 64
    assert cfg.train_dataloader.dataset.data_paths.endswith("sivqa_llava.json")

    # a copy with other values, as notebook 08 writes one for other machines or your own photos
    from course_utils import finetune

    mine = finetune.configure(ROOT / ".xtuner-check-config.py", str(CONFIG), overwrite=True,
                              path="/models/InternVL2-2B", data_path="/data/mine.json", lora_rank=16)  # fmt: skip
    try:
        cfg = Config.fromfile(str(mine))
        assert cfg.model.model_path == "/models/InternVL2-2B" and cfg.model.llm_lora.r == 16
        assert cfg.train_dataloader.dataset.data_paths == "/data/mine.json"
    finally:
        mine.unlink()
    _check_commands()
    print("xtuner full-stack check: OK")


def _check_commands() -> None:
    """The programs notebook 08 runs in this environment exist: `xtuner` and the converter module (no checkout)."""
    import subprocess
    import sys

    from course_utils import finetune

    xtuner = Path(sys.executable).parent / "xtuner"
    assert xtuner.is_file(), xtuner
    cmd = finetune.convert_command("cfg.py", "iter_1.pth", "out", python=sys.executable)
    run = subprocess.run(cmd[:3] + ["--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "trained_model_pth" in run.stdout, run.stderr[-2000:]


if __name__ == "__main__":
    main()

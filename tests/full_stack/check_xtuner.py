"""Full-stack check (not part of `make test`): our XTuner config against the real xtuner of envs/xtuner.yml.

    make test-full-stack          # builds .venv-xtuner from the pins, then runs this file

Loads configs/xtuner/...food.py with mmengine (as `xtuner train` does) and checks that it resolves to xtuner's
classes with the original InternVL2 lab's settings; parses the train and convert command lines notebook 08 runs with
xtuner's own argument parsers. Training itself needs a GPU.
"""

from pathlib import Path

from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    ROOT / "configs/xtuner/internvl_v2_internlm2_2b_lora_finetune_food.py"
)  # = course_utils.xtuner_run.CONFIG


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
    from course_utils import xtuner_run

    mine = xtuner_run.configure(ROOT / ".xtuner-check-config.py", str(CONFIG), overwrite=True,
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
    """The command lines notebook 08 runs in this environment, read by the real programs (nothing is trained):
    the train command by xtuner's own argparse, `--deepspeed deepspeed_zero2` resolved to xtuner's bundled JSON (and
    what precision it means), and the converter module's `--help`."""
    import json
    import subprocess
    import sys

    import deepspeed
    from xtuner.configs import cfgs_name_path
    from xtuner.tools import train, utils

    from course_utils import xtuner_run

    assert deepspeed.__version__ == "0.16.2", deepspeed.__version__
    cmd = xtuner_run.train_command(CONFIG, "/tmp/work_dir", python=sys.executable)
    assert cmd[1:3] == ["-m", "xtuner.tools.train"]
    run = subprocess.run(cmd[:3] + ["--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "--deepspeed" in run.stdout, run.stderr[-2000:]
    argv, sys.argv = sys.argv, ["train.py", *cmd[3:]]
    try:
        args = train.parse_args()
    finally:
        sys.argv = argv
    assert (args.config, args.work_dir, args.deepspeed) == (
        str(CONFIG),
        "/tmp/work_dir",
        "deepspeed_zero2",
    ), args
    resumed = xtuner_run.train_command(
        CONFIG, "/tmp/work_dir", resume="/tmp/work_dir/iter_64.pth", python=sys.executable
    )
    argv, sys.argv = sys.argv, ["train.py", *resumed[3:]]
    try:
        assert (
            train.parse_args().resume == "/tmp/work_dir/iter_64.pth"
        )  # notebook 08 resumes an unfinished run
    finally:
        sys.argv = argv
    ds = json.loads(Path(cfgs_name_path[args.deepspeed]).read_text())
    assert ds["zero_optimization"]["stage"] == 2 and ds["fp16"]["enabled"] == ds["bf16"]["enabled"] == "auto"

    class A100:  # what xtuner asks the device, to pick the precision on an A100 (bf16) and a V100 (fp16)
        bf16 = True

        def is_available(self):
            return True

        def is_bf16_supported(self):
            return self.bf16

    real = utils.get_torch_device
    try:
        utils.get_torch_device = A100
        on_a100 = utils.auto_dtype_of_deepspeed_config(json.loads(json.dumps(ds)))
        A100.bf16 = False
        on_v100 = utils.auto_dtype_of_deepspeed_config(json.loads(json.dumps(ds)))
    finally:
        utils.get_torch_device = real
    assert (on_a100["bf16"]["enabled"], on_a100["fp16"]["enabled"]) == (True, False), on_a100
    assert (on_v100["bf16"]["enabled"], on_v100["fp16"]["enabled"]) == (False, True), on_v100

    xtuner = Path(sys.executable).parent / "xtuner"
    assert xtuner.is_file(), xtuner
    cmd = xtuner_run.convert_command("cfg.py", "iter_1.pth", "out", python=sys.executable)
    run = subprocess.run(cmd[:3] + ["--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "trained_model_pth" in run.stdout, run.stderr[-2000:]


if __name__ == "__main__":
    main()

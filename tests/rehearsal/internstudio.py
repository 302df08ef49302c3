"""An InternStudio-shaped tree for the CPU rehearsal of the full track (notebooks 07, 08 and 09).

``build(root)`` lays out, under ``root``, what a class machine has, and returns the environment variables that point
the course at it:

* ``share/new_models/OpenGVLab/InternVL2-2B``: a model folder shaped like InternVL2-2B's (``config.json`` with its
  ``auto_map``, remote code files, weights, tokenizer), holding the course's stand-in remote code (a model small
  enough for a CPU; see ``internvl2_remote/``);
* ``share/datasets/FoodieQA``: FoodieQA's raw layout, ``sivqa_tidy.json`` + photos (the mini-food photos stand in;
  ``write_foodieqa(..., converted_only=True)`` writes the layout the original lab left, only ``sivqa_llava.json``);
* ``conda/envs/mllm-course-{xtuner,lmdeploy}/bin/``: the two lab environments' programs. They run this
  interpreter with stand-ins at the GPU boundary: ``standins/`` (a fake GPU for ``env.cuda_info``, a no-op
  ``.cuda()``, and an ``lmdeploy`` whose engine runs the mini InternVL) and, for XTuner, ``standins_xtuner/`` (a
  ``train`` that checks its config and inputs and writes checkpoints and a log the way XTuner lays them out, and a
  converter that writes a model folder without the remote code files, as XTuner's does).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
STANDINS_XTUNER = HERE / "standins_xtuner"
REMOTE = HERE / "internvl2_remote"
MODEL = "share/new_models/OpenGVLab/InternVL2-2B"
FOODIEQA = "share/datasets/FoodieQA"


def write_model(folder: Path, llm: str = "internlm2") -> Path:
    """A model folder shaped like InternVL2-2B's (``llm="internlm2"``: InternLM2, remote code) or InternVL2-1B's
    (``llm="qwen2"``: transformers' Qwen2 inside the same remote code, the ``Hermes-2`` template), with the course's
    stand-in remote code."""
    import importlib.util

    from course_utils import remote_code
    from course_utils.mini.tokenizer import build_tokenizer

    remote_code.install_import_shims()  # the stand-in imports timm's DropPath, as the published code does

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("configuration_internvl_chat.py", "modeling_internvl_chat.py", "conversation.py"):
        shutil.copy(REMOTE / name, folder / name)
    tokenizer = build_tokenizer()
    package = f"internvl2_standin_{os.getpid()}"
    spec = importlib.util.spec_from_file_location(
        package, REMOTE / "__init__.py", submodule_search_locations=[str(REMOTE)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    spec.loader.exec_module(module)
    modeling = __import__(f"{package}.modeling_internvl_chat", fromlist=["*"])
    if llm == "qwen2":  # the fields of InternVL2-1B's llm_config that matter here, shrunk
        llm_config = {"architectures": ["Qwen2ForCausalLM"], "vocab_size": len(tokenizer), "hidden_size": 32,
                      "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "max_position_embeddings": 8192, "tie_word_embeddings": False,
                      "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
        config = modeling.InternVLChatConfig(llm_config=llm_config, template="Hermes-2")
    elif llm == "internlm2":
        config = modeling.InternVLChatConfig(llm_config={"vocab_size": len(tokenizer), "hidden_size": 32})
    else:
        raise ValueError(f"llm: 'internlm2' or 'qwen2', not {llm!r}")
    config.architectures = ["InternVLChatModel"]
    config.auto_map = {
        "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
        "AutoModel": "modeling_internvl_chat.InternVLChatModel",
        "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
    }
    import torch

    torch.manual_seed(0)
    model = modeling.InternVLChatModel(config)
    model.post_init()  # the builder's call: the remote __init__ leaves it out, as the published code does
    model.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    saved["llm_config"]["attn_implementation"] = "flash_attention_2"  # as InternVL's training code writes it
    (folder / "config.json").write_text(json.dumps(saved, indent=2), encoding="utf-8")
    tokenizer.save_pretrained(folder)
    return folder


def write_foodieqa(folder: Path, *, converted_only: bool = False) -> Path:
    """FoodieQA's raw layout (``sivqa_tidy.json`` + photos), or only the original lab's converted file."""
    from course_utils import foodieqa, minifood

    items = minifood.make_minifood(folder, dishes=8, photos_per_dish=4, seed=3)
    foodieqa.write_json(items, folder / "sivqa_tidy.json")
    if converted_only:
        foodieqa.main(["convert", str(folder / "sivqa_tidy.json"), str(folder / "sivqa_llava.json")])
        (folder / "sivqa_tidy.json").unlink()
    return folder


ROOT = HERE.parents[1]
DRIVER = "12.2"  # InternStudio's Cuda12.2 image: the CUDA version its NVIDIA driver supports


def declared_cuda(env_file: Path) -> str:
    """The CUDA build of the torch an environment file pins: ``+cu128`` → "12.8"; a plain PyPI pin of torch 2.12 or
    newer → "13.0" (PyPI's Linux wheels of torch 2.12 and 2.13 are CUDA 13 builds: their metadata requires
    ``cuda-toolkit==13.0.*``)."""
    import re

    pin = re.search(r"^\s*-\s*torch==([0-9.]+)(\+cu(\d+))?\s*$", env_file.read_text(encoding="utf-8"), re.M)
    if pin is None:
        raise ValueError(f"{env_file}: no torch pin")
    if pin.group(3):
        return f"{pin.group(3)[:-1]}.{pin.group(3)[-1]}"
    major, minor = (int(x) for x in pin.group(1).split(".")[:2])
    if (major, minor) >= (2, 12):
        return "13.0"
    raise ValueError(
        f"{env_file}: torch {pin.group(1)} from PyPI: its CUDA build is not known to the rehearsal"
    )


def _program(path: Path, pythonpath: list[Path], argv_prefix: str = "", torch_cuda: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    joined = os.pathsep.join(str(p) for p in pythonpath)
    path.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="{joined}${{PYTHONPATH:+:$PYTHONPATH}}" MLLM_COURSE_REHEARSAL=1 '
        f"MLLM_COURSE_REHEARSAL_TORCH_CUDA={torch_cuda} "
        f'exec "{sys.executable}" {argv_prefix}"$@"\n'
    )
    path.chmod(0o755)


def write_nvidia_smi(bin_dir: Path, driver: str = DRIVER) -> Path:
    """An ``nvidia-smi`` that reports a driver supporting CUDA ``driver`` and one 40 GB GPU (a 50 % A100)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'case "$1" in --query-gpu=*) echo "NVIDIA A100-SXM4-80GB (rehearsal), 40960"; exit 0;; esac\n'
        f"echo '| NVIDIA-SMI 535.54.03   Driver Version: 535.54.03   CUDA Version: {driver}     |'\n"
    )
    smi.chmod(0o755)
    return smi


def write_envs(root: Path) -> dict[str, Path]:
    """The two lab environments: their python (and ``xtuner``/``lmdeploy``) run this interpreter with stand-ins."""
    envs = {}
    for lab, extra in (("xtuner", [STANDINS_XTUNER]), ("lmdeploy", [])):
        env = root / "conda" / "envs" / f"mllm-course-{lab}"
        built = declared_cuda(ROOT / "envs" / f"{lab}.yml")
        _program(env / "bin" / "python", [STANDINS, *extra], torch_cuda=built)
        _program(env / "bin" / lab, [STANDINS, *extra], f"-m {lab} ", torch_cuda=built)
        envs[lab] = env
    return envs


def write_interrupted_run(runs: Path, *, save_optimizer: bool = True) -> None:
    """What a training run that died after its first checkpoint leaves (out of GPU memory at iteration 70, say):
    ``iter_64.pth`` in the layout mmengine writes with DeepSpeed (a folder with the optimizer state, or with
    ``save_optimizer=False``, the original lab's config, a plain file of weights; written by the XTuner stand-in's own
    ``save``) and no record of a finished run; and a ``merged/`` folder converted from that checkpoint by an earlier
    visit to the conversion cell."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "standin_train", STANDINS_XTUNER / "xtuner" / "tools" / "train.py"
    )
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    runs.mkdir(parents=True, exist_ok=True)
    train.save(runs / "iter_64.pth", 64, deepspeed=True, save_optimizer=save_optimizer)
    merged = runs / "merged"
    merged.mkdir(parents=True, exist_ok=True)
    (merged / "course_converted_from.json").write_text(
        json.dumps({"checkpoint": "iter_64.pth", "mtime": 0.0})
    )


def build(root: Path) -> dict[str, str]:
    """Lay out the tree under ``root``; return the environment variables for a rehearsal run."""
    root = Path(root)
    model = write_model(root / MODEL)
    food = write_foodieqa(root / FOODIEQA)
    envs = write_envs(root)
    write_nvidia_smi(root / "bin")
    return {
        "COURSE_TRACK": "full",
        "MLLM_COURSE_REHEARSAL": "1",
        "MLLM_COURSE_REHEARSAL_DRIVER": DRIVER,
        # the notebook kernel: the course environment's torch (07 runs in the LMDeploy kernel: rehearse() says so)
        "MLLM_COURSE_REHEARSAL_TORCH_CUDA": declared_cuda(ROOT / "environment.yml"),
        "PATH": os.pathsep.join([str(root / "bin"), os.environ.get("PATH", "")]),
        "MLLM_COURSE_MODEL_DIR": str(model),
        "MLLM_COURSE_FOODIEQA_DIR": str(food),
        "MLLM_COURSE_XTUNER_ENV": str(envs["xtuner"]),
        "MLLM_COURSE_LMDEPLOY_ENV": str(envs["lmdeploy"]),
        "MLLM_COURSE_WORK_DIR": str(root / "work"),
        "PYTHONPATH": os.pathsep.join([str(STANDINS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }

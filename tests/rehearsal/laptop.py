"""Tiny random-weight InternVL checkpoints in both formats, for the ``transformers`` track's tests (no weights, no hub).

* ``write_native(folder)``: transformers' own ``InternVLConfig`` / ``InternVLForConditionalGeneration`` (so the
  architecture code is the library's), saved in bfloat16 like the released ``-hf`` folders, with the processor files
  laid out as those folders have them (``preprocessor_config.json`` naming ``GotOcr2ImageProcessorFast``, which needs
  torchvision, and ``processor_config.json`` naming ``InternVLProcessor``).
* ``write_remote(folder)``: InternVL2's original format: ``config.json`` with ``auto_map`` into the folder's own
  ``modeling_internvl_chat.py``, which is the course's stand-in (``internvl2_remote/``; InternVL's real remote code is
  never committed), loaded with ``trust_remote_code=True``.

Both keep the real tile (448 px, patch 14, pixel shuffle 0.5: 256 tokens per tile) and shrink everything else, the
original format's tile budget included (``few_tiles``: at most 2 tiles + the thumbnail where a released folder's
``max_dynamic_patch`` is 12, so a photo costs the stand-in's eager attention 768 image tokens, not up to 3,328; the
tiling code path is the same). A random
LLM never picks its end token, so every answer would run to ``max_new_tokens`` (256 on the real-weight tracks) while a
trained model ends after a sentence: ``ends_its_answers`` gives the end tokens' rows of the LM head ten times the
typical norm, so about a third of the steps end the answer (a few tokens each, as a real model's short answers).
"""

from __future__ import annotations

import json
from pathlib import Path

import internstudio


def write_remote(folder: Path, llm: str = "internlm2") -> Path:
    """InternVL2's original layout with the stand-in remote code (``internstudio.write_model``): InternVL2-2B's
    InternLM2 LLM, or InternVL2-1B's Qwen2 with ``llm="qwen2"``."""
    return internstudio.write_model(Path(folder), llm=llm)


def write_native(folder: Path, seed: int = 0) -> Path:
    """A native InternVL folder shaped like a released ``-hf`` one, random weights, bfloat16."""
    import torch
    from transformers import (
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLVisionConfig,
        Qwen2Config,
    )

    from course_utils import mini
    from course_utils.mini.tokenizer import IMG_CONTEXT

    folder = Path(folder)
    tokenizer = mini.build_tokenizer()
    vision = InternVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                  image_size=[448, 448], patch_size=[14, 14], use_mean_pooling=False)  # fmt: skip
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                       tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, architectures=["Qwen2ForCausalLM"])  # fmt: skip
    config = InternVLConfig(vision_config=vision, text_config=text, image_seq_length=256, downsample_ratio=0.5,
                            image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
                            vision_feature_layer=-1, vision_feature_select_strategy="default")  # fmt: skip
    config.architectures = ["InternVLForConditionalGeneration"]
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.chat_template = mini.chat_template(IMG_CONTEXT)
    tokenizer.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "GotOcr2ImageProcessorFast", "processor_class": "InternVLProcessor",
        "crop_to_patches": False, "min_patches": 1, "max_patches": 12, "size": {"height": 448, "width": 448},
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "rescale_factor": 1 / 255, "resample": 3,
    }, indent=2), encoding="utf-8")  # fmt: skip
    (folder / "processor_config.json").write_text(
        json.dumps({"image_seq_length": 256, "processor_class": "InternVLProcessor"}), encoding="utf-8"
    )
    return folder


def ends_its_answers(folder: Path, scale: float = 10.0, seed: int = 0) -> Path:
    """Make the end tokens (``<|im_end|>`` and the tokenizer's eos) likely at every step of the random LLM in
    ``folder``: their LM-head rows (the tied embedding rows where the head is tied) become random directions ``scale``
    times the rows' mean norm."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    ends = {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id} - {None}
    path = folder / "model.safetensors"
    weights = load_file(path)
    heads = [k for k in weights if k.endswith(("lm_head.weight", "language_model.output.weight"))]
    # a folder saved with tied embeddings (the native one) holds the head as the input embedding matrix
    (head,) = heads or [k for k in weights if k.endswith(("embed_tokens.weight", "tok_embeddings.weight"))]
    w = weights[head].float()
    g = torch.Generator().manual_seed(seed)
    for i in ends:
        row = torch.randn(w.shape[1], generator=g)
        w[i] = row / row.norm() * w.norm(dim=1).mean() * scale
    weights[head] = w.to(weights[head].dtype)
    save_file(weights, path, metadata={"format": "pt"})
    return folder


def few_tiles(folder: Path, max_tiles: int = 2) -> Path:
    """Lower an original-format folder's tile budget (``max_dynamic_patch`` in its ``config.json``, 12 in a released
    one). A native folder's budget is the course's choice (``checkpoint.inspect``: 12, as the ``-hf`` folders store
    no tiling of their own), so it is left as it is."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if "max_dynamic_patch" in config:
        config["max_dynamic_patch"] = max_tiles
        (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def build(root: Path) -> dict[str, Path]:
    """Both formats under ``root``: ``{"native": folder, "remote": folder, "remote-qwen2": folder}`` (the original
    format with InternVL2-2B's LLM, and with InternVL2-1B's)."""
    root = Path(root)
    folders = {
        "native": write_native(root / "InternVL-tiny-hf"),
        "remote": write_remote(root / "InternVL2-tiny"),
        "remote-qwen2": write_remote(root / "InternVL2-1B-tiny", llm="qwen2"),
    }
    return {fmt: few_tiles(ends_its_answers(folder)) for fmt, folder in folders.items()}

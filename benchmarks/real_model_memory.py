"""The memory the transformers track asks for, for the checkpoints the README recommends (no weights needed).

    python benchmarks/real_model_memory.py

Each row is ``course_utils.checkpoint.estimate`` on the published configuration of a model: the language model's
layers, KV heads and head size (its config.json, ``llm_config`` or ``text_config``) and the parameter count (the size
of the published safetensors files at 2 bytes per bfloat16 value: InternVL2-2B 4.41 GB, InternVL2-1B and
InternVL3-1B-hf 1.88 GB). The README's table "Run the real model on your laptop" quotes this output.
"""

from __future__ import annotations

from pathlib import Path

from course_utils import checkpoint

PUBLISHED = {  # name: (format, LLM, parameters, layers, kv_heads, head_dim)
    "OpenGVLab/InternVL2-1B": ("remote", "Qwen2ForCausalLM", 0.938e9, 24, 2, 64),
    "OpenGVLab/InternVL3-1B-hf": ("native", "Qwen2ForCausalLM", 0.938e9, 24, 2, 64),
    "OpenGVLab/InternVL2-2B": ("remote", "InternLM2ForCausalLM", 2.206e9, 24, 8, 128),
}


def main() -> None:
    print(
        f"{'checkpoint':28} {'KV bytes/token':>14} {'bf16 weights GB':>16} {'fp32 weights GB':>16} {'asked for GB':>13}"
    )
    for name, (fmt, llm, params, layers, kv_heads, head_dim) in PUBLISHED.items():
        ckpt = checkpoint.Checkpoint(Path(name), fmt, "", llm, int(params), int(params * 2), layers, kv_heads,
                                     head_dim, 448, 256, 12)  # fmt: skip
        bf16, fp32 = checkpoint.estimate(ckpt, "bfloat16"), checkpoint.estimate(ckpt, "float32")
        print(
            f"{name:28} {ckpt.kv_bytes_per_token():>14,} {bf16.weights / 1e9:>16.2f} {fp32.weights / 1e9:>16.2f} "
            f"{bf16.total / 1e9:>13.2f}"
        )


if __name__ == "__main__":
    main()

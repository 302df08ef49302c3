"""What is in a model folder, and will it fit: the checks made *before* the real InternVL is loaded (notebooks 07–09).

    ckpt = checkpoint.inspect(paths.model_dir())       # format, architecture, parameter count: no weights read
    need = checkpoint.estimate(ckpt, "bfloat16", context_tokens=4096)
    print(need)                                        # weights + KV cache + overhead, in GB
    checkpoint.check_fits(need, device="cpu")          # MemoryError with the numbers, instead of swapping

Two checkpoint formats of InternVL run through transformers:

* ``remote``: the original InternVL2 folders (OpenGVLab/InternVL2-1B, -2B, ...): ``config.json`` says
  ``"architectures": ["InternVLChatModel"]`` with an ``auto_map`` into the folder's own ``modeling_internvl_chat.py``,
  which ``trust_remote_code=True`` runs;
* ``native``: transformers' own ``InternVLForConditionalGeneration`` (e.g. OpenGVLab/InternVL3-1B-hf): no remote code.

The parameter count comes from the safetensors headers (a few kB at the start of each file: every tensor's shape
and dtype), so it is exact and costs no memory; a file shorter than its header announces is reported as truncated.
The KV cache comes from the language model's config: ``2 (K and V) × layers × kv_heads × head_dim × bytes`` per
token, the formula of notebook 09 (``deploy.kvcache.kv_bytes_per_token``).
Introduced in notebook 07.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

FORMATS = {"InternVLChatModel": "remote", "InternVLForConditionalGeneration": "native"}
# bytes per value of the dtypes a learner may ask for, and of those safetensors files store
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4,
               "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F64": 8}  # fmt: skip
SMALLER = "InternVL2-1B (about 0.9 B parameters, 1.9 GB in bfloat16)"
# Besides weights and cache: activations, the vision tower's tiles, the Python process and torch itself.
OVERHEAD_SHARE, OVERHEAD_BYTES = 0.2, 2**30


class CheckpointError(ValueError):
    """A model folder the course cannot load; the message says what is wrong and what to do."""


@dataclass
class Checkpoint:
    folder: Path
    format: str  # "remote" or "native"
    architecture: str
    llm: str  # the language model's architecture, e.g. "InternLM2ForCausalLM" or "Qwen2ForCausalLM"
    parameters: int  # every stored tensor's values (tied weights counted once, as stored)
    stored_bytes: int  # the safetensors data as stored (its dtype)
    layers: int
    kv_heads: int
    head_dim: int
    tile_size: int
    tokens_per_tile: int
    max_tiles: int

    @property
    def name(self) -> str:
        return self.folder.name

    def kv_bytes_per_token(self, dtype: str = "bfloat16") -> int:
        """K and V of every layer for one token: ``2 × layers × kv_heads × head_dim × bytes``."""
        return 2 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]


@dataclass
class Estimate:
    checkpoint: str
    dtype: str
    weights: int
    kv_cache: int
    context_tokens: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead

    def __str__(self) -> str:
        gb = 1e9
        return (f"{self.checkpoint} in {self.dtype}: weights {self.weights / gb:.2f} GB + KV cache for "
                f"{self.context_tokens} tokens {self.kv_cache / gb:.2f} GB + overhead {self.overhead / gb:.2f} GB "
                f"= {self.total / gb:.2f} GB")  # fmt: skip


def read_config(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder} is not a folder: set MLLM_COURSE_MODEL_DIR to the model folder you downloaded"
        )
    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{folder} is not a model folder (no config.json): point MLLM_COURSE_MODEL_DIR at the "
                              "folder that holds config.json and the *.safetensors files")  # fmt: skip
    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config} is not valid JSON ({err}): download the model again") from None


def safetensors_header(path: Path) -> dict:
    """The JSON header of one .safetensors file (tensor name → dtype, shape, data_offsets), checked against the
    file's size: a download that stopped early is caught here, before anything is loaded."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is truncated ({size} bytes): download it again")
        (length,) = struct.unpack("<Q", head)
        if 8 + length > size:
            raise CheckpointError(f"{path} is truncated (its header alone needs {8 + length} bytes, the file has "
                                  f"{size}): download it again")  # fmt: skip
        try:
            header = json.loads(f.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(
                f"{path} is not a safetensors file (unreadable header): download it again"
            ) from None
    header.pop("__metadata__", None)
    end = max((t["data_offsets"][1] for t in header.values()), default=0)
    if 8 + length + end > size:
        raise CheckpointError(f"{path} is truncated: it should hold {8 + length + end} bytes and has {size} "
                              f"({size / (8 + length + end):.0%}): download it again")  # fmt: skip
    return header


# Besides config and weights, what loading reads: the tokenizer (its settings and one vocabulary file), and for the
# native format the image processor and the chat template; the original format's remote code builds both itself.
VOCABULARY_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def missing_files(folder: Path, fmt: str) -> list[str]:
    """The tokenizer and processor files a ``fmt`` folder lacks (a download that stopped after the weights)."""
    folder = Path(folder)
    missing = [] if (folder / "tokenizer_config.json").is_file() else ["tokenizer_config.json"]
    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        missing.append(" or ".join(VOCABULARY_FILES))
    if fmt == "native":
        if not (folder / "preprocessor_config.json").is_file():
            missing.append("preprocessor_config.json")
        in_tokenizer = "tokenizer_config.json" not in missing and "chat_template" in json.loads(
            (folder / "tokenizer_config.json").read_text(encoding="utf-8")
        )
        if not in_tokenizer and not any((folder / name).is_file() for name in CHAT_TEMPLATE_FILES):
            missing.append(" or ".join(CHAT_TEMPLATE_FILES))
    elif not (folder / "conversation.py").is_file():
        missing.append("conversation.py")
    return missing


def _llm_numbers(text: dict) -> tuple[int, int, int]:
    layers = text["num_hidden_layers"]
    heads = text["num_attention_heads"]
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or text["hidden_size"] // heads
    return layers, kv_heads, head_dim


def inspect(folder) -> Checkpoint:
    """Read a model folder without loading it; ``CheckpointError`` with one sentence for anything unusable."""
    folder = Path(folder).expanduser()
    config = read_config(folder)
    archs = config.get("architectures") or []
    arch = next((a for a in archs if a in FORMATS), None)
    if arch is None:
        raise CheckpointError(f"{folder} holds a {', '.join(archs) or config.get('model_type', 'unknown')} model, not "
                              "InternVL: the course runs InternVL2 (InternVLChatModel) or transformers' native InternVL "
                              "(InternVLForConditionalGeneration) checkpoints")  # fmt: skip
    fmt = FORMATS[arch]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        bins = sorted(folder.glob("*.bin"))
        hint = " (it has only .bin files: the course loads safetensors)" if bins else ""
        raise CheckpointError(
            f"{folder} has no *.safetensors weight files{hint}: download the model's safetensors"
        )
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        wanted = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        missing = sorted(wanted - {f.name for f in files})
        if missing:
            raise CheckpointError(f"{folder} misses {len(missing)} weight file(s) its index lists, e.g. {missing[0]}: "
                                  "download the model again")  # fmt: skip
    parameters = stored = 0
    for path in files:
        for tensor in safetensors_header(path).values():
            count = math.prod(tensor["shape"])
            parameters += count
            stored += count * DTYPE_BYTES.get(tensor["dtype"], 4)
    if fmt == "remote":
        if "auto_map" not in config or not list(folder.glob("modeling_*.py")):
            raise CheckpointError(f"{folder} says InternVLChatModel but has no remote code (modeling_*.py and the "
                                  "config's auto_map): copy those files from the original model folder")  # fmt: skip
        text, vision = config["llm_config"], config["vision_config"]
        llm = (text.get("architectures") or ["?"])[0]
        tile = config.get("force_image_size") or vision["image_size"]
        patch = vision["patch_size"]
        max_tiles = config.get("max_dynamic_patch", 12)
    else:
        text, vision = config["text_config"], config["vision_config"]
        llm = (text.get("architectures") or [text.get("model_type", "?")])[0]
        tile = vision["image_size"][0] if isinstance(vision["image_size"], list) else vision["image_size"]
        patch = vision["patch_size"][0] if isinstance(vision["patch_size"], list) else vision["patch_size"]
        max_tiles = 12
    missing = missing_files(folder, fmt)
    if missing:
        raise CheckpointError(f"{folder} has its weights but not {', '.join(missing)} (a download that stopped early): "
                              "download the model again, every file and not only *.safetensors")  # fmt: skip
    layers, kv_heads, head_dim = _llm_numbers(text)
    tokens = int((tile // patch) ** 2 * config.get("downsample_ratio", 0.5) ** 2)
    return Checkpoint(
        folder, fmt, arch, llm, parameters, stored, layers, kv_heads, head_dim, tile, tokens, max_tiles
    )


def estimate(ckpt: Checkpoint, dtype: str = "bfloat16", context_tokens: int = 4096) -> Estimate:
    """Memory to load ``ckpt`` in ``dtype`` and hold a ``context_tokens``-token conversation: weights (every stored
    parameter at ``dtype``'s size), the KV cache, and an overhead of 20 % of the weights + 1 GiB (activations of the
    vision tower and the prompt, torch and Python themselves)."""
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be 'bfloat16', 'float16' or 'float32', not {dtype!r}")
    weights = ckpt.parameters * DTYPE_BYTES[dtype]
    kv = ckpt.kv_bytes_per_token(dtype) * context_tokens
    return Estimate(
        ckpt.name, dtype, weights, kv, context_tokens, int(OVERHEAD_SHARE * weights + OVERHEAD_BYTES)
    )


def available_bytes(device: str = "cpu") -> int:
    """Memory free for a new model: the GPU's free memory for ``cuda``, else the RAM the OS can give without
    swapping (``psutil``'s ``available``)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(need: Estimate, device: str = "cpu", available: int | None = None) -> None:
    """Raise ``MemoryError`` with the numbers when ``need`` does not fit in what ``device`` has free."""
    available = available_bytes(device) if available is None else available
    if need.total <= available:
        return
    where = "GPU memory" if device.startswith("cuda") else "RAM"
    raise MemoryError(f"{need.checkpoint} needs about {need.total / 1e9:.1f} GB in {need.dtype} (weights "
                      f"{need.weights / 1e9:.1f} GB, KV cache {need.kv_cache / 1e9:.2f} GB, overhead "
                      f"{need.overhead / 1e9:.1f} GB) and this machine has {available / 1e9:.1f} GB of {where} free: "
                      f"close other programs, or try a smaller model such as {SMALLER}")  # fmt: skip

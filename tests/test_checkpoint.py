"""course_utils.checkpoint on tiny InternVL folders of both formats (tests/rehearsal/laptop.py): what ``inspect``
reads from the headers against what transformers loads, the memory estimate against a real prefill, and the one
sentence each unusable folder gets."""

from __future__ import annotations

import gc
import json
import shutil
import struct
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from PIL import Image

from course_utils import checkpoint, realmodel, remote_code

sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
import laptop  # noqa: E402

FORMATS = ("native", "remote")
IMAGE = Image.new("RGB", (600, 400), (200, 30, 40))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    return laptop.build(tmp_path_factory.mktemp("laptop"))


def load(folder: Path, dtype: str = "bfloat16"):
    return realmodel.load(folder, device="cpu", dtype=dtype)


@pytest.fixture(scope="module")
def engines(folders):
    return {fmt: load(folders[fmt]) for fmt in FORMATS}


def transformers_model(fmt: str, folder: Path):
    from transformers import InternVLForConditionalGeneration

    if fmt == "native":
        return InternVLForConditionalGeneration.from_pretrained(folder)
    return remote_code.load(folder, torch.float32)  # the remote code with the repairs transformers 5 needs


def header_length(path: Path) -> int:
    with path.open("rb") as f:
        return struct.unpack("<Q", f.read(8))[0]


def copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def instances() -> int:
    """Live InternVL models of either format (type name first: ``isinstance`` on every object warns)."""
    names = {"InternVLChatModel", "InternVLForConditionalGeneration"}
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ in names and isinstance(o, torch.nn.Module))


# --- inspect ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_matches_the_loaded_model(folders, fmt):
    """inspect() gets format, architecture, LLM shape and the exact parameter count from the headers alone."""
    folder = folders[fmt]
    ckpt = checkpoint.inspect(folder)
    model = transformers_model(fmt, folder)
    assert ckpt.format == fmt and ckpt.folder == folder and ckpt.name == folder.name
    assert ckpt.architecture == type(model).__name__ == model.config.architectures[0]
    if fmt == "native":
        text = model.config.text_config
        assert ckpt.llm == "Qwen2ForCausalLM" and ckpt.tokens_per_tile == model.config.image_seq_length == 256
    else:
        text = model.config.llm_config
        assert ckpt.llm == "InternLM2ForCausalLM" and ckpt.tokens_per_tile == model.num_image_token == 256
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert (ckpt.layers, ckpt.kv_heads, ckpt.head_dim) == (
        text.num_hidden_layers,
        text.num_key_value_heads,
        head_dim,
    )
    # a native folder stores no tile budget (the course's is 12); the tiny original-format ones keep 2 (laptop.few_tiles)
    assert ckpt.tile_size == 448 and ckpt.max_tiles == (
        12 if fmt == "native" else model.config.max_dynamic_patch
    )
    assert ckpt.parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("fmt", FORMATS)
def test_tied_weights_are_counted_as_stored(folders, fmt):
    """Tied embeddings are one tensor on disk and one in parameters(): the count agrees whether tied or not."""
    model = transformers_model(fmt, folders[fmt])
    tied = model.get_output_embeddings() is not None and (
        model.get_output_embeddings().weight is model.get_input_embeddings().weight
    )
    from safetensors import safe_open

    with safe_open(folders[fmt] / "model.safetensors", "pt") as f:
        stored = set(f.keys())
    heads = {name for name in stored if name.endswith(("lm_head.weight", "output.weight"))}
    # the native tiny ties (InternVLConfig's own tie_word_embeddings is True, text_config's False); the remote does not
    assert tied == (fmt == "native") and bool(heads) == (not tied)
    assert checkpoint.inspect(folders[fmt]).parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("fmt", FORMATS)
def test_stored_bytes_equal_the_safetensors_data(folders, fmt):
    """stored_bytes is the data part of the safetensors files: size - 8 - header length."""
    files = sorted(folders[fmt].glob("*.safetensors"))
    data = sum(f.stat().st_size - 8 - header_length(f) for f in files)
    ckpt = checkpoint.inspect(folders[fmt])
    assert ckpt.stored_bytes == data
    # native is saved in bfloat16, the remote stand-in in float32
    assert ckpt.stored_bytes == ckpt.parameters * (2 if fmt == "native" else 4)


# --- estimate ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_estimate_weights_and_kv_formula(folders, fmt):
    """Weights are parameters × dtype size; the KV cache is 2 × layers × kv_heads × head_dim × bytes per token."""
    ckpt = checkpoint.inspect(folders[fmt])
    for dtype, size in (("bfloat16", 2), ("float16", 2), ("float32", 4)):
        need = checkpoint.estimate(ckpt, dtype, context_tokens=1000)
        assert need.weights == ckpt.parameters * size
        assert need.kv_cache == 2 * ckpt.layers * ckpt.kv_heads * ckpt.head_dim * size * 1000
        assert need.total == need.weights + need.kv_cache + need.overhead
        assert need.overhead == int(0.2 * need.weights + 2**30)
        assert f"{need.context_tokens} tokens" in str(need) and dtype in str(need)
    with pytest.raises(ValueError, match="bfloat16"):
        checkpoint.estimate(ckpt, "int8")


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_estimate_equals_a_real_prefill(folders, engines, fmt, dtype):
    """The estimated KV cache and weights are exactly the bytes a loaded engine holds after one prefill."""
    engine = engines[fmt] if dtype == "bfloat16" else load(folders[fmt], dtype)
    ckpt = checkpoint.inspect(folders[fmt])
    with torch.no_grad():
        past = engine.prefill(IMAGE, "what is this?")
    keys, values = realmodel.cache_tensors(past)[0]
    tokens = keys.shape[2]
    assert len(realmodel.cache_tensors(past)) == ckpt.layers
    assert keys.shape[1] == ckpt.kv_heads and keys.shape[3] == ckpt.head_dim and values.shape == keys.shape
    assert tokens > 256  # the image tokens are in the cache
    assert realmodel.cache_nbytes(past) == ckpt.kv_bytes_per_token(dtype) * tokens
    need = checkpoint.estimate(ckpt, dtype, context_tokens=tokens)
    assert realmodel.cache_nbytes(past) == need.kv_cache
    in_memory = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    assert in_memory == need.weights
    assert engine.estimate.weights == need.weights and engine.estimate.dtype == dtype


# --- folders the course cannot load ---------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    """A path that does not exist: the error says to set MLLM_COURSE_MODEL_DIR."""
    with pytest.raises(checkpoint.CheckpointError, match="is not a folder") as info:
        checkpoint.inspect(tmp_path / "nowhere")
    assert "MLLM_COURSE_MODEL_DIR" in str(info.value) and "nowhere" in str(info.value)


def test_folder_without_config(tmp_path):
    """A folder without config.json is 'not a model folder'."""
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match="not a model folder") as info:
        checkpoint.inspect(tmp_path)
    assert "config.json" in str(info.value)


def test_invalid_config_json(tmp_path):
    """A config.json that is not JSON says so and asks for a new download."""
    (tmp_path / "config.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(checkpoint.CheckpointError, match="not valid JSON.*download"):
        checkpoint.inspect(tmp_path)


def test_other_architecture(tmp_path):
    """A Llama folder is named as such, and the message says which InternVL formats the course runs."""
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"]}), encoding="utf-8"
    )
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.inspect(tmp_path)
    message = str(info.value)
    assert "LlamaForCausalLM" in message and "not InternVL" in message
    assert "InternVLChatModel" in message and "InternVLForConditionalGeneration" in message


def test_truncated_weights(folders, tmp_path):
    """A download cut at 60 % is reported as truncated with its percentage, and load() stops there too."""
    folder = copy(folders["native"], tmp_path)
    weights = folder / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: int(len(blob) * 0.6)])
    with pytest.raises(checkpoint.CheckpointError, match="truncated") as info:
        checkpoint.inspect(folder)
    assert "model.safetensors" in str(info.value) and "60%" in str(info.value)
    assert "download it again" in str(info.value)
    with pytest.raises(checkpoint.CheckpointError, match="truncated"):
        realmodel.load(folder, device="cpu")


@pytest.mark.parametrize("keep", [4, 100])
def test_truncated_header(folders, tmp_path, keep):
    """A file cut inside its length field (4 bytes) or inside its JSON header (100 bytes) is truncated too."""
    folder = copy(folders["native"], tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:keep])
    with pytest.raises(checkpoint.CheckpointError, match="truncated") as info:
        checkpoint.inspect(folder)
    assert f"{keep}" in str(info.value) and "download it again" in str(info.value)


def test_not_a_safetensors_file(folders, tmp_path):
    """Garbage where the header should be is 'not a safetensors file'."""
    folder = copy(folders["native"], tmp_path)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{[" + b"\0" * 64)
    with pytest.raises(checkpoint.CheckpointError, match="not a safetensors file"):
        checkpoint.inspect(folder)


@pytest.mark.parametrize("leftover", [None, "pytorch_model.bin"])
def test_no_safetensors(folders, tmp_path, leftover):
    """No *.safetensors: the error says so, and points out .bin-only folders."""
    folder = copy(folders["native"], tmp_path)
    (folder / "model.safetensors").unlink()
    if leftover:
        (folder / leftover).write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match=r"no \*\.safetensors") as info:
        checkpoint.inspect(folder)
    assert (".bin" in str(info.value)) == bool(leftover)


def test_missing_shard(folders, tmp_path):
    """An index that lists a shard the folder lacks names the missing file."""
    folder = copy(folders["native"], tmp_path)
    index = {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(checkpoint.CheckpointError, match="model-00002-of-00002.safetensors"):
        checkpoint.inspect(folder)


def test_remote_without_code(folders, tmp_path):
    """An InternVLChatModel folder without modeling_*.py asks for the remote code files."""
    folder = copy(folders["remote"], tmp_path)
    for path in folder.glob("modeling_*.py"):
        path.unlink()
    with pytest.raises(checkpoint.CheckpointError, match="no remote code") as info:
        checkpoint.inspect(folder)
    assert "modeling_*.py" in str(info.value) and "InternVLChatModel" in str(info.value)


HALF_DOWNLOADS = {  # what a download that stopped after the weights lacks, and what the sentence must name
    "native": (["tokenizer_config.json", "tokenizer.json", "vocab.json", "preprocessor_config.json",
                "processor_config.json", "chat_template.jinja"],
               ["tokenizer_config.json", "tokenizer.json or", "preprocessor_config.json", "chat_template.jinja or"]),
    "remote": (["tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json", "conversation.py"],
               ["tokenizer_config.json", "tokenizer.model", "conversation.py"]),
}  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
def test_half_downloaded_folder_names_the_missing_files(folders, tmp_path, fmt):
    """Weights and config but no tokenizer or processor files: one sentence from inspect (and so from doctor), not
    an AttributeError deep inside the loader ("Qwen2Tokenizer has no attribute start_image_token")."""
    from course_utils import doctor

    folder = copy(folders[fmt], tmp_path)
    removed, named = HALF_DOWNLOADS[fmt]
    for name in removed:
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(checkpoint.CheckpointError, match="download the model again") as info:
        checkpoint.inspect(folder)
    assert all(n in str(info.value) for n in named), str(info.value)
    check = doctor.check_model(folder)
    assert check.status != doctor.OK and "tokenizer_config.json" in check.detail, check
    with pytest.raises(checkpoint.CheckpointError):
        load(folder)


def test_each_missing_file_is_named_alone(folders, tmp_path):
    """One file missing at a time: inspect names exactly that one; a chat template inside tokenizer_config.json
    counts as the template."""
    for name in ("preprocessor_config.json", "chat_template.jinja", "tokenizer_config.json"):
        folder = copy(folders["native"], tmp_path / name)
        (folder / name).unlink()
        with pytest.raises(checkpoint.CheckpointError, match=name.replace(".", r"\.")):
            checkpoint.inspect(folder)
    folder = copy(folders["native"], tmp_path / "inline")
    template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert checkpoint.inspect(folder).format == "native"


# --- check_fits ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_fits(folders, fmt):
    """Enough memory passes silently; too little raises MemoryError with the numbers and a smaller model."""
    need = checkpoint.estimate(checkpoint.inspect(folders[fmt]), "bfloat16")
    checkpoint.check_fits(need, "cpu", available=10**12)
    checkpoint.check_fits(need, "cpu", available=need.total)
    with pytest.raises(MemoryError) as info:
        checkpoint.check_fits(need, "cpu", available=10**6)
    message = str(info.value)
    assert f"{need.total / 1e9:.1f} GB" in message and "0.0 GB of RAM free" in message
    assert need.checkpoint in message and "InternVL2-1B" in message
    with pytest.raises(MemoryError, match="GPU memory"):
        checkpoint.check_fits(need, "cuda", available=10**6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_checks_memory_before_loading(folders, fmt):
    """load(available=10**6) raises MemoryError before transformers reads a single weight."""
    import transformers

    before = instances()
    with (
        mock.patch.object(transformers.AutoModel, "from_pretrained") as auto,
        mock.patch.object(transformers.InternVLForConditionalGeneration, "from_pretrained") as native,
        mock.patch.object(transformers.AutoTokenizer, "from_pretrained") as tokenizer,
    ):
        with pytest.raises(MemoryError, match="InternVL2-1B"):
            realmodel.load(folders[fmt], device="cpu", available=10**6)
    auto.assert_not_called()
    native.assert_not_called()
    tokenizer.assert_not_called()
    assert instances() == before

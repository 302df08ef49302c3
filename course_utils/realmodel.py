"""The real InternVL through plain transformers, on a laptop's CPU or any GPU: the ``transformers`` track of 07–09.

    engine = realmodel.load()                      # MLLM_COURSE_MODEL_DIR; format and memory checked first
    sess = engine.chat(("What is in this photo?", photo))          # the calls of infer.TransformersChat
    engine.score(photo, question, choices)         # log-likelihood of each choice (notebook 08)
    past, n = engine.prefill(photo, question)      # the KV cache of one prompt (notebook 09)

Two checkpoint formats (``course_utils.checkpoint``), one interface:

* ``RemoteChat``: InternVL2's original folders, loaded with ``trust_remote_code=True`` and the repairs their 2024
  code needs under transformers 5 (``course_utils.remote_code``). The image becomes tiles with
  the course's ``internvl.dynamic_preprocess`` (notebook 06) and ImageNet normalisation, as InternVL's ``load_image``
  does; the prompt is the one the model's own ``chat()`` builds (its ``get_conv_template(model.template)``, system
  message, ``<img>`` + ``<IMG_CONTEXT>`` × 256 per tile + ``</img>``); answers come from the model's ``generate``.
* ``NativeChat``: transformers' ``InternVLForConditionalGeneration`` with its processor's chat template: no remote
  code. Its processor is built without the video part (which needs torchvision) and tiles dynamically like 06.

Before loading, ``load`` checks the folder and compares the memory it will need with the memory free
(``checkpoint.check_fits``); a failed load leaves nothing behind in the kernel. On a CPU an image is cut into at most
``CPU_TILES`` tiles (+ thumbnail) instead of 12: every tile is 256 more tokens to read before the first word.
Introduced in notebook 07.
"""

from __future__ import annotations

import gc
import inspect
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import checkpoint, internvl, paths, remote_code
from .infer import Session, TransformersChat

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CPU_TILES = 6  # 6 tiles + thumbnail = 1,792 image tokens on a CPU; a GPU takes InternVL's 12 (3,328 tokens)
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"


def device_and_dtype(device: str | None = None, dtype: str | None = None) -> tuple[str, str]:
    """``cuda`` when a GPU is there, else ``cpu``; ``MLLM_COURSE_DTYPE`` or bfloat16 (half of float32's bytes; torch
    runs it on any CPU, fastest on those with bfloat16 instructions)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return device, dtype or os.environ.get("MLLM_COURSE_DTYPE", "").strip() or "bfloat16"


def pixel_values(image: Image.Image, max_tiles: int = 12, tile: int = 448) -> torch.Tensor:
    """(tiles, 3, tile, tile): InternVL's ``load_image`` (InternVL2 model card): ``dynamic_preprocess`` (row by row,
    thumbnail last), then ``ToTensor`` and ``Normalize`` with ImageNet's mean and std."""
    tiles = internvl.dynamic_preprocess(image.convert("RGB"), max_num=max_tiles, image_size=tile)
    x = torch.from_numpy(np.stack([np.asarray(t, dtype=np.float32) for t in tiles]) / 255).permute(0, 3, 1, 2)
    return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def cache_tensors(past) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (key, value) of a KV cache: transformers' ``DynamicCache`` or the remote code's tuples."""
    if hasattr(past, "layers"):
        return [(layer.keys, layer.values) for layer in past.layers]
    return [(k, v) for k, v in past]


def _cache_of(output):
    """A model output's KV cache: ``output.cache`` since transformers 5.24 (``past_key_values`` before, and in the
    constructor of remote code, which transformers stores as ``cache``)."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def cache_nbytes(past) -> int:
    return sum(
        k.nelement() * k.element_size() + v.nelement() * v.element_size() for k, v in cache_tensors(past)
    )


class _Scoring:
    """What both formats add to a chat engine: the prompt's KV cache, and choices scored by log-likelihood."""

    def score(self, image: Image.Image, question: str, choices: list[str]) -> list[float]:
        """Sum of log-probabilities of each choice's tokens as the answer (image first, as in training). The prompt
        is read once; each choice continues from its KV cache (a copy of it, so the choices do not see each other)."""
        scores = []
        with torch.no_grad():
            past, logits = self.prefill(image, question, keep_logits=True)
            for choice in choices:
                ids = self.tokenizer(choice, add_special_tokens=False, return_tensors="pt")["input_ids"]
                ids = ids.to(self.model.device)
                more = self._continue(ids, _copy(past)) if ids.shape[1] > 1 else logits[:, :0]
                all_logits = torch.cat([logits[:, -1:], more[:, :-1]], dim=1).float()
                logp = torch.log_softmax(all_logits[0], dim=-1)
                scores.append(logp.gather(1, ids[0][:, None]).sum().item())
        return scores


def _copy(past):
    if hasattr(past, "layers"):
        import copy

        return copy.deepcopy(past)
    return tuple(
        (k, v) for k, v in past
    )  # tuples are never changed in place: concatenation makes new tensors


class RemoteChat(_Scoring, TransformersChat):
    """InternVL2's original format through its remote code (see the module docstring)."""

    def __init__(
        self, model, tokenizer, ckpt: checkpoint.Checkpoint, *, max_tiles: int, image_first: bool = True
    ):
        self.model, self.tokenizer, self.checkpoint = model.eval(), tokenizer, ckpt
        self.processor = None
        self.image_first, self.max_tiles = image_first, max_tiles
        remote_code.enable_generate(model)
        model.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
        self.end_id = tokenizer.convert_tokens_to_ids(self.template().sep.strip())

    @property
    def language_model(self):
        return self.model.language_model

    def template(self):
        """A fresh conversation template, as the model's ``chat()`` takes it: ``get_conv_template`` of its own
        remote module, with the model's system message."""
        template = sys.modules[type(self.model).__module__].get_conv_template(self.model.template)
        template.system_message = self.model.system_message
        return template

    def prompt(self, session: Session, text: str, tiles: int) -> str:
        """The prompt InternVL2's ``chat()`` builds: ``<image>\\n`` before the first question (after it with
        ``image_first=False``), every turn in the template, then ``<image>`` → ``<img>`` + 256·tiles
        ``<IMG_CONTEXT>`` + ``</img>``."""
        template = self.template()
        for i, (user, answer) in enumerate([*session.history, (text, None)]):
            if i == 0 and session.image is not None:
                user = f"<image>\n{user}" if session.image_first else f"{user}\n<image>"
            template.append_message(template.roles[0], user)
            template.append_message(template.roles[1], answer)
        query = template.get_prompt()
        image_tokens = IMG_START + IMG_CONTEXT * self.model.num_image_token * tiles + IMG_END
        return query.replace("<image>", image_tokens, 1) if session.image is not None else query

    def _inputs(self, sessions: list[Session], texts: list[str]):
        if len(sessions) != 1:
            raise ValueError("RemoteChat answers one prompt at a time (batch() loops)")
        session, text = sessions[0], texts[0]
        pixels = None
        if session.image is not None:
            pixels = pixel_values(session.image, self.max_tiles, self.checkpoint.tile_size)
            pixels = pixels.to(self.model.device, self.model.dtype)
        ids = self.tokenizer(
            self.prompt(session, text, 0 if pixels is None else len(pixels)), return_tensors="pt"
        )
        return {"pixel_values": pixels, "input_ids": ids["input_ids"].to(self.model.device),
                "attention_mask": ids["attention_mask"].to(self.model.device)}  # fmt: skip

    def _split(self, out, inputs) -> tuple[list[list[int]], int]:
        # the remote generate() hands the LLM embeddings only, so its output holds the new tokens alone
        return [row.tolist() for row in out], inputs["input_ids"].shape[1]

    def batch(self, prompts: list, gen_config=None, *, image_first=None) -> list:
        """One prompt after another (plain transformers has no continuous batching; that is LMDeploy's job)."""
        return [self.chat(p, gen_config=gen_config, image_first=image_first).response for p in prompts]

    def prefill(self, image, question, *, keep_logits: bool = False):
        """Read image + question once; return the KV cache (and the last position's logits with ``keep_logits``).

        The embeddings are built as the remote ``forward`` builds them (the vision features of every tile replace
        the ``<IMG_CONTEXT>`` embeddings, in order), then the language model's base runs with its cache, and only
        the last position goes through the output layer (all positions would be tokens × vocabulary floats)."""
        session = Session(
            image=image.convert("RGB") if image is not None else None, image_first=self.image_first
        )
        inputs = self._inputs([session], [question])
        lm, ids = self.model.language_model, inputs["input_ids"]
        embeds = lm.get_input_embeddings()(ids).clone()
        if inputs["pixel_values"] is not None:
            features = self.model.extract_feature(inputs["pixel_values"])
            embeds[ids == self.model.img_context_token_id] = features.reshape(-1, embeds.shape[-1]).to(
                embeds.dtype
            )
        out = getattr(lm, lm.base_model_prefix)(inputs_embeds=embeds, use_cache=True)
        if not keep_logits:
            return _cache_of(out)
        return _cache_of(out), lm.get_output_embeddings()(out.last_hidden_state[:, -1:])

    def _continue(self, ids, past):
        return self.model.language_model(input_ids=ids, past_key_values=past, use_cache=True).logits


class NativeChat(_Scoring, TransformersChat):
    """transformers' native InternVL (see the module docstring)."""

    def __init__(self, model, processor, ckpt: checkpoint.Checkpoint, *, image_first: bool = True):
        super().__init__(model, processor, image_first=image_first)
        self.checkpoint = ckpt
        self.max_tiles = processor.image_processor.max_patches
        # transformers 5.24 renamed the argument ``past_key_values`` to ``cache`` (the old name warns until 5.40)
        self._cache_argument = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )

    @property
    def language_model(self):
        return self.model.model.language_model

    def prefill(self, image, question, *, keep_logits: bool = False):
        session = Session(
            image=image.convert("RGB") if image is not None else None, image_first=self.image_first
        )
        out = self.model(**self._inputs([session], [question]), use_cache=True, logits_to_keep=1)
        return (_cache_of(out), out.logits) if keep_logits else _cache_of(out)

    def _continue(self, ids, past):
        return self.model(input_ids=ids, use_cache=True, **{self._cache_argument: past}).logits


def native_processor(folder: Path, max_tiles: int, tokens_per_tile: int):
    """The processor of a native InternVL folder without torchvision: its tokenizer and chat template, and the
    PIL version of its GotOcr2 image processor with dynamic tiling on (``crop_to_patches``, at most ``max_tiles``)."""
    from transformers import AutoTokenizer
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from .mini import MiniInternVLProcessor  # InternVLProcessor without the video part

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    settings = {}
    for name in ("preprocessor_config.json", "processor_config.json"):
        if (folder / name).is_file():
            found = json.loads((folder / name).read_text(encoding="utf-8"))
            settings = found.get("image_processor", found) if not settings else settings
    keep = (
        "size",
        "image_mean",
        "image_std",
        "do_convert_rgb",
        "do_normalize",
        "do_rescale",
        "rescale_factor",
    )
    image_processor = GotOcr2ImageProcessorPil(**{k: settings[k] for k in keep if k in settings},
                                               crop_to_patches=True, min_patches=1, max_patches=max_tiles)  # fmt: skip
    template = None
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif (folder / "chat_template.json").is_file():
        template = json.loads((folder / "chat_template.json").read_text(encoding="utf-8"))["chat_template"]
    return MiniInternVLProcessor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=tokens_per_tile,
                                 chat_template=template or tokenizer.chat_template)  # fmt: skip


def _load_model(ckpt: checkpoint.Checkpoint, device: str, dtype: str, max_tiles: int):
    from transformers import AutoTokenizer, InternVLForConditionalGeneration

    folder, torch_dtype = ckpt.folder, getattr(torch, dtype)
    if ckpt.format == "remote":
        model = remote_code.load(folder, torch_dtype)  # with the repairs transformers 5 needs
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
        return RemoteChat(model.to(device), tokenizer, ckpt, max_tiles=max_tiles)
    model = InternVLForConditionalGeneration.from_pretrained(folder, dtype=torch_dtype, local_files_only=True)
    return NativeChat(model.to(device), native_processor(folder, max_tiles, ckpt.tokens_per_tile), ckpt)


def load(folder=None, *, device: str | None = None, dtype: str | None = None, context_tokens: int = 4096,
         max_tiles: int | None = None, available: int | None = None):  # fmt: skip
    """Load the real InternVL in ``folder`` (default ``paths.model_dir()``) as a chat engine.

    Checks first, loads second: ``checkpoint.inspect`` (format, truncated files) and ``checkpoint.check_fits``
    (weights + KV cache for ``context_tokens`` + overhead against the free RAM or GPU memory, or ``available``
    bytes). Any failure is one sentence, and nothing half-loaded stays in memory. The engine's ``estimate`` is the
    memory estimate it passed."""
    ckpt = checkpoint.inspect(Path(folder or paths.model_dir()).expanduser())
    device, dtype = device_and_dtype(device, dtype)
    need = checkpoint.estimate(ckpt, dtype, context_tokens)
    checkpoint.check_fits(need, device, available)
    tiles = max_tiles or (ckpt.max_tiles if device.startswith("cuda") else min(CPU_TILES, ckpt.max_tiles))
    failure = None
    try:
        engine = _load_model(ckpt, device, dtype, tiles)
    except Exception as err:  # noqa: BLE001  (any library error becomes one sentence; the partial model is freed)
        engine, failure = None, f"{type(err).__name__}: {' '.join(str(err).split())[:400]}"
    if failure:
        gc.collect()
        raise RuntimeError(
            f"could not load {ckpt.folder} ({ckpt.format} format) with transformers: {failure}"
        )
    engine.estimate = need
    return engine


def peak_memory_bytes(device: str = "cpu") -> int:
    """The most memory this process has held: peak RSS on a CPU (``getrusage``; kB on Linux, bytes on macOS), or
    the peak of torch's allocations on a GPU."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except ImportError:  # Windows
        import psutil

        return int(psutil.Process().memory_info().peak_wset)


def layer_linears(engine, layer: int = 0) -> dict:
    """The linear layers of one decoder layer of the language model, by their names inside it (``attention.wqkv``,
    ``feed_forward.w1``... in InternLM2; ``self_attn.q_proj``, ``mlp.gate_proj``... in Qwen2): what W4A16 quantizes."""
    prefix = f"layers.{layer}."
    return {name.split(prefix, 1)[1]: module for name, module in engine.language_model.named_modules()
            if isinstance(module, torch.nn.Linear) and (name.startswith(prefix) or f".{prefix}" in name)}  # fmt: skip


def group_size_for(in_features: int, wanted: int = 128) -> int:
    """The largest group size ≤ ``wanted`` that divides ``in_features`` (128 for the real models' widths)."""
    return math.gcd(wanted, in_features)

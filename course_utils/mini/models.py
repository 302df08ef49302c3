"""Tiny but real transformers models, built offline from configs, with matching processors.

Every builder returns ``(model, processor)`` for a transformers class the course teaches, with a hidden size
of ~64 and two layers, so it builds in well under a second and runs on a laptop CPU. By default the *image*
and *patch* sizes are the real ones, so the processors insert the real numbers of visual tokens
(LLaVA-1.5: 576; BLIP-2: 32 queries; InternVL: 256 per 448-px tile); training notebooks pass smaller images.

| kind         | transformers class                    | processor                                   |
|--------------|---------------------------------------|---------------------------------------------|
| ``clip``     | ``CLIPModel`` (dual encoder)          | ``CLIPProcessor``                           |
| ``llava``    | ``LlavaForConditionalGeneration``     | ``LlavaProcessor``                          |
| ``llava_next`` | ``LlavaNextForConditionalGeneration`` | ``LlavaNextProcessor`` (AnyRes)           |
| ``blip2``    | ``Blip2ForConditionalGeneration``     | ``Blip2Processor``                          |
| ``internvl`` | ``InternVLForConditionalGeneration``  | ``MiniInternVLProcessor`` (no video part)   |

Version workarounds for transformers 5.x live here: PIL image processors (no torchvision, see README › Troubleshooting),
a BLIP-2 tokenizer without a *named* image token, an InternVL processor without a video processor.

Introduced in notebook 00; each model is taught in its own notebook (01 CLIP, 02 BLIP-2, 03–04 LLaVA, 06 InternVL).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    Blip2QFormerConfig,
    Blip2VisionConfig,
    CLIPConfig,
    CLIPModel,
    CLIPProcessor,
    CLIPTextConfig,
    CLIPVisionConfig,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
from transformers.utils import logging as hf_logging

from .cache import write_atomic
from .tokenizer import EOT, IMAGE, IMG_CONTEXT, build_tokenizer, chat_template

KINDS = ("clip", "llava", "llava_next", "blip2", "internvl")
# LLaVA-NeXT's released grid pinpoints, (width, height) in haotian-liu/LLaVA (see course_utils/llava.py).
LLAVA_NEXT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
# CLIP's normalisation constants, used by LLaVA's and BLIP-2's processors as well.
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class MiniInternVLProcessor(InternVLProcessor):
    """InternVLProcessor without its video processor (which needs torchvision, absent in the CPU course env).

    Load it with ``MiniInternVLProcessor.from_pretrained(path)``; ``AutoProcessor`` would ask for the video part.
    """

    def __init__(
        self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None, **kw
    ):
        kw.pop("video_processor", None)
        super().__init__(image_processor, tokenizer, None, image_seq_length, chat_template, **kw)


def _qwen2(vocab_size: int, hidden: int, layers: int, heads: int, tie: bool, eos_id: int, pad_id: int):
    """A tiny Qwen2 decoder: InternVL2-2B's InternLM2 and Qwen2 are the same kind of LLM (RoPE, RMSNorm, SwiGLU)."""
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        tie_word_embeddings=tie,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
    )


def _clip_vision(image_size: int, patch_size: int, hidden: int, layers: int, heads: int) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=hidden,
    )


def _clip_image_processor(image_size: int) -> CLIPImageProcessorPil:
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )


def _finish(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.eos_token_id = tokenizer.eos_token_id
        gen.pad_token_id = tokenizer.pad_token_id
        gen.bos_token_id = None
    return model.eval()


def build_clip(
    *,
    image_size: int = 224,
    patch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
):
    """A CLIP-style dual encoder (notebook 01). The text tower pools at the ``<|endoftext|>`` token it appends."""
    tokenizer = build_tokenizer()
    from tokenizers.processors import TemplateProcessing

    eot_id = tokenizer.convert_tokens_to_ids(EOT)
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=f"$A {EOT}", special_tokens=[(EOT, eot_id)]
    )
    tokenizer.padding_side = "right"
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=64,
        projection_dim=hidden,
        eos_token_id=eot_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=eot_id,
    )
    vision = _clip_vision(image_size, patch_size, hidden, layers, heads)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=hidden)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=_clip_image_processor(image_size), tokenizer=tokenizer)
    return model, processor


def build_llava(
    *,
    image_size: int = 336,
    patch_size: int = 14,
    vision_hidden: int = 64,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
):
    """A tiny LLaVA-1.5 (notebook 03): CLIP ViT (second-to-last layer, CLS dropped) → 2-layer MLP → decoder LLM."""
    tokenizer = build_tokenizer()
    vision = _clip_vision(image_size, patch_size, vision_hidden, layers, heads)
    text = _qwen2(
        len(tokenizer), hidden, layers, heads, False, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    num_patches = (image_size // patch_size) ** 2
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        image_seq_length=num_patches,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    processor = LlavaProcessor(
        image_processor=_clip_image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token, produced by the ViT then dropped
        chat_template=chat_template(IMAGE),
    )
    return _finish(model, tokenizer), processor


def build_llava_next(
    *,
    image_size: int = 336,
    patch_size: int = 14,
    grid_pinpoints: list[list[int]] | None = None,
    vision_hidden: int = 64,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
):
    """A tiny LLaVA-NeXT (notebook 04): AnyRes tiling, unpadding and a learned row-end ``image_newline``.

    ``grid_pinpoints`` are passed to transformers, which reads each pair as (height, width); the official
    LLaVA code reads (width, height). The released list is symmetric, so both agree on *which* grids exist.
    """
    tokenizer = build_tokenizer()
    pinpoints = grid_pinpoints or LLAVA_NEXT_PINPOINTS
    vision = _clip_vision(image_size, patch_size, vision_hidden, layers, heads)
    text = _qwen2(
        len(tokenizer), hidden, layers, heads, False, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        image_grid_pinpoints=pinpoints,
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template(IMAGE),
    )
    return _finish(model, tokenizer), processor


def build_blip2(
    *,
    image_size: int = 224,
    patch_size: int = 14,
    num_query_tokens: int = 32,
    vision_hidden: int = 64,
    qformer_hidden: int = 64,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
):
    """A tiny BLIP-2 (notebook 02): frozen ViT → Q-Former (32 queries) → FC → decoder LLM.

    The tokenizer has ``<image>`` but does not *name* it: transformers 5's Blip2Processor crashes on a named
    image token, and finds ``<image>`` by itself otherwise.
    """
    tokenizer = build_tokenizer(name_image_token=False)
    vision = Blip2VisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
    )
    qformer = Blip2QFormerConfig(
        vocab_size=len(tokenizer),
        hidden_size=qformer_hidden,
        intermediate_size=qformer_hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        cross_attention_frequency=2,
        encoder_hidden_size=vision_hidden,
        pad_token_id=tokenizer.pad_token_id,
    )
    text = _qwen2(
        len(tokenizer), hidden, layers, heads, False, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    config = Blip2Config(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    processor = Blip2Processor(
        image_processor=_clip_image_processor(image_size),
        tokenizer=tokenizer,
        num_query_tokens=num_query_tokens,
    )
    return _finish(model, tokenizer), processor


def build_internvl(
    *,
    image_size: int = 448,
    patch_size: int = 14,
    max_tiles: int = 12,
    vision_hidden: int = 64,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    layer_scale_init_value: float = 1.0,
    seed: int = 0,
):
    """A tiny InternVL in transformers' native format (notebooks 06–08).

    ViT → pixel shuffle (0.5) → mlp1 (LayerNorm → Linear → GELU → Linear) → decoder LLM; the prompt carries
    ``<img>`` + ``<IMG_CONTEXT>`` × (tokens per tile × tiles) + ``</img>``. ``layer_scale_init_value=1.0``
    (InternViT uses 0.1) because a ViT trained from scratch learns much faster with it (measured for this model).
    """
    tokenizer = build_tokenizer()
    tokens_per_tile = int((image_size // patch_size) ** 2 * 0.5**2)
    vision = InternVLVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=[image_size, image_size],
        patch_size=[patch_size, patch_size],
        layer_scale_init_value=layer_scale_init_value,
        use_mean_pooling=False,
    )
    text = _qwen2(len(tokenizer), hidden, layers, heads, True, tokenizer.eos_token_id, tokenizer.pad_token_id)
    config = InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
        image_seq_length=tokens_per_tile,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config)
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": image_size, "width": image_size},
        crop_to_patches=True,
        min_patches=1,
        max_patches=max_tiles,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    processor = MiniInternVLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=tokens_per_tile,
        chat_template=chat_template(IMG_CONTEXT),
    )
    return _finish(model, tokenizer), processor


BUILDERS = {
    "clip": build_clip,
    "llava": build_llava,
    "llava_next": build_llava_next,
    "blip2": build_blip2,
    "internvl": build_internvl,
}
MODEL_CLASSES = {
    "clip": (CLIPModel, CLIPProcessor),
    "llava": (LlavaForConditionalGeneration, LlavaProcessor),
    "llava_next": (LlavaNextForConditionalGeneration, LlavaNextProcessor),
    "blip2": (Blip2ForConditionalGeneration, Blip2Processor),
    "internvl": (InternVLForConditionalGeneration, MiniInternVLProcessor),
}


@contextmanager
def _quiet_progress():
    """No per-shard progress bars for these tiny checkpoints (they flood notebook outputs)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _check_kind(kind: str) -> None:
    if kind not in BUILDERS:
        raise ValueError(f"unknown mini model kind {kind!r}; choose one of {', '.join(KINDS)}")


def build(kind: str, **sizes):
    """Build ``(model, processor)`` of one kind (see the table above); ``sizes`` go to its builder."""
    _check_kind(kind)
    return BUILDERS[kind](**sizes)


def save(model, processor, path: str | Path) -> Path:
    """Save model and processor to ``path`` (safetensors + JSON), like any Hugging Face checkpoint."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with _quiet_progress():
        model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def save_atomic(model, processor, path: str | Path) -> Path:
    """``save`` into a temporary sibling folder, then rename: a crash never leaves a half-written checkpoint (if
    someone else finished ``path`` first, theirs is kept; ``mini.cache.write_atomic``)."""
    return write_atomic(Path(path), lambda tmp: save(model, processor, tmp))


def load(kind: str, path: str | Path):
    """Load ``(model, processor)`` saved by ``save``, offline, in eval mode."""
    _check_kind(kind)
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no saved mini {kind} model at {path} (config.json missing): build and save one first"
        )
    model_cls, processor_cls = MODEL_CLASSES[kind]
    with _quiet_progress():
        model = model_cls.from_pretrained(path, local_files_only=True).eval()
    processor = processor_cls.from_pretrained(path, local_files_only=True)
    return model, processor

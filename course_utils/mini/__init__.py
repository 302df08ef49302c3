"""The offline model factory: a locally trained tokenizer and tiny transformers models of every kind.

    from course_utils import mini
    tokenizer = mini.build_tokenizer()
    model, processor = mini.build("internvl")          # or "clip", "llava", "llava_next", "blip2"
    mini.save(model, processor, path); mini.load("internvl", path)
    model, processor = mini.load_mini_internvl()        # the *trained* mini InternVL (cached; trains once)
    clip, processor = mini.pretrained_dual_encoder()    # the *trained* mini CLIP of notebook 01 (cached; trains once)

Introduced in notebook 00.
"""

from . import _requires  # noqa: F401  (first: a clear error in a kernel whose transformers is too old)
from .clip_train import build_dual_encoder, pretrained_dual_encoder, store_pretrained
from .internvl_train import Recipe, load_mini_internvl
from .models import (
    KINDS,
    LLAVA_NEXT_PINPOINTS,
    MiniInternVLProcessor,
    build,
    build_blip2,
    build_clip,
    build_internvl,
    build_llava,
    build_llava_next,
    load,
    save,
    save_atomic,
)
from .tokenizer import SPECIAL_TOKENS, build_tokenizer, chat_template

__all__ = [
    "KINDS",
    "LLAVA_NEXT_PINPOINTS",
    "SPECIAL_TOKENS",
    "MiniInternVLProcessor",
    "Recipe",
    "build",
    "build_blip2",
    "build_clip",
    "build_dual_encoder",
    "build_internvl",
    "build_llava",
    "build_llava_next",
    "build_tokenizer",
    "chat_template",
    "load",
    "load_mini_internvl",
    "pretrained_dual_encoder",
    "save",
    "save_atomic",
    "store_pretrained",
]

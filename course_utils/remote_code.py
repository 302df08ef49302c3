"""InternVL2's remote code under transformers 5: what breaks, and the course's repairs, in one place.

The original InternVL2 folders (InternVL2-1B, InternVL2-2B) ship their model code (``modeling_internvl_chat.py``,
``modeling_internlm2.py``, ``modeling_intern_vit.py``, ...), written in 2024 for transformers 4.37–4.44, which
``trust_remote_code=True`` runs. Under the course's transformers 5.24 (measured on tiny checkpoints built from
OpenGVLab/InternVL's code, whose inference paths are the published files'):

1. importing it needs ``einops`` and ``timm`` (for ``DropPath``); timm imports torchvision, which breaks beside CPU
   torch: the course env has einops, and ``install_import_shims`` gives the code a ``timm.models.layers.DropPath``
   (identity at inference: the published configs set ``drop_path_rate`` 0);
2. InternVL2-2B's tokenizer reads ``tokenizer.model`` with ``sentencepiece`` (in the course env);
3. ``from_pretrained`` fails with "'InternVLChatModel' object has no attribute 'all_tied_weights_keys'": transformers 5
   sets it in ``post_init()``, which the published ``__init__`` never calls (InternVL added the call in 2025):
   ``ensure_post_init`` wraps the class's ``__init__``;
4. a config whose LLM asks for flash attention (``attn_implementation: flash_attention_2``) fails without flash-attn:
   the remote fallback sets an attribute transformers 5 no longer reads; ``load_config`` sets ``_attn_implementation``;
5. silently, InternLM2's rotary buffers (``inv_freq``, ``cos_cached``, ``sin_cached``, not saved in the checkpoint)
   are left as uninitialised memory (transformers 5 builds the model on the meta device and only refills the buffers
   of its own rotary classes): NaN or garbage logits, no error. ``repair_rotary_buffers`` recomputes them;
6. InternVL2-2B's ``InternLM2ForCausalLM`` has no ``generate`` since transformers 4.50 (OpenGVLab/InternVL issue
   1068), and transformers 5's ``generate`` passes the cache as ``cache=`` and grows full-length ``position_ids`` that
   the remote ``prepare_inputs_for_generation`` never slices ("Attention weights should be of size (1, H, 1, N+1)"):
   ``enable_generate`` fixes all three;
7. InternVL2-1B's ``chat`` fails on its first answer with "got multiple values for keyword argument 'return_dict'":
   the 2024 ``InternVLChatModel.generate`` hands ``return_dict=None`` to ``language_model.generate`` (OpenGVLab/InternVL
   ``modeling_internvl_chat.py`` of the 2.0 release; the 2.5 code dropped it), and its LLM, transformers' own
   ``Qwen2ForCausalLM``, forwards the unknown argument to ``forward``, which transformers 5 calls with
   ``return_dict=True`` already. (InternVL2-2B's remote ``prepare_inputs_for_generation`` drops it.)
   ``enable_generate`` lets that ``generate`` drop it too (``forward`` returns a dict either way).

``load(folder, dtype)`` applies them in order. Nothing in the downloaded folder is edited. Used by
``course_utils.realmodel`` (notebooks 07–09); ``enable_generate`` also by notebook 07's full-track baseline.
"""

from __future__ import annotations

import functools
import json
import sys
import types
from pathlib import Path

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth as timm's ``DropPath``: drops a sample's residual branch with ``drop_prob`` in training,
    identity at inference."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob, self.scale_by_keep = drop_prob, scale_by_keep

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep if self.scale_by_keep else x * mask


def install_import_shims() -> list[str]:
    """Let ``from timm.models.layers import DropPath`` import where timm cannot (it needs torchvision): registers a
    module ``timm.models.layers`` holding ``DropPath``, unless a working timm is installed. Returns what it added."""
    try:
        import timm.models.layers  # noqa: F401
    except Exception:  # no timm, or a timm whose torchvision is missing or broken
        timm, models, layers = (
            types.ModuleType(name) for name in ("timm", "timm.models", "timm.models.layers")
        )
        layers.DropPath, timm.models, models.layers = DropPath, models, layers
        sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
        return ["timm.models.layers.DropPath"]
    return []


def ensure_post_init(folder) -> type:
    """Make the folder's model class call ``post_init()`` at the end of ``__init__`` (failure 3). The class comes from
    transformers' own dynamic-module loader, so ``from_pretrained`` then builds this patched class."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    reference = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["auto_map"][
        "AutoModel"
    ]
    cls = get_class_from_dynamic_module(reference, str(folder), local_files_only=True)
    if not getattr(cls, "_course_post_init", False):
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            if "all_tied_weights_keys" not in self.__dict__:
                self.post_init()

        cls.__init__, cls._course_post_init = __init__, True
    return cls


def load_config(folder, attn_implementation: str = "eager"):
    """The folder's config with its LLM's attention set to ``attn_implementation`` where transformers 5 reads it."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
    config.llm_config._attn_implementation = attn_implementation
    return config


@torch.no_grad()
def repair_rotary_buffers(model) -> int:
    """Recompute the rotary embeddings' ``inv_freq = 1 / base^(2i/dim)`` and their cos/sin caches in every remote
    rotary module (failure 5); returns how many. transformers' own rotary classes are left alone (it refills them)."""
    fixed = 0
    for module in model.modules():
        if hasattr(module, "inv_freq") and hasattr(module, "_set_cos_sin_cache") and hasattr(module, "base"):
            device = module.inv_freq.device
            inv_freq = 1.0 / (
                module.base ** (torch.arange(0, module.dim, 2, device=device).float() / module.dim)
            )
            module.register_buffer("inv_freq", inv_freq, persistent=False)
            dtype = module.cos_cached.dtype if hasattr(module, "cos_cached") else torch.float32
            module._set_cos_sin_cache(seq_len=module.max_position_embeddings, device=device, dtype=dtype)
            fixed += 1
    return fixed


def _prepare_for_remote(prepare):
    """The remote ``prepare_inputs_for_generation`` as transformers 4.4x called it: the cache under its old name
    ``past_key_values`` (5.24 passes ``cache=``), and no ``position_ids`` from generate (5.x builds full-length ones;
    the remote code derives them itself from the mask or the cache length)."""

    @functools.wraps(prepare)  # generate checks its arguments against this signature: keep the remote one
    def prepare_inputs_for_generation(self, input_ids, *args, cache=None, **kwargs):
        kwargs.pop("position_ids", None)
        if cache is not None and kwargs.get("past_key_values") is None:
            kwargs["past_key_values"] = cache
        return prepare(self, input_ids, *args, **kwargs)

    return prepare_inputs_for_generation


def _without_return_dict(generate):
    """``generate`` without the ``return_dict`` argument (failure 7): generation calls ``forward`` with
    ``return_dict=True`` itself, so a second one from the remote code can only collide."""

    @functools.wraps(generate)
    def generate_without_return_dict(*args, **kwargs):
        kwargs.pop("return_dict", None)
        return generate(*args, **kwargs)

    return generate_without_return_dict


def enable_generate(model):
    """Give a remote-code model's language model a working ``generate`` (failure 6); returns ``model``. Idempotent.

    InternVL2's remote ``chat`` calls ``self.language_model.generate``. InternVL2-2B's ``InternLM2ForCausalLM`` is a
    ``PreTrainedModel`` that defines ``prepare_inputs_for_generation`` but does not inherit ``GenerationMixin``, and
    since transformers 4.50 ``PreTrainedModel`` no longer does either: "no attribute 'generate'". This switches the
    language model to a subclass that adds ``GenerationMixin`` after its own bases (what transformers' auto classes
    do for the top-level class of remote code), keeps the remote code's tuple KV cache (no ``DynamicCache``), hands
    it that cache and no ``position_ids`` (``_prepare_for_remote``; without it every step re-reads the prompt, or
    fails on the second token), and gives it a ``generation_config``. A transformers LLM (InternVL2-1B's Qwen2) keeps
    its class; its ``generate`` (on this instance only) drops the ``return_dict`` that the remote code passes (failure
    7).
    """
    from transformers import GenerationConfig, GenerationMixin

    lm = getattr(model, "language_model", model)
    cls = type(lm)
    native = isinstance(lm, GenerationMixin) and cls.__module__.startswith("transformers.")
    if not native and not getattr(cls, "_course_generate", False):
        tied = getattr(cls, "_tied_weights_keys", None)
        body = {
            "__module__": cls.__module__,
            "_course_generate": True,
            # the remote code reads and returns tuple caches (past_key_values[0][0].shape): no DynamicCache
            "_supports_default_dynamic_cache": classmethod(lambda _: False),
            "prepare_inputs_for_generation": _prepare_for_remote(cls.prepare_inputs_for_generation),
        }
        if isinstance(
            tied, list
        ):  # transformers 5 wants {tied: source}; the remote list breaks save_pretrained
            embeddings = lm.get_input_embeddings().weight
            source = next(name for name, p in lm.named_parameters() if p is embeddings)
            body["_tied_weights_keys"] = {key: source for key in tied}
        bases = (cls,) if isinstance(lm, GenerationMixin) else (cls, GenerationMixin)
        lm.__class__ = type(cls.__name__, bases, body)
    if native and "generate" not in vars(lm):
        lm.generate = _without_return_dict(lm.generate)
    if getattr(lm, "generation_config", None) is None:
        lm.generation_config = GenerationConfig.from_model_config(lm.config)
    return model


def load(folder, dtype: torch.dtype = torch.bfloat16):
    """An InternVL2 folder's model through its remote code, with every repair above, in eval mode.

    It loads with the folder's own class (``ensure_post_init``'s) rather than ``AutoModel``: AutoModel maps a config
    class to the model class it loaded last, and two folders with the same configuration code (a base model and its
    fine-tuned copy) share one config class."""
    install_import_shims()
    model_class = ensure_post_init(folder)
    model = model_class.from_pretrained(folder, config=load_config(folder), trust_remote_code=True, dtype=dtype,
                                        local_files_only=True)  # fmt: skip
    repair_rotary_buffers(model)
    return enable_generate(model.eval())

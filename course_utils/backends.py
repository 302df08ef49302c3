"""Picks a chat engine for a backend name: the ``--backend`` of ``python -m course_utils.demo`` and
``python -m course_utils.evaluate``.

    engine = backends.make_engine("mini")                       # the mini InternVL, on any CPU
    engine = backends.make_engine("lmdeploy", "/root/share/new_models/OpenGVLab/InternVL2-2B")   # a GPU

Notebooks 07 and 08 run those two commands (the web demo; 08's before/after accuracy), ``doctor --labs`` runs the
evaluation, and the full-stack check (tests/full_stack/check_lmdeploy.py) checks the lmdeploy backend is here.
The chooser sits above ``infer`` and ``realmodel``, the engines it picks from, so neither imports the other back.
"""

from __future__ import annotations

from .infer import LMDeployChat, TransformersChat

BACKENDS = ("mini", "transformers", "lmdeploy")


def make_engine(backend: str, model=None):
    """A chat engine: "mini" (the mini InternVL on CPU, or a mini model saved in folder ``model``, e.g. notebook 08's
    fine-tuned one), "transformers" (the real InternVL in ``model`` or ``paths.model_dir()`` through transformers,
    CPU or GPU: ``realmodel.load``) or "lmdeploy" (InternVL2-2B, or the model folder ``model``, on a GPU)."""
    if backend == "transformers":
        from .realmodel import load as load_real

        return load_real(model)
    if backend == "mini":
        from .mini import load, load_mini_internvl

        return TransformersChat(*(load("internvl", model) if model else load_mini_internvl()))
    if backend == "lmdeploy":
        from . import paths

        return LMDeployChat(model or paths.model_dir())
    raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")

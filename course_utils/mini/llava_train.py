"""The mini LLaVA of notebooks 03 and 05: two pretrained towers joined by a projector, as LLaVA joins CLIP and Vicuna.

* **Vision tower**: the contrastively trained mini CLIP of notebook 01 (``mini.pretrained_dual_encoder()``),
  loaded into transformers' ``LlavaForConditionalGeneration``; frozen in every stage, as in LLaVA and LLaVA-1.5.
  Features come from its second-to-last layer with the CLS token dropped (``vision_feature_layer=-2``,
  ``vision_feature_select_strategy="default"``), exactly as LLaVA-1.5 reads CLIP ViT-L/14-336.
* **Projector**: ``course_utils.llava.build_projector`` ("linear" as LLaVA, "mlp2x_gelu" as LLaVA-1.5) swapped in for
  transformers' projector, so the course's own module is what trains (any ``nn.Module`` mapping
  (images, tokens, vision_dim) → (images, tokens', llm_dim) fits, e.g. a Q-Former in notebook 05).
* **LLM**: a Qwen2-style mini decoder, first trained on text only (``sft.pretrain_llm``).

Stage 1 trains the projector on captions; stage 2 trains projector + LLM on multi-turn questions (``sft``).
Measured (2 threads, the default recipe, ~1 min): held-out exact match ~78 % after stage 2, shape the weak spot
(~58 %); handing over the last layer with its CLS token instead (``feature_layer=-1, feature_select="full"``) gives
~89 % (shape ~81 %, what the mini CLIP itself knows): in a 2-layer ViT the second-to-last layer is one block deep.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import alignment, data, llava
from . import clip_train, sft
from .models import build_llava


@dataclass(frozen=True)
class LlavaRecipe:
    """Sizes and steps of the mini LLaVA (the vision tower's sizes are the mini CLIP's: ``alignment.AlignConfig``)."""

    hidden: int = 128  # LLM width (Vicuna-7B: 4096)
    llm_steps: int = 150  # text-only pretraining of the LLM
    stage1_steps: int = (
        600  # projector only, captions (400 left a caption gain of 0.135 at seed 1: 03 asserts > 0.1)
    )
    stage2_steps: int = 800  # projector + LLM, all questions as multi-turn chats
    batch_size: int = 32  # answers per step
    lr: float = 2e-3
    train_images: int = 1920
    test_images: int = 96
    seed: int = 0


def build_mini_llava(
    projector: str = "mlp2x_gelu",
    recipe: LlavaRecipe | None = None,
    *,
    feature_layer: int = -2,
    feature_select: str = "default",
    progress: bool = True,
):
    """``(model, processor)``: the pretrained mini CLIP as vision tower, a fresh projector and a fresh LLM.

    ``feature_layer`` / ``feature_select`` choose what the ViT hands over: LLaVA's ``-2`` / ``"default"`` (the
    second-to-last layer without CLS), or e.g. ``-1`` / ``"full"`` (the last layer with CLS, one token more).

    The LLM is untrained: call ``sft.pretrain_llm`` (notebook 03 shows it). Trains the mini CLIP first if the course
    cache does not have it yet (notebook 01 stores it).
    """
    llava.check_feature_strategy(feature_select, "feature_select")  # before any training or loading
    recipe = recipe or LlavaRecipe()
    clip_config = alignment.AlignConfig()
    clip, _ = clip_train.pretrained_dual_encoder(clip_config, progress=progress)
    model, processor = build_llava(
        image_size=clip_config.image_size, patch_size=clip_config.patch_size, vision_hidden=clip_config.hidden,
        hidden=recipe.hidden, layers=clip_config.layers, seed=recipe.seed,
    )  # fmt: skip
    model.model.vision_tower.load_state_dict(clip.vision_model.state_dict())
    model.config.vision_feature_layer = feature_layer
    model.config.vision_feature_select_strategy = feature_select
    processor.vision_feature_select_strategy = feature_select  # the processor's token count follows
    set_projector(model, llava.build_projector(projector, clip_config.hidden, recipe.hidden))
    return model, processor


def set_projector(model, module) -> None:
    """Put ``module`` between the vision tower and the LLM (it replaces ``model.model.multi_modal_projector``).

    The model then runs, trains and generates as before; ``save_pretrained`` would not know the new module's config.
    """
    model.model.multi_modal_projector = module


def shapes(recipe: LlavaRecipe | None = None) -> tuple[list[data.ShapeItem], list[data.ShapeItem]]:
    """(training images, held-out images) of the shapes world at the mini CLIP's size."""
    recipe = recipe or LlavaRecipe()
    size = alignment.AlignConfig().image_size
    train = data.make_shapes(recipe.train_images, image_size=size, seed=recipe.seed + 10)
    test = data.make_shapes(recipe.test_images, image_size=size, seed=999)
    return train, test


def train_two_stages(model, processor, items, recipe: LlavaRecipe | None = None, *, progress: bool = True):
    """The whole LLaVA recipe in one call (notebook 03 runs it step by step first); returns the losses per phase.

    Text-only LLM pretraining, stage 1 (projector, captions), stage 2 (projector + LLM, multi-turn questions).
    """
    recipe = recipe or LlavaRecipe()
    common = {"lr": recipe.lr, "batch_size": recipe.batch_size, "progress": progress}
    history = {
        "llm": sft.pretrain_llm(
            model, processor, items, steps=recipe.llm_steps, seed=recipe.seed + 1, **common
        )
    }
    sft.set_trainable(model, ["projector"])
    captions = sft.Conversations(processor, items, kinds=("caption",))
    history["stage1"] = sft.train_stage(model, captions, recipe.stage1_steps, seed=recipe.seed + 2, **common)
    sft.set_trainable(model, ["projector", "llm"])
    chats = sft.Conversations(processor, items)
    history["stage2"] = sft.train_stage(model, chats, recipe.stage2_steps, seed=recipe.seed + 3, **common)
    return history

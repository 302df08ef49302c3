"""Connectors between a vision tower and an LLM, side by side (notebook 05: Q-Former vs MLP).

* ``llava.build_projector("mlp2x_gelu", ...)``: LLaVA-1.5's MLP, one LLM token per ViT patch.
* ``QFormerConnector``: BLIP-2's stage-2 connector, the Q-Former's ``num_queries`` query outputs followed by a
  fully-connected layer into the LLM's embedding size (Li et al. 2023, Fig. 3); always ``num_queries`` tokens,
  whatever the number of patches. Built from scratch, or around a Q-Former already trained with BLIP-2's stage 1
  (ITC/ITM/ITG, notebook 02), as BLIP-2's stage 2 starts.

Both map image features (images, patches, vision_dim) to LLM inputs (images, tokens, llm_dim), so either can be put
into the mini LLaVA with ``mini.llava_train.set_projector``.
"""

from __future__ import annotations

import torch
from torch import nn

from .qformer import QFormer, QFormerConfig


class QFormerConnector(nn.Module):
    """The course's mini Q-Former (``course_utils.qformer``) + FC, used on the query path only.

    With ``qformer=None`` a fresh Q-Former of the given sizes (from scratch); otherwise ``qformer`` itself, e.g. one
    pretrained with stage 1, whose sizes then apply (its text half comes along, unused, as in BLIP-2's stage 2).
    The FC layer is always new.
    """

    def __init__(
        self,
        vision_dim: int,
        llm_dim: int,
        *,
        num_queries: int = 8,
        layers: int = 4,
        hidden: int = 64,
        qformer: QFormer | None = None,
    ):
        super().__init__()
        if qformer is None:
            # the text half (word embeddings, text FFNs, ITC/ITM/LM heads) is unused here: a 1-word vocabulary
            cfg = QFormerConfig(
                vocab_size=1, vision_dim=vision_dim, hidden=hidden, layers=layers, num_queries=num_queries
            )
            qformer = QFormer(cfg)
        elif qformer.cfg.vision_dim != vision_dim:
            raise ValueError(
                f"this Q-Former reads {qformer.cfg.vision_dim}-d image features, but the vision tower gives {vision_dim}-d"
            )
        self.qformer = qformer
        self.fc = nn.Linear(qformer.cfg.hidden, llm_dim)

    @property
    def num_queries(self) -> int:
        return self.qformer.cfg.num_queries

    def forward(self, image_feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.qformer(image_feats))  # queries only: (images, num_queries, llm_dim)


def used_parameters(module: nn.Module, *inputs) -> int:
    """Parameters that get a non-zero gradient from ``module(*inputs)``: what the connector really uses and trains.

    (A layer run on an empty tensor, such as the Q-Former's text FFNs with no text, gets an all-zero gradient.)
    """
    module.zero_grad(set_to_none=True)
    module(*inputs).sum().backward()
    used = sum(p.numel() for p in module.parameters() if p.grad is not None and bool(p.grad.any()))
    module.zero_grad(set_to_none=True)
    return used

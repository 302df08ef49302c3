"""Connectors for notebook 05: shapes, token counts and the parameters they really use."""

import pytest
import torch

from course_utils import connectors, llava


@pytest.mark.parametrize(("patches", "queries"), [(36, 8), (256, 32), (1, 4)])
def test_qformer_connector_outputs_num_queries_tokens_whatever_the_patches(patches, queries):
    conn = connectors.QFormerConnector(64, 128, num_queries=queries, layers=2)
    out = conn(torch.randn(3, patches, 64))
    assert out.shape == (3, queries, 128) and conn.num_queries == queries


def test_mlp_keeps_one_token_per_patch():
    assert llava.build_projector("mlp2x_gelu", 64, 128)(torch.randn(2, 36, 64)).shape == (2, 36, 128)


def test_used_parameters_leave_out_the_qformers_text_half():
    conn = connectors.QFormerConnector(64, 128, num_queries=8, layers=4)
    total = sum(p.numel() for p in conn.parameters())
    used = connectors.used_parameters(conn, torch.randn(2, 36, 64))
    assert 0 < used < total
    # the text FFNs, word/position embeddings and the ITC/ITM heads get no gradient on the query path
    q = conn.qformer
    unused = sum(
        p.numel() for m in (q.pos_emb, q.vision_proj, q.text_proj, q.itm_head) for p in m.parameters()
    )
    unused += sum(
        p.numel() for layer in q.layers for p in [*layer.ffn_text.parameters(), *layer.ln_text.parameters()]
    )
    unused += q.word_emb.weight.numel() + q.temp.numel() + q.lm_head.bias.numel()
    assert used == total - unused
    assert all(p.grad is None for p in conn.parameters())  # left clean
    mlp = llava.build_projector("mlp2x_gelu", 64, 128)
    assert connectors.used_parameters(mlp, torch.randn(1, 36, 64)) == sum(p.numel() for p in mlp.parameters())

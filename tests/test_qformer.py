"""course_utils.qformer against the way LAVIS builds BLIP-2's masks and samples hard negatives."""

import itertools

import pytest
import torch

from course_utils import qformer


def lavis_extended_mask(attention_mask: torch.Tensor, seq_length: int, is_decoder: bool) -> torch.Tensor:
    """The 0/1 mask of LAVIS ``BertModel.get_extended_attention_mask`` for one sample (before the -10000 scaling).

    ``attention_mask`` covers every key (queries/prefix + this pass's tokens); ``seq_length`` is the number of tokens
    this pass computes (rows). Decoder: causal over those tokens, plus a prefix of ones for earlier keys.
    """
    keys = attention_mask.shape[0]
    if not is_decoder:
        return attention_mask[None, :].expand(seq_length, keys).float()
    seq = torch.arange(seq_length)
    causal = (seq[None, :] <= seq[:, None]).float()
    prefix = keys - seq_length
    if prefix > 0:
        causal = torch.cat([torch.ones(seq_length, prefix), causal], dim=1)
    return causal * attention_mask[None, :].float()


def lavis_masks(nq: int, text_att: torch.Tensor) -> dict:
    """Compose the (nq+T)² picture the way LAVIS's Blip2Qformer.forward runs its passes."""
    t = text_att.shape[0]
    n = nq + t
    ones_q = torch.ones(nq)
    joint = torch.cat([ones_q, text_att.float()])
    # ITC: a query-only pass (encoder, all-ones mask) and a text-only pass (encoder, text mask)
    itc = torch.zeros(n, n)
    itc[:nq, :nq] = lavis_extended_mask(ones_q, nq, is_decoder=False)
    itc[nq:, nq:] = lavis_extended_mask(text_att.float(), t, is_decoder=False)
    # ITM: one joint encoder pass with [query_atts, text_atts]
    itm = lavis_extended_mask(joint, n, is_decoder=False)
    # ITG: query rows come from the query-only pass (cached keys); text rows: decoder pass with the query prefix
    itg = torch.zeros(n, n)
    itg[:nq, :nq] = 1
    itg[nq:, :] = lavis_extended_mask(joint, t, is_decoder=True)
    return {"itc": itc.bool(), "itm": itm.bool(), "itg": itg.bool()}


CASES = [(nq, t) for nq, t in itertools.product([1, 2, 4, 32], [1, 3, 7, 12])]


@pytest.mark.parametrize("nq,t", CASES)
def test_masks_match_lavis_without_padding(nq, t):
    ours = qformer.attention_masks(nq, t)
    ref = lavis_masks(nq, torch.ones(t))
    for mode in ("itc", "itm", "itg"):
        assert ours[mode].dtype == torch.bool and ours[mode].shape == (nq + t, nq + t)
        assert torch.equal(ours[mode], ref[mode]), mode


@pytest.mark.parametrize("nq,t", [c for c in CASES if c[1] > 1])
def test_masks_match_lavis_with_padding(nq, t):
    g = torch.Generator().manual_seed(nq * 100 + t)
    for _ in range(5):
        real = int(torch.randint(1, t + 1, (1,), generator=g))
        att = torch.cat(
            [torch.ones(real), torch.zeros(t - real)]
        ).long()  # right padding, as BERT tokenisers pad
        ours = qformer.attention_masks(nq, t, att)
        ref = lavis_masks(nq, att)
        for mode in ("itc", "itm", "itg"):
            assert torch.equal(ours[mode], ref[mode]), (mode, real)
            assert not ours[mode][:, nq + real :].any(), "nobody attends to padding"


def test_mask_semantics_in_words():
    m = qformer.attention_masks(2, 3)
    q, t = slice(0, 2), slice(2, 5)
    assert (
        m["itc"][q, q].all()
        and m["itc"][t, t].all()
        and not m["itc"][q, t].any()
        and not m["itc"][t, q].any()
    )
    assert m["itm"].all()
    assert m["itg"][q, q].all() and not m["itg"][q, t].any() and m["itg"][t, q].all()
    assert torch.equal(m["itg"][t, t], torch.ones(3, 3, dtype=torch.bool).tril())


def lavis_hard_negative_weights(sim: torch.Tensor) -> torch.Tensor:
    """LAVIS today: ``sim[:, rank*bs: rank*bs+bs].fill_diagonal_(-10000)`` then ``F.softmax(sim, dim=1)`` (1 GPU)."""
    s = sim.clone()
    s.fill_diagonal_(-10000)
    return torch.nn.functional.softmax(s, dim=1)


@pytest.mark.parametrize("b", [2, 3, 8, 32])
def test_hard_negative_weights_match_lavis(b):
    g = torch.Generator().manual_seed(b)
    sim = torch.randn(b, b, generator=g) / 0.07
    w = qformer.hard_negative_weights(sim)
    assert torch.allclose(w, lavis_hard_negative_weights(sim))
    assert torch.allclose(w.sum(1), torch.ones(b))
    assert (w.diagonal() < 1e-30).all()
    # probability rises with similarity within each row
    for i in range(b):
        others = [j for j in range(b) if j != i]
        order = sim[i, others].argsort()
        assert (w[i, others][order].diff() >= 0).all()


def test_sampled_negatives_never_the_positive_and_follow_the_weights():
    g = torch.Generator().manual_seed(0)
    sim = torch.randn(6, 6, generator=g) * 3
    counts = torch.zeros(6, 6)
    for _ in range(3000):
        idx = qformer.sample_hard_negatives(sim, generator=g)
        assert (idx != torch.arange(6)).all()
        counts[torch.arange(6), idx] += 1
    assert torch.allclose(counts / 3000, qformer.hard_negative_weights(sim), atol=0.04)
    with pytest.raises(ValueError, match="square"):
        qformer.hard_negative_weights(torch.randn(3, 4))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return qformer.QFormer(qformer.QFormerConfig(vocab_size=30, vision_dim=12, max_text_len=6))


def test_queries_give_a_fixed_number_of_vectors_whatever_the_image(model):
    for n_patches in (4, 17, 65, 257):
        out = model(torch.randn(2, n_patches, 12))
        assert out.shape == (2, model.cfg.num_queries, model.cfg.hidden)


def test_cross_attention_every_other_block(model):
    assert [layer.cross_attn is not None for layer in model.layers] == [True, False, True, False]


def test_masks_are_what_the_model_uses(model):
    """ITC: text outputs must not depend on the image; ITG: a text token must not depend on later text."""
    ids = torch.randint(3, 30, (1, 5))
    img_a, img_b = torch.randn(1, 9, 12), torch.randn(1, 9, 12)
    model.eval()
    nq = model.cfg.num_queries
    itc_a, itc_b = model(img_a, ids, mode="itc"), model(img_b, ids, mode="itc")
    assert torch.allclose(itc_a[:, nq:], itc_b[:, nq:]) and not torch.allclose(itc_a[:, :nq], itc_b[:, :nq])
    ids2 = ids.clone()
    ids2[0, 4] = (ids[0, 4] + 1) % 30
    itg1, itg2 = model(img_a, ids, mode="itg"), model(img_a, ids2, mode="itg")
    assert torch.allclose(itg1[:, : nq + 4], itg2[:, : nq + 4]) and not torch.allclose(
        itg1[:, -1], itg2[:, -1]
    )
    itm1, itm2 = model(img_a, ids, mode="itm"), model(img_a, ids2, mode="itm")
    assert not torch.allclose(itm1[:, :nq], itm2[:, :nq])  # ITM: queries see the text


def test_stage1_losses_and_a_few_steps_of_learning(model):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(8, 9, 12, generator=g)
    ids = torch.cat(
        [
            torch.full((8, 1), 1),
            torch.randint(3, 30, (8, 4), generator=g),
            torch.zeros(8, 1, dtype=torch.long),
        ],
        1,
    )
    att = torch.ones_like(ids)
    att[:4, -1] = 0
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        losses = model.stage1_losses(feats, ids, att, dec_token_id=2, generator=g)
        total = losses["itc"] + losses["itm"] + losses["itg"]
        first = first if first is not None else {k: v.item() for k, v in losses.items() if k != "sim_i2t"}
        opt.zero_grad()
        total.backward()
        opt.step()
    assert losses["itg"].item() < first["itg"] and losses["itc"].item() < first["itc"]
    sim = model.itc_similarity(feats, ids, att)
    assert sim.shape == (8, 8)
    assert model.itm_score(feats, ids, att).shape == (8,)
    assert model.generate(feats[:2], bos_id=2, eos_id=0, max_new_tokens=3).shape[0] == 2


def lavis_compute_sim_matrix(model, feats, ids, att, k_test):
    """LAVIS ``blip2.compute_sim_matrix`` on one process, one row at a time, with ``Blip2Qformer.compute_itm``."""
    nq = model.cfg.num_queries

    def compute_itm(image_inputs, text_ids, text_atts):
        vl_embeddings = model(image_inputs, text_ids, text_atts, mode="itm")[:, :nq]
        return model.itm_head(vl_embeddings)[:, :, 1].mean(dim=1)

    sims_matrix = model.itc_similarity(feats, ids, att)
    score_matrix_i2t = torch.full(sims_matrix.shape, -100.0)
    for i, sims in enumerate(sims_matrix):
        topk_sim, topk_idx = sims.topk(k=k_test, dim=0)
        score = compute_itm(feats[i].repeat(k_test, 1, 1), ids[topk_idx], att[topk_idx])
        score_matrix_i2t[i, topk_idx] = score + topk_sim
    score_matrix_t2i = torch.full(sims_matrix.T.shape, -100.0)
    for i, sims in enumerate(sims_matrix.T):
        topk_sim, topk_idx = sims.topk(k=k_test, dim=0)
        score = compute_itm(feats[topk_idx], ids[i].repeat(k_test, 1), att[i].repeat(k_test, 1))
        score_matrix_t2i[i, topk_idx] = score + topk_sim
    return score_matrix_i2t, score_matrix_t2i


@torch.no_grad()
def test_itm_rerank_matches_lavis_compute_sim_matrix(model):
    g = torch.Generator().manual_seed(2)
    model.eval()
    feats = torch.randn(7, 9, 12, generator=g)
    ids = torch.cat([torch.full((5, 1), 1), torch.randint(3, 30, (5, 5), generator=g)], 1)
    att = torch.ones_like(ids)
    att[:2, -2:] = 0  # some padded texts
    for k in (1, 3, 5):
        ours = qformer.itm_rerank(model, feats, ids, att, k=k)
        ref = lavis_compute_sim_matrix(model, feats, ids, att, k)
        for a, b in zip(ours, ref, strict=True):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), k
        i2t, t2i = ours
        assert ((i2t > -100).sum(1) == k).all() and ((t2i > -100).sum(1) == k).all()
    sim = model.itc_similarity(feats, ids, att)
    # k = 1 keeps ITC's ranking at the top; a k above the candidates re-scores every pair
    i2t, t2i = qformer.itm_rerank(model, feats, ids, att, k=1)
    assert torch.equal(i2t.argmax(1), sim.argmax(1)) and torch.equal(t2i.argmax(1), sim.argmax(0))
    i2t, t2i = qformer.itm_rerank(model, feats, ids, att, k=100)
    assert (i2t > -100).all() and (t2i > -100).all()
    logits = model.itm_head(
        model(feats.repeat_interleave(5, 0), ids.repeat(7, 1), att.repeat(7, 1), mode="itm")[:, :8]
    )
    assert torch.allclose(i2t, logits[:, :, 1].mean(1).view(7, 5) + sim, atol=1e-5)
    assert torch.allclose(t2i, i2t.T, atol=1e-5)

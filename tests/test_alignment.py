import itertools

import numpy as np
import pytest
import torch

from course_utils import alignment, data, mini


def direct_info_nce(img, txt, temperature):
    """The loss written out term by term: -log softmax of the diagonal, rows and columns."""
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    s = (img @ txt.T) / temperature
    n = len(s)
    i2t = -sum(torch.log(torch.exp(s[i, i]) / torch.exp(s[i]).sum()) for i in range(n)) / n
    t2i = -sum(torch.log(torch.exp(s[j, j]) / torch.exp(s[:, j]).sum()) for j in range(n)) / n
    return (i2t + t2i) / 2


@pytest.mark.parametrize("n,d,t", [(2, 3, 1.0), (5, 8, 0.07), (16, 4, 0.5), (32, 64, 0.01)])
def test_info_nce_matches_direct_cross_entropy(n, d, t):
    g = torch.Generator().manual_seed(n * d)
    img, txt = (
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(n, d, generator=g, dtype=torch.float64),
    )
    assert torch.allclose(alignment.info_nce(img, txt, t), direct_info_nce(img, txt, t))


def test_info_nce_matches_transformers_clip_model_loss():
    """CLIPModel(..., return_loss=True) computes the same loss from its own embeddings and logit scale."""
    cfg = alignment.AlignConfig()
    model, processor = mini.build_dual_encoder(cfg)
    items = data.make_shapes(6, image_size=cfg.image_size)
    inputs = processor(
        text=[it.caption for it in items],
        images=[it.image for it in items],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        out = model(**inputs, return_loss=True)
        ours = alignment.info_nce(out.image_embeds, out.text_embeds, 1 / model.logit_scale.exp())
    assert torch.allclose(ours, out.loss, atol=1e-5)


def test_info_nce_extremes_and_errors():
    e = torch.eye(4)
    assert alignment.info_nce(e, e, 0.01) < 1e-6
    assert alignment.info_nce(e, e.roll(1, 0), 0.01) > 10
    with pytest.raises(ValueError, match="shape"):
        alignment.info_nce(torch.randn(3, 4), torch.randn(4, 4), 1.0)


def brute_retrieval(sim, targets, k):
    i2t = np.mean(
        [targets[i].item() in sim[i].argsort(descending=True)[:k].tolist() for i in range(len(sim))]
    )
    texts = sorted(set(targets.tolist()))
    t2i = np.mean(
        [any(targets[j].item() == t for j in sim[:, t].argsort(descending=True)[:k].tolist()) for t in texts]
    )
    return i2t, t2i


@pytest.mark.parametrize("k", [1, 2, 5])
def test_retrieval_accuracy_against_brute_force(k):
    g = torch.Generator().manual_seed(k)
    sim = torch.randn(30, 10, generator=g)
    targets = torch.randint(0, 8, (30,), generator=g)  # texts 8, 9 have no image
    assert np.allclose(alignment.retrieval_accuracy(sim, targets, k), brute_retrieval(sim, targets, k))


def brute_temporal(sim):
    n, m = sim.shape
    best, best_labels = -np.inf, None
    for cuts in itertools.combinations(range(1, m), n - 1):
        bounds = (0, *cuts, m)
        labels = [i for i in range(n) for _ in range(bounds[i], bounds[i + 1])]
        score = sum(sim[labels[j], j].item() for j in range(m))
        if score > best + 1e-12:
            best, best_labels = score, labels
    return best, best_labels


@pytest.mark.parametrize("n,m,seed", [(1, 4, 0), (2, 5, 1), (3, 7, 2), (4, 8, 3), (5, 5, 4), (3, 9, 5)])
def test_temporal_alignment_is_the_best_monotone_labelling(n, m, seed):
    sim = torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    labels = alignment.temporal_alignment(sim)
    assert len(labels) == m and labels == sorted(labels) and set(labels) == set(range(n))
    best, _ = brute_temporal(sim)
    assert sum(sim[labels[j], j].item() for j in range(m)) == pytest.approx(best)


def test_temporal_alignment_needs_enough_frames():
    with pytest.raises(ValueError, match="at least one frame"):
        alignment.temporal_alignment(torch.randn(4, 3))


def test_pca_shapes_and_centering():
    a, b = alignment.pca_2d(torch.randn(10, 6), torch.randn(4, 6))
    assert a.shape == (10, 2) and b.shape == (4, 2)
    assert torch.allclose(torch.cat([a, b]).mean(0), torch.zeros(2), atol=1e-5)


def test_a_short_training_run_learns_and_caches(clean_env):
    cfg = alignment.AlignConfig(steps=60, images_per_combo=4, batch_size=16)
    model, processor = mini.build_dual_encoder(cfg)
    items = data.make_shapes(48, image_size=cfg.image_size, seed=9)
    captions = sorted({it.caption for it in items})
    before = alignment.evaluate_retrieval(model, processor, items, captions)["i2t@5"]
    history = alignment.train_dual_encoder(model, processor, cfg, progress=False)
    assert np.mean(history["loss"][-10:]) < np.mean(history["loss"][:10])
    assert alignment.evaluate_retrieval(model, processor, items, captions)["i2t@5"] > before
    path = mini.store_pretrained(model, processor, cfg)
    assert (path / "config.json").is_file() and str(path).startswith(str(clean_env / "cache"))
    loaded, _ = mini.pretrained_dual_encoder(cfg, progress=False)  # from the cache, no training
    assert torch.equal(loaded.logit_scale, model.logit_scale)


def test_training_data_pool_and_batches():
    cfg = alignment.AlignConfig(images_per_combo=2, combos=data.all_combos()[:10])
    processor = mini.build_dual_encoder(cfg)[1]
    pixels, tokens, sampler = alignment.training_data(processor, cfg)
    assert pixels.shape[:2] == (20, 3) and tokens.input_ids.shape[0] == 10
    chosen, picks = sampler.sample(8, torch.Generator().manual_seed(0))
    assert len(set(chosen.tolist())) == 8 and len(picks) == 8  # distinct captions, one image each


def test_linear_probe_reads_a_linear_label_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 3] > 0).long()
    assert alignment.linear_probe(x[:300], y[:300], x[300:], y[300:]) > 0.95
    noise = torch.randint(0, 4, (400,), generator=g)
    assert alignment.linear_probe(x[:300], noise[:300], x[300:], noise[300:]) < 0.4  # chance: 0.25
    assert alignment.linear_probe(x[:300], y[:300], x[300:], y[300:]) == alignment.linear_probe(
        x[:300], y[:300], x[300:], y[300:]
    )  # deterministic


def test_linear_probe_refuses_mismatched_inputs():
    x, y = torch.randn(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="same d"):
        alignment.linear_probe(x, y, torch.randn(5, 3), y[:5])
    with pytest.raises(ValueError, match="one label per row"):
        alignment.linear_probe(x, y[:9], x, y)


def test_zero_shot_classifier_follows_clips_per_class_loop():
    """Per class, as openai/CLIP's ``zeroshot_classifier``: embed its texts, normalise, average, renormalise."""
    cfg = alignment.AlignConfig()
    model, processor = mini.build_dual_encoder(cfg)
    classes, templates = list(data.SHAPES), ["a big red {}", "a {}", "a photo of a {}."]
    weights = alignment.zero_shot_classifier(model, processor, classes, templates)
    assert weights.shape == (len(classes), cfg.hidden)
    assert torch.allclose(weights.norm(dim=-1), torch.ones(len(classes)), atol=1e-6)
    for row, name in zip(weights, classes, strict=True):
        # one batch per class, as the official loop (the helper pads all classes' texts into one batch)
        emb = alignment.encode_texts(model, processor, [t.format(name) for t in templates])
        emb = emb / emb.norm(dim=-1, keepdim=True)
        mean = emb.mean(0)
        assert torch.allclose(row, mean / mean.norm(), atol=1e-5)
    one = alignment.zero_shot_classifier(model, processor, classes, ["a small {}"])  # one template: no mean
    texts = alignment.encode_texts(model, processor, [f"a small {c}" for c in classes])
    assert torch.allclose(one, texts / texts.norm(dim=-1, keepdim=True), atol=1e-5)


def test_zero_shot_classifier_refuses_bad_templates():
    model, processor = mini.build_dual_encoder(alignment.AlignConfig())
    for templates in (["a big red circle"], ["a {} {}"], []):
        with pytest.raises(ValueError, match="template"):
            alignment.zero_shot_classifier(model, processor, data.SHAPES, templates)
    with pytest.raises(ValueError, match="class name"):
        alignment.zero_shot_classifier(model, processor, [], ["a {}"])

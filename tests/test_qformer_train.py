"""The cached stage-1 Q-Former (notebook 02 → 05), on tiny step counts with an untrained mini CLIP."""

import dataclasses
import json

import pytest
import torch

from course_utils import alignment, connectors, mini, qformer
from course_utils.mini import clip_train
from course_utils.mini import qformer_train as Q

TINY = Q.Stage1Config(steps=3, pool_images=96)


@pytest.fixture
def untrained_clip(monkeypatch, clean_env):
    """A private cache, and an untrained mini CLIP with the default sizes instead of the 40-s training."""
    clip, processor = mini.build_dual_encoder(alignment.AlignConfig())
    monkeypatch.setattr(clip_train, "pretrained_dual_encoder", lambda *a, **k: (clip, processor))
    return clip, processor


def test_trains_once_then_loads_the_same_weights(untrained_clip, monkeypatch):
    model = Q.pretrained_qformer(TINY, progress=False)
    assert isinstance(model, qformer.QFormer) and not model.training
    assert (model.cfg.num_queries, model.cfg.hidden, model.cfg.layers) == (8, 64, 4)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cached copy")

    monkeypatch.setattr(Q, "train_stage1_qformer", no_training)
    again = Q.pretrained_qformer(TINY, progress=False)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(AssertionError, match="trained again"):  # another config is another copy
        Q.pretrained_qformer(dataclasses.replace(TINY, steps=4), progress=False)


def test_notebook_02s_run_is_reproduced_and_stored_under_its_config(untrained_clip):
    clip, processor = untrained_clip
    model, history = Q.train_stage1_qformer(TINY, progress=False)
    assert len(history["itc"]) == TINY.steps
    path = Q.store_pretrained_qformer(model, TINY)
    saved = json.loads((path / "config.json").read_text())
    assert saved["stage1"] == dataclasses.asdict(TINY) and saved["qformer"]["vocab_size"] == len(
        processor.tokenizer
    )
    twin, _ = Q.train_stage1_qformer(TINY, progress=False)  # same config, same seeds: the same weights
    assert all(
        torch.allclose(p, q, atol=1e-6) for p, q in zip(model.parameters(), twin.parameters(), strict=True)
    )
    assert Q.store_pretrained_qformer(twin, TINY) == path  # the first copy is kept
    with pytest.raises(ValueError, match="sizes"):
        Q.store_pretrained_qformer(model, dataclasses.replace(TINY, num_queries=4))


def test_features_are_the_vision_towers_last_layer_with_cls(untrained_clip):
    from course_utils import data

    clip, processor = untrained_clip
    items = data.make_shapes(3, image_size=48, seed=0)
    feats = Q.frozen_features(clip, processor, items)
    assert feats.shape == (3, 1 + (48 // 8) ** 2, 64)


def test_a_pretrained_qformer_becomes_the_stage2_connector(untrained_clip):
    qf = Q.pretrained_qformer(TINY, progress=False)
    conn = connectors.QFormerConnector(64, 128, qformer=qf)
    assert conn.qformer is qf and conn.num_queries == 8
    assert conn(torch.randn(2, 37, 64)).shape == (2, 8, 128)
    scratch = connectors.QFormerConnector(64, 128, num_queries=8)
    x = torch.randn(2, 37, 64)
    assert connectors.used_parameters(conn, x) == connectors.used_parameters(
        scratch, x
    )  # same sizes on the query path
    with pytest.raises(ValueError, match="32-d"):
        connectors.QFormerConnector(32, 128, qformer=qf)

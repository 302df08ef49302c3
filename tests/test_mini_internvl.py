"""The trained mini InternVL's recipe, on tiny step counts (the real run is benchmarked, not tested)."""

import dataclasses

import pytest
import torch

from course_utils import data, internvl
from course_utils.mini import internvl_train as T

TINY = dataclasses.replace(
    T.Recipe(), vision_steps=3, llm_steps=3, stage1_steps=3, stage2_steps=3, train_images=96, batch_size=8
)


@pytest.fixture(scope="module")
def built():
    model, processor = T.build_internvl(image_size=TINY.tile, patch_size=TINY.patch, vision_hidden=TINY.vision_hidden,
                                        hidden=TINY.hidden, layers=TINY.layers, max_tiles=1)  # fmt: skip
    items = data.make_shapes(8, image_size=TINY.tile, seed=3)
    return model, processor, items


def test_encoded_rows_have_the_image_block_and_answer_only_labels(built):
    model, processor, items = built
    batch = T.encode(processor, items, T.qa_samples(items))
    tok = processor.tokenizer
    per_tile = internvl.tokens_per_tile(image_size=TINY.tile, patch_size=TINY.patch)
    for row, labels, (_, _, a) in zip(batch["input_ids"], batch["labels"], T.qa_samples(items), strict=True):
        ids = row[row != tok.pad_token_id].tolist()
        start = ids.index(tok.convert_tokens_to_ids("<img>"))
        assert ids[start + 1 : start + 1 + per_tile] == [processor.image_token_id] * per_tile
        assert ids[start + 1 + per_tile] == tok.convert_tokens_to_ids("</img>")
        assert tok.decode(labels[labels != -100]) == a + "<|im_end|>"
    assert batch["pixel_values"].shape[0] == len(items) and batch["image_index"].max() == len(items) - 1


def test_stage_1_trains_only_the_projector_and_stage_2_everything(built):
    model = built[0]
    s1 = T.set_trainable(model, 1)
    assert s1["vision"] == 0 and s1["llm"] == 0 and s1["mlp1"] > 0
    assert not any(p.requires_grad for p in model.lm_head.parameters())
    s2 = T.set_trainable(model, 2)
    assert all(v > 0 for v in s2.values()) and all(p.requires_grad for p in model.parameters())


def test_stage_1_leaves_the_towers_untouched(built):
    model, processor, items = built
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = T.encode(processor, items, T.qa_samples(items, ("caption",)))
    T.train_stage(model, batch, 1, 2, TINY, progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("multi_modal_projector" in k for k in changed)


def test_recipe_runs_caches_and_reloads(clean_env, monkeypatch):
    model, processor = T.load_mini_internvl(TINY, progress=False)
    assert (clean_env / "cache" / "models" / f"mini_internvl-{TINY.key()}" / "config.json").is_file()
    monkeypatch.setattr(T, "train_mini_internvl", lambda *a, **k: pytest.fail("should load from the cache"))
    again, _ = T.load_mini_internvl(TINY, progress=False)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )
    items = data.make_shapes(2, image_size=TINY.tile, seed=1)
    answers = T.answer(again, processor, [it.image for it in items], ["what colour is the shape?"] * 2)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert set(T.evaluate(again, processor, items)) == {*data.QUESTIONS, "all"}

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


def _template_ids(processor, item, order):
    """The same conversation through the official path: chat template + processor (image expanded)."""
    qa = dict(zip(data.QUESTIONS, item.qa(), strict=True))
    messages = []
    for n, kind in enumerate(order):
        question, answer = qa[kind]
        content = [{"type": "image"}] if n == 0 else []
        messages.append({"role": "user", "content": [*content, {"type": "text", "text": question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    text = processor.apply_chat_template(messages)
    return processor(images=[item.image], text=[text], return_tensors="pt")["input_ids"][0].tolist()


@pytest.mark.parametrize("order", [["caption"], ["colour", "shape", "size", "caption"], ["size", "caption"]])
def test_conversation_rows_match_the_chat_template_and_label_only_answers(built, order):
    model, processor, items = built
    chats = T.Conversations(processor, items, kinds=tuple(dict.fromkeys(order)))
    batch = chats.rows([0, 3], [order, order[::-1]])
    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for row, labels, mask, i, o in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], [0, 3],
                                       [order, order[::-1]], strict=True):  # fmt: skip
        ids = row[mask.bool()].tolist()
        official = _template_ids(processor, items[i], o)
        assert ids == official[: len(ids)] and tok.decode(official[len(ids) :]) == "\n"
        answers = dict(zip(data.QUESTIONS, (a for _, a in items[i].qa()), strict=True))
        assert tok.decode(labels[labels != -100]) == "".join(answers[k] + "<|im_end|>" for k in o)
        assert (labels[labels != -100] == end).sum() == len(o)
    per_tile = internvl.tokens_per_tile(image_size=TINY.tile, patch_size=TINY.patch)
    assert (batch["input_ids"] == processor.image_token_id).sum(1).tolist() == [per_tile, per_tile]
    assert torch.equal(batch["pixel_values"][1], chats.pixels[3])


def test_sampled_batches_hold_all_turns_of_few_images(built):
    _, processor, items = built
    chats = T.Conversations(processor, items)
    batch = chats.sample(8, torch.Generator().manual_seed(0))
    assert batch["pixel_values"].shape[0] == 2  # 8 answers = 2 images × 4 turns
    assert ((batch["labels"] == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")).sum(1) == 4).all()


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
    T.train_stage(model, T.Conversations(processor, items, ("caption",)), 1, 2, TINY, progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("multi_modal_projector" in k for k in changed)


def test_recipe_runs_caches_and_reloads(clean_env, monkeypatch):
    model, processor = T.load_mini_internvl(TINY, progress=False)
    assert (clean_env / "cache" / "models" / T.cache_path(TINY).name / "config.json").is_file()
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

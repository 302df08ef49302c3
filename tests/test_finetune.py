"""The mini track's LoRA fine-tune: the new words, the original lab's answer format, what trains, merge and reload."""

import pytest
import torch

from course_utils import data, finetune, minifood
from course_utils.mini import build_internvl, load, save_atomic


@pytest.fixture
def tiny(tmp_path):
    model, processor = build_internvl(
        image_size=96, patch_size=8, vision_hidden=32, hidden=64, layers=1, max_tiles=1
    )
    items = minifood.make_minifood(tmp_path / "photos", dishes=5, photos_per_dish=2)
    return model, processor, items, tmp_path / "photos"


def test_new_words_are_whole_tokens_and_unknown_words_are_refused(tiny):
    _, processor, items, _ = tiny
    ids = finetune.new_word_ids(processor.tokenizer, items)
    decoded = {processor.tokenizer.decode([i]) for i in ids}
    assert items[0]["food_name"] in decoded and data.ANSWER_PHRASE in decoded
    bad = dict(items[0], choices=["不存在的菜名", *items[0]["choices"][1:]])
    with pytest.raises(ValueError, match="unknown to the tokenizer"):
        finetune.new_word_ids(processor.tokenizer, [bad])


def test_rows_follow_the_seeds_answer_format(tiny):
    _, processor, items, root = tiny
    rows = finetune.FoodRows(processor, items[:3], root)
    batch = rows.batch([0, 2])
    for labels, item in zip(batch["labels"], (items[0], items[2]), strict=True):
        answer = processor.tokenizer.decode(labels[labels != -100])
        correct = item["choices"][int(item["answer"])]
        assert answer == f"{correct}{data.ANSWER_PHRASE}{item['food_meta']['food_name']}<|im_end|>"
    assert batch["pixel_values"].shape[0] == 2


def test_lora_trains_adapters_and_word_rows_only_then_merges_and_reloads(tiny, tmp_path):
    model, processor, items, root = tiny
    ids = finetune.new_word_ids(processor.tokenizer, items)
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = finetune.add_lora(model, ids, r=4, alpha=8)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable)
    # LLM, projector and ViT linears get adapters (the mini ViT has never seen food); the patch embedding does not
    assert all(
        any(part in n for n in trainable)
        for part in ("language_model", "multi_modal_projector", "vision_tower")
    )
    assert not any("patch_embeddings" in n or "vision_tower.embeddings" in n for n in trainable)
    rows = finetune.FoodRows(processor, items, root)
    losses = finetune.lora_finetune(peft_model, rows, steps=3, batch_size=4, progress=False)
    assert len(losses) == 3
    merged = peft_model.merge_and_unload()
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, frozen[k])}
    assert changed and not any("vision_tower.embeddings" in k for k in changed)
    assert any("vision_tower.encoder" in k for k in changed)
    batch = rows.batch([0, 1])
    with torch.no_grad():
        expected = merged(**batch).logits
    save_atomic(merged, processor, tmp_path / "merged")
    reloaded, _ = load("internvl", tmp_path / "merged")
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)


# ---- full track helpers (no xtuner needed) ------------------------------------------------------------------------

"""The mini LLaVA (notebooks 03, 05) and the shared SFT helpers, on tiny step counts."""

import dataclasses

import pytest
import torch

from course_utils import alignment, connectors, data, llava, mini
from course_utils.mini import clip_train, sft
from course_utils.mini import llava_train as L

TINY = dataclasses.replace(L.LlavaRecipe(), llm_steps=2, stage1_steps=2, stage2_steps=2, train_images=16)


@pytest.fixture
def untrained_clip(monkeypatch):
    """Skip the 40-s CLIP training: an untrained mini CLIP with the default sizes stands in."""
    clip, processor = mini.build_dual_encoder(alignment.AlignConfig())
    monkeypatch.setattr(clip_train, "pretrained_dual_encoder", lambda *a, **k: (clip, processor))
    return clip


@pytest.mark.parametrize("kind", ["linear", "mlp2x_gelu"])
def test_build_loads_the_clip_vision_tower_and_the_course_projector(untrained_clip, kind):
    model, processor = L.build_mini_llava(kind, TINY)
    ours, theirs = model.model.vision_tower.state_dict(), untrained_clip.vision_model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    reference = llava.build_projector(kind, 64, TINY.hidden)
    got = model.model.multi_modal_projector
    assert type(got) is type(reference) and got.state_dict().keys() == reference.state_dict().keys()


@pytest.mark.parametrize(("select", "layer", "tokens"), [("default", -2, 36), ("full", -1, 37)])
def test_feature_choice_sets_the_token_count_and_runs(untrained_clip, select, layer, tokens):
    model, processor = L.build_mini_llava(feature_layer=layer, feature_select=select, recipe=TINY)
    items = data.make_shapes(4, image_size=48, seed=1)
    chats = sft.Conversations(processor, items)
    assert chats.image_tokens == tokens
    assert model(**chats.rows([0, 1], [["shape"], ["caption", "size"]])).loss.isfinite()
    with pytest.raises(ValueError, match="drop CLS"):
        L.build_mini_llava(feature_select="cls", recipe=TINY)


def test_conversations_match_the_llava_chat_template(untrained_clip):
    _, processor = L.build_mini_llava(recipe=TINY)
    item = data.make_shapes(1, image_size=48, seed=2)[0]
    qa = dict(zip(data.QUESTIONS, item.qa(), strict=True))
    order = ["size", "colour"]
    messages = []
    for n, kind in enumerate(order):
        image = [{"type": "image"}] if n == 0 else []
        messages.append({"role": "user", "content": [*image, {"type": "text", "text": qa[kind][0]}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": qa[kind][1]}]})
    text = processor.apply_chat_template(messages)
    official = processor(images=[item.image], text=[text], return_tensors="pt")["input_ids"][0].tolist()
    row = sft.Conversations(processor, [item], kinds=tuple(order)).rows([0], [order])["input_ids"][0].tolist()
    assert row == official[: len(row)] and processor.tokenizer.decode(official[len(row) :]) == "\n"


def test_a_qformer_connector_trains_and_generates_with_its_own_token_count(untrained_clip):
    model, processor = L.build_mini_llava(recipe=TINY)
    L.set_projector(model, connectors.QFormerConnector(64, TINY.hidden, num_queries=5, layers=2))
    items = data.make_shapes(8, image_size=48, seed=3)
    chats = sft.Conversations(processor, items, image_tokens=5)
    assert (
        chats.image_tokens == 5
        and (chats.rows([0], [["shape"]])["input_ids"] == processor.image_token_id).sum() == 5
    )
    counts = sft.set_trainable(model, ["projector"])
    assert counts["vision"] == counts["llm"] == 0 and counts["projector"] > 0
    seen = []
    losses = sft.train_stage(model, chats, 4, lr=1e-3, batch_size=8, seed=0, progress=False,
                             probe=(2, lambda n: seen.append((n, model.training))))  # fmt: skip
    assert len(losses) == 4 and seen == [(0, False), (2, False), (4, False)]
    answers = sft.generate(model, chats, [0, 1], "colour", max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    acc = sft.accuracy(model, chats, kinds=["colour", "size"])
    assert set(acc) == {"colour", "size", "all"} and 0 <= acc["all"] <= 1


def test_projector_lr_scale_gives_the_projector_its_own_learning_rate(untrained_clip, monkeypatch):
    """Notebook 05 fine-tunes its stage-1 Q-Former at a tenth of the rate: the optimiser's groups say so, and a scale of
    1 builds exactly the optimiser of a run without the option."""
    seen = []
    real = sft.train_loop

    def recording(groups, *args, **kwargs):  # train_loop pops each group's lr_scale: record them first
        seen.append([({id(p) for p in g["params"]}, g.get("lr_scale", 1.0)) for g in groups])
        return real(groups, *args, **kwargs)

    monkeypatch.setattr(sft, "train_loop", recording)
    model, processor = L.build_mini_llava(recipe=TINY)
    chats = sft.Conversations(processor, data.make_shapes(4, image_size=48))
    projector = {id(p) for p in model.model.multi_modal_projector.parameters()}
    for scale in (1.0, 0.1):
        sft.set_trainable(model, ["projector", "llm"])
        sft.train_stage(
            model, chats, 1, lr=1e-3, batch_size=2, seed=0, progress=False, projector_lr_scale=scale
        )
    plain, scaled = seen
    assert len(plain) == 1 and projector <= plain[0][0] and plain[0][1] == 1.0
    assert [scale for _, scale in scaled] == [1.0, 0.1] and scaled[1][0] == projector
    assert not projector & scaled[0][0]


def test_set_trainable_and_train_stage_refuse_bad_requests(untrained_clip):
    model, processor = L.build_mini_llava(recipe=TINY)
    with pytest.raises(ValueError, match="unknown part"):
        sft.set_trainable(model, ["projectr"])
    sft.set_trainable(model, [])
    chats = sft.Conversations(processor, data.make_shapes(2, image_size=48))
    with pytest.raises(ValueError, match="nothing to train"):
        sft.train_stage(model, chats, 1, lr=1e-3, batch_size=4, seed=0, progress=False)


def test_two_stages_freeze_the_vision_tower_and_are_reproducible(untrained_clip):
    runs = []
    for _ in range(2):
        model, processor = L.build_mini_llava(recipe=TINY)
        before = {k: v.clone() for k, v in model.model.vision_tower.state_dict().items()}
        history = L.train_two_stages(model, processor, L.shapes(TINY)[0], TINY, progress=False)
        after = model.model.vision_tower.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)  # LLaVA never trains the ViT
        assert [len(v) for v in history.values()] == [2, 2, 2]
        runs.append(history)
    assert runs[0] == runs[1]


@pytest.mark.parametrize(("select", "layer"), [("default", -2), ("full", -1), ("default", -1), ("full", -2)])
def test_select_features_is_what_transformers_hands_the_projector(untrained_clip, select, layer):
    """llava.select_features (shown in notebook 03) against LlavaModel.get_image_features: the projector's input."""
    model, processor = L.build_mini_llava(feature_layer=layer, feature_select=select, recipe=TINY)
    items = data.make_shapes(3, image_size=48, seed=4)
    seen = []
    hook = model.model.multi_modal_projector.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    chats = sft.Conversations(processor, items)
    with torch.no_grad():
        model(**chats.prompts([0, 1, 2], "shape"))
        states = model.model.vision_tower(chats.pixels[[0, 1, 2]], output_hidden_states=True).hidden_states
    hook.remove()
    assert torch.equal(seen[0], llava.select_features(states, layer, select))

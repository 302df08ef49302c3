"""The transformers chat backend end to end, on a tiny (untrained) mini InternVL and on greedy determinism."""

import dataclasses

import pytest
import torch

from course_utils import data, infer
from course_utils.mini import internvl_train as T

TINY = dataclasses.replace(
    T.Recipe(), vision_steps=2, llm_steps=2, stage1_steps=2, stage2_steps=2, train_images=48, batch_size=4
)


@pytest.fixture(scope="module")
def engine():
    model, processor, _ = T.train_mini_internvl(TINY, progress=False)
    return infer.TransformersChat(model, processor)


@pytest.fixture(scope="module")
def images():
    return [it.image for it in data.make_shapes(3, image_size=TINY.tile, seed=5)]


def test_gen_config_turns_sampling_on_with_sampling_parameters():
    assert not infer.GenConfig().do_sample
    assert infer.GenConfig(top_p=0.8).do_sample and infer.GenConfig(temperature=0.8).do_sample
    kw = infer.GenConfig(top_p=0.8, temperature=0.7, max_new_tokens=5).generate_kwargs()
    assert kw == {"max_new_tokens": 5, "do_sample": True, "top_p": 0.8, "temperature": 0.7}


def test_multi_turn_with_an_image_keeps_history_and_image(engine, images):
    first = engine.chat(
        ("what colour is the shape?", images[0]), gen_config=infer.GenConfig(max_new_tokens=4)
    )
    assert first.image is not None and len(first.history) == 1 and isinstance(first.response.text, str)
    assert first.history[0] == ("what colour is the shape?", first.response.text)
    second = engine.chat("what shape is it?", session=first, gen_config=infer.GenConfig(max_new_tokens=4))
    assert (
        len(second.history) == 2 and second.image is first.image and len(first.history) == 1
    )  # input untouched
    assert second.response.input_token_len > first.response.input_token_len
    assert second.response.finish_reason in ("stop", "length") and second.response.generate_token_len <= 4


def test_messages_put_the_image_in_the_first_turn_only():
    s = infer.Session(history=[("q1", "a1")], image=data.make_shapes(1)[0].image)
    msgs = infer.messages(s, "q2")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0]["content"][0] == {"type": "image"} and all(p["type"] == "text" for p in msgs[2]["content"])


def test_text_only_chat_and_clear_errors(engine, images):
    assert isinstance(engine.chat("hello", gen_config=infer.GenConfig(max_new_tokens=2)).response.text, str)
    with pytest.raises(TypeError, match="PIL.Image"):
        engine.chat(("hi", "not an image"))
    later = engine.chat("hello", gen_config=infer.GenConfig(max_new_tokens=1))
    with pytest.raises(ValueError, match="first turn"):
        engine.chat(("and this?", images[0]), session=later)
    with pytest.raises(ValueError, match="every prompt has an image"):
        engine.batch([("a", images[0]), "b"])


def test_batch_equals_one_by_one_greedy(engine, images):
    prompts = [("describe the image.", im) for im in images]
    gen = infer.GenConfig(max_new_tokens=4)
    batched = engine.batch(prompts, gen)
    single = [engine.chat(p, gen_config=gen).response for p in prompts]
    assert [r.text for r in batched] == [r.text for r in single]


def test_stream_yields_the_same_answer_as_chat(engine, images):
    gen = infer.GenConfig(max_new_tokens=5)
    pieces = list(engine.stream(("what shape is it?", images[1]), gen_config=gen))
    full = engine.chat(("what shape is it?", images[1]), gen_config=gen)
    assert "".join(pieces).strip() == full.response.text == engine.last_session.response.text


def test_sampling_is_seeded_and_changes_with_temperature(engine, images):
    a = engine.chat(
        ("describe the image.", images[2]),
        gen_config=infer.GenConfig(temperature=2.0, seed=1, max_new_tokens=6),
    )
    b = engine.chat(
        ("describe the image.", images[2]),
        gen_config=infer.GenConfig(temperature=2.0, seed=1, max_new_tokens=6),
    )
    assert a.response.text == b.response.text
    texts = {
        engine.chat(
            ("describe the image.", images[2]),
            gen_config=infer.GenConfig(temperature=5.0, seed=s, max_new_tokens=6),
        ).response.text
        for s in range(6)
    }
    assert len(texts) > 1, "top_p/temperature must actually change sampling"
    torch.manual_seed(0)


class _Recorder:
    """Stands in for an lmdeploy class: records the keyword arguments it was built with."""

    def __init__(self, name):
        self.name = name

    def __call__(self, *args, **kwargs):
        return (self.name, args, kwargs)


@pytest.fixture
def fake_lmdeploy(monkeypatch):
    """A stand-in ``lmdeploy`` module (the real one needs a CUDA machine; `make test-full-stack` is the real check)."""
    import sys
    import types

    mod = types.ModuleType("lmdeploy")
    for name in ("TurbomindEngineConfig", "PytorchEngineConfig", "GenerationConfig", "pipeline"):
        setattr(mod, name, _Recorder(name))
    monkeypatch.setitem(sys.modules, "lmdeploy", mod)
    return mod


def test_lmdeploy_configs_and_sampling_switch(fake_lmdeploy):
    name, _, kwargs = infer.lmdeploy_configs("turbomind", session_len=8192, cache_max_entry_count=0.2)
    assert name == "TurbomindEngineConfig" and kwargs == {
        "session_len": 8192,
        "cache_max_entry_count": 0.2,
        "tp": 1,
    }
    assert infer.lmdeploy_configs("pytorch")[0] == "PytorchEngineConfig"
    with pytest.raises(ValueError, match="turbomind"):
        infer.lmdeploy_configs("vllm")
    _, _, greedy = infer.lmdeploy_gen_config(infer.GenConfig(max_new_tokens=64))
    assert greedy == {"max_new_tokens": 64, "do_sample": False}
    _, _, sampled = infer.lmdeploy_gen_config(infer.GenConfig(top_p=0.8, temperature=0.8, seed=1))
    assert sampled["do_sample"] is True and sampled["top_p"] == 0.8 and sampled["random_seed"] == 1


def test_lmdeploy_pipeline_trusts_remote_code_and_sets_no_template(fake_lmdeploy):
    chat = infer.LMDeployChat("/models/InternVL2-2B")
    name, args, kwargs = chat.pipe
    assert name == "pipeline" and args == ("/models/InternVL2-2B",)
    assert kwargs["trust_remote_code"] is True and "chat_template_config" not in kwargs
    assert kwargs["backend_config"][0] == "TurbomindEngineConfig"

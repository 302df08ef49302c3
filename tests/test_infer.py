"""The transformers chat backend end to end, on a tiny (untrained) mini InternVL and on greedy determinism."""

import dataclasses
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

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
    assert infer.GenConfig(top_k=5).do_sample and infer.GenConfig(min_p=0.1).do_sample
    kw = infer.GenConfig(top_p=0.8, temperature=0.7, max_new_tokens=5).generate_kwargs()
    assert kw == {"max_new_tokens": 5, "do_sample": True, "top_p": 0.8, "temperature": 0.7}
    assert infer.GenConfig(temperature=0.0, top_p=0.8).generate_kwargs() == {
        "max_new_tokens": 32,
        "do_sample": False,
    }


# lmdeploy 0.18's GenerationConfig.__post_init__: 0 <= temperature <= 2, 0 <= top_p <= 1, top_k >= 0, 0 <= min_p <= 1
@pytest.mark.parametrize(
    ("name", "value", "limit"),
    [("temperature", 3.0, "between 0.0 and 2.0"), ("temperature", -0.1, "between 0.0 and 2.0"),
     ("top_p", 1.5, "between 0.0 and 1.0"), ("top_p", -0.5, "between 0.0 and 1.0"), ("top_k", -1, ">= 0"),
     ("min_p", 1.2, "between 0.0 and 1.0"), ("min_p", -0.01, "between 0.0 and 1.0")],
)  # fmt: skip
def test_gen_config_refuses_what_lmdeploy_refuses(name, value, limit):
    with pytest.raises(ValueError, match=rf"{name} must be {limit} .*got {value}"):
        infer.GenConfig(**{name: value})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": 2.0},
        {"top_p": 0.0},
        {"top_p": 1.0},
        {"top_k": 0},
        {"min_p": 1.0},
    ],
)
def test_gen_config_accepts_lmdeploys_limits_themselves(kwargs):
    infer.GenConfig(**kwargs)


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
            gen_config=infer.GenConfig(temperature=2.0, seed=s, max_new_tokens=6),
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
        "model_format": None,
        "quant_policy": 0,
    }
    _, _, awq = infer.lmdeploy_configs("turbomind", model_format="awq", quant_policy=8)
    assert (awq["model_format"], awq["quant_policy"]) == ("awq", 8)
    assert infer.lmdeploy_configs("pytorch")[0] == "PytorchEngineConfig"
    with pytest.raises(ValueError, match="turbomind"):
        infer.lmdeploy_configs("vllm")
    _, _, greedy = infer.lmdeploy_gen_config(infer.GenConfig(max_new_tokens=64))
    assert greedy == {"max_new_tokens": 64, "do_sample": False}
    _, _, sampled = infer.lmdeploy_gen_config(infer.GenConfig(top_p=0.8, temperature=0.8, seed=1))
    assert sampled["do_sample"] is True and sampled["top_p"] == 0.8 and sampled["random_seed"] == 1
    _, _, top_k = infer.lmdeploy_gen_config(infer.GenConfig(top_k=5, min_p=0.1))
    assert top_k == {
        "max_new_tokens": 32,
        "do_sample": True,
        "top_p": 1.0,
        "temperature": 1.0,
        "top_k": 5,
        "min_p": 0.1,
    }


def test_lmdeploy_pipeline_trusts_remote_code_and_sets_no_template(fake_lmdeploy):
    chat = infer.LMDeployChat("/models/InternVL2-2B")
    name, args, kwargs = chat.pipe
    assert name == "pipeline" and args == ("/models/InternVL2-2B",)
    assert kwargs["trust_remote_code"] is True and "chat_template_config" not in kwargs
    assert kwargs["backend_config"][0] == "TurbomindEngineConfig"


def test_lmdeploy_chat_sends_the_image_first_unless_told_otherwise(fake_lmdeploy, images):
    calls = []

    class Pipe:
        def chat(self, query, session=None, gen_config=None):
            calls.append(query)
            return types.SimpleNamespace(response=types.SimpleNamespace(text="ok", finish_reason="stop"))

        def __call__(self, queries, gen_config=None):
            calls.append(queries)
            return [types.SimpleNamespace(text="ok", finish_reason="stop") for _ in queries]

    chat = infer.LMDeployChat("/models/InternVL2-2B")
    chat.pipe = Pipe()
    chat.chat(("q", images[0]))
    chat.chat(("q", images[0]), image_first=False)
    chat.batch([("q", images[0])])
    chat.chat("text only")
    assert (
        isinstance(calls[0][0], Image.Image) and calls[0][1] == "q"
    )  # (image, text): lmdeploy puts the image first
    assert calls[1][0] == "q" and isinstance(calls[1][1], Image.Image)  # (text, image): after the text
    assert isinstance(calls[2][0][0], Image.Image) and calls[3] == "text only"
    text_first = infer.LMDeployChat("/m", image_first=False)
    text_first.pipe = Pipe()
    text_first.chat(("q", images[0]))
    assert calls[4][0] == "q"


def test_transformers_chat_image_first_and_text_first_layouts(engine, images):
    first = infer.messages(infer.Session(image=images[0]), "q")[0]["content"]
    after = infer.messages(infer.Session(image=images[0], image_first=False), "q")[0]["content"]
    assert first == [{"type": "image"}, {"type": "text", "text": "q"}]
    assert after == [{"type": "text", "text": "q"}, {"type": "image"}]
    gen = infer.GenConfig(max_new_tokens=2)
    s = engine.chat(("what shape is it?", images[0]), gen_config=gen, image_first=False)
    assert s.image_first is False and engine.chat("and?", session=s, gen_config=gen).image_first is False
    assert engine.chat(("what shape is it?", images[0]), gen_config=gen).image_first is True  # the default
    prompt = engine.processor.apply_chat_template(infer.messages(s, "x"), add_generation_prompt=True)
    assert prompt.index("what shape is it?") < prompt.index("<IMG_CONTEXT>")


# ---- remote code without generate (transformers >= 4.50) --------------------------------------------------------


def _remote_code_model():
    """Shaped like InternVL2's remote code: a PreTrainedModel LM defining prepare_inputs_for_generation but not
    inheriting GenerationMixin, inside an outer model that calls ``self.language_model.generate``."""
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class Config(PretrainedConfig):
        model_type = "course_remote_lm"

        def __init__(self, vocab_size=11, hidden_size=8, **kwargs):
            self.vocab_size, self.hidden_size = vocab_size, hidden_size
            self.num_hidden_layers, self.num_attention_heads = 1, 1
            super().__init__(**kwargs)

    class RemoteLM(PreTrainedModel):
        config_class = Config

        def __init__(self, config):
            super().__init__(config)
            self.emb = nn.Embedding(config.vocab_size, config.hidden_size)
            self.out = nn.Linear(config.hidden_size, config.vocab_size)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            return CausalLMOutputWithPast(logits=self.out(self.emb(input_ids)))

        def prepare_inputs_for_generation(self, input_ids, **kwargs):
            return {"input_ids": input_ids}

    class ChatModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.language_model = RemoteLM(Config())

        def chat(self, ids):
            return self.language_model.generate(ids, max_new_tokens=3, do_sample=False)

    return ChatModel()


def test_enable_generate_gives_remote_code_generate_back():
    torch.manual_seed(0)
    model = _remote_code_model()
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(AttributeError, match="generate"):
        model.chat(ids)  # transformers >= 4.50: what InternVL2's chat() runs into (OpenGVLab/InternVL#1068)
    assert infer.enable_generate(model) is model
    cls = type(model.language_model)
    out = model.chat(ids)
    assert out.shape == (1, 6) and out[0, :3].tolist() == [1, 2, 3]
    assert model.language_model.generation_config is not None and cls.can_generate()
    assert type(infer.enable_generate(model).language_model) is cls  # idempotent
    assert cls.__name__ == "RemoteLM" and cls.__mro__[1].__name__ == "RemoteLM"


# ---- lmdeploy's api_server ---------------------------------------------------------------------------------------

REHEARSAL = Path(__file__).parent / "rehearsal" / "standins"


# ---- the lmdeploy stand-in of the CPU rehearsal -------------------------------------------------------------------


@pytest.fixture
def standin_lmdeploy(monkeypatch, engine, tmp_path):
    """The rehearsal's ``lmdeploy`` package, its engine replaced by this file's tiny mini InternVL."""
    import sys

    for name in [m for m in sys.modules if m == "lmdeploy" or m.startswith("lmdeploy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(REHEARSAL))
    import lmdeploy

    # lmdeploy.pipeline is the function (as in lmdeploy): the module is in sys.modules
    monkeypatch.setattr(sys.modules["lmdeploy.pipeline"], "load_engine", lambda: engine)
    model = tmp_path / "InternVL2-2B"
    model.mkdir()
    (model / "config.json").write_text(
        '{"auto_map": {"AutoModel": "modeling_internvl_chat.InternVLChatModel"}}'
    )
    yield lmdeploy, model
    for name in [m for m in sys.modules if m == "lmdeploy" or m.startswith("lmdeploy.")]:
        del sys.modules[name]


def test_standin_refuses_remote_code_without_trust_and_bad_values(standin_lmdeploy):
    lmdeploy, model = standin_lmdeploy
    assert lmdeploy.__version__ == "0.18.0"
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        lmdeploy.pipeline(str(model))
    with pytest.raises(AssertionError):
        lmdeploy.GenerationConfig(temperature=3.0)
    with pytest.raises(AssertionError):
        lmdeploy.PytorchEngineConfig(cache_max_entry_count=1.0)


def test_lmdeploy_chat_on_the_standin_multi_turn_batch_stream(standin_lmdeploy, images):
    _, model = standin_lmdeploy
    chat = infer.LMDeployChat(model, session_len=4096)
    gen = infer.GenConfig(max_new_tokens=4)
    first = chat.chat(("what colour is the shape?", images[0]), gen_config=gen)
    second = chat.chat("what shape is it?", session=first, gen_config=gen)
    assert second is first and len(second.history) == 2 and isinstance(second.response.text, str)
    assert second.response.finish_reason in ("stop", "length")
    [r] = chat.batch([("what shape is it?", images[1])], gen)
    assert "".join(chat.stream(("what shape is it?", images[1]), gen)).strip() == r.text


def test_lmdeploy_chat_raises_when_lmdeploy_answers_with_an_error(standin_lmdeploy, images):
    _, model = standin_lmdeploy
    chat = infer.LMDeployChat(model, session_len=8)  # far too short for an image
    with pytest.raises(
        RuntimeError, match=r"finish_reason 'error', error_code 'context_length_exceeded'.*session_len"
    ):
        chat.chat(("what colour is the shape?", images[0]))
    with pytest.raises(RuntimeError, match="context_length_exceeded"):
        chat.batch([("what colour is the shape?", images[0])])
    with pytest.raises(RuntimeError, match="context_length_exceeded"):
        list(chat.stream(("what colour is the shape?", images[0])))


def test_07_says_the_original_labs_sampling_was_greedy_in_0_6_1_too():
    """lmdeploy 0.6.1's GenerationConfig also had do_sample=False (read in its wheel): the original lab's
    top_p/temperature never sampled. 07 must not say it only became greedy later."""
    import json

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "07_lmdeploy_inference.ipynb"
    text = "".join("".join(c["source"]) for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"])
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| `GenerationConfig(top_p=0.8, temperature=0.8)`")
    )
    assert "0.6.1" in row and "greedy" in row and "today" not in row.split("|")[2].replace("as today", ""), (
        row
    )

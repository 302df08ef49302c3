"""course_utils.remote_code: each failure of InternVL2's 2024 remote code under transformers 5, and its repair.

The tiny remote-format folder (tests/rehearsal/laptop.py) runs the course's stand-in remote code, which keeps the
published code's traits that break (no ``post_init()``, non-persistent rotary buffers, InternLM2's
``prepare_inputs_for_generation``, the timm import, a flash-attention LLM config): each test shows the failure
without the repair and the behaviour with it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from course_utils import remote_code

sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
import laptop  # noqa: E402


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    return laptop.write_remote(tmp_path_factory.mktemp("remote") / "InternVL2-tiny")


@pytest.fixture
def folder(original, tmp_path) -> Path:
    """A fresh copy per test whose code differs by a comment: transformers caches a remote module by the hash of its
    code, so without it a class repaired in one test would hide the failure from the next."""
    copy = Path(shutil.copytree(original, tmp_path / "InternVL2-tiny"))
    with (copy / "modeling_internvl_chat.py").open("a", encoding="utf-8") as code:
        code.write(f"\n# copy for {tmp_path.name}\n")
    return copy


def test_drop_path_is_identity_at_inference_and_drops_in_training():
    remote_code.install_import_shims()
    from timm.models.layers import DropPath

    x = torch.ones(64, 3)
    layer = DropPath(0.5)
    assert torch.equal(layer.eval()(x), x)
    out = layer.train()(x)
    assert set(out[:, 0].tolist()) <= {0.0, 2.0} and 0 < (out[:, 0] == 0).sum() < 64


def model_class(folder):
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    remote_code.install_import_shims()
    return get_class_from_dynamic_module(
        "modeling_internvl_chat.InternVLChatModel", str(folder), local_files_only=True
    )


def test_without_post_init_from_pretrained_fails_and_ensure_post_init_fixes_it(folder):
    config = remote_code.load_config(folder)
    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        model_class(folder).from_pretrained(folder, config=config, trust_remote_code=True)
    assert remote_code.ensure_post_init(folder) is model_class(folder)
    assert model_class(folder).from_pretrained(folder, config=config, trust_remote_code=True) is not None


def test_flash_attention_config_needs_load_config(folder):
    cls = remote_code.ensure_post_init(folder)
    with pytest.raises((ValueError, ImportError), match="Flash"):
        cls.from_pretrained(folder, trust_remote_code=True)
    model = cls.from_pretrained(folder, config=remote_code.load_config(folder), trust_remote_code=True)
    assert model.language_model.config._attn_implementation == "eager"


def test_load_uses_the_folders_own_class_after_another_folder(folder, original):
    """AutoModel maps the (shared) config class to the model class it loaded last; load must not depend on that."""
    remote_code.load(original, torch.float32)
    model = remote_code.load(folder, torch.float32)
    assert type(model) is model_class(folder)


def test_rotary_buffers_are_recomputed(folder):
    """transformers 5 leaves the non-persistent buffers as uninitialised memory; after the repair they equal the
    formula and the loaded model computes what the model built in memory from the same weights computes."""
    model = remote_code.load(folder, torch.float32)
    rotary = [m for m in model.modules() if hasattr(m, "_set_cos_sin_cache")]
    assert rotary
    for module in rotary:
        formula = 1.0 / (module.base ** (torch.arange(0, module.dim, 2).float() / module.dim))
        assert torch.allclose(module.inv_freq, formula)
        positions = torch.arange(module.max_position_embeddings).float()
        assert torch.allclose(module.cos_cached[:, 0], torch.cos(positions * formula[0]), atol=1e-5)
    fresh = type(model)(
        model.config
    ).eval()  # built in memory: its buffers come from __init__, not from loading
    fresh.load_state_dict(model.state_dict())
    ids = torch.arange(3, 20)[None]
    with torch.no_grad():
        assert torch.allclose(
            model.language_model(input_ids=ids).logits, fresh.language_model(input_ids=ids).logits
        )


def test_enable_generate_hands_the_remote_code_its_cache_and_no_position_ids(folder):
    model = remote_code.load(folder, torch.float32)
    lm = model.language_model
    assert hasattr(lm, "generate")
    past = lm(input_ids=torch.arange(3, 10)[None], use_cache=True).past_key_values
    inputs = lm.prepare_inputs_for_generation(
        torch.arange(3, 11)[None], cache=past, position_ids=torch.arange(8)[None], attention_mask=None
    )
    assert (
        inputs["past_key_values"] is past
        and inputs["input_ids"].shape == (1, 1)
        and inputs["position_ids"] is None
    )
    ids = torch.arange(3, 10)[None]
    out = lm.generate(input_ids=ids, max_new_tokens=5, do_sample=False)
    reference = ids
    with torch.no_grad():
        for _ in range(5):
            reference = torch.cat([reference, lm(input_ids=reference).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out[:, : reference.shape[1]], reference)


def test_enable_generate_is_idempotent_and_leaves_transformers_models_alone(folder):
    model = remote_code.load(folder, torch.float32)
    cls = type(model.language_model)
    remote_code.enable_generate(model)
    assert type(model.language_model) is cls
    from transformers import Qwen2Config, Qwen2ForCausalLM

    native = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, num_key_value_heads=1))  # fmt: skip
    assert type(remote_code.enable_generate(native)) is Qwen2ForCausalLM


@pytest.fixture(scope="module")
def qwen2_folder(tmp_path_factory) -> Path:
    """InternVL2-1B's layout: the same remote code with transformers' Qwen2 as the LLM."""
    return laptop.write_remote(tmp_path_factory.mktemp("remote-qwen2") / "InternVL2-1B-tiny", llm="qwen2")


def _chat(model, folder, question, history=None, **generation):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    pixels = torch.zeros(1, 3, 448, 448)
    return model.chat(tokenizer, pixels if history is None else None, question,
                      dict(max_new_tokens=4, **generation), history=history, return_history=True)  # fmt: skip


def test_internvl2_1b_chat_fails_on_return_dict_without_the_repair(qwen2_folder):
    """The remote ``generate`` passes ``return_dict=None``; transformers' Qwen2 forwards it to ``forward``."""
    from transformers import Qwen2ForCausalLM

    model = remote_code.load(qwen2_folder, torch.float32)
    assert type(model.language_model) is Qwen2ForCausalLM  # the class is left alone
    del model.language_model.generate  # undo the repair: the class's own generate
    with pytest.raises(TypeError, match="multiple values for keyword argument 'return_dict'"):
        _chat(model, qwen2_folder, "what is it?")


@pytest.mark.parametrize(
    "generation", [{"do_sample": False}, {"do_sample": True, "temperature": 0.8, "top_p": 0.9}]
)
def test_internvl2_1b_chats_greedy_sampled_and_multi_turn(qwen2_folder, generation):
    model = remote_code.load(qwen2_folder, torch.float32)
    torch.manual_seed(0)
    answer, history = _chat(model, qwen2_folder, "what is it?", **generation)
    again, history = _chat(model, qwen2_folder, "and its colour?", history=history, **generation)
    assert isinstance(answer, str) and isinstance(again, str) and len(history) == 2
    remote_code.enable_generate(model)  # idempotent: not wrapped twice
    assert model.language_model.generate.__wrapped__.__self__ is model.language_model


def test_internvl2_1b_answers_through_the_course_engine(qwen2_folder):
    from course_utils import realmodel
    from course_utils.infer import GenConfig

    engine = realmodel.load(qwen2_folder)
    photo = __import__("PIL.Image", fromlist=["Image"]).new("RGB", (640, 480), "red")
    session = engine.chat(("What is in this photo?", photo), gen_config=GenConfig(max_new_tokens=4))
    session = engine.chat(
        "And its colour?", session=session, gen_config=GenConfig(max_new_tokens=4, temperature=0.8)
    )
    text_only = engine.chat("Hello", gen_config=GenConfig(max_new_tokens=4))
    assert len(session.history) == 2 and isinstance(text_only.response.text, str)

"""course_utils.realmodel on tiny InternVL folders of both formats (tests/rehearsal/laptop.py): image tiles against
InternVL's official ``load_image``, prompts against the native processor and the remote model's own ``chat()``,
the chat calls, choice scoring against a brute-force forward, and a failed load that leaves nothing behind."""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_internvl import official_tiles

from course_utils import infer, internvl, realmodel
from course_utils.infer import GenConfig, Response, Session

sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
import laptop  # noqa: E402

FORMATS = ("native", "remote")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GEN = GenConfig(max_new_tokens=6)


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """Noise over a gradient: every tile differs, so a tile out of order or misplaced shows."""
    rng = np.random.default_rng(seed)
    ramp = (
        np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
        + np.linspace(0, 50, height)[:, None, None]
    )
    noise = rng.integers(0, 50, (height, width, 3))
    return Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    return laptop.build(tmp_path_factory.mktemp("laptop"))


def talkative(engine):
    """Give the engine a fresh random, untied output layer that never picks a special token but the end token.

    The tiny random models otherwise answer "\\n" or special tokens only, i.e. the empty string, and every
    equality between two answers would hold trivially. The native tiny's output layer is tied to its input
    embeddings (its hidden state then points back at the last prompt token, "\\n"), so it is replaced, not edited."""
    head = (
        engine.model.language_model.output if engine.checkpoint.format == "remote" else engine.model.lm_head
    )
    weight = torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(1)) * 2
    weight[[i for i in engine.tokenizer.added_tokens_decoder if i != engine.end_id]] = 0
    head.weight = torch.nn.Parameter(weight.to(head.weight.dtype), requires_grad=False)
    return engine


@pytest.fixture(scope="module")
def engines(folders):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLLM_COURSE_DTYPE", raising=False)
        return {fmt: talkative(realmodel.load(folders[fmt], device="cpu")) for fmt in FORMATS}


# --- tiles ----------------------------------------------------------------------------------------------------


def official_pixel_values(image: Image.Image, max_num: int, size: int = 448) -> torch.Tensor:
    """InternVL's load_image: official tiles, then torchvision's ToTensor (HWC uint8 → CHW / 255) and Normalize."""
    out = []
    for tile in official_tiles(image, max_num=max_num, image_size=size):
        x = (
            torch.from_numpy(np.array(tile, copy=True))
            .permute(2, 0, 1)
            .contiguous()
            .to(torch.float32)
            .div(255)
        )
        out.append(x.sub(torch.tensor(MEAN)[:, None, None]).div(torch.tensor(STD)[:, None, None]))
    return torch.stack(out)


SIZES = [(50, 30), (448, 448), (800, 1300), (1920, 1080), (1080, 1920), (1200, 300), (300, 1200), (1000, 10),
         (10, 1000), (896, 448), (250, 100), (640, 427), (1000, 872), (447, 449), (1344, 336), (3000, 2000)]  # fmt: skip


@pytest.mark.parametrize("max_tiles", [6, 12])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_pixel_values_equal_official_load_image(size, max_tiles):
    """pixel_values() = InternVL's load_image: same tile count, order (thumbnail last) and values."""
    image = picture(*size)
    ours = realmodel.pixel_values(image, max_tiles, 448)
    ref = official_pixel_values(image, max_tiles)
    tiles = internvl.num_tiles(*size, max_num=max_tiles)
    assert ours.shape == ref.shape == (tiles, 3, 448, 448) and ours.dtype == torch.float32
    assert torch.allclose(ours, ref, atol=1e-6)
    if tiles > 1:  # the last tile is the whole image shrunk
        assert torch.allclose(ours[-1], official_pixel_values(image.resize((448, 448)), 1)[0], atol=1e-6)


def test_pixel_values_convert_to_rgb():
    """Greyscale and RGBA images become RGB tiles like InternVL's ``.convert('RGB')``."""
    image = picture(900, 500)
    for mode in ("L", "RGBA"):
        assert torch.equal(
            realmodel.pixel_values(image.convert(mode), 6),
            official_pixel_values(image.convert(mode).convert("RGB"), 6),
        )


# --- prompts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(448, 448), (50, 30), (800, 1300), (1920, 1080), (1200, 300)])
def test_native_processor_tiles_and_image_tokens(engines, size):
    """The native processor tiles like InternVL (num_tiles) and inserts 256 <IMG_CONTEXT> per tile."""
    engine, image = engines["native"], picture(*size)
    prompt = engine.processor.apply_chat_template(
        infer.messages(Session(image=image), "what?"), add_generation_prompt=True
    )
    out = engine.processor(images=[image], text=[prompt], return_tensors="pt")
    tiles = internvl.num_tiles(*size, max_num=engine.max_tiles)
    assert out["pixel_values"].shape == (tiles, 3, 448, 448)
    context = engine.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert int((out["input_ids"] == context).sum()) == 256 * tiles
    # and the pixels are load_image's
    assert torch.allclose(out["pixel_values"], realmodel.pixel_values(image, engine.max_tiles), atol=1e-6)


def record_generate(engine, monkeypatch) -> dict:
    """Replace the remote model's generate by a recorder that answers the end token at once."""
    seen = {}

    def generate(pixel_values=None, input_ids=None, attention_mask=None, **kwargs):
        seen.update(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        return torch.tensor([[engine.end_id]])

    monkeypatch.setattr(engine.model, "generate", generate)
    return seen


def test_remote_prompt_is_what_chat_builds(engines, monkeypatch):
    """RemoteChat.prompt/_inputs = the remote chat(): one <img>, 256 <IMG_CONTEXT> per tile, its system message."""
    engine, image = engines["remote"], picture(896, 448)
    pixels = realmodel.pixel_values(image, engine.max_tiles).to(engine.model.dtype)
    assert len(pixels) == 3
    prompt = engine.prompt(Session(image=image), "what?", tiles=3)
    assert prompt.count("<img>") == prompt.count("</img>") == 1 and "<image>" not in prompt
    assert prompt.count("<IMG_CONTEXT>") == 768
    assert engine.model.system_message and engine.model.system_message in prompt
    assert prompt.index("</img>") < prompt.index("what?")  # image first, as chat() puts it

    seen = record_generate(engine, monkeypatch)
    engine.model.chat(engine.tokenizer, pixels, "what?", {"max_new_tokens": 4, "do_sample": False})
    assert seen["input_ids"].tolist() == [engine.tokenizer(prompt)["input_ids"]]
    ours = engine._inputs([Session(image=image)], ["what?"])
    assert torch.equal(ours["input_ids"], seen["input_ids"])
    assert torch.equal(ours["attention_mask"], seen["attention_mask"])
    assert torch.equal(ours["pixel_values"], seen["pixel_values"])


def test_remote_prompt_second_turn(engines, monkeypatch):
    """With history [(q1, a1)] the image tokens stay in the first turn, as chat(history=...) lays it out."""
    engine, image = engines["remote"], picture(896, 448)
    pixels = realmodel.pixel_values(image, engine.max_tiles).to(engine.model.dtype)
    session = Session(history=[("q1", "a1")], image=image)
    prompt = engine.prompt(session, "q2", tiles=3)
    assert prompt.count("<img>") == 1 and prompt.count("<IMG_CONTEXT>") == 768
    assert prompt.index("</img>") < prompt.index("q1") < prompt.index("a1") < prompt.index("q2")

    seen = record_generate(engine, monkeypatch)
    # chat() keeps the question as it sent it: the first turn holds "<image>\n"
    engine.model.chat(engine.tokenizer, pixels, "q2", {"max_new_tokens": 4}, history=[("<image>\nq1", "a1")])
    assert torch.equal(engine._inputs([session], ["q2"])["input_ids"], seen["input_ids"])


def test_remote_prompt_without_image(engines):
    """A text-only session has no image tokens at all."""
    prompt = engines["remote"].prompt(Session(), "hello", tiles=0)
    assert "<img>" not in prompt and "<IMG_CONTEXT>" not in prompt and "<image>" not in prompt
    assert prompt.endswith("hello<|im_end|><|im_start|>assistant\n")


# --- chat, stream, batch ----------------------------------------------------------------------------------------


def prompt_length(engine, session: Session, text: str) -> int:
    """The prompt's token count, built without the engine's own _inputs."""
    if engine.checkpoint.format == "remote":
        tiles = (
            len(realmodel.pixel_values(session.image, engine.max_tiles)) if session.image is not None else 0
        )
        return len(engine.tokenizer(engine.prompt(session, text, tiles))["input_ids"])
    prompt = engine.processor.apply_chat_template(infer.messages(session, text), add_generation_prompt=True)
    images = [session.image] if session.image is not None else None
    return engine.processor(images=images, text=[prompt], return_tensors="pt")["input_ids"].shape[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_chat_is_greedy_and_keeps_history(engines, fmt):
    """Greedy chat answers the same twice; a 2-turn session holds 2 turns; token counts are the prompt's."""
    engine, image = engines[fmt], picture(448, 448)
    first = engine.chat(("what?", image), gen_config=GEN)
    again = engine.chat(("what?", image), gen_config=GEN)
    assert first.response.text and first.response.text == again.response.text
    assert first.response.input_token_len == prompt_length(engine, Session(image=image), "what?")
    assert 0 < first.response.generate_token_len <= GEN.max_new_tokens
    assert first.response.finish_reason in ("stop", "length")
    second = engine.chat("and then?", session=first, gen_config=GEN)
    assert len(first.history) == 1 and len(second.history) == 2  # the input session is not changed
    assert second.history[0] == ("what?", first.response.text) and second.history[1][0] == "and then?"
    assert second.image is first.image
    past = Session(history=first.history, image=first.image)
    assert second.response.input_token_len == prompt_length(engine, past, "and then?")
    assert second.response.input_token_len > first.response.input_token_len


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_joins_to_the_chat_answer(engines, fmt):
    """The streamed pieces, joined, are the greedy chat answer; the finished session is in last_session."""
    engine, image = engines[fmt], picture(448, 448)
    answer = engine.chat(("what?", image), gen_config=GEN).response
    pieces = list(engine.stream(("what?", image), gen_config=GEN))
    assert len(pieces) > 1 and "".join(pieces).strip() == answer.text
    assert engine.last_session.response == answer
    assert engine.last_session.history == [("what?", answer.text)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_batch_returns_one_response_per_prompt(engines, fmt):
    """batch() of 2 prompts gives 2 Responses, each the same answer chat gives (greedy, left padding)."""
    engine, image = engines[fmt], picture(448, 448)
    prompts = [("what?", image), ("what is in this picture?", image)]
    responses = engine.batch(prompts, GEN)
    assert len(responses) == 2 and all(isinstance(r, Response) for r in responses)
    lengths = [prompt_length(engine, Session(image=image), text) for text, _ in prompts]
    for prompt, response, length in zip(prompts, responses, lengths, strict=True):
        assert response.text == engine.chat(prompt, gen_config=GEN).response.text
        assert response.generate_token_len <= GEN.max_new_tokens
        # one padded batch (native) counts the padded length; one prompt after another (remote) each its own
        assert response.input_token_len == (max(lengths) if fmt == "native" else length)


# --- score -----------------------------------------------------------------------------------------------------


def brute_force_scores(engine, image, question: str, choices: list[str]) -> list[float]:
    """One full forward over prompt + choice per choice; the sum of the choice tokens' log-probabilities."""
    scores = []
    session = Session(image=image)
    for choice in choices:
        answer = engine.tokenizer(choice, add_special_tokens=False)["input_ids"]
        if engine.checkpoint.format == "native":
            prompt = engine.processor.apply_chat_template(
                infer.messages(session, question), add_generation_prompt=True
            )
            start = engine.processor(images=[image], text=[prompt], return_tensors="pt")["input_ids"].shape[1]
            inputs = engine.processor(images=[image], text=[prompt + choice], return_tensors="pt")
            ids = inputs["input_ids"]
            assert ids[0, start:].tolist() == answer  # the choice is tokenized alone, as score() does
            pixels = inputs["pixel_values"].to(engine.model.dtype)
            with torch.no_grad():
                logits = engine.model(
                    pixel_values=pixels, input_ids=ids, attention_mask=inputs["attention_mask"]
                ).logits
        else:
            pixels = realmodel.pixel_values(image, engine.max_tiles).to(engine.model.dtype)
            prompt_ids = engine.tokenizer(engine.prompt(session, question, len(pixels)))["input_ids"]
            start, ids = len(prompt_ids), torch.tensor([prompt_ids + answer])
            flags = torch.ones(len(pixels), 1, dtype=torch.long)
            with torch.no_grad():
                logits = engine.model(pixels, ids, torch.ones_like(ids), image_flags=flags).logits
        logp = torch.log_softmax(logits[0, start - 1 : -1].float(), dim=-1)
        scores.append(logp.gather(1, torch.tensor(answer)[:, None]).sum().item())
    return scores


@pytest.mark.parametrize("fmt", FORMATS)
def test_score_equals_a_full_forward_per_choice(engines, fmt):
    """score() (prompt read once, each choice from a copy of its cache) = one full forward per choice."""
    engine, image = engines[fmt], picture(700, 500)
    choices = ["red", "blue car", "a small green square", "blue car"]
    scores = engine.score(image, "what is it?", choices)
    assert len(scores) == len(choices) and all(isinstance(s, float) for s in scores)
    assert scores[1] == scores[3]  # a choice that continues the cache leaves it as it was
    reference = brute_force_scores(engine, image, "what is it?", choices)
    assert scores == pytest.approx(reference, abs=1e-2)


# --- failed load, devices, memory ----------------------------------------------------------------------------


def internvl_chat_models() -> int:
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if type(o).__name__ == "InternVLChatModel" and isinstance(o, torch.nn.Module)
    )


def test_failed_load_leaves_nothing_behind(folders, engines, tmp_path):
    """With a broken tokenizer file (read after the model is built), load() raises one RuntimeError line naming the
    folder; the model built is freed. (Missing tokenizer files are caught before: test_checkpoint.)"""
    folder = Path(shutil.copytree(folders["remote"], tmp_path / "no-tokenizer"))
    (folder / "tokenizer.json").write_text("{", encoding="utf-8")
    before = internvl_chat_models()  # the remote engine of this module is alive
    with pytest.raises(RuntimeError) as info:
        realmodel.load(folder, device="cpu")
    message = str(info.value)
    assert str(folder) in message and "remote format" in message and "\n" not in message
    del info
    assert internvl_chat_models() == before
    leftovers = [o for o in gc.get_objects() if type(o).__name__ == "InternVLChatModel"]
    assert all(str(folder) not in str(getattr(o.config, "_name_or_path", "")) for o in leftovers)


def test_device_and_dtype(monkeypatch):
    """bfloat16 by default, MLLM_COURSE_DTYPE when set, cpu without CUDA; explicit arguments win."""
    monkeypatch.delenv("MLLM_COURSE_DTYPE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert realmodel.device_and_dtype() == ("cpu", "bfloat16")
    monkeypatch.setenv("MLLM_COURSE_DTYPE", "float32")
    assert realmodel.device_and_dtype() == ("cpu", "float32")
    monkeypatch.setenv("MLLM_COURSE_DTYPE", "  ")
    assert realmodel.device_and_dtype() == ("cpu", "bfloat16")
    assert realmodel.device_and_dtype("cuda:1", "float16") == ("cuda:1", "float16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert realmodel.device_and_dtype()[0] == "cuda"


def test_float32_load_follows_the_environment(folders, monkeypatch):
    """MLLM_COURSE_DTYPE=float32 reaches load(): float32 weights and a float32 estimate."""
    monkeypatch.setenv("MLLM_COURSE_DTYPE", "float32")
    engine = realmodel.load(folders["native"], device="cpu")
    assert engine.model.dtype == torch.float32 and engine.estimate.dtype == "float32"


def test_peak_memory():
    """peak_memory_bytes('cpu') is the process's peak RSS in bytes: positive, at least the current RSS."""
    import psutil

    peak = realmodel.peak_memory_bytes("cpu")
    assert peak > 0 and peak >= psutil.Process().memory_info().rss * 0.9


def test_cache_helpers_on_tuples():
    """cache_tensors/cache_nbytes read the remote code's tuple caches too."""
    k = torch.zeros(1, 2, 5, 8, dtype=torch.bfloat16)
    past = ((k, k.clone()), (k.clone(), k.clone()))
    assert len(realmodel.cache_tensors(past)) == 2
    assert realmodel.cache_nbytes(past) == 4 * k.numel() * 2


def test_remote_generate_reads_its_cache(engines):
    """InternVL2's remote code under transformers 5.24: after ``infer.enable_generate`` each new token is one step
    on the cached prompt (without the repair the cache never reaches ``prepare_inputs_for_generation`` and every step
    re-reads the prompt's embeddings, answering one word over and over), and the answer equals greedy decoding by
    full forward passes."""
    engine = engines["remote"]
    lm = engine.model.language_model
    seen, forward = [], lm.forward

    def spy(*args, **kwargs):
        shape = (
            kwargs.get("inputs_embeds") if kwargs.get("inputs_embeds") is not None else kwargs["input_ids"]
        ).shape
        seen.append((shape[1], kwargs.get("past_key_values") is not None))
        return forward(*args, **kwargs)

    image = picture(600, 400)
    lm.forward = spy
    try:
        new = engine.chat(("what?", image), gen_config=GenConfig(max_new_tokens=5)).response
    finally:
        del lm.forward
    assert seen[0][1] is False and all(step == (1, True) for step in seen[1:]), seen
    inputs = engine._inputs([Session(image=image)], ["what?"])
    ids, tokens = inputs["input_ids"], []
    flags = torch.ones(len(inputs["pixel_values"]), 1)
    with torch.no_grad():
        for _ in range(new.generate_token_len):
            logits = engine.model(
                pixel_values=inputs["pixel_values"], input_ids=ids, image_flags=flags
            ).logits
            tokens.append(int(logits[0, -1].argmax()))
            ids = torch.cat([ids, torch.tensor([[tokens[-1]]])], dim=1)
    assert new.text == engine.tokenizer.decode(tokens, skip_special_tokens=True).strip()

"""One small chat interface for notebooks 07 and 08, with the session semantics of LMDeploy's ``Pipeline.chat``.

    engine = infer.TransformersChat(*mini.load_mini_internvl())
    sess = engine.chat(("what colour is the shape?", image))        # first turn carries the image
    print(sess.response.text)
    sess = engine.chat("describe the image.", session=sess)          # later turns reuse it
    for piece in engine.stream("is the shape big or small?", session=sess): print(piece, end="")

``chat`` returns a ``Session`` holding the conversation (``history``), the image and the last ``response``, as
lmdeploy 0.18's ``Pipeline.chat`` does (``sess.response.text``, ``sess.history``). ``GenConfig`` turns sampling on
whenever a sampling parameter is given: in lmdeploy ``do_sample`` defaults to False and ``top_p``/``temperature`` are
silently ignored without it (lmdeploy's ``messages.GenerationConfig``); it also refuses the values lmdeploy refuses.

**Image first.** The image goes before the question (``<img>…</img>\n{question}``), as InternVL's own ``chat`` and
XTuner's InternVL dataset lay it out (and the mini models are trained). lmdeploy puts it *after* the text for a
``(text, image)`` prompt and before it for ``(image, text)`` (``MultimodalProcessor._re_format_prompt_images_pair``),
so ``LMDeployChat`` sends ``(image, text)``. ``image_first=False`` (per call, or per engine) gives the text-first
layout on both backends.

Two backends: ``TransformersChat`` (mini track: any transformers chat MLLM, the mini InternVL on CPU) and
``LMDeployChat`` (full track: InternVL2-2B with lmdeploy 0.18 on a GPU; lmdeploy is imported only when used).
``enable_generate`` repairs InternVL2's remote code under transformers >= 4.50 (its ``chat`` baseline in 07);
``course_utils.serving`` drives lmdeploy's OpenAI-compatible server; ``course_utils.backends`` picks an engine by
name (the ``--backend`` of the demo and the evaluation).
Introduced in notebook 07.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image

from .remote_code import enable_generate  # noqa: F401  (notebook 07 calls it as infer.enable_generate)

# lmdeploy 0.18's GenerationConfig.__post_init__ asserts these ranges (messages.py); GenConfig refuses the same.
LIMITS = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "top_k": (0, None), "min_p": (0.0, 1.0)}


@dataclass
class GenConfig:
    """Generation settings, the same on both backends.

    Sampling is switched on as soon as ``top_p``, ``temperature``, ``top_k`` or ``min_p`` is given, except that
    ``temperature=0`` means greedy. Values outside lmdeploy's limits (temperature in [0, 2], top_p and min_p in
    [0, 1], top_k ≥ 0) raise ``ValueError`` on every backend, so the mini track teaches the same limits.
    """

    max_new_tokens: int = 32
    do_sample: bool = False
    top_p: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None

    def __post_init__(self):
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not (low <= value and (high is None or value <= high)):
                span = f">= {low}" if high is None else f"between {low} and {high}"
                raise ValueError(f"{name} must be {span} (lmdeploy's GenerationConfig limit), got {value}")
        if any(getattr(self, name) is not None for name in LIMITS):
            self.do_sample = True
        if self.temperature == 0:
            self.do_sample = False  # temperature 0 = greedy (transformers refuses to sample at temperature 0)

    def sampling(self) -> dict:
        """The sampling parameters given (defaults filled in for top_p and temperature); empty when greedy."""
        if not self.do_sample:
            return {}
        out = {"top_p": 1.0 if self.top_p is None else self.top_p, "temperature": self.temperature or 1.0}
        return out | {
            name: getattr(self, name) for name in ("top_k", "min_p") if getattr(self, name) is not None
        }

    def generate_kwargs(self) -> dict:
        """Keyword arguments for transformers' ``generate``."""
        return {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, **self.sampling()}


@dataclass
class Response:
    text: str
    input_token_len: int
    generate_token_len: int
    finish_reason: str  # "stop" (end token) or "length" (max_new_tokens reached)


@dataclass
class Session:
    """A conversation: (user text, assistant text) turns, the image of the first turn, the last response.

    ``image_first``: where the image sits in the first turn (before the question, or after it)."""

    history: list[tuple[str, str]] = field(default_factory=list)
    image: Image.Image | None = None
    response: Response | None = None
    image_first: bool = True


def split_prompt(prompt: str | tuple[str, Image.Image]) -> tuple[str, Image.Image | None]:
    """``"text"`` or ``("text", image)`` → (text, image or None), with a clear error for anything else."""
    if isinstance(prompt, str):
        return prompt, None
    if (
        isinstance(prompt, tuple)
        and len(prompt) == 2
        and isinstance(prompt[0], str)
        and isinstance(prompt[1], Image.Image)
    ):
        return prompt[0], prompt[1].convert("RGB")
    raise TypeError(f"prompt must be a string or a (string, PIL.Image) pair, got {type(prompt).__name__}")


def messages(session: Session, text: str) -> list[dict]:
    """ChatML messages for the next turn; the image is attached to the first user turn, as LMDeploy keeps it
    (before the question, or after it with ``session.image_first=False``)."""
    turns = [*session.history, (text, None)]
    out = []
    for i, (user, assistant) in enumerate(turns):
        content = [{"type": "text", "text": user}]
        if i == 0 and session.image is not None:
            content.insert(0 if session.image_first else 1, {"type": "image"})
        out.append({"role": "user", "content": content})
        if assistant is not None:
            out.append({"role": "assistant", "content": [{"type": "text", "text": assistant}]})
    return out


class TransformersChat:
    """The ``transformers`` backend: any image-text-to-text model with a chat-template processor (the mini InternVL).

    ``image_first``: the default layout of a prompt's image (see the module docstring); each call may override it."""

    def __init__(self, model, processor, *, image_first: bool = True):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_first = image_first
        self.end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")

    def _inputs(self, sessions: list[Session], texts: list[str]):
        prompts = [
            self.processor.apply_chat_template(messages(s, t), add_generation_prompt=True)
            for s, t in zip(sessions, texts, strict=True)
        ]
        images = [s.image for s in sessions if s.image is not None]
        if images and len(images) != len(sessions):
            raise ValueError("in one batch, either every prompt has an image or none has")
        batch = self.processor(images=images or None, text=prompts, return_tensors="pt", padding=True)
        if "pixel_values" in batch:  # the model's dtype (bfloat16 for a real model), on the model's device
            batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
        return batch.to(self.model.device)

    def _split(self, out, inputs) -> tuple[list[list[int]], int]:
        """(new token ids of each row, prompt length): transformers' ``generate`` returns prompt + answer."""
        n = inputs["input_ids"].shape[1]
        return [row[n:].tolist() for row in out], n

    def _start(self, prompt, session: Session | None, image_first: bool | None) -> tuple[Session, str]:
        text, image = split_prompt(prompt)
        if session is not None:
            session = Session(list(session.history), session.image, image_first=session.image_first)
        else:
            session = Session(image_first=self.image_first if image_first is None else image_first)
        if image is not None:
            if session.history:
                raise ValueError("send the image with the first turn of a session (or start a new session)")
            session.image = image
        return session, text

    def _response(self, new_ids: list[int], input_len: int, max_new: int) -> Response:
        stopped = self.end_id in new_ids
        ids = new_ids[: new_ids.index(self.end_id)] if stopped else new_ids
        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return Response(
            text, input_len, len(new_ids), "stop" if stopped or len(new_ids) < max_new else "length"
        )

    def _generate(self, inputs, gen: GenConfig, **extra):
        if gen.seed is not None:
            torch.manual_seed(gen.seed)
        with torch.no_grad():
            return self.model.generate(**inputs, **gen.generate_kwargs(), eos_token_id=self.end_id,
                                       pad_token_id=self.tokenizer.pad_token_id, **extra)  # fmt: skip

    def chat(
        self, prompt, session: Session | None = None, gen_config: GenConfig | None = None, *, image_first=None
    ) -> Session:
        """One turn: returns a new Session with this turn appended and ``.response`` set (the input is not changed).

        ``image_first`` (first turn only; later turns keep the session's layout): None = the engine's default."""
        gen = gen_config or GenConfig()
        session, text = self._start(prompt, session, image_first)
        inputs = self._inputs([session], [text])
        (new, *_), n = self._split(self._generate(inputs, gen), inputs)
        session.response = self._response(new, n, gen.max_new_tokens)
        session.history.append((text, session.response.text))
        return session

    def batch(
        self, prompts: list, gen_config: GenConfig | None = None, *, image_first=None
    ) -> list[Response]:
        """Independent single-turn prompts in one padded batch (all with images, or all without)."""
        gen = gen_config or GenConfig()
        started = [self._start(p, None, image_first) for p in prompts]
        inputs = self._inputs([s for s, _ in started], [t for _, t in started])
        rows, n = self._split(self._generate(inputs, gen), inputs)
        return [self._response(row, n, gen.max_new_tokens) for row in rows]

    def stream(
        self, prompt, session: Session | None = None, gen_config: GenConfig | None = None, *, image_first=None
    ) -> Iterator[str]:
        """Yield the answer piece by piece; the finished Session is then in ``self.last_session``."""
        from transformers import TextIteratorStreamer

        gen = gen_config or GenConfig()
        session, text = self._start(prompt, session, image_first)
        inputs = self._inputs([session], [text])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(out=self._generate(inputs, gen, streamer=streamer)),
                                  daemon=True)  # fmt: skip
        worker.start()
        yield from streamer
        worker.join()
        (new, *_), n = self._split(result["out"], inputs)
        session.response = self._response(new, n, gen.max_new_tokens)
        session.history.append((text, session.response.text))
        self.last_session = session


def lmdeploy_configs(
    engine: str = "turbomind",
    *,
    session_len: int = 8192,
    cache_max_entry_count: float = 0.5,
    tp: int = 1,
    model_format: str | None = None,
    quant_policy: int = 0,
):
    """The engine config for ``lmdeploy.pipeline`` (lmdeploy 0.18), as the original InternVL2 lab set it up.

    ``session_len``: the longest conversation in tokens (prompt + history + answer; InternVL2-2B's image tiles count
    256 tokens each). ``cache_max_entry_count``: the share of *free* GPU memory the KV cache may take (lower it on a
    shared 50 % A100 or when you get out-of-memory). ``tp``: tensor parallelism, the number of GPUs.
    The two quantization switches of notebook 09: ``model_format='awq'`` for a folder written by ``lmdeploy lite
    auto_awq`` (W4A16), ``quant_policy`` 8 (KV cache in int8) or 4 (int4).
    """
    import lmdeploy  # lazily: only the GPU lab environment has it

    classes = {"turbomind": lmdeploy.TurbomindEngineConfig, "pytorch": lmdeploy.PytorchEngineConfig}
    if engine not in classes:
        raise ValueError(f"engine must be 'turbomind' or 'pytorch', not {engine!r}")
    return classes[engine](session_len=session_len, cache_max_entry_count=cache_max_entry_count, tp=tp,
                           model_format=model_format, quant_policy=quant_policy)  # fmt: skip


def lmdeploy_gen_config(gen: GenConfig):
    """``GenConfig`` → ``lmdeploy.GenerationConfig`` with ``do_sample`` set whenever sampling is asked for."""
    import lmdeploy

    kwargs = {"max_new_tokens": gen.max_new_tokens, "do_sample": gen.do_sample, **gen.sampling()}
    if gen.seed is not None:
        kwargs["random_seed"] = gen.seed
    return lmdeploy.GenerationConfig(**kwargs)


def check_response(response):
    """Raise a clear RuntimeError for an lmdeploy Response that failed (``finish_reason == "error"``, empty text)."""
    if getattr(response, "finish_reason", None) == "error":
        code = getattr(response, "error_code", None) or "unknown"
        message = getattr(response, "error_message", None) or "no message"
        hint = " (raise session_len or send a smaller image)" if code == "context_length_exceeded" else ""
        raise RuntimeError(
            f"lmdeploy could not answer: finish_reason 'error', error_code {code!r}: {message}{hint}"
        )
    return response


class LMDeployChat:
    """The ``lmdeploy`` backend (full track, GPU): InternVL2-2B through ``lmdeploy.pipeline``, same calls as above.

    No ``ChatTemplateConfig``: the template name the original lab used was removed in lmdeploy 0.12 and silently gives
    an empty template; lmdeploy reads the right one from the model directory. ``trust_remote_code=True`` because
    InternVL ships its own model code (the default became False in 0.13). A failed request (lmdeploy answers
    ``finish_reason="error"`` with empty text) raises RuntimeError instead of returning "".
    """

    def __init__(self, model_dir, engine: str = "turbomind", *, image_first: bool = True, **config):
        import lmdeploy

        self.image_first = image_first
        self.pipe = lmdeploy.pipeline(
            str(model_dir), backend_config=lmdeploy_configs(engine, **config), trust_remote_code=True
        )

    def _query(self, prompt, image_first):
        text, image = split_prompt(prompt)
        if image is None:
            return text
        return (image, text) if (self.image_first if image_first is None else image_first) else (text, image)

    def chat(self, prompt, session=None, gen_config: GenConfig | None = None, *, image_first=None):
        """One turn; returns lmdeploy's Session (``.response.text``, ``.history``), pass it back for the next."""
        gen = lmdeploy_gen_config(gen_config or GenConfig())
        session = self.pipe.chat(self._query(prompt, image_first), session=session, gen_config=gen)
        check_response(session.response)
        return session

    def batch(self, prompts: list, gen_config: GenConfig | None = None, *, image_first=None) -> list:
        """Independent prompts in one call (lmdeploy batches them internally); lmdeploy Responses."""
        queries = [self._query(p, image_first) for p in prompts]
        responses = self.pipe(queries, gen_config=lmdeploy_gen_config(gen_config or GenConfig()))
        return [check_response(r) for r in responses]

    def stream(self, prompt, gen_config: GenConfig | None = None, *, image_first=None) -> Iterator[str]:
        """Yield the answer piece by piece (single turn). In lmdeploy 0.18 each Response that ``stream_infer`` yields
        carries only the new text (``Pipeline.chat`` joins them with ``Response.extend``; checked by
        ``make test-full-stack``)."""
        gen = lmdeploy_gen_config(gen_config or GenConfig())
        for out in self.pipe.stream_infer([self._query(prompt, image_first)], gen_config=gen):
            yield check_response(out).text

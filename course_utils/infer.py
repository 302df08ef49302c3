"""One small chat interface for notebooks 07 and 08, with the session semantics of LMDeploy's ``Pipeline.chat``.

    engine = infer.TransformersChat(*mini.load_mini_internvl())
    sess = engine.chat(("what colour is the shape?", image))        # first turn carries the image
    print(sess.response.text)
    sess = engine.chat("describe the image.", session=sess)          # later turns reuse it
    for piece in engine.stream("is the shape big or small?", session=sess): print(piece, end="")

``chat`` returns a ``Session`` holding the conversation (``history``), the image and the last ``response``, as
lmdeploy 0.18's ``Pipeline.chat`` does (``sess.response.text``, ``sess.history``). ``GenConfig`` turns sampling on
whenever ``top_p`` or ``temperature`` is given: in lmdeploy ``do_sample`` defaults to False and those parameters are
silently ignored without it (FACTS).

Two backends: ``TransformersChat`` (mini track: any transformers chat MLLM, the mini InternVL on CPU) and
``LMDeployChat`` (full track: InternVL2-2B with lmdeploy 0.18 on a GPU; lmdeploy is imported only when used).
Introduced in notebook 07.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image


@dataclass
class GenConfig:
    """Generation settings; sampling is switched on as soon as ``top_p`` or ``temperature`` is set."""

    max_new_tokens: int = 32
    do_sample: bool = False
    top_p: float | None = None
    temperature: float | None = None
    seed: int | None = None

    def __post_init__(self):
        if self.top_p is not None or self.temperature is not None:
            self.do_sample = True

    def generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            kwargs |= {
                "top_p": self.top_p if self.top_p is not None else 1.0,
                "temperature": self.temperature or 1.0,
            }
        return kwargs


@dataclass
class Response:
    text: str
    input_token_len: int
    generate_token_len: int
    finish_reason: str  # "stop" (end token) or "length" (max_new_tokens reached)


@dataclass
class Session:
    """A conversation: (user text, assistant text) turns, the image of the first turn, the last response."""

    history: list[tuple[str, str]] = field(default_factory=list)
    image: Image.Image | None = None
    response: Response | None = None


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
    """ChatML messages for the next turn; the image is attached to the first user turn, as LMDeploy keeps it."""
    turns = [*session.history, (text, None)]
    out = []
    for i, (user, assistant) in enumerate(turns):
        content = [{"type": "text", "text": user}]
        if i == 0 and session.image is not None:
            content.insert(0, {"type": "image"})
        out.append({"role": "user", "content": content})
        if assistant is not None:
            out.append({"role": "assistant", "content": [{"type": "text", "text": assistant}]})
    return out


class TransformersChat:
    """The ``transformers`` backend: any image-text-to-text model with a chat-template processor (the mini InternVL)."""

    def __init__(self, model, processor):
        self.model = model.eval()
        self.processor = processor
        self.end_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")

    def _inputs(self, sessions: list[Session], texts: list[str]):
        prompts = [
            self.processor.apply_chat_template(messages(s, t), add_generation_prompt=True)
            for s, t in zip(sessions, texts, strict=True)
        ]
        images = [s.image for s in sessions if s.image is not None]
        if images and len(images) != len(sessions):
            raise ValueError("in one batch, either every prompt has an image or none has")
        return self.processor(images=images or None, text=prompts, return_tensors="pt", padding=True)

    def _start(self, prompt, session: Session | None) -> tuple[Session, str]:
        text, image = split_prompt(prompt)
        session = Session(list(session.history), session.image) if session is not None else Session()
        if image is not None:
            if session.history:
                raise ValueError("send the image with the first turn of a session (or start a new session)")
            session.image = image
        return session, text

    def _response(self, new_ids: list[int], input_len: int, max_new: int) -> Response:
        stopped = self.end_id in new_ids
        ids = new_ids[: new_ids.index(self.end_id)] if stopped else new_ids
        text = self.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return Response(
            text, input_len, len(new_ids), "stop" if stopped or len(new_ids) < max_new else "length"
        )

    @torch.no_grad()
    def chat(self, prompt, session: Session | None = None, gen_config: GenConfig | None = None) -> Session:
        """One turn: returns a new Session with this turn appended and ``.response`` set (the input is not changed)."""
        gen = gen_config or GenConfig()
        session, text = self._start(prompt, session)
        inputs = self._inputs([session], [text])
        if gen.seed is not None:
            torch.manual_seed(gen.seed)
        out = self.model.generate(
            **inputs,
            **gen.generate_kwargs(),
            eos_token_id=self.end_id,
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        n = inputs["input_ids"].shape[1]
        session.response = self._response(out[0, n:].tolist(), n, gen.max_new_tokens)
        session.history.append((text, session.response.text))
        return session

    def batch(self, prompts: list, gen_config: GenConfig | None = None) -> list[Response]:
        """Independent single-turn prompts in one padded batch (all with images, or all without)."""
        gen = gen_config or GenConfig()
        started = [self._start(p, None) for p in prompts]
        inputs = self._inputs([s for s, _ in started], [t for _, t in started])
        if gen.seed is not None:
            torch.manual_seed(gen.seed)
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                **gen.generate_kwargs(),
                eos_token_id=self.end_id,
                pad_token_id=self.processor.tokenizer.pad_token_id,
            )
        n = inputs["input_ids"].shape[1]
        return [self._response(row[n:].tolist(), n, gen.max_new_tokens) for row in out]

    def stream(
        self, prompt, session: Session | None = None, gen_config: GenConfig | None = None
    ) -> Iterator[str]:
        """Yield the answer piece by piece; the finished Session is then in ``self.last_session``."""
        from transformers import TextIteratorStreamer

        gen = gen_config or GenConfig()
        session, text = self._start(prompt, session)
        inputs = self._inputs([session], [text])
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if gen.seed is not None:
            torch.manual_seed(gen.seed)
        kwargs = dict(**inputs, **gen.generate_kwargs(), streamer=streamer, eos_token_id=self.end_id,
                      pad_token_id=self.processor.tokenizer.pad_token_id)  # fmt: skip
        result: dict = {}

        def run():
            with torch.no_grad():
                result["out"] = self.model.generate(**kwargs)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        n = inputs["input_ids"].shape[1]
        session.response = self._response(result["out"][0, n:].tolist(), n, gen.max_new_tokens)
        session.history.append((text, session.response.text))
        self.last_session = session


def lmdeploy_configs(
    engine: str = "turbomind",
    *,
    session_len: int = 8192,
    cache_max_entry_count: float = 0.5,
    tp: int = 1,
):
    """The engine config for ``lmdeploy.pipeline`` (lmdeploy 0.18), as the seed's lab sets it up.

    ``session_len``: the longest conversation in tokens (prompt + history + answer; InternVL2-2B's image tiles count
    256 tokens each). ``cache_max_entry_count``: the share of *free* GPU memory the KV cache may take (lower it on a
    shared 50 % A100 or when you get out-of-memory). ``tp``: tensor parallelism, the number of GPUs.
    """
    import lmdeploy  # lazily: only the GPU lab environment has it

    if engine == "turbomind":
        return lmdeploy.TurbomindEngineConfig(
            session_len=session_len, cache_max_entry_count=cache_max_entry_count, tp=tp
        )
    if engine == "pytorch":
        return lmdeploy.PytorchEngineConfig(
            session_len=session_len, cache_max_entry_count=cache_max_entry_count, tp=tp
        )
    raise ValueError(f"engine must be 'turbomind' or 'pytorch', not {engine!r}")


def lmdeploy_gen_config(gen: GenConfig):
    """``GenConfig`` → ``lmdeploy.GenerationConfig`` with ``do_sample`` set whenever sampling is asked for."""
    import lmdeploy

    kwargs = {"max_new_tokens": gen.max_new_tokens, "do_sample": gen.do_sample}
    if gen.do_sample:
        kwargs |= {
            "top_p": gen.top_p if gen.top_p is not None else 1.0,
            "temperature": gen.temperature or 1.0,
        }
    if gen.seed is not None:
        kwargs["random_seed"] = gen.seed
    return lmdeploy.GenerationConfig(**kwargs)


class LMDeployChat:
    """The ``lmdeploy`` backend (full track, GPU): InternVL2-2B through ``lmdeploy.pipeline``, same calls as above.

    No ``ChatTemplateConfig``: the template name the seed used was removed in lmdeploy 0.12 and silently gives an
    empty template; lmdeploy reads the right one from the model directory. ``trust_remote_code=True`` because InternVL
    ships its own model code (the default became False in 0.13).
    """

    def __init__(self, model_dir, engine: str = "turbomind", **config):
        import lmdeploy

        self.pipe = lmdeploy.pipeline(
            str(model_dir), backend_config=lmdeploy_configs(engine, **config), trust_remote_code=True
        )

    def chat(self, prompt, session=None, gen_config: GenConfig | None = None):
        """One turn; returns lmdeploy's Session (``.response.text``, ``.history``), pass it back for the next."""
        text, image = split_prompt(prompt)
        query = text if image is None else (text, image)
        return self.pipe.chat(
            query, session=session, gen_config=lmdeploy_gen_config(gen_config or GenConfig())
        )

    def batch(self, prompts: list, gen_config: GenConfig | None = None) -> list:
        """Independent prompts in one call (lmdeploy batches them internally); lmdeploy Responses."""
        queries = [(t if i is None else (t, i)) for t, i in map(split_prompt, prompts)]
        return self.pipe(queries, gen_config=lmdeploy_gen_config(gen_config or GenConfig()))

    def stream(self, prompt, gen_config: GenConfig | None = None) -> Iterator[str]:
        """Yield the answer piece by piece (single turn). In lmdeploy 0.18 each Response that ``stream_infer`` yields
        carries only the new text (``Pipeline.chat`` joins them with ``Response.extend``; checked by
        ``make test-full-stack``)."""
        text, image = split_prompt(prompt)
        query = text if image is None else (text, image)
        for out in self.pipe.stream_infer([query], gen_config=lmdeploy_gen_config(gen_config or GenConfig())):
            yield out.text


BACKENDS = ("mini", "lmdeploy")


def make_engine(backend: str, model=None):
    """A chat engine: "mini" (the mini InternVL on CPU, or a mini model saved in folder ``model``, e.g. notebook 08's
    fine-tuned one) or "lmdeploy" (InternVL2-2B, or the model folder ``model``, on a GPU)."""
    if backend == "mini":
        from .mini import load, load_mini_internvl

        return TransformersChat(*(load("internvl", model) if model else load_mini_internvl()))
    if backend == "lmdeploy":
        from . import paths

        return LMDeployChat(model or paths.model_dir())
    raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")

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

This module holds the ``transformers`` backend (the mini track); the LMDeploy backend for InternVL2-2B joins it
with notebook 07. Introduced in notebook 07.
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

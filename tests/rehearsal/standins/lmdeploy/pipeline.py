"""``pipeline`` and ``Pipeline`` of lmdeploy 0.18, answered by the course's mini InternVL on the CPU."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator

from PIL import Image

from .messages import GenerationConfig, PytorchEngineConfig, Response, TurbomindEngineConfig


def pipeline(
    model_path: str,
    backend_config: TurbomindEngineConfig | PytorchEngineConfig | None = None,
    chat_template_config=None,
    log_level: str = "WARNING",
    max_log_len: int | None = None,
    trust_remote_code: bool = False,
    **kwargs,
) -> Pipeline:
    """As ``lmdeploy.pipeline``: a local model folder (nothing is downloaded in the rehearsal)."""
    return Pipeline(model_path, backend_config, chat_template_config, trust_remote_code=trust_remote_code)


def check_model_folder(model_path: str, trust_remote_code: bool, model_format: str | None = None) -> None:
    """Refuse what real loading refuses: no such folder, remote code without ``trust_remote_code``, or
    ``model_format='awq'`` on a folder that ``lmdeploy lite auto_awq`` did not write (no AWQ ``quantization_config``)."""
    config = os.path.join(model_path, "config.json")
    if not os.path.isfile(config):
        raise FileNotFoundError(f"{model_path} is not a model folder (no config.json); the real lmdeploy would try to "
                                "download it from the Hugging Face Hub")  # fmt: skip
    with open(config, encoding="utf-8") as f:
        content = json.load(f)
    if model_format == "awq":
        quant = (
            content.get("quantization_config")
            or content.get("llm_config", {}).get("quantization_config")
            or {}
        )
        if quant.get("quant_method") != "awq":
            raise ValueError(f"model_format='awq' but {model_path} holds no AWQ weights (no quantization_config with "
                             "quant_method 'awq'): quantize it with `lmdeploy lite auto_awq` first")  # fmt: skip
    if content.get("auto_map") and not trust_remote_code:
        raise ValueError(f"The repository {model_path} contains custom code which must be executed to correctly "
                         "load the model. Please pass the argument `trust_remote_code=True` to allow custom code "
                         "to be run.")  # fmt: skip


def _is_image(obj) -> bool:
    return isinstance(obj, Image.Image) or (
        isinstance(obj, list) and all(isinstance(i, Image.Image) for i in obj)
    )


def parse_prompt(prompt) -> tuple[str, Image.Image | None, bool]:
    """``str``, ``(text, image)`` (text first) or ``(image, text)`` (image first) → (text, image, image_first)."""
    if isinstance(prompt, str):
        return prompt, None, True
    if isinstance(prompt, tuple) and len(prompt) == 2:
        first, second = prompt
        image_first = _is_image(first)
        text, image = (second, first) if image_first else (first, second)
        if isinstance(text, str) and _is_image(image):
            if isinstance(image, list):
                if len(image) != 1:
                    raise NotImplementedError("the lmdeploy stand-in takes one image per prompt")
                image = image[0]
            return text, image, image_first
    raise ValueError(f"Unsupported prompts: {prompt}. Only support str, openai message format, or (prompt, image or "
                     "[images]) or (image or [images], prompt) pair.")  # fmt: skip


def load_engine():
    """The course's chat engine behind the stand-in: the trained mini InternVL (tests replace this function)."""
    from course_utils import env, infer
    from course_utils.mini import load_mini_internvl

    env.use_course_threads()  # a server started as a program (07's api_server) loads the model the notebooks trained
    return infer.TransformersChat(*load_mini_internvl(progress=False))


class Session:
    """As lmdeploy's ``serve.managers.Session``: ``prompt``, ``response``, ``history`` of (prompt, text)."""

    def __init__(self, session_id: int):
        self.session_id = session_id
        self.prompt = None
        self.response: Response | None = None
        self.history: list[tuple] = []
        self.state = None  # the course engine's Session behind it

    def __repr__(self) -> str:
        return f"Session(session_id={self.session_id}, history_len={len(self.history)})"


class Pipeline:
    """As ``lmdeploy.Pipeline`` (``chat``, ``__call__``/``infer``, ``stream_infer``, ``session``, ``close``)."""

    def __init__(
        self, model_path, backend_config=None, chat_template_config=None, *, trust_remote_code=False
    ):
        self.backend_config = backend_config or TurbomindEngineConfig()
        check_model_folder(
            str(model_path), trust_remote_code, getattr(self.backend_config, "model_format", None)
        )
        self.engine = load_engine()
        self._ids = itertools.count()

    def session(self) -> Session:
        return Session(next(self._ids))

    @staticmethod
    def gen_config(gen: GenerationConfig | None):
        """lmdeploy's GenerationConfig → the course's (greedy unless ``do_sample``, as in lmdeploy)."""
        from course_utils import infer

        gen = gen or GenerationConfig()
        if not gen.do_sample:
            return infer.GenConfig(max_new_tokens=gen.max_new_tokens, seed=gen.random_seed)
        return infer.GenConfig(max_new_tokens=gen.max_new_tokens, top_p=gen.top_p, temperature=gen.temperature,
                               top_k=gen.top_k or None, min_p=gen.min_p or None, seed=gen.random_seed)  # fmt: skip

    def _error(self, code: str, message: str, input_len: int = 0, index: int = 0) -> Response:
        return Response("", 0, input_len, "error", index=index, error_code=code, error_message=message)

    def _turn(self, prompt, state, gen_config, index=0):
        """One turn on the mini engine → (lmdeploy Response, the engine's new session or None on error)."""
        gen = self.gen_config(gen_config)
        if gen.max_new_tokens < 1:
            return self._error(
                "invalid_request", f"max_new_tokens must be at least 1, got {gen.max_new_tokens}."
            ), None
        text, image, image_first = parse_prompt(prompt)
        new = self.engine.chat(text if image is None else (text, image), session=state, gen_config=gen,
                               image_first=image_first)  # fmt: skip
        got, limit = new.response.input_token_len, self.backend_config.session_len
        if limit is not None and got >= limit:
            return self._error("context_length_exceeded", f"Input length ({got}) must be smaller than the model "
                               f"context length ({limit}).", got, index), None  # fmt: skip
        r = new.response
        return Response(r.text, r.generate_token_len, r.input_token_len, r.finish_reason, index=index), new

    def chat(self, prompt, session: Session | None = None, gen_config=None, stream_response=False, **kwargs):
        if stream_response:
            raise NotImplementedError("the lmdeploy stand-in's chat does not stream; use stream_infer")
        session = session or self.session()
        session.prompt, session.response = prompt, None
        session.response, new = self._turn(prompt, session.state, gen_config)
        session.state = new or session.state
        session.history.append((prompt, session.response.text))
        return session

    def infer(self, prompts, gen_config=None, **kwargs):
        single = isinstance(prompts, str | tuple)
        gens = gen_config if isinstance(gen_config, list) else [gen_config] * (1 if single else len(prompts))
        out = [
            self._turn(p, None, g, i)[0]
            for i, (p, g) in enumerate(zip([prompts] if single else prompts, gens, strict=True))
        ]
        return out[0] if single else out

    __call__ = infer

    def stream_infer(self, prompts, sessions=None, gen_config=None, **kwargs) -> Iterator[Response]:
        """Yield Responses that each carry only the new text, as lmdeploy 0.18 does; the last has finish_reason."""
        prompts = [prompts] if isinstance(prompts, str | tuple) else prompts
        for index, prompt in enumerate(prompts):
            whole, _ = self._turn(prompt, None, gen_config, index)
            if whole.finish_reason == "error":
                yield whole
                continue
            words = whole.text.split(" ")
            for n, word in enumerate(words):
                last = n == len(words) - 1
                yield Response(word if n == 0 else " " + word, n + 1 if not last else whole.generate_token_len,
                               whole.input_token_len, whole.finish_reason if last else None, index=index)  # fmt: skip

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

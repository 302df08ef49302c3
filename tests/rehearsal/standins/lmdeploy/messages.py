"""lmdeploy 0.18's config and response classes, reduced to the fields the course uses, with the same checks."""

from __future__ import annotations

from dataclasses import dataclass, field

QUANT_POLICIES = (0, 4, 8, 16, 17, 42)  # lmdeploy's QuantPolicy: none, int4, int8, fp8, fp8_e5m2, turbo_quant


@dataclass
class GenerationConfig:
    """As ``lmdeploy.messages.GenerationConfig``: greedy unless ``do_sample``; the same ``__post_init__`` asserts."""

    n: int = 1
    max_new_tokens: int = 512
    do_sample: bool = False
    top_p: float = 1.0
    top_k: int = 50
    min_p: float = 0.0
    temperature: float = 0.8
    repetition_penalty: float = 1.0
    ignore_eos: bool = False
    random_seed: int | None = None
    stop_words: list[str] | None = None
    skip_special_tokens: bool = True

    def __post_init__(self):
        assert type(self.n) is int and self.n > 0, "n is not a positive integer"
        assert self.top_p >= 0 and self.top_p <= 1
        assert self.top_k >= 0, "top_k can not be a negative integer"
        assert self.temperature >= 0 and self.temperature <= 2
        assert 0 <= self.min_p <= 1, f"min_p should be in range [0, 1], but found {self.min_p}"


@dataclass
class _EngineConfig:
    """The fields the course sets that both engine configs have (lmdeploy declares them in each class), and the two
    checks they share; each class adds its own."""

    dtype: str = "auto"
    tp: int = 1
    session_len: int | None = None
    max_batch_size: int | None = None
    cache_max_entry_count: float = 0.8
    quant_policy: int = 0
    # "awq" for a folder written by `lmdeploy lite auto_awq` (not checked here)
    model_format: str | None = None

    def __post_init__(self):
        assert self.dtype in ["auto", "float16", "bfloat16"]
        if self.quant_policy not in QUANT_POLICIES:
            raise ValueError(f"invalid quant_policy: {self.quant_policy}")


@dataclass
class TurbomindEngineConfig(_EngineConfig):
    """As ``lmdeploy.messages.TurbomindEngineConfig`` for the fields the course sets."""

    def __post_init__(self):
        super().__post_init__()
        assert self.tp >= 1, "tp must be a positive integer"
        assert self.cache_max_entry_count > 0, "invalid cache_max_entry_count"
        assert self.quant_policy not in (16, 17), (
            "invalid quant_policy for TurboMind, FP8 quantization is not supported"
        )


@dataclass
class PytorchEngineConfig(_EngineConfig):
    """As ``lmdeploy.messages.PytorchEngineConfig`` for the fields the course sets."""

    device_type: str = "cuda"

    def __post_init__(self):
        super().__post_init__()
        assert self.tp >= 1, "invalid tp"
        assert 0 < self.cache_max_entry_count < 1, "invalid cache_max_entry_count"
        assert self.device_type in ["cuda", "ascend", "maca", "camb"], (
            f"invalid device_type: {self.device_type}"
        )
        if self.quant_policy > 0 and self.device_type not in ["cuda", "ascend"]:
            raise AssertionError("kv cache quantization only works for CUDA and ASCEND.")


@dataclass
class Response:
    """As ``lmdeploy.messages.Response``: ``finish_reason`` is "stop", "length", "error" or "abort"."""

    text: str
    generate_token_len: int
    input_token_len: int
    finish_reason: str | None = None
    token_ids: list[int] = field(default_factory=list)
    index: int = 0
    error_code: str | None = None
    error_message: str | None = None

    def extend(self, other: Response) -> Response:
        """Append a streamed piece (text and token ids concatenated, the rest taken from ``other``)."""
        self.text += other.text
        self.token_ids += other.token_ids
        for name in (
            "generate_token_len",
            "input_token_len",
            "finish_reason",
            "index",
            "error_code",
            "error_message",
        ):
            setattr(self, name, getattr(other, name))
        return self

"""``lmdeploy serve api_server`` and ``lmdeploy lite auto_awq`` of the stand-in: lmdeploy 0.18's flag names (a subset,
checked against the real parser by ``tests/full_stack/check_lmdeploy.py``); unknown flags are refused, as argparse
does for the real one. ``auto_awq`` checks its inputs and writes a model folder with lmdeploy's AWQ
``quantization_config`` (the weights are copied, not quantized: the engine behind the stand-in is the mini model)."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from pathlib import Path

QUANT_POLICIES = {
    "none": 0,
    "int4": 4,
    "int8": 8,
    "fp8": 16,
    "fp8_e4m3": 16,
    "fp8_e5m2": 17,
    "turbo_quant": 42,
}


def quant_policy(text: str) -> int:
    """As lmdeploy's ``--quant-policy`` parser: a name or one of 0/4/8/16/17/42."""
    if text.lower() in QUANT_POLICIES:
        return QUANT_POLICIES[text.lower()]
    value = int(text)
    if value not in QUANT_POLICIES.values():
        raise ValueError(f"invalid quant_policy: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmdeploy")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve").add_subparsers(dest="serve_command", required=True)
    api = serve.add_parser("api_server")
    api.add_argument("model_path", type=str)
    api.add_argument("--server-name", type=str, default="0.0.0.0")
    api.add_argument("--server-port", type=int, default=None)
    api.add_argument("--backend", type=str, default="turbomind", choices=["pytorch", "turbomind"])
    api.add_argument("--model-name", type=str, default=None)
    api.add_argument("--trust-remote-code", action="store_true", default=False)
    api.add_argument("--dtype", type=str, default="auto", choices=["auto", "float16", "bfloat16"])
    api.add_argument("--tp", type=int, default=1)
    api.add_argument("--session-len", type=int, default=None)
    api.add_argument("--max-batch-size", type=int, default=None)
    api.add_argument("--cache-max-entry-count", type=float, default=0.8)
    api.add_argument("--quant-policy", type=quant_policy, default=0)
    api.add_argument("--model-format", type=str, default=None,
                     choices=["hf", "awq", "gptq", "compressed-tensors", "fp8", "mxfp4"])  # fmt: skip
    api.add_argument("--proxy-url", type=str, default=None)
    lite = commands.add_parser("lite").add_subparsers(dest="lite_command", required=True)
    awq = lite.add_parser("auto_awq")
    awq.add_argument("model", type=str)
    awq.add_argument("--work-dir", type=str, default="./work_dir")
    awq.add_argument("--calib-samples", type=int, default=128)
    awq.add_argument("--calib-seqlen", type=int, default=2048)
    awq.add_argument("--dtype", type=str, default="auto", choices=["auto", "float16", "bfloat16"])
    awq.add_argument("--trust-remote-code", action="store_true", default=False)
    awq.add_argument("--w-bits", type=int, default=4)
    awq.add_argument("--w-group-size", type=int, default=128)
    awq.add_argument("--search-scale", action="store_true", default=False)
    return parser


def auto_awq(args) -> None:
    import os

    from .pipeline import check_model_folder

    check_model_folder(args.model, args.trust_remote_code)
    # lmdeploy/lite/utils/calib_dataloader.py: `from datasets import load_dataset`, then load_dataset("wikitext", ...)
    # from the Hub; datasets and huggingface_hub refuse to go online when one of these is "1"/"ON"/"YES"/"TRUE"
    offline = [
        k
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
        if os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE")
    ]
    if offline:
        raise SystemExit(f"ConnectionError: Couldn't reach 'wikitext' on the Hub ({offline[0]} is set): "
                         "the calibration texts cannot load")  # fmt: skip
    out = Path(args.work_dir)
    shutil.copytree(args.model, out, dirs_exist_ok=True)
    config = json.loads((out / "config.json").read_text())
    quant = {"quant_method": "awq", "version": "gemm", "bits": args.w_bits, "group_size": args.w_group_size,
             "zero_point": True}  # fmt: skip
    config.setdefault("llm_config", {})["quantization_config"] = (
        quant  # the language model is what AWQ quantizes
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    print(f"(lmdeploy stand-in) wrote a W{args.w_bits}A16 folder to {out}", flush=True)


def api_server(args) -> None:
    from . import messages
    from .openai_server import decode_image, make_server
    from .pipeline import pipeline  # (the package's ``pipeline`` attribute is the function, as in lmdeploy)

    config_cls = (
        messages.TurbomindEngineConfig if args.backend == "turbomind" else messages.PytorchEngineConfig
    )
    config = config_cls(dtype=args.dtype, tp=args.tp, session_len=args.session_len, max_batch_size=args.max_batch_size,
                        cache_max_entry_count=args.cache_max_entry_count, quant_policy=args.quant_policy,
                        model_format=args.model_format)  # fmt: skip
    pipe = pipeline(args.model_path, backend_config=config, trust_remote_code=args.trust_remote_code)
    name = args.model_name or args.model_path  # as lmdeploy's cli/entrypoint.py

    answered: dict = {}  # greedy and deterministic: one generation per distinct request (09's load test repeats one)
    lock = threading.Lock()

    def reply(chat_messages, body):
        key = json.dumps(
            [chat_messages, body.get("max_completion_tokens") or body.get("max_tokens")], sort_keys=True
        )
        with lock:
            if key not in answered:
                answered[key] = generate(chat_messages, body)
            return answered[key]

    def generate(chat_messages, body):
        session = None
        for message in chat_messages:
            if message.get("role") == "assistant" and session is not None:
                session.history[-1] = (session.history[-1][0], message.get("content") or "")
                continue
            if message.get("role") != "user":
                continue
            content = message.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            text = "".join(p["text"] for p in parts if p.get("type") == "text")
            urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
            prompt = text
            if urls:
                image = decode_image(urls[0])
                prompt = (image, text) if parts[0].get("type") == "image_url" else (text, image)
            tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 512
            session = pipe.chat(
                prompt, session=session, gen_config=messages.GenerationConfig(max_new_tokens=tokens)
            )
        if session is None:
            raise ValueError("no user message")
        r = session.response
        return r.text, r.finish_reason, r.input_token_len, r.generate_token_len

    server = make_server([name], reply, port=args.server_port or 23333, host=args.server_name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"INFO:     Uvicorn running on http://{args.server_name}:{server.server_address[1]} (lmdeploy stand-in)",
          flush=True)  # fmt: skip
    try:
        server.serve_forever()
    finally:
        server.server_close()


def run(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve" and args.serve_command == "api_server":
        api_server(args)
    elif args.command == "lite" and args.lite_command == "auto_awq":
        auto_awq(args)

"""``lmdeploy serve api_server`` of the stand-in: lmdeploy 0.18's flag names (a subset, checked against the real
parser by ``tests/full_stack/check_lmdeploy.py``); unknown flags are refused, as argparse does for the real one."""

from __future__ import annotations

import argparse
import signal
import sys


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
    return parser


def api_server(args) -> None:
    from . import messages
    from .openai_server import decode_image, make_server
    from .pipeline import pipeline  # (the package's ``pipeline`` attribute is the function, as in lmdeploy)

    config_cls = (
        messages.TurbomindEngineConfig if args.backend == "turbomind" else messages.PytorchEngineConfig
    )
    config = config_cls(dtype=args.dtype, tp=args.tp, session_len=args.session_len, max_batch_size=args.max_batch_size,
                        cache_max_entry_count=args.cache_max_entry_count)  # fmt: skip
    pipe = pipeline(args.model_path, backend_config=config, trust_remote_code=args.trust_remote_code)
    name = args.model_name or args.model_path  # as lmdeploy's cli/entrypoint.py

    def reply(chat_messages, body):
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

"""A small OpenAI-compatible HTTP server on the standard library: ``GET /v1/models`` and ``POST /v1/chat/completions``.

``make_server(names, reply, port)`` serves the model ``names``; ``reply(messages, body)`` answers a chat request with
``(text, finish_reason, prompt_tokens, completion_tokens)``. A request for a model not served gets 404 with the error
body lmdeploy's api_server sends (``{"message": "The model 'x' does not exist.", "type": "not_found_error", "code":
404, ...}``). Standard library only, so tests can load this file by path without the package.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def error_body(status: int, message: str, kind: str) -> dict:
    return {"message": message, "type": kind, "code": status, "param": None, "object": "error"}


def decode_image(url: str):
    """A ``data:image/...;base64,...`` URL → PIL image (nothing is downloaded)."""
    from PIL import Image

    if not url.startswith("data:image"):
        raise ValueError("only data:image URLs are served here (no network)")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


class Server(ThreadingHTTPServer):
    """A threading HTTP server with uvicorn's default listen backlog (2048; lmdeploy's api_server runs on uvicorn).

    The standard library's default of 5 overflows under notebook 09's load test (32 clients at once, each a
    ``/v1/models`` GET and a POST) on a busy machine, and the kernel then resets connections a real server accepts:
    CI met ``ConnectionResetError`` there once, and a server whose accept loop is slowed by busy threads reproduces it
    (11 of 128 requests reset at 64 clients with a backlog of 5, none with 2048)."""

    request_queue_size = 2048


def make_server(names: list[str], reply, port: int = 0, host: str = "127.0.0.1") -> Server:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") != "/v1/models":
                return self._send(404, {"detail": "Not Found"})
            cards = [{"id": n, "object": "model", "created": int(time.time()), "owned_by": "lmdeploy", "root": n,
                      "parent": None, "permission": []} for n in names]  # fmt: skip
            self._send(200, {"object": "list", "data": cards})

        def do_POST(self):
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, {"detail": "Not Found"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if body.get("model") not in names:
                message = f"The model {body.get('model')!r} does not exist."
                return self._send(404, error_body(404, message, "not_found_error"))
            try:
                text, finish, n_in, n_out = reply(body.get("messages", []), body)
            except ValueError as err:
                return self._send(400, error_body(400, str(err), "invalid_request_error"))
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
            self._send(200, {"id": "0", "object": "chat.completion", "created": int(time.time()),
                             "model": body["model"], "choices": [choice], "usage": usage})  # fmt: skip

    return Server((host, port), Handler)


def serve_in_background(server: Server) -> str:
    """Start ``server`` in a daemon thread; returns its base URL (``server.shutdown()`` stops it)."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"

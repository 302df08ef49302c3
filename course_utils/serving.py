"""LMDeploy's OpenAI-compatible server from a notebook: the command, a client, and a server started for one block.

    argv = serving.api_server_command(model_dir, python=sys.executable)   # lmdeploy serve api_server ... (0.18 flags)
    with serving.api_server(argv) as url:                                 # start, wait for /v1/models, stop after
        print(serving.served_models(url), serving.ask_api_server("Describe it.", image, base_url=url))

The client speaks the documented OpenAI route (``GET /v1/models``, then ``POST /v1/chat/completions`` with a served
name), through the ``openai`` package where it is installed (lmdeploy requires it) and the standard library elsewhere;
an HTTP error is reported as what it is (``ApiServerError``: status and body), a missing server as
``ConnectionRefusedError``. Introduced in notebook 07.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from PIL import Image


def api_server_command(
    model_dir,
    *,
    port: int = 23333,
    model_name: str = "InternVL2-2B",
    session_len: int = 8192,
    cache_max_entry_count: float = 0.5,
    python: str | None = None,
) -> list[str]:
    """The argv of ``lmdeploy serve api_server`` for InternVL2 (flags of lmdeploy 0.18's ``cli/serve.py``).

    ``--trust-remote-code`` (InternVL ships its own code; the default is False), ``--model-name`` (without it the
    server serves the model under its path and a request naming ``model_name`` gets 404), ``--server-name 127.0.0.1``
    (the default 0.0.0.0 listens on every network). ``python``: run it as ``python -m lmdeploy`` with that
    interpreter (from a notebook: ``sys.executable``); None gives the command to type in a terminal.
    """
    head = ["lmdeploy"] if python is None else [str(python), "-m", "lmdeploy"]
    return [*head, "serve", "api_server", str(model_dir), "--server-name", "127.0.0.1", "--server-port", str(port),
            "--model-name", model_name, "--trust-remote-code", "--session-len", str(session_len),
            "--cache-max-entry-count", str(cache_max_entry_count)]  # fmt: skip


class ApiServerError(RuntimeError):
    """The server answered with an HTTP error: ``status`` and the ``body`` it sent."""

    def __init__(self, url: str, status: int, body: str):
        super().__init__(f"{url} answered HTTP {status}: {body}")
        self.status, self.body = status, body


def _request(url: str, body: dict | None = None, timeout: float = 60) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as err:
        raise ApiServerError(url, err.code, err.read().decode(errors="replace")) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, ConnectionRefusedError):
            raise ConnectionRefusedError(
                f"no server on {url.split('/v1/')[0]} (connection refused)"
            ) from None
        raise


def _openai():
    try:
        import openai
    except ImportError:
        return None
    return openai


def served_models(base_url: str = "http://127.0.0.1:23333", timeout: float = 10) -> list[str]:
    """The model names the server serves (``GET /v1/models``)."""
    return [card["id"] for card in _request(f"{base_url}/v1/models", timeout=timeout)["data"]]


def image_content(image: Image.Image) -> dict:
    """An OpenAI ``image_url`` content part carrying the image itself (a PNG data URL)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}  # fmt: skip


def ask_api_server(
    question: str,
    image: Image.Image | None = None,
    *,
    base_url: str = "http://127.0.0.1:23333",
    model: str | None = None,
    max_tokens: int = 64,
    image_first: bool = True,
    timeout: float = 120,
) -> str:
    """Ask an OpenAI-compatible server one question (with an optional image) and return the answer's text.

    ``model``: a served name; None takes the first one ``/v1/models`` lists (a name the server does not serve is a
    404). Uses the ``openai`` package when installed (lmdeploy's environment has it), else the standard library.
    An HTTP error raises ``ApiServerError`` (status + body); no server raises ``ConnectionRefusedError``.
    """
    openai = _openai()
    content = [{"type": "text", "text": question}]
    if image is not None:
        content.insert(0 if image_first else 1, image_content(image))
    body = {"messages": [{"role": "user", "content": content}], "max_completion_tokens": max_tokens}
    if openai is None:
        body["model"] = model or served_models(base_url, timeout)[0]
        return _request(f"{base_url}/v1/chat/completions", body, timeout)["choices"][0]["message"]["content"]
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="none", timeout=timeout, max_retries=0)
    try:
        body["model"] = model or client.models.list().data[0].id
        return client.chat.completions.create(**body).choices[0].message.content
    except openai.APIStatusError as err:
        raise ApiServerError(str(err.request.url), err.status_code, err.response.text) from None
    except openai.APIConnectionError as err:
        raise ConnectionRefusedError(f"no server on {base_url} ({type(err).__name__})") from None


@contextmanager
def api_server(
    argv: list[str], *, base_url: str | None = None, timeout: float = 600, log: str | Path | None = None
):
    """Start ``argv`` (``api_server_command(..., python=sys.executable)``) in the background, wait until its
    ``/v1/models`` answers, yield the base URL, and stop the server on leaving the ``with`` block.

    The server's output goes to ``log`` (default: a temporary file); if it exits or is not up within ``timeout``
    seconds, RuntimeError with the end of that log."""
    import tempfile

    port = argv[argv.index("--server-port") + 1] if "--server-port" in argv else "23333"
    base_url = base_url or f"http://127.0.0.1:{port}"
    log = Path(log) if log else Path(tempfile.mkdtemp(prefix="api_server-")) / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                served_models(base_url, timeout=5)
                break
            except (ConnectionRefusedError, ApiServerError, urllib.error.URLError, OSError):
                pass
            tail = lambda: log.read_text(errors="replace")[-2000:]  # noqa: E731
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the api_server exited with code {proc.returncode}; its log ({log}):\n{tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the api_server did not answer within {timeout:.0f} s; its log ({log}):\n{tail()}"
                )
            time.sleep(1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""course_utils.serving: lmdeploy's api_server command line, the OpenAI-route client, a server started for a block."""

import importlib.util
import socket
import sys
from pathlib import Path

import pytest

from course_utils import data, serving

REHEARSAL = Path(__file__).parent / "rehearsal" / "standins"


def _free_port() -> int:
    """A local port nobody listens on (until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def images():
    return [it.image for it in data.make_shapes(2, image_size=64, seed=5)]


def test_api_server_command_names_the_model_and_trusts_remote_code():
    argv = serving.api_server_command("/root/share/new_models/OpenGVLab/InternVL2-2B", port=23334, session_len=4096,
                                    cache_max_entry_count=0.2)  # fmt: skip
    assert argv == ["lmdeploy", "serve", "api_server", "/root/share/new_models/OpenGVLab/InternVL2-2B",
                    "--server-name", "127.0.0.1", "--server-port", "23334", "--model-name", "InternVL2-2B",
                    "--trust-remote-code", "--session-len", "4096", "--cache-max-entry-count", "0.2"]  # fmt: skip
    assert serving.api_server_command("/m", python="/env/bin/python")[:4] == [
        "/env/bin/python",
        "-m",
        "lmdeploy",
        "serve",
    ]
    # the stand-in's parser (same flag names as lmdeploy 0.18's, checked by make test-full-stack) accepts it
    cli = _load("lmdeploy_standin_cli", REHEARSAL / "lmdeploy" / "cli.py")
    args = cli.build_parser().parse_args(argv[1:])
    assert (args.model_name, args.trust_remote_code, args.server_port, args.session_len) == (
        "InternVL2-2B",
        True,
        23334,
        4096,
    )
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([*argv[1:], "--no-such-flag"])


@pytest.fixture
def openai_server(monkeypatch):
    """A stdlib OpenAI-compatible server on 127.0.0.1 serving "InternVL2-2B" with an echo model; urllib client."""
    monkeypatch.setattr(serving, "_openai", lambda: None)
    server_mod = _load("lmdeploy_standin_openai_server", REHEARSAL / "lmdeploy" / "openai_server.py")
    seen = []

    def reply(messages, body):
        seen.append((messages, body))
        parts = messages[-1]["content"]
        image = next(
            server_mod.decode_image(p["image_url"]["url"]) for p in parts if p["type"] == "image_url"
        )
        return (
            f"{parts[1 - [p['type'] for p in parts].index('image_url')]['text']} {image.size}",
            "stop",
            5,
            2,
        )

    server = server_mod.make_server(["InternVL2-2B"], reply)
    url = server_mod.serve_in_background(server)
    yield url, seen
    server.shutdown()
    server.server_close()


def test_ask_api_server_happy_path_and_http_errors(openai_server, images):
    url, seen = openai_server
    assert serving.served_models(url) == ["InternVL2-2B"]
    assert (
        serving.ask_api_server("what is it?", images[0], base_url=url, max_tokens=8)
        == f"what is it? {images[0].size}"
    )
    messages, body = seen[-1]
    assert body["model"] == "InternVL2-2B" and body["max_completion_tokens"] == 8
    assert messages[0]["content"][0]["type"] == "image_url"  # image first
    with pytest.raises(
        serving.ApiServerError, match=r"HTTP 404: .*The model 'internvl2' does not exist"
    ) as err:
        serving.ask_api_server("what is it?", images[0], base_url=url, model="internvl2")
    assert err.value.status == 404


def test_stand_in_server_queues_many_connections_like_uvicorn():
    """The stand-in's listen backlog holds 64 connections while its accept loop is busy (notebook 09's load test sends
    32 clients at once): with the standard library's backlog of 5 the kernel stops completing
    handshakes after a few, and on a busy machine CI saw the resulting resets."""
    server_mod = _load("lmdeploy_standin_openai_server", REHEARSAL / "lmdeploy" / "openai_server.py")
    server = server_mod.make_server(["InternVL2-2B"], lambda m, b: ("ok", "stop", 1, 1))  # never accepts
    clients = []
    try:
        for _ in range(64):
            clients.append(socket.create_connection(server.server_address[:2], timeout=2))
    finally:
        for c in clients:
            c.close()
        server.server_close()
    assert len(clients) == 64


def test_ask_api_server_without_a_server_says_so():
    port = _free_port()
    with pytest.raises(ConnectionRefusedError, match=f"no server on http://127.0.0.1:{port}"):
        serving.ask_api_server("hi", base_url=f"http://127.0.0.1:{port}")


SERVER_SCRIPT = """
import sys
sys.path.insert(0, {folder!r})
import openai_server
port = int(sys.argv[sys.argv.index("--server-port") + 1])
openai_server.make_server(["InternVL2-2B"], lambda m, b: ("ok", "stop", 1, 1), port=port).serve_forever()
"""


def test_api_server_starts_waits_and_stops(tmp_path):
    port = _free_port()
    script = SERVER_SCRIPT.format(folder=str(REHEARSAL / "lmdeploy"))
    with serving.api_server([sys.executable, "-c", script, "--server-port", str(port)], timeout=60) as url:
        assert url == f"http://127.0.0.1:{port}" and serving.served_models(url) == ["InternVL2-2B"]
    with pytest.raises(ConnectionRefusedError):
        serving.served_models(url)  # stopped
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*boom"):
        with serving.api_server([sys.executable, "-c", "print('boom'); raise SystemExit(3)", "--server-port", "1"],
                              log=tmp_path / "log.txt"):  # fmt: skip
            pass

"""`make lab` serves JupyterLab: start the same command on a free port, fetch /lab and the notebook listing."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

from course_utils import lab, paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_command_binds_to_localhost_in_notebooks():
    cmd = lab.command(9999, open_browser=False, token="t")
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=9999" in cmd
    assert f"--ServerApp.root_dir={paths.notebooks_dir()}" in cmd


def test_jupyterlab_serves_the_course(tmp_path):
    port, token = free_port(), "course-test-token"
    env_vars = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "course_utils.lab", "--port", str(port), "--no-browser", "--token", token],
        env={**os.environ, **env_vars},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                status, body = get(f"{base}/lab?token={token}")
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(proc.stdout.read().decode(errors="replace")[-3000:]) from None
                time.sleep(0.5)
        assert status == 200 and b"JupyterLab" in body
        status, body = get(f"{base}/api/contents?token={token}")
        names = {item["name"] for item in json.loads(body)["content"]}
        assert status == 200 and "00_welcome_and_setup.ipynb" in names and "solutions" in names
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

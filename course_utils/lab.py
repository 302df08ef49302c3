"""Start JupyterLab for the course: bound to 127.0.0.1, opened in ``notebooks/``.

``make lab`` runs ``python -m course_utils.lab``; the test suite starts the very same command on a free port.
On a remote machine (InternStudio), forward the port over SSH instead of binding to a public address:
``ssh -CNg -L 8888:127.0.0.1:8888 root@ssh.intern-ai.org.cn -p <your port>``.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import paths


def command(
    port: int = 8888, *, open_browser: bool = True, token: str | None = None, root: str | None = None
) -> list[str]:
    """The ``jupyter lab`` command line ``main`` runs."""
    root = root or str(paths.notebooks_dir() or os.getcwd())
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.open_browser={open_browser}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # InternStudio and CI containers run as root
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    return cmd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.lab", description="Start JupyterLab for the course."
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("MLLM_COURSE_LAB_PORT", 8888)))
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument("--token", default=None, help="fixed access token (default: Jupyter makes one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cmd = command(args.port, open_browser=not args.no_browser, token=args.token)
    print(f"Starting JupyterLab on http://127.0.0.1:{args.port} (Ctrl+C to stop)", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()

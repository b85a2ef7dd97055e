"""Start real ragmem servers on free loopback ports for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[1]


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if the process does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(data_dir: Path, corpus_roots: list[Path] = (), env: dict | None = None,
                   timeout: float = 90) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "service.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    for root in corpus_roots:
        args += ["--corpus-root", str(root)]
    log_path = data_dir.parent / f"server-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield base
        finally:
            stop_process(proc)


def post_until_ready(client: httpx.Client, url: str, body: dict, timeout: float = 180) -> httpx.Response:
    """POST, honouring 503 + Retry-After while an on-demand build runs."""
    deadline = time.time() + timeout
    while True:
        response = client.post(url, json=body)
        if response.status_code != 503 or time.time() > deadline:
            return response
        assert "Retry-After" in response.headers
        time.sleep(min(2.0, float(response.headers["Retry-After"])))

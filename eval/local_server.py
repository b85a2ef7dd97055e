"""Start real ragmem servers on free loopback ports, for tests and benchmarks."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

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


def data_limiter(gib: float) -> Callable[[], None]:
    """A ``preexec_fn`` capping the child's writable data (RLIMIT_DATA): a runaway read ends in MemoryError."""
    limit = int(gib * 2**30)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return apply


def wait_until_serving(url: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; RuntimeError with the log's tail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()[-5000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not start within {timeout:.0f} s:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.2)


@contextmanager
def server_process(data_dir: Path, corpus_roots: list[Path] = (), env: dict | None = None, timeout: float = 90,
                   *, base_env: dict | None = None, memory_limit_gib: float | None = None,
                   log_name: str = "server") -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``running_server`` that also yields the process and its log path.

    ``base_env`` replaces ``os.environ`` as the environment ``env`` is laid over; ``memory_limit_gib`` caps the
    server's RLIMIT_DATA; the log is ``data_dir.parent / f"{log_name}-{port}.log"``.
    """
    port = free_port()
    args = [sys.executable, "-m", "service.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    for root in corpus_roots:
        args += ["--corpus-root", str(root)]
    log_path = data_dir.parent / f"{log_name}-{port}.log"
    preexec = data_limiter(memory_limit_gib) if memory_limit_gib is not None else None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env={**(os.environ if base_env is None else base_env), **(env or {})},
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{base}/healthz", proc, log_path, timeout)
            yield base, proc, log_path
        finally:
            stop_process(proc)


@contextmanager
def running_server(data_dir: Path, corpus_roots: list[Path] = (), env: dict | None = None,
                   timeout: float = 90, *, base_env: dict | None = None, memory_limit_gib: float | None = None,
                   log_name: str = "server") -> Iterator[str]:
    """``ragmem serve`` on a free loopback port; yields its base URL (keyword options: see ``server_process``)."""
    with server_process(data_dir, corpus_roots, env, timeout, base_env=base_env, memory_limit_gib=memory_limit_gib,
                        log_name=log_name) as (base, _proc, _log):
        yield base


PARTIAL_NOTE = "this collection is still being indexed"
"""Part of the text answers' readiness note (``service.formatting.readiness_note``)."""


def still_building(response: httpx.Response) -> bool:
    """A 503 while the first tier is built, or a 200 that says legs are still pending."""
    if response.status_code == 503:
        return True
    if response.status_code != 200:
        return False
    if response.headers.get("content-type", "").startswith("application/json"):
        return bool(response.json().get("pending"))
    return PARTIAL_NOTE in response.text


def post_until_ready(client: httpx.Client, url: str, body: dict, timeout: float = 180,
                     headers: dict | None = None, complete: bool = True) -> httpx.Response:
    """POST, honouring 503 + Retry-After while an on-demand build runs; with ``complete``, also
    until every leg is published (no ``pending``), so the answer is the requested mode's."""
    deadline = time.time() + timeout
    while True:
        response = client.post(url, json=body, headers=headers)
        waiting = still_building(response) if complete else response.status_code == 503
        if not waiting or time.time() > deadline:
            return response
        if response.status_code == 503:
            assert "Retry-After" in response.headers
            time.sleep(min(2.0, float(response.headers["Retry-After"])))
        else:
            time.sleep(0.5)

"""Another git revision beside this checkout, so a benchmark can measure both in the same run.

A benchmark that compares code versions across runs compares machines too: on this project's
shared 2-core VMs the same code varies by 1.4x from one hour to the next. So the baseline
revision is checked out as a git worktree and its processes import it ahead of the installed
checkout (``PYTHONPATH``, working directory), interleaved with this checkout's on one machine state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eval.local_server import ROOT, free_port, stop_process, wait_until_serving

THIS_CHECKOUT = "this checkout"


def checkout_env(checkout: Path) -> dict[str, str]:
    """The environment of a ragmem process that runs ``checkout``'s code."""
    return {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@contextmanager
def checkouts(baseline: str, tmp: Path) -> Iterator[dict[str, Path]]:
    """label -> source directory: this checkout, and ``baseline`` (a git revision) when given, as a
    worktree under ``tmp`` that is removed afterwards."""
    if not baseline:
        yield {THIS_CHECKOUT: ROOT}
        return
    worktree = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), baseline],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield {f"baseline {baseline}": worktree, THIS_CHECKOUT: ROOT}
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(worktree, ignore_errors=True)


@contextmanager
def serving(checkout: Path, data: Path, log_path: Path, timeout: float = 180) -> Iterator[str]:
    """``ragmem serve`` of ``data`` running ``checkout``'s code on a free loopback port, until the
    block ends; yields its URL once ``/healthz`` answers."""
    port = free_port()
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--data-dir", str(data),
                                 "--port", str(port)], cwd=checkout, env=checkout_env(checkout), stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(f"{url}/healthz", proc, log_path, timeout)
            yield url
        finally:
            stop_process(proc)

"""Collection directories, build locking and atomic publishing.

The layout (CURRENT, builds/, .staging-*, .lock, live/) is named in :mod:`indexing.build_format`.
A reader resolves CURRENT once and then only reads that build's directory, so a publish
(one rename) swaps versions atomically and in-flight readers finish on the old build.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from indexing.build_format import (BUILDS_DIR, CURRENT_FILE, LOCK_FILE, MANIFEST_FILE, build_path,
                                   current_pointer_temp, journal_files, staging_path, staging_pattern)

log = logging.getLogger("ragmem.indexing.publish")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CollectionNameError(ValueError):
    pass


def collection_name_from(path: Path) -> str:
    """A valid collection name from a corpus path's stem (``x.json.chunks.db`` -> ``x``)."""
    name = path.name
    for suffix in (".chunks.db", ".jsonl", ".json", ".md", ".txt"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "collection"
    return name[:128]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise CollectionNameError(
            f"invalid collection name {name!r}: use letters, digits, '.', '_' or '-' (max 128, no leading dot)")
    return name


def collection_root(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / check_name(name)


def current_build_dir(data_dir: Path, name: str) -> Path | None:
    root = collection_root(data_dir, name)
    try:
        build_id = (root / CURRENT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    build_dir = build_path(root, build_id)
    return build_dir if (build_dir / MANIFEST_FILE).exists() else None


def list_collections(data_dir: Path) -> list[str]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir()
                  if p.is_dir() and _NAME.match(p.name) and (p / CURRENT_FILE).exists())


def new_build_id() -> str:
    """Sortable by creation time, to the microsecond: pruning keeps the newest builds by name, and
    several builds of one collection can land within one second (build, compact, rebuild)."""
    now = time.time()
    micros = int(now * 1_000_000) % 1_000_000
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{micros:06d}-" + uuid.uuid4().hex[:8]


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Exclusive per-collection lock; released by the kernel even if the holder is SIGKILLed.

    A failed first build removes its collection directory, lock file included, while holding
    the lock (:func:`discard_unpublished`); a builder that was waiting then holds a lock on an
    unlinked file, so it checks that the file it locked is still the one at the path and
    otherwise locks again.
    """
    while True:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / LOCK_FILE, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if _same_file(handle, root / LOCK_FILE):
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                return
        finally:
            handle.close()


def build_running(root: Path) -> bool:
    """Whether some process holds the collection's build lock now (a build, or a compaction, runs)."""
    try:
        handle = open(root / LOCK_FILE, "r")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _same_file(handle, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def discard_unpublished(root: Path) -> None:
    """Remove a collection directory that never got a published build (the caller holds its lock),
    so a failed or cancelled first build leaves nothing in the data root."""
    if not (root / CURRENT_FILE).exists():
        shutil.rmtree(root, ignore_errors=True)
        log.info("removed %s: its first build did not publish", root)


def staging_dir(root: Path, build_id: str) -> Path:
    """A fresh staging directory; leftovers of dead builders are removed first (we hold the lock)."""
    for stale in root.glob(staging_pattern()):
        log.info("removing stale staging directory %s", stale)
        shutil.rmtree(stale, ignore_errors=True)
    path = staging_path(root, build_id)
    path.mkdir(parents=True)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(root: Path, staging: Path, build_id: str, keep_builds: int) -> Path:
    """Move a complete staging build into place and point CURRENT at it, atomically."""
    for file in staging.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    builds = root / BUILDS_DIR
    builds.mkdir(exist_ok=True)
    final = build_path(root, build_id)
    os.rename(staging, final)
    _fsync_dir(builds)
    pointer_tmp = current_pointer_temp(root, build_id)
    pointer_tmp.write_text(build_id + "\n")
    with open(pointer_tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer_tmp, root / CURRENT_FILE)
    _fsync_dir(root)
    _prune(builds, keep=max(1, keep_builds), current=build_id)
    return final


def _prune(builds: Path, keep: int, current: str) -> None:
    """Keep the newest ``keep`` builds; older ones may still serve in-flight reads, hence keep >= 2 by default.

    A pruned build's change journal goes with it: nothing can read or compact it any more.
    """
    ordered = sorted((p for p in builds.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    for old in ordered[keep:]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
            for journal in journal_files(builds.parent, old.name):
                journal.unlink(missing_ok=True)


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

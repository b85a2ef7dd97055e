"""The one gate every corpus file read goes through.

A corpus path comes from an operator (CLI) or, through ``json_path``, from an agent. Whatever it
names, a build must:

* read only regular files whose real path lies inside the allowed roots, so a symlink in a
  corpus cannot pull ``/etc/passwd`` or ``/proc/self/status`` into an index that is then served;
* never block or stream forever: a FIFO would block ``read()`` until a writer appears, and
  ``/dev/zero`` never ends, so special files are refused before any read;
* read at most the configured limits, so one huge file or corpus cannot exhaust memory;
* record a digest of exactly the bytes it returned, so the corpus fingerprint describes what
  was indexed and not whatever the file holds by the time the build finishes.

:meth:`FileGate.read` enforces the first three and records the fourth; :meth:`FileGate.walk`
lists a directory corpus by the same rules, and :func:`corpus_signature` is the cheap
change detector built on that walk.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .documents import CorpusError, CorpusTooLarge

if TYPE_CHECKING:
    from .settings import Settings

logger = logging.getLogger("ragmem.indexing.file_gate")

__all__ = [
    "CorpusTooLarge", "FileGate", "FileTooLarge", "ReadLimits", "Refusal", "UnsafeFile", "WalkResult",
    "corpus_signature",
]

MiB = 2**20
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then refuses it).
# O_NOFOLLOW: the last component was resolved already; a symlink there now is a swap.
_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | _O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | _O_CLOEXEC
_PROC_FD = "/proc/self/fd"
_READ_BLOCK = 1 << 20

OUTSIDE_ROOTS = "outside the allowed roots"
SYMLINK_OUTSIDE = "symlink leads outside the allowed roots"
CHANGED_TYPE = "changed type between check and open"
MOVED_OUTSIDE = "moved outside the allowed roots between check and open"

_DESCEND, _LOAD = "dir", "file"  # walk verdicts; any other non-empty verdict is a refusal reason
_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
)


@dataclass(frozen=True)
class ReadLimits:
    """How much one corpus may make a build read; the defaults match :class:`Settings`."""

    max_file_bytes: int = 512 * MiB
    max_corpus_bytes: int = 2048 * MiB
    max_documents: int = 100_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        return cls(max_file_bytes=settings.max_file_bytes, max_corpus_bytes=settings.max_corpus_bytes,
                   max_documents=settings.max_corpus_documents)

    def check_documents(self, count: int, source: str) -> None:
        """Raise once ``count`` documents exceed the limit; ``source`` names the one that did."""
        if count > self.max_documents:
            raise CorpusTooLarge(f"{source}: the corpus has more than {self.max_documents} documents "
                                 "(limit RAGMEM_MAX_CORPUS_DOCUMENTS)")


class UnsafeFile(CorpusError):
    """The gate refused to open a path for a reason other than size (see ``reason``).

    A skip inside a directory corpus; fatal (400) when the path is the whole corpus.
    """

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"{label}: {reason}")
        self.label = label
        self.reason = reason


class FileTooLarge(CorpusTooLarge):
    """One file is over ``RAGMEM_MAX_FILE_BYTES``: a skip inside a directory, fatal on its own.

    Unlike the corpus-wide limits, one oversized file does not mean the corpus is too big.
    """


@dataclass(frozen=True)
class Refusal:
    """A directory entry the walk will not hand to the loader, and why."""

    rel: str
    reason: str


@dataclass
class WalkResult:
    files: list[str] = field(default_factory=list)
    """Regular files (or symlinks to regular files inside the roots), as POSIX paths relative to
    the walked directory, sorted by path components."""
    refused: list[Refusal] = field(default_factory=list)
    directories: list[os.stat_result] = field(default_factory=list)
    """``fstat`` of every directory walked (their mtimes move when entries are added or removed)."""


@dataclass
class _WalkState:
    """What :meth:`FileGate.walk` has found so far, keyed by path components for sorting."""

    pending: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    files: list[tuple[str, ...]] = field(default_factory=list)
    refused: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    directories: list[os.stat_result] = field(default_factory=list)

    def place(self, real: str, parts: tuple[str, ...], verdict: str) -> None:
        if verdict == _DESCEND:
            self.pending.append((real, parts))
        elif verdict == _LOAD:
            self.files.append(parts)
        elif verdict:
            self.refused.append((parts, verdict))

    def result(self) -> WalkResult:
        """Sorted like the loader has always walked: by path components, not filesystem order."""
        return WalkResult(files=["/".join(parts) for parts in sorted(self.files)],
                          refused=[Refusal("/".join(parts) or ".", reason) for parts, reason in sorted(self.refused)],
                          directories=self.directories)


def file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "unknown file type")


class FileGate:
    """Reads corpus files inside ``roots`` within ``limits``; one gate per corpus load.

    It accumulates the corpus byte budget and ``digests`` (real path -> sha256 of the bytes
    returned), which is what the fingerprint is computed from.
    """

    def __init__(self, roots: Sequence[str | Path], limits: ReadLimits | None = None) -> None:
        self.roots = tuple(os.path.realpath(root) for root in roots)
        self.limits = limits or ReadLimits()
        self.bytes_read = 0
        self.digests: dict[str, str] = {}

    def contains(self, real: str) -> bool:
        """Whether the already-resolved path ``real`` is one of the roots or below one."""
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    # --- reading ------------------------------------------------------------------------------

    def read(self, path: str | Path, label: str) -> bytes:
        """The bytes of the regular file ``path``; ``label`` names it in every error.

        Raises :class:`UnsafeFile`, :class:`FileTooLarge`, :class:`CorpusTooLarge` (corpus byte
        budget) or ``OSError`` (missing, permission denied).
        """
        real = self._resolve(path, label)
        fd, info = self._open_regular(real, label)
        try:
            data = self._read_bounded(fd, info.st_size, label)
        finally:
            os.close(fd)
        self._record(real, data)
        return data

    def _resolve(self, path: str | Path, label: str) -> str:
        real = os.path.realpath(path)
        if not self.contains(real):
            raise UnsafeFile(label, SYMLINK_OUTSIDE if real != os.path.abspath(path) else OUTSIDE_ROOTS)
        info = os.lstat(real)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(label, f"not a regular file ({file_kind(info.st_mode)})")
        return real

    def _open_regular(self, real: str, label: str) -> tuple[int, os.stat_result]:
        """Open ``real`` and prove the descriptor is a regular file inside the roots."""
        try:
            fd = os.open(real, _FILE_FLAGS)
        except OSError as error:
            if error.errno == errno.ELOOP:  # the last component became a symlink after the check
                raise UnsafeFile(label, CHANGED_TYPE) from error
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeFile(label, CHANGED_TYPE)
            self._check_descriptor(fd, label)
        except BaseException:
            os.close(fd)
            raise
        return fd, info

    def _check_descriptor(self, fd: int, label: str) -> None:
        """Where the kernel says ``fd`` is must be inside the roots: closes the race in which an
        intermediate directory is swapped for a symlink between ``realpath`` and ``open``."""
        try:
            opened = os.readlink(f"{_PROC_FD}/{fd}")
        except OSError:
            return  # no /proc (not Linux): the realpath check and O_NOFOLLOW are what we have
        if not self.contains(opened.removesuffix(" (deleted)")):
            raise UnsafeFile(label, MOVED_OUTSIDE)

    def _read_bounded(self, fd: int, size: int, label: str) -> bytes:
        limits = self.limits
        if size > limits.max_file_bytes:
            raise _file_too_large(label, limits.max_file_bytes, size)
        self._charge(size, label)  # fail before reading when the stat size already breaks the budget
        cap = min(limits.max_file_bytes, limits.max_corpus_bytes - self.bytes_read) + 1
        data = _read_at_most(fd, cap)  # the file may have grown since fstat: never trust its size
        if len(data) > limits.max_file_bytes:
            raise _file_too_large(label, limits.max_file_bytes)
        self._charge(len(data), label)
        self.bytes_read += len(data)
        return data

    def _charge(self, size: int, label: str) -> None:
        if self.bytes_read + size > self.limits.max_corpus_bytes:
            raise CorpusTooLarge(f"{label}: reading it takes the corpus past {self.limits.max_corpus_bytes} bytes "
                                 "(limit RAGMEM_MAX_CORPUS_BYTES)")

    def _record(self, real: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        previous = self.digests.get(real)
        if previous is not None and previous != digest:  # read twice (two links) and changed between
            digest = hashlib.sha256(f"{previous}{digest}".encode()).hexdigest()
        self.digests[real] = digest

    # --- walking ------------------------------------------------------------------------------

    def walk(self, root: str | Path, cancel: Callable[[], None] | None = None) -> WalkResult:
        """Every non-hidden file of the directory ``root`` that the gate may read, plus the entries
        it refuses (symlinks out of the roots, special files, unreadable directories).

        Symlinked directories are never descended: outside the roots they are refused, inside
        they point at content the walk reaches anyway, and not following them rules out cycles.
        ``cancel`` is called once per directory.
        """
        start = os.path.realpath(root)
        if not self.contains(start):
            raise UnsafeFile(str(root), SYMLINK_OUTSIDE if start != os.path.abspath(root) else OUTSIDE_ROOTS)
        state = _WalkState(pending=[(start, ())])
        while state.pending:  # explicit stack: a hostile tree may nest deeper than the recursion limit
            if cancel is not None:
                cancel()
            real_dir, parts = state.pending.pop()
            try:
                self._scan(real_dir, parts, state)
            except UnsafeFile as problem:
                state.refused.append((parts, problem.reason))
            except OSError as error:
                state.refused.append((parts, f"unreadable directory: {error.strerror or error}"))
        return state.result()

    def _scan(self, real_dir: str, parts: tuple[str, ...], state: _WalkState) -> None:
        fd = self._open_directory(real_dir)
        try:
            state.directories.append(os.fstat(fd))
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not entry.name.startswith("."):
                        child = os.path.join(real_dir, entry.name)
                        state.place(child, (*parts, entry.name), self._classify(entry, child))
        finally:
            os.close(fd)

    def _open_directory(self, real_dir: str) -> int:
        try:
            fd = os.open(real_dir, _DIR_FLAGS)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a symlink or a file
                raise UnsafeFile(real_dir, CHANGED_TYPE) from error
            raise
        try:
            self._check_descriptor(fd, real_dir)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _classify(self, entry: os.DirEntry, child: str) -> str:
        """``_DESCEND``, ``_LOAD``, ``""`` to ignore, or the reason the entry is refused."""
        try:
            if entry.is_symlink():
                return self._classify_link(child)
            if entry.is_dir(follow_symlinks=False):
                return _DESCEND
            if entry.is_file(follow_symlinks=False):
                return _LOAD
            return f"not a regular file ({file_kind(entry.stat(follow_symlinks=False).st_mode)})"
        except OSError as error:  # vanished while listing
            logger.debug("ignoring %s: %s", child, error)
            return ""

    def _classify_link(self, link: str) -> str:
        real = os.path.realpath(link)
        if not self.contains(real):
            return SYMLINK_OUTSIDE
        try:
            mode = os.stat(real).st_mode  # stat never opens, so it cannot block on a FIFO
        except OSError:
            return _LOAD  # dangling: the read reports "cannot read file" as for any missing file
        if stat.S_ISREG(mode):
            return _LOAD
        if stat.S_ISDIR(mode):
            logger.debug("not following symlinked directory %s (inside the roots)", link)
            return ""
        return f"not a regular file ({file_kind(mode)})"


def corpus_signature(path: str | Path, roots: Sequence[str | Path] | None = None) -> tuple[int, int]:
    """``(latest mtime_ns, total bytes)`` of what a load of ``path`` would read: cheap change
    detection without reading content.

    Walks by the gate's rules (``roots`` None: the corpus itself is the root), so refused entries
    never count; directory mtimes count too, so a removed or renamed file changes the signature.
    A path that cannot be used at all gives ``(0, 0)``; the build then reports why.
    """
    gate = FileGate(roots if roots is not None else [path])
    real = os.path.realpath(path)
    try:
        if not os.path.isdir(real):
            return _regular_signature([gate._resolve(path, str(path))])
        walk = gate.walk(path)
    except (OSError, CorpusError):
        return 0, 0
    latest = max((info.st_mtime_ns for info in walk.directories), default=0)
    files_latest, total = _regular_signature(os.path.realpath(os.path.join(path, rel)) for rel in walk.files)
    return max(latest, files_latest), total


def _regular_signature(reals: Iterable[str]) -> tuple[int, int]:
    latest, total = 0, 0
    for real in reals:
        try:
            info = os.lstat(real)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            latest, total = max(latest, info.st_mtime_ns), total + info.st_size
    return latest, total


def _file_too_large(label: str, limit: int, size: int | None = None) -> FileTooLarge:
    found = f"is {size} bytes, over" if size is not None else "is over"
    return FileTooLarge(f"{label}: file {found} the limit of {limit} bytes per file (RAGMEM_MAX_FILE_BYTES)")


def _read_at_most(fd: int, cap: int) -> bytes:
    blocks: list[bytes] = []
    total = 0
    while total < cap:
        block = os.read(fd, min(_READ_BLOCK, cap - total))
        if not block:
            break
        blocks.append(block)
        total += len(block)
    return b"".join(blocks)

"""The file gate: every corpus read stays inside the allowed roots, never blocks, stays bounded,
and the fingerprint describes exactly the bytes that were indexed.

Each attack is built in ``tmp_path``. Anything that could hang or eat memory on a regression runs
in a daemon thread with a join timeout, or in a memory-limited subprocess, so a broken gate fails
the test instead of hanging the suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable

import pytest

from indexing.builder import build_collection, corpus_fingerprint
from indexing.documents import CorpusError, CorpusTooLarge, LoadedCorpus
from indexing.file_gate import CHANGED_TYPE, MOVED_OUTSIDE, FileGate, ReadLimits, UnsafeFile, corpus_signature
from indexing.loaders import load_corpus
from eval.generated_corpus import write_json_corpus

REPO = Path(__file__).resolve().parents[1]
PROMPT_SECONDS = 5.0
SYMLINK_OUT = "symlink leads outside the allowed roots"


def reasons(corpus: LoadedCorpus) -> dict[str, str]:
    return {skip.source: skip.reason for skip in corpus.skipped}


def sources(corpus: LoadedCorpus) -> set[str]:
    return {doc.source for doc in corpus.documents}


def load_promptly(call: Callable[[], LoadedCorpus], fifos: list[Path] = ()) -> LoadedCorpus:
    """Run ``call`` in a daemon thread; fail (and unblock it) if it does not return promptly."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["corpus"] = call()
        except BaseException as error:  # re-raised in the test thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(PROMPT_SECONDS)
    if thread.is_alive():
        for fifo in fifos:  # a reader blocked in open() on a FIFO returns once a writer comes and goes
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        pytest.fail(f"load did not return within {PROMPT_SECONDS}s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["corpus"]  # type: ignore[return-value]


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write_json_corpus(root / "good.json", n_docs=3)
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.md").write_text("# Secret\n\nthe launch codes", encoding="utf-8")
    return secret


# --- symlinks -----------------------------------------------------------------------------------


def test_symlink_to_a_file_outside_the_root_is_skipped(corpus_dir: Path, outside: Path) -> None:
    (corpus_dir / "leak.md").symlink_to(outside / "secret.md")
    corpus = load_corpus(corpus_dir)
    assert reasons(corpus)["leak.md"] == SYMLINK_OUT
    assert not any("launch codes" in doc.text for doc in corpus.documents)
    assert len(corpus.documents) == 3
    assert all(name.startswith(str(corpus_dir.resolve())) for name in corpus.files)


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/status"])
def test_symlink_to_system_files_is_skipped(corpus_dir: Path, target: str) -> None:
    if not os.path.exists(target):
        pytest.skip(f"{target} not present")
    (corpus_dir / "system.txt").symlink_to(target)
    corpus = load_corpus(corpus_dir)
    assert reasons(corpus)["system.txt"] == SYMLINK_OUT
    assert "system.txt" not in sources(corpus)
    assert os.path.realpath(target) not in corpus.files


def test_symlinked_directory_leading_out_is_skipped(corpus_dir: Path, outside: Path) -> None:
    (corpus_dir / "elsewhere").symlink_to(outside, target_is_directory=True)
    corpus = load_corpus(corpus_dir)
    assert reasons(corpus)["elsewhere"] == SYMLINK_OUT
    assert not any(doc.source.startswith("elsewhere/") for doc in corpus.documents)


def test_symlink_inside_the_root_still_loads(corpus_dir: Path) -> None:
    store = corpus_dir / ".store"
    store.mkdir()
    (store / "real.md").write_text("# Kept\n\nreached through a link", encoding="utf-8")
    (corpus_dir / "visible.md").symlink_to(Path(".store") / "real.md")
    corpus = load_corpus(corpus_dir)
    assert "visible.md" in sources(corpus)
    assert str((store / "real.md").resolve()) in corpus.file_digests


def test_single_file_outside_the_given_roots_is_refused(tmp_path: Path, corpus_dir: Path, outside: Path) -> None:
    link = corpus_dir / "leak.md"
    link.symlink_to(outside / "secret.md")
    with pytest.raises(UnsafeFile, match=f"leak.md: {SYMLINK_OUT}"):
        load_corpus(link, roots=[corpus_dir])
    with pytest.raises(CorpusError, match="outside the allowed roots"):
        load_corpus(outside, roots=[corpus_dir])


# --- special files ------------------------------------------------------------------------------


def test_fifo_in_a_directory_is_skipped_promptly(corpus_dir: Path) -> None:
    fifo = corpus_dir / "pipe.jsonl"
    os.mkfifo(fifo)
    corpus = load_promptly(lambda: load_corpus(corpus_dir), [fifo])
    assert reasons(corpus)["pipe.jsonl"] == "not a regular file (FIFO)"
    assert len(corpus.documents) == 3


def test_fifo_as_the_whole_corpus_is_refused_promptly(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFile, match=r"pipe\.json: not a regular file \(FIFO\)"):
        load_promptly(lambda: load_corpus(fifo), [fifo])


def test_fifo_swapped_in_after_the_check_is_refused_without_blocking(tmp_path: Path) -> None:
    """The race the fstat check closes: the path passed lstat as a file, a FIFO is opened."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    gate = FileGate([tmp_path])
    outcome: list[BaseException] = []

    def target() -> None:
        try:
            gate._open_regular(str(fifo), "pipe.json")
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(PROMPT_SECONDS)
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert isinstance(outcome[0], UnsafeFile) and outcome[0].reason == CHANGED_TYPE


def test_descriptor_that_ends_up_outside_the_roots_is_refused(tmp_path: Path, monkeypatch) -> None:
    """The race the /proc/self/fd check closes: an intermediate directory swapped for a symlink."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc")
    path = write_json_corpus(tmp_path / "c.json", n_docs=1)
    monkeypatch.setattr("indexing.file_gate.os.readlink", lambda _: "/somewhere/else.json")
    with pytest.raises(UnsafeFile) as info:
        FileGate([tmp_path]).read(path, "c.json")
    assert info.value.reason == MOVED_OUTSIDE


def test_symlink_to_dev_zero_is_skipped_in_bounded_memory(corpus_dir: Path) -> None:
    """In a subprocess limited to 1 GiB of address space: a regression reads /dev/zero until
    MemoryError there, instead of exhausting this machine."""
    (corpus_dir / "zero.txt").symlink_to("/dev/zero")
    script = textwrap.dedent(f"""
        import json, resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from indexing.loaders import load_corpus
        corpus = load_corpus({str(corpus_dir)!r})
        print(json.dumps({{s.source: s.reason for s in corpus.skipped}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["zero.txt"] == SYMLINK_OUT


def test_character_device_inside_the_roots_is_refused(corpus_dir: Path) -> None:
    """With /dev allowed, containment passes and only the file-type check stands in the way."""
    (corpus_dir / "zero.txt").symlink_to("/dev/zero")
    corpus = load_promptly(lambda: load_corpus(corpus_dir, roots=[corpus_dir, Path("/dev")]))
    assert reasons(corpus)["zero.txt"] == "not a regular file (character device)"


# --- limits -------------------------------------------------------------------------------------


def test_file_over_the_per_file_limit(corpus_dir: Path) -> None:
    small = corpus_dir / "small.md"
    small.write_text("# Small\n\nfits", encoding="utf-8")
    limits = ReadLimits(max_file_bytes=small.stat().st_size)
    corpus = load_corpus(corpus_dir, limits=limits)
    assert "small.md" in sources(corpus)
    reason = reasons(corpus)["good.json"]
    assert "good.json" in reason and "RAGMEM_MAX_FILE_BYTES" in reason and str(limits.max_file_bytes) in reason
    with pytest.raises(CorpusTooLarge, match=r"good\.json: .*RAGMEM_MAX_FILE_BYTES"):
        load_corpus(corpus_dir / "good.json", limits=limits)


def test_corpus_over_the_byte_budget_is_an_error(corpus_dir: Path) -> None:
    second = write_json_corpus(corpus_dir / "second.json", n_docs=3, seed=1)
    budget = (corpus_dir / "good.json").stat().st_size + second.stat().st_size - 1
    with pytest.raises(CorpusTooLarge, match=rf"second\.json: .*{budget}.*RAGMEM_MAX_CORPUS_BYTES"):
        load_corpus(corpus_dir, limits=ReadLimits(max_corpus_bytes=budget))
    assert len(load_corpus(corpus_dir, limits=ReadLimits(max_corpus_bytes=budget + 1)).documents) == 6


def test_corpus_over_the_document_limit_is_an_error(tmp_path: Path) -> None:
    path = write_json_corpus(tmp_path / "many.json", n_docs=12)
    with pytest.raises(CorpusTooLarge, match=r"many\.json\[5\]: .*more than 5 documents.*RAGMEM_MAX_CORPUS_DOCUMENTS"):
        load_corpus(path, limits=ReadLimits(max_documents=5))
    assert len(load_corpus(path, limits=ReadLimits(max_documents=12)).documents) == 12


def test_limits_from_settings(settings) -> None:
    settings.max_file_bytes, settings.max_corpus_bytes, settings.max_corpus_documents = 10, 20, 30
    assert ReadLimits.from_settings(settings) == ReadLimits(10, 20, 30)


def test_cancel_is_called_per_file_and_can_stop_the_load(corpus_dir: Path) -> None:
    write_json_corpus(corpus_dir / "second.json", n_docs=2, seed=1)
    calls: list[int] = []
    load_corpus(corpus_dir, cancel=lambda: calls.append(1))
    assert len(calls) >= 2

    class Cancelled(Exception):
        pass

    def cancel() -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        load_corpus(corpus_dir, cancel=cancel)


# --- what was indexed is what is fingerprinted --------------------------------------------------


def test_fingerprint_is_of_the_bytes_loaded_not_of_the_file_now(tmp_path: Path) -> None:
    path = write_json_corpus(tmp_path / "c.json", n_docs=3)
    original = path.read_bytes()
    loaded = load_corpus(path)
    write_json_corpus(path, n_docs=4, seed=9)
    assert loaded.file_digests == {str(path.resolve()): hashlib.sha256(original).hexdigest()}
    assert corpus_fingerprint(loaded, {}) != corpus_fingerprint(load_corpus(path), {})


def test_legacy_chunks_db_is_read_through_the_gate_wal_included(tmp_path: Path) -> None:
    db = tmp_path / "old.chunks.db"
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA journal_mode=wal")
        connection.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_index INTEGER, chunk_index INTEGER, "
                           "title TEXT, content TEXT, url TEXT, start_char INTEGER, end_char INTEGER)")
        connection.execute("INSERT INTO chunks VALUES (1, 0, 0, 'T', 'T\n\nbody text', '', 0, 11)")
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    data = db.read_bytes()
    corpus = load_corpus(db)
    assert [doc.text for doc in corpus.documents] == ["body text"]
    assert corpus.file_digests == {str(db.resolve()): hashlib.sha256(data).hexdigest()}


def test_file_replaced_during_a_build_is_rebuilt_next_time(tmp_path: Path, settings) -> None:
    """The first build indexes the old content while the file is replaced before fingerprinting;
    building the new content must then not be taken for "unchanged"."""
    settings.graph = False
    path = write_json_corpus(tmp_path / "c.json", n_docs=3)

    def replace_after_load(stage: str, fraction: float) -> None:
        if stage == "model" and fraction == 0.0:
            write_json_corpus(path, n_docs=4, seed=9)

    first = build_collection(path, "race", settings, show_progress=False, progress=replace_after_load)
    assert first.documents == 3
    second = build_collection(path, "race", settings, show_progress=False)
    assert not second.unchanged and second.documents == 4


# --- corpus_signature ---------------------------------------------------------------------------


def test_signature_counts_only_what_a_load_would_read(corpus_dir: Path, outside: Path) -> None:
    (corpus_dir / "leak.md").symlink_to(outside / "secret.md")
    (corpus_dir / "zero.txt").symlink_to("/dev/zero")
    os.mkfifo(corpus_dir / "pipe.jsonl")
    (corpus_dir / ".hidden.md").write_text("not indexed", encoding="utf-8")
    latest, total = corpus_signature(corpus_dir)
    assert total == (corpus_dir / "good.json").stat().st_size
    assert latest >= (corpus_dir / "good.json").stat().st_mtime_ns
    (corpus_dir / "more.md").write_text("# More", encoding="utf-8")
    assert corpus_signature(corpus_dir) != (latest, total)


def test_signature_of_a_refused_path_is_zero(corpus_dir: Path, outside: Path) -> None:
    path = corpus_dir / "good.json"
    assert corpus_signature(path) == (path.stat().st_mtime_ns, path.stat().st_size)
    assert corpus_signature(outside / "secret.md", roots=[corpus_dir]) == (0, 0)
    assert corpus_signature(corpus_dir / "missing.json") == (0, 0)

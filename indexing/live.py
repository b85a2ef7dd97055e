"""Live collections: add, replace and delete documents while a collection serves, and compact.

A :class:`LiveCollection` pairs one published build with its change journal
(:mod:`indexing.change_log`) and hands readers immutable snapshots (a :class:`Collection`
whose store and indexes overlay the journal, :mod:`indexing.live_overlay`). A snapshot is
rebuilt when the journal's sequence number moves, whichever process wrote it, and is swapped
in with one assignment: readers never wait for a writer beyond that swap.

Writers — API requests, ``ragmem add/delete/compact``, other server workers — are serialised
per collection by an ``flock`` on ``<collection>/.write.lock`` (released by the kernel if the
holder dies). A write is prepared (chunked, embedded) before its journal transaction, and the
call returns only after the transaction committed and this process's snapshot shows it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from graphmem.memory import ChunkText
from graphmem.update import update_graph
from indexing import publish
from indexing.build_format import journal_path
from indexing.builder import build_from_documents
from indexing.lexical_pass import chunk_documents
from indexing.change_log import ChangeLog, NewChunk, PreparedDocument
from indexing.collection import Collection, open_build
from indexing.documents import Document
from indexing.embedder import QueryEncoding
from indexing.embedding_cache import embed_texts, open_embedding_cache
from indexing.live_overlay import DeltaBM25, LiveDense, LiveLexical, LiveStore, alive_mask
from indexing.settings import Settings

log = logging.getLogger("ragmem.indexing.live")

WRITE_LOCK = ".write.lock"


class StaleBuild(RuntimeError):
    """The collection was compacted or rebuilt by another process since this one loaded it."""


class DocumentNotFound(LookupError):
    pass


class PartialBuild(RuntimeError):
    """The build still publishes its legs (``Manifest.pending``): its next tier would not carry a
    change written now, so writes and compaction wait until it is complete."""


@dataclass
class WriteReport:
    collection: str
    build_id: str
    seq: int
    added: list[dict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    seconds: float = 0.0


class LiveCollection:
    def __init__(self, name: str, build_dir: Path, settings: Settings,
                 query_encoding: QueryEncoding | None = None) -> None:
        self.name = name
        self.settings = settings
        self.base = open_build(name, build_dir, settings.device, query_encoding)
        self.root = build_dir.parent.parent
        self.build_dir = build_dir
        self._journal_path = journal_path(self.root, build_dir.name)
        self._journal: ChangeLog | None = None
        self._snapshot: Collection = self.base
        self._seq = 0
        self._refresh_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._base_ids: dict[str, int] | None = None
        if self._journal_path.exists():
            self._refresh(force=True)

    # ---- reading -----------------------------------------------------------------------------
    def journal(self, create: bool = False) -> ChangeLog | None:
        if self._journal is None and (create or self._journal_path.exists()):
            self._journal = ChangeLog(self._journal_path, self.base.store.n_documents, self.base.store.n_chunks,
                                      int(self.base.manifest.embedder.dimension), self._pause_before_commit)
        return self._journal

    def snapshot(self) -> Collection:
        """The current state, including every write committed by any process."""
        journal = self.journal()
        if journal is not None and journal.seq() != self._seq:
            self._refresh()
        return self._snapshot

    def base_doc_rows(self) -> dict[str, int]:
        if self._base_ids is None:
            self._base_ids = {d["doc_id"]: d["doc_row"] for d in self.base.store.documents()}
        return self._base_ids

    def _refresh(self, force: bool = False) -> None:
        with self._refresh_lock:
            journal = self.journal()
            if journal is None or (not force and journal.seq() == self._seq):
                return
            started = time.perf_counter()
            state = journal.read()
            if state.seq == 0:  # an empty journal (e.g. a crash before its first commit)
                self._snapshot, self._seq = self.base, 0
                return
            base = self.base
            ids = self.base_doc_rows()
            deleted_docs = np.array(sorted(ids[d] for d in state.tombstones if d in ids), dtype=np.int64)
            alive = alive_mask(base.store, deleted_docs, state)
            graph = None
            if base.has_graph:
                added = [ChunkText(row=int(r), text=t, title=title)
                         for r, t, title in zip(state.chunk_rows, state.chunk_texts, state.chunk_titles)]
                graph = update_graph(base.graph, added, alive, self._graph_encoder(), state.chunk_vectors)
            self._snapshot = dataclasses.replace(
                base,
                store=LiveStore(base.store, journal.queries(), state, deleted_docs, alive),
                lexical=LiveLexical(base.lexical, DeltaBM25(base.lexical, state.chunk_rows, state.chunk_terms), alive),
                dense=LiveDense(base.dense, alive, state.chunk_rows, state.chunk_vectors),
                _graph=graph, live_seq=state.seq)
            self._seq = state.seq
            log.info("collection %s: journal seq %d (%d added chunks, %d deleted documents) applied in %.2fs",
                     self.name, state.seq, state.chunk_rows.size, deleted_docs.size, time.perf_counter() - started)

    def _pause_before_commit(self) -> None:
        """The fault point crash tests use: a write holds its transaction open this long before COMMIT,
        so a test can SIGKILL the server mid-batch (``RAGMEM_FAULT_PAUSE_BEFORE_COMMIT``; unset in service)."""
        if self.settings.fault_pause_before_commit:
            time.sleep(self.settings.fault_pause_before_commit)

    def _embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Embed through the data root's cache, so refreshes in other processes find the vectors."""
        embedder = self.base.embedder  # loaded only when there is something to embed
        cache = open_embedding_cache(self.settings.data_dir, embedder)
        try:
            return embed_texts(embedder, texts, cache, batch_size, show_progress=False)[0]
        finally:
            cache.close()

    def _graph_encoder(self):
        return lambda texts: self._embed(texts, 256)

    # ---- writing -----------------------------------------------------------------------------
    def _check_complete(self) -> None:
        if self.base.pending:
            raise PartialBuild(f"collection {self.name!r} is still being built ({', '.join(self.base.pending)} "
                               "pending); write again once every leg is published")

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self._check_complete()
        with self._write_lock, open(self.root / WRITE_LOCK, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if publish.current_build_dir(self.settings.data_dir, self.name) != self.build_dir:
                    raise StaleBuild(f"collection {self.name!r} was republished by another process")
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write(self, documents: list[Document], deletes: list[str]) -> WriteReport:
        """Add (or replace, by doc_id) ``documents`` and delete ``deletes`` as one atomic batch."""
        self._check_complete()  # before the embedding work, not only under the lock
        started = time.perf_counter()
        prepared = self._prepare(documents) if documents else []
        with self._exclusive():
            journal = self.journal(create=True)
            seq, missing, replaced = journal.write(prepared, deletes, self.base_doc_rows())
        self._refresh()
        report = WriteReport(self.name, self.build_dir.name, seq,
                             added=[{"doc_id": p.document.doc_id, "chunks": len(p.chunks),
                                     "replaced": p.document.doc_id in replaced} for p in prepared],
                             deleted=[d for d in deletes if d not in missing], not_found=missing)
        report.seconds = round(time.perf_counter() - started, 4)
        return report

    def _prepare(self, documents: list[Document]) -> list[PreparedDocument]:
        """Chunk, tokenize and embed exactly as the builder does, before taking the write lock."""
        analyzer = self.base.analyzer
        rows, inputs, _ = chunk_documents(documents, self.base.embedder, self.base.manifest.chunking,
                                          show_progress=False)
        vectors = self._embed(inputs, self.settings.embed_batch_size)
        title_terms = [analyzer.tokenize(doc.title) for doc in documents]
        out: list[PreparedDocument] = [PreparedDocument(doc, []) for doc in documents]
        for row, vector in zip(rows, vectors):
            out[row.doc_row].chunks.append(NewChunk(row.chunk_index, row.start_char, row.end_char, row.n_tokens,
                                                    row.text, title_terms[row.doc_row] + analyzer.tokenize(row.text),
                                                    vector))
        return out

    def compact(self) -> dict:
        """Fold the journal into a new build (a full rebuild of the current documents, reusing
        cached embeddings), publish it atomically, and start an empty journal."""
        started = time.perf_counter()
        with self._exclusive(), publish.build_lock(self.root):
            journal = self.journal()
            previous_seq = journal.seq() if journal is not None else 0
            deleted = journal.tombstones() if journal is not None else set()
            documents = [doc for doc in self.base.store.full_documents() if doc.doc_id not in deleted]
            documents += journal.queries().full_documents() if journal is not None else []
            corpus_path = self.base.manifest.corpus.path_or(self.name)
            summary = build_from_documents(self.name, documents, corpus_path, self.settings)
        log.info("compacted %s into %s (%d documents, %d chunks) in %.1fs", self.name, summary.build_dir.name,
                 summary.documents, summary.chunks, time.perf_counter() - started)
        return {"collection": self.name, "build_id": summary.build_dir.name, "previous_build_id": self.build_dir.name,
                "previous_seq": previous_seq, "documents": summary.documents, "chunks": summary.chunks,
                "seconds": round(time.perf_counter() - started, 3)}

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


def open_live(data_dir: Path, name: str, settings: Settings) -> LiveCollection:
    build_dir = publish.current_build_dir(data_dir, name)
    if build_dir is None:
        raise LookupError(f"no published collection named {name!r} under {data_dir}")
    return LiveCollection(name, build_dir, settings)

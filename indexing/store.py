"""SQLite store of documents and chunks; a chunk's row number is its row in BM25 and FAISS.

Published builds are immutable, so readers open them read-only and never take write locks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from indexing.documents import Document, SkippedDocument

DOCUMENT_COLUMNS = """
    doc_row INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL UNIQUE,
    doc_index INTEGER NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL DEFAULT '',
    n_chunks INTEGER NOT NULL"""
"""Columns of a documents table; the live change journal uses the same ones (plus its seq)."""

_SCHEMA = f"""
CREATE TABLE documents ({DOCUMENT_COLUMNS}
);
CREATE INDEX documents_doc_index ON documents(doc_index);
CREATE TABLE chunks (
    chunk_row INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc_row INTEGER NOT NULL REFERENCES documents(doc_row),
    chunk_index INTEGER NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc_row, chunk_index);
CREATE TABLE skipped (source TEXT NOT NULL, doc_index INTEGER, reason TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ChunkRow:
    """One chunk as the builder produced it."""

    chunk_row: int
    doc_row: int
    chunk_index: int
    start_char: int
    end_char: int
    n_tokens: int
    text: str

    def chunk_id(self, doc_id: str) -> str:
        return f"{doc_id}:{self.chunk_index}"


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk joined with its document, as readers need it to cite."""

    chunk_row: int
    chunk_id: str
    chunk_index: int
    start_char: int
    end_char: int
    n_tokens: int
    text: str
    doc_row: int
    doc_id: str
    doc_index: int
    title: str
    url: str
    metadata: dict


def write_store(path: Path, documents: Sequence[Document], chunk_counts: Sequence[int],
                chunks: Iterable[ChunkRow], skipped: Sequence[SkippedDocument]) -> None:
    conn = sqlite3.connect(str(path))
    try:
        conn.execute("PRAGMA journal_mode=OFF")  # the file is published atomically; a torn build is discarded
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(_SCHEMA)
        conn.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
            [(row, d.doc_id, d.doc_index, d.title, d.url, d.text, json.dumps(d.metadata, ensure_ascii=False),
              d.source, chunk_counts[row]) for row, d in enumerate(documents)],
        )
        conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            ((c.chunk_row, c.chunk_id(documents[c.doc_row].doc_id), c.doc_row, c.chunk_index, c.start_char,
              c.end_char, c.n_tokens, c.text) for c in chunks),
        )
        conn.executemany("INSERT INTO skipped VALUES (?,?,?)", [(s.source, s.doc_index, s.reason) for s in skipped])
        conn.commit()
    finally:
        conn.close()


_CHUNK_SELECT = """
SELECT c.chunk_row, c.chunk_id, c.chunk_index, c.start_char, c.end_char, c.n_tokens, c.text,
       d.doc_row, d.doc_id, d.doc_index, d.title, d.url, d.metadata
FROM chunks c JOIN documents d ON d.doc_row = c.doc_row
"""


class StoreQueries:
    """The read queries over a documents + chunks schema, on connections from ``connect``.

    Published builds and the live change journal share the schema, so both are read by this
    one set of queries (the journal's connection comes from :class:`indexing.change_log.ChangeLog`).
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect

    @staticmethod
    def _record(row: tuple) -> ChunkRecord:
        return ChunkRecord(*row[:12], metadata=json.loads(row[12] or "{}"))

    def chunks(self, rows: Sequence[int]) -> list[ChunkRecord]:
        """Records for ``rows`` in the order given (unknown rows are left out)."""
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = {r[0]: self._record(r) for r in self._connect().execute(
            f"{_CHUNK_SELECT} WHERE c.chunk_row IN ({marks})", [int(r) for r in rows])}
        return [found[int(r)] for r in rows if int(r) in found]

    def document_chunks(self, doc_row: int, first: int, last: int) -> list[ChunkRecord]:
        """Chunks ``first..last`` (inclusive chunk_index) of one document, in order."""
        return [self._record(r) for r in self._connect().execute(
            f"{_CHUNK_SELECT} WHERE c.doc_row = ? AND c.chunk_index BETWEEN ? AND ? ORDER BY c.chunk_index",
            (doc_row, first, last))]

    def document_text(self, doc_row: int) -> str:
        row = self._connect().execute("SELECT text FROM documents WHERE doc_row = ?", (doc_row,)).fetchone()
        return row[0] if row else ""

    def documents(self) -> list[dict]:
        return [
            {"doc_row": r[0], "doc_id": r[1], "doc_index": r[2], "title": r[3], "url": r[4], "n_chunks": r[5],
             "chars": r[6]}
            for r in self._connect().execute(
                "SELECT doc_row, doc_id, doc_index, title, url, n_chunks, length(text) FROM documents ORDER BY doc_row")
        ]

    def full_documents(self) -> list[Document]:
        """Every document with its text and metadata, in row order (what a rebuild starts from)."""
        return [Document(doc_index=r[1], title=r[2], text=r[4], url=r[3], metadata=json.loads(r[5] or "{}"),
                         source=r[6], doc_id=r[0])
                for r in self._connect().execute(
                    "SELECT doc_id, doc_index, title, url, text, metadata, source FROM documents ORDER BY doc_row")]


class StoreReader(StoreQueries):
    """Thread-safe read access to a published build: one read-only connection per thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(self._conn)
        self.path = path
        self._local = threading.local()
        conn = self._conn()
        self.chunk_doc_rows = np.array([r for (r,) in conn.execute("SELECT doc_row FROM chunks ORDER BY chunk_row")],
                                       dtype=np.int64)
        self.n_documents = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_doc_rows.shape[0])

    def skipped(self) -> list[SkippedDocument]:
        return [SkippedDocument(*r) for r in self._conn().execute("SELECT source, doc_index, reason FROM skipped")]

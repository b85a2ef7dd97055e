"""The durable journal of live changes to one published build: added documents and deletions.

A published build is immutable; documents added or deleted while it serves are recorded here,
in one SQLite file per base build (``<collection>/live/<build-id>.sqlite``), in WAL mode with
``synchronous=FULL``. One write batch is one transaction, so a crash (even SIGKILL) in the
middle of a batch leaves either none or all of it, and a commit that returned is on disk.
Compaction folds the journal into a new build and starts an empty journal for it.

Chunk rows continue the base build's numbering (base rows ``0..n-1``, then the journal's), and
are never reused before compaction, so every index keeps one row space.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexing.documents import Document
from indexing.store import DOCUMENT_COLUMNS, StoreQueries


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS documents ({DOCUMENT_COLUMNS},
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_row INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL,
    doc_row INTEGER NOT NULL,
    chunk_index INTEGER NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    text TEXT NOT NULL,
    terms TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_row, chunk_index);
CREATE TABLE IF NOT EXISTS tombstones (doc_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


@dataclass
class NewChunk:
    """A chunk of an added document, fully prepared before the journal transaction starts."""

    chunk_index: int
    start_char: int
    end_char: int
    n_tokens: int
    text: str
    terms: list[str]
    vector: np.ndarray


@dataclass
class PreparedDocument:
    document: Document
    chunks: list[NewChunk]


@dataclass
class JournalState:
    """Everything a reader needs from the journal, read in one transaction."""

    seq: int
    next_doc_row: int
    next_chunk_row: int
    tombstones: set[str]
    """doc_ids of base documents that were deleted or replaced."""
    doc_rows: dict[str, int]
    """doc_id -> doc_row of the live (journal) documents."""
    chunk_rows: np.ndarray
    chunk_doc_rows: np.ndarray
    chunk_terms: list[list[str]]
    chunk_vectors: np.ndarray
    chunk_texts: list[str]
    chunk_titles: list[str]


class ChangeLog:
    """One build's journal. Writers must hold the collection's write lock (see :mod:`indexing.live`)."""

    def __init__(self, path: Path, base_documents: int, base_chunks: int, dimension: int,
                 before_commit: Callable[[], None] = lambda: None) -> None:
        self.path = path
        self.dimension = dimension
        self._before_commit = before_commit
        """Fault point inside every write transaction, just before COMMIT (crash tests pause there)."""
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        with conn:
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                             [("seq", 0), ("next_doc_row", base_documents), ("next_chunk_row", base_chunks),
                              ("next_doc_index", base_documents)])

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def seq(self) -> int:
        """The journal's version; changes with every committed write, in any process."""
        return int(self._conn().execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])

    def read(self) -> JournalState:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            tombstones = self.tombstones()
            doc_rows = dict(conn.execute("SELECT doc_id, doc_row FROM documents"))
            rows = conn.execute(
                "SELECT c.chunk_row, c.doc_row, c.terms, c.vector, c.text, d.title FROM chunks c "
                "JOIN documents d ON d.doc_row = c.doc_row ORDER BY c.chunk_row").fetchall()
        finally:
            conn.execute("COMMIT")
        vectors = (np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(len(rows), self.dimension)
                   if rows else np.zeros((0, self.dimension), np.float32))
        return JournalState(
            seq=int(meta["seq"]), next_doc_row=int(meta["next_doc_row"]), next_chunk_row=int(meta["next_chunk_row"]),
            tombstones=tombstones, doc_rows=doc_rows,
            chunk_rows=np.array([r[0] for r in rows], dtype=np.int64),
            chunk_doc_rows=np.array([r[1] for r in rows], dtype=np.int64),
            chunk_terms=[json.loads(r[2]) for r in rows], chunk_vectors=vectors,
            chunk_texts=[r[4] for r in rows], chunk_titles=[r[5] for r in rows])

    def write(self, adds: list[PreparedDocument], deletes: list[str],
              base_doc_ids: Container[str]) -> tuple[int, list[str], set[str]]:
        """Apply one batch in one transaction; returns (new seq, doc_ids not found to delete, doc_ids
        of added documents that replaced an existing one).

        An added doc_id that exists (in the base or the journal) replaces it. ``base_doc_ids`` holds
        the base build's doc_ids that are still alive.
        """
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            seq = int(meta["seq"]) + 1
            missing = [doc_id for doc_id in deletes if not self._remove(conn, doc_id, seq, base_doc_ids)]
            next_doc_row, next_chunk_row = int(meta["next_doc_row"]), int(meta["next_chunk_row"])
            next_doc_index = int(meta["next_doc_index"])
            replaced: set[str] = set()
            for prepared in adds:
                doc = prepared.document
                if self._remove(conn, doc.doc_id, seq, base_doc_ids):
                    replaced.add(doc.doc_id)
                conn.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?)",
                             (next_doc_row, doc.doc_id, next_doc_index, doc.title, doc.url, doc.text,
                              json.dumps(doc.metadata, ensure_ascii=False), doc.source, len(prepared.chunks), seq))
                conn.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)", [
                    (next_chunk_row + i, f"{doc.doc_id}:{c.chunk_index}", next_doc_row, c.chunk_index, c.start_char,
                     c.end_char, c.n_tokens, c.text, json.dumps(c.terms, ensure_ascii=False),
                     np.ascontiguousarray(c.vector, dtype=np.float32).tobytes())
                    for i, c in enumerate(prepared.chunks)])
                next_doc_row += 1
                next_doc_index += 1
                next_chunk_row += len(prepared.chunks)
            conn.executemany("UPDATE meta SET value = ? WHERE key = ?",
                             [(seq, "seq"), (next_doc_row, "next_doc_row"), (next_chunk_row, "next_chunk_row"),
                              (next_doc_index, "next_doc_index")])
            self._before_commit()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return seq, missing, replaced

    @staticmethod
    def _remove(conn: sqlite3.Connection, doc_id: str, seq: int, base_doc_ids: Container[str]) -> bool:
        row = conn.execute("SELECT doc_row FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is not None:
            conn.execute("DELETE FROM chunks WHERE doc_row = ?", row)
            conn.execute("DELETE FROM documents WHERE doc_row = ?", row)
            return True
        if doc_id in base_doc_ids and conn.execute("SELECT 1 FROM tombstones WHERE doc_id = ?",
                                                   (doc_id,)).fetchone() is None:
            conn.execute("INSERT INTO tombstones VALUES (?, ?)", (doc_id, seq))
            return True
        return False

    def tombstones(self) -> set[str]:
        """doc_ids of base documents deleted or replaced so far."""
        return {d for (d,) in self._conn().execute("SELECT doc_id FROM tombstones")}

    def queries(self) -> StoreQueries:
        """The store's read queries on this journal (same schema), one connection per thread."""
        return StoreQueries(self._conn)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

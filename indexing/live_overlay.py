"""Read views of a base build plus its change journal, with the interfaces the query path uses.

Rows of deleted documents stay in the base indexes until compaction but are masked out of
every leg (``alive``); journal chunks are scored next to the base ones:

* BM25: journal chunks are scored with the same formula and the base build's statistics (IDF
  over the base chunks, mean chunk length), so a new chunk ranks like an equal base chunk.
  Compaction rebuilds BM25 from scratch, after which scores equal a fresh build exactly.
* Dense: base rows through FAISS with the deleted rows excluded by an id selector (HNSW included:
  it cannot remove vectors, but it can skip them), journal rows by exact cosine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

import faiss
import numpy as np
import scipy.sparse as sp

from indexing.change_log import JournalState
from indexing.lexical_index import LexicalIndex, LexicalResult, search_scores
from indexing.store import ChunkRecord, StoreQueries, StoreReader
from indexing.vector_index import VectorIndex


def alive_mask(base_store: StoreReader, base_deleted_docs: np.ndarray, journal: JournalState) -> np.ndarray:
    """Boolean over all rows (base then journal): False for deleted documents and unused rows."""
    n_rows = max(journal.next_chunk_row, base_store.n_chunks)
    alive = np.zeros(n_rows, dtype=bool)
    alive[: base_store.n_chunks] = ~np.isin(base_store.chunk_doc_rows, base_deleted_docs)
    alive[journal.chunk_rows] = True
    return alive


class DeltaBM25:
    """BM25 of the journal's chunks with the base build's IDF and mean chunk length."""

    def __init__(self, base: LexicalIndex, rows: np.ndarray, terms: Sequence[list[str]]) -> None:
        self.rows = rows
        retriever = base.retriever
        k1, b = float(retriever.k1), float(retriever.b)
        lengths = np.array([len(t) for t in terms], dtype=np.float64)
        avg = base.avg_doc_len or (float(lengths.mean()) if lengths.size else 1.0)
        self.columns: dict[str, int] = {}
        data_rows, data_cols, tfs = [], [], []
        for i, chunk_terms in enumerate(terms):
            counts: dict[int, int] = {}
            for term in chunk_terms:
                column = self.columns.setdefault(term, len(self.columns))
                counts[column] = counts.get(column, 0) + 1
            data_rows.extend([i] * len(counts))
            data_cols.extend(counts)
            tfs.extend(counts.values())
        tf = np.array(tfs, dtype=np.float64)
        norm = k1 * ((1 - b) + b * lengths[np.array(data_rows, dtype=np.int64)] / avg) if tfs else tf
        tfc = tf / (norm + tf) if tfs else tf
        self.matrix = sp.csc_matrix((tfc, (data_rows, data_cols)), shape=(len(terms), len(self.columns)))
        # IDF as the base build computes it (Lucene: ln(1 + (N - df + 0.5) / (df + 0.5))), with the
        # journal's chunks counted in; terms new to the collection count their journal chunks only.
        vocab = retriever.vocab_dict
        base_df = np.zeros(len(self.columns), dtype=np.float64)
        known = [(c, vocab[t]) for t, c in self.columns.items() if t in vocab]
        if known:
            cols, ids = map(np.array, zip(*known))
            base_df[cols] = base.document_frequencies(ids)
        journal_df = np.diff(self.matrix.indptr).astype(np.float64)
        df = base_df + journal_df
        n = base.n_docs + len(terms)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5))

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        columns = [self.columns[t] for t in query_terms if t in self.columns]
        if not columns:
            return np.zeros(len(self.rows), dtype=np.float32)
        weights = np.zeros(len(self.columns))
        np.add.at(weights, columns, self.idf[columns])  # a repeated query term counts again, as in the base
        return (self.matrix @ weights).astype(np.float32)


@dataclass
class LiveLexical:
    base: LexicalIndex
    delta: DeltaBM25
    alive: np.ndarray

    @property
    def n_docs(self) -> int:
        return int(self.alive.shape[0])

    def describe(self) -> dict:
        return self.base.describe()

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        scores = np.zeros(self.alive.shape[0], dtype=np.float32)
        scores[: self.base.n_docs] = self.base.scores(query_terms)
        scores[self.delta.rows] = self.delta.scores(query_terms)
        scores[~self.alive] = 0.0
        return scores

    def search(self, query_terms: Sequence[str], k: int, allowed: np.ndarray | None = None,
               extra_rows: np.ndarray | None = None) -> LexicalResult:
        return search_scores(self.scores(query_terms), k, allowed, extra_rows)


class LiveDense:
    """FAISS over the base rows (deleted ones skipped) plus exact search over the journal's vectors."""

    def __init__(self, base: VectorIndex, alive: np.ndarray, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.base = base
        self.alive = alive
        self.rows = rows
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.info = dict(base.info, journal_vectors=int(rows.size))
        dead = np.flatnonzero(~alive[: base.size]).astype(np.int64)
        self._dead = faiss.IDSelectorBatch(dead) if dead.size else None
        self._exclude = faiss.IDSelectorNot(self._dead) if dead.size else None
        self._slot = np.full(alive.shape[0], -1, dtype=np.int64)
        self._slot[rows] = np.arange(rows.size)

    @property
    def size(self) -> int:
        return int(self.alive.shape[0])

    def top(self, qvec: np.ndarray, k: int, mask: np.ndarray | None = None,
            exclude: "faiss.IDSelector | None" = None) -> tuple[np.ndarray, np.ndarray]:
        allowed = self.alive if mask is None else (mask & self.alive)
        if mask is None:
            rows, scores = self.base.top(qvec, k, exclude=self._exclude)
        else:
            rows, scores = self.base.top(qvec, k, mask=allowed[: self.base.size])
        if self.rows.size:
            keep = allowed[self.rows]
            cos = self.vectors[keep] @ np.asarray(qvec, dtype=np.float32).reshape(-1)
            rows = np.concatenate([rows, self.rows[keep]])
            scores = np.concatenate([scores, cos.astype(np.float32)])
            order = np.lexsort((rows, -scores))[:k]
            rows, scores = rows[order], scores[order]
        return rows, scores

    def reconstruct(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((rows.size, self.vectors.shape[1] if self.vectors.ndim == 2 else self.base.index.d),
                       dtype=np.float32)
        in_base = rows < self.base.size
        if in_base.any():
            out[in_base] = self.base.reconstruct(rows[in_base])
        if (~in_base).any():
            out[~in_base] = self.vectors[self._slot[rows[~in_base]]]
        return out


class LiveStore:
    """The base store plus the journal's documents; deleted documents are hidden."""

    def __init__(self, base: StoreReader, journal_queries: StoreQueries, journal: JournalState,
                 deleted_docs: np.ndarray, alive: np.ndarray) -> None:
        self.base = base
        self._journal = journal_queries
        self._deleted_docs = set(int(d) for d in deleted_docs)
        self.chunk_doc_rows = np.full(alive.shape[0], -1, dtype=np.int64)
        self.chunk_doc_rows[: base.n_chunks] = base.chunk_doc_rows
        self.chunk_doc_rows[journal.chunk_rows] = journal.chunk_doc_rows
        self.n_documents = base.n_documents - len(self._deleted_docs) + len(journal.doc_rows)
        self._alive = alive
        self.path = base.path

    @property
    def n_chunks(self) -> int:
        return int(self._alive.sum())

    def _source(self, doc_row: int) -> StoreQueries:
        return self.base if doc_row < self.base.n_documents else self._journal

    def chunks(self, rows: Sequence[int]) -> list[ChunkRecord]:
        rows = [int(r) for r in rows if 0 <= int(r) < self._alive.shape[0] and self._alive[int(r)]]
        found = {c.chunk_row: c for c in self.base.chunks([r for r in rows if r < self.base.n_chunks])}
        found.update((c.chunk_row, c) for c in self._journal.chunks([r for r in rows if r >= self.base.n_chunks]))
        return [found[r] for r in rows if r in found]

    def document_chunks(self, doc_row: int, first: int, last: int) -> list[ChunkRecord]:
        if doc_row in self._deleted_docs:
            return []
        return self._source(doc_row).document_chunks(doc_row, first, last)

    def document_text(self, doc_row: int) -> str:
        if doc_row in self._deleted_docs:
            return ""
        return self._source(doc_row).document_text(doc_row)

    def documents(self) -> list[dict]:
        return [d for d in self.base.documents() if d["doc_row"] not in self._deleted_docs] + self._journal.documents()

    def skipped(self):
        return self.base.skipped()

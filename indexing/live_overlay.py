"""Read views of a base build plus its change journal, implementing :mod:`indexing.read_interfaces`.

Rows of deleted documents stay in the base indexes until compaction but are masked out of
every leg (``alive``); journal chunks are scored next to the base ones:

* BM25: journal chunks are scored with the base build's formula (``bm25_method`` with its k1, b,
  delta: :mod:`indexing.bm25_variants`), its mean chunk length, and its document frequencies
  extended by the journal's chunks, so a new chunk ranks like an equal base chunk. Compaction
  rebuilds BM25 from scratch, after which scores equal a fresh build exactly.
* Dense: base rows through FAISS with the deleted rows excluded by an id selector (HNSW included:
  it cannot remove vectors, but it can skip them), journal rows by exact cosine.

The overlays use only the read interfaces of the views they wrap, except :class:`DeltaBM25`,
which extends the published build's BM25 statistics and so needs its :class:`LexicalIndex`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import faiss
import numpy as np
import scipy.sparse as sp

from indexing.bm25_variants import Bm25Formula
from indexing.change_log import JournalState
from indexing.documents import SkippedDocument
from indexing.lexical_index import LexicalIndex, LexicalResult, search_scores
from indexing.read_interfaces import ChunkStore, DenseLeg, LexicalLeg
from indexing.store import ChunkRecord, StoreQueries


def alive_mask(base_store: ChunkStore, base_deleted_docs: np.ndarray, journal: JournalState) -> np.ndarray:
    """Boolean over all rows (base then journal): False for deleted documents and unused rows."""
    n_rows = max(journal.next_chunk_row, base_store.n_chunks)
    alive = np.zeros(n_rows, dtype=bool)
    alive[: base_store.n_chunks] = ~np.isin(base_store.chunk_doc_rows, base_deleted_docs)
    alive[journal.chunk_rows] = True
    return alive


def _term_counts(terms: Sequence[list[str]]) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
    """(column of each distinct term, then chunk, column and count of every (chunk, term) pair)."""
    columns: dict[str, int] = {}
    data_rows, data_cols, tfs = [], [], []
    for i, chunk_terms in enumerate(terms):
        counts: dict[int, int] = {}
        for term in chunk_terms:
            column = columns.setdefault(term, len(columns))
            counts[column] = counts.get(column, 0) + 1
        data_rows.extend([i] * len(counts))
        data_cols.extend(counts)
        tfs.extend(counts.values())
    return (columns, np.array(data_rows, dtype=np.int64), np.array(data_cols, dtype=np.int64),
            np.array(tfs, dtype=np.float64))


class DeltaBM25:
    """BM25 of the journal's chunks: the base build's formula (``bm25_method``, k1, b, delta), its
    mean chunk length, and its document frequencies with the journal's chunks counted in."""

    def __init__(self, base: LexicalIndex, rows: np.ndarray, terms: Sequence[list[str]]) -> None:
        self.rows = rows
        self.formula = Bm25Formula.of(base.retriever)
        self._vocab, self._base = base.retriever.vocab_dict, base
        lengths = np.array([len(t) for t in terms], dtype=np.float64)
        avg = base.avg_doc_len or (float(lengths.mean()) if lengths.size else 1.0)
        self.columns, data_rows, data_cols, tf = _term_counts(terms)
        # BM25L / BM25+ score a term a chunk lacks too (absent > 0). As bm25s stores its matrix, each
        # present term holds its score minus that, and ``scores`` adds the query's absent mass back.
        self.absent = self.formula.absent_tf(avg)
        tfc = self.formula.tf(tf, lengths[data_rows], avg)
        if self.absent:
            tfc = tfc - self.absent
        self.matrix = sp.csc_matrix((tfc, (data_rows, data_cols)), shape=(len(terms), len(self.columns)))
        # Terms new to the collection count their journal chunks only.
        base_df = np.zeros(len(self.columns), dtype=np.float64)
        known = [(c, self._vocab[t]) for t, c in self.columns.items() if t in self._vocab]
        if known:
            cols, ids = map(np.array, zip(*known))
            base_df[cols] = base.document_frequencies(ids)
        journal_df = np.diff(self.matrix.indptr).astype(np.float64)
        self.n = base.n_docs + len(terms)
        self.idf = self.formula.idf(base_df + journal_df, self.n)

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        columns = [self.columns[t] for t in query_terms if t in self.columns]
        if not columns and not self.absent:
            return np.zeros(len(self.rows), dtype=np.float32)
        weights = np.zeros(len(self.columns))
        np.add.at(weights, columns, self.idf[columns])  # a repeated query term counts again, as in the base
        scores = self.matrix @ weights
        if self.absent:
            scores = scores + self.absent * self._idf_mass(query_terms)
        return scores.astype(np.float32)

    def _idf_mass(self, query_terms: Sequence[str]) -> float:
        """Summed IDF of the query's terms known to the collection (base or journal), repeats included."""
        in_journal = [self.columns[t] for t in query_terms if t in self.columns]
        base_only = np.array([self._vocab[t] for t in query_terms if t not in self.columns and t in self._vocab],
                             dtype=np.int64)
        base_idf = self.formula.idf(self._base.document_frequencies(base_only), self.n) if base_only.size else []
        return float(np.sum(self.idf[in_journal]) + np.sum(base_idf))


@dataclass
class LiveLexical:
    """The base build's BM25 over its rows, the journal's over theirs, deleted rows at 0."""

    base: LexicalLeg
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

    def term_coverage(self, query_terms: Sequence[str]) -> float:
        """Base vocabulary or terms the journal added (a deleted chunk's terms may still count)."""
        distinct = set(query_terms)
        if not distinct:
            return 0.0
        known = sum(1 for t in distinct if t in self.delta.columns or self.base.term_coverage([t]) > 0.0)
        return known / len(distinct)

    def search(self, query_terms: Sequence[str], k: int, allowed: np.ndarray | None = None,
               extra_rows: np.ndarray | None = None) -> LexicalResult:
        return search_scores(self.scores(query_terms), k, allowed, extra_rows)


class LiveDense:
    """FAISS over the base rows (deleted ones skipped) plus exact search over the journal's vectors."""

    def __init__(self, base: DenseLeg, alive: np.ndarray, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.base = base
        self.alive = alive
        self.rows = rows
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # the base's own reconstruct tells the dimension when the journal has no (2-D) vectors
        self._dimension = (self.vectors.shape[1] if self.vectors.ndim == 2
                           else base.reconstruct(np.zeros(0, np.int64)).shape[1])
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
        """As :meth:`VectorIndex.top`, over the live rows: ``mask`` restricts the search, and without
        one ``exclude`` (a selector accepting the rows to search) restricts it."""
        if mask is None:
            rows, scores = self.base.top(qvec, k, exclude=self._base_selector(exclude))
            keep = self.alive[self.rows] & self._accepted(exclude)
        else:
            allowed = mask & self.alive
            rows, scores = self.base.top(qvec, k, mask=allowed[: self.base.size])
            keep = allowed[self.rows]
        if self.rows.size:
            cos = self.vectors[keep] @ np.asarray(qvec, dtype=np.float32).reshape(-1)
            rows = np.concatenate([rows, self.rows[keep]])
            scores = np.concatenate([scores, cos.astype(np.float32)])
            order = np.lexsort((rows, -scores))[:k]
            rows, scores = rows[order], scores[order]
        return rows, scores

    def _base_selector(self, exclude: "faiss.IDSelector | None") -> "faiss.IDSelector | None":
        """The base rows to search: the live ones, and of those the ones ``exclude`` accepts."""
        if exclude is None or self._exclude is None:
            return self._exclude if exclude is None else exclude
        return faiss.IDSelectorAnd(self._exclude, exclude)

    def _accepted(self, exclude: "faiss.IDSelector | None") -> np.ndarray | bool:
        """Which journal rows ``exclude`` accepts (all of them without one)."""
        if exclude is None:
            return True
        return np.fromiter((exclude.is_member(int(r)) for r in self.rows), dtype=bool, count=self.rows.size)

    def reconstruct(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((rows.size, self._dimension), dtype=np.float32)
        in_base = rows < self.base.size
        if in_base.any():
            out[in_base] = self.base.reconstruct(rows[in_base])
        if (~in_base).any():
            out[~in_base] = self.vectors[self._slot[rows[~in_base]]]
        return out


class LiveStore:
    """The base store plus the journal's documents; deleted documents are hidden."""

    def __init__(self, base: ChunkStore, journal_queries: StoreQueries, journal: JournalState,
                 deleted_docs: np.ndarray, alive: np.ndarray) -> None:
        self.base = base
        self._journal = journal_queries
        self._deleted_docs = set(int(d) for d in deleted_docs)
        self.chunk_doc_rows = np.full(alive.shape[0], -1, dtype=np.int64)
        self.chunk_doc_rows[: base.n_chunks] = base.chunk_doc_rows
        self.chunk_doc_rows[journal.chunk_rows] = journal.chunk_doc_rows
        self.n_documents = base.n_documents - len(self._deleted_docs) + len(journal.doc_rows)
        self._alive = alive

    @property
    def n_chunks(self) -> int:
        return int(self._alive.sum())

    def _source(self, doc_row: int) -> ChunkStore | StoreQueries:
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

    def skipped(self) -> list[SkippedDocument]:
        return self.base.skipped()

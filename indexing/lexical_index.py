"""BM25 over analyzer terms, via bm25s (sparse, precomputed scores), persisted beside the store."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import bm25s
import numpy as np

from indexing.term_ids import TermIds

log = logging.getLogger("ragmem.indexing.lexical_index")
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG


STATS_FILE = "ragmem_stats.json"
VECTORISED_METHODS = ("lucene",)
"""BM25 variants whose index :func:`_vectorised_index` builds in numpy; others go through bm25s."""
_PLACEHOLDER_TERM = "\x00"  # no analyzer term contains NUL (cleaning strips control characters)


@dataclass(frozen=True)
class CorpusStats:
    """What BM25's idf and length normalisation read from the whole collection.

    A sharded build (:mod:`indexing.sharded_build`) computes one per shard, merges them, and gives
    the merged one to every shard's index, so a chunk scores the same in its shard as in the
    unsharded index: idf and the average length are properties of the collection, not of a shard.
    """

    n_docs: int
    total_terms: int
    document_frequency: dict[str, int]

    @classmethod
    def of(cls, corpus_terms: Sequence[list[str]]) -> "CorpusStats":
        df: dict[str, int] = {}
        for terms in corpus_terms:
            for term in set(terms):
                df[term] = df.get(term, 0) + 1
        return cls(len(corpus_terms), int(sum(map(len, corpus_terms))), df)

    @classmethod
    def merged(cls, parts: Sequence["CorpusStats"]) -> "CorpusStats":
        df: dict[str, int] = {}
        for part in parts:
            for term, count in part.document_frequency.items():
                df[term] = df.get(term, 0) + count
        return cls(sum(p.n_docs for p in parts), sum(p.total_terms for p in parts), df)

    @property
    def avg_doc_len(self) -> float | None:
        return self.total_terms / self.n_docs if self.n_docs else None


@dataclass
class LexicalIndex:
    retriever: bm25s.BM25
    n_docs: int
    avg_doc_len: float | None = None
    """Mean terms per chunk; live updates score new chunks against it (None: older builds)."""

    @classmethod
    def build(cls, corpus_terms: Sequence[list[str]] | TermIds, k1: float, b: float, method: str,
              stats: CorpusStats | None = None) -> "LexicalIndex":
        """``corpus_terms``: each chunk's terms, as lists or as :class:`TermIds` (the lexical pass's form).
        ``stats``: the whole collection's (a shard of a sharded build); None: these chunks' own."""
        if stats is not None and method not in VECTORISED_METHODS:
            raise ValueError(f"a sharded build needs a BM25 variant scored with collection-wide statistics "
                             f"({', '.join(VECTORISED_METHODS)}); got {method!r}")
        retriever = bm25s.BM25(k1=k1, b=b, method=method)
        # bm25s cannot index zero documents, so an empty collection (everything deleted, then
        # compacted) indexes one placeholder row that ``n_docs = 0`` keeps out of every result.
        n_docs = len(corpus_terms)
        if method in VECTORISED_METHODS:
            table = corpus_terms if isinstance(corpus_terms, TermIds) else TermIds.of(list(corpus_terms))
            _vectorised_index(retriever, table if n_docs else TermIds.of([[_PLACEHOLDER_TERM]]), stats)
            lengths = table.lengths
        else:
            terms = corpus_terms.term_lists() if isinstance(corpus_terms, TermIds) else list(corpus_terms)
            retriever.index(terms or [[_PLACEHOLDER_TERM]], show_progress=False)
            lengths = np.fromiter(map(len, terms), dtype=np.int64, count=len(terms))
        if stats is not None:
            return cls(retriever=retriever, n_docs=n_docs, avg_doc_len=stats.avg_doc_len)
        return cls(retriever=retriever, n_docs=n_docs, avg_doc_len=float(lengths.mean()) if n_docs else None)

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)
        (Path(directory) / STATS_FILE).write_text(json.dumps({"avg_doc_len": self.avg_doc_len,
                                                              "n_docs": self.n_docs}))

    @classmethod
    def load(cls, directory: Path, mmap: bool = False) -> "LexicalIndex":
        retriever = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False)
        stats_file = Path(directory) / STATS_FILE
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        n_docs = stats.get("n_docs", int(retriever.scores["num_docs"]))
        return cls(retriever=retriever, n_docs=n_docs, avg_doc_len=stats.get("avg_doc_len"))

    def document_frequencies(self, term_ids: np.ndarray) -> np.ndarray:
        """Chunks containing each term (its postings length)."""
        indptr = self.retriever.scores["indptr"]
        return (indptr[term_ids + 1] - indptr[term_ids]).astype(np.int64)

    def describe(self) -> dict:
        return {"k1": self.retriever.k1, "b": self.retriever.b, "method": self.retriever.method,
                "vocabulary": len(self.retriever.vocab_dict)}

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk row for the query (zeros when no term is in the vocabulary).

        Same sums as ``bm25s.BM25.get_scores`` (a repeated query term counts again), but one
        ``np.bincount`` over the concatenated postings instead of bm25s' ``np.add.at`` per term
        (``np.add.at`` is unbuffered and slow; this runs on every query over every posting).
        """
        vocab = self.retriever.vocab_dict
        ids = np.fromiter((vocab[term] for term in query_terms if term in vocab), dtype=np.int64)
        if ids.size == 0:
            return np.zeros(self.n_docs, dtype=np.float32)
        matrix = self.retriever.scores
        indptr, indices, data = matrix["indptr"], matrix["indices"], matrix["data"]
        spans = [slice(int(indptr[i]), int(indptr[i + 1])) for i in ids]
        rows = np.concatenate([indices[span] for span in spans])
        weights = np.concatenate([data[span] for span in spans])
        scores = np.bincount(rows, weights=weights, minlength=self.n_docs).astype(np.float32)[: self.n_docs]
        nonoccurrence = getattr(self.retriever, "nonoccurrence_array", None)
        if nonoccurrence is not None:  # BM25L / BM25+ give absent terms a score too
            scores += np.float32(nonoccurrence[ids].sum())
        return scores

    def term_coverage(self, query_terms: Sequence[str]) -> float:
        distinct = set(query_terms)
        if not distinct:
            return 0.0
        vocab = self.retriever.vocab_dict
        return sum(term in vocab for term in distinct) / len(distinct)

    def top_k(self, query_terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the k best-scoring chunks with a positive score, best first."""
        result = self.search(query_terms, k)
        return result.rows, result.scores

    def search(self, query_terms: Sequence[str], k: int, allowed: np.ndarray | None = None,
               extra_rows: np.ndarray | None = None) -> "LexicalResult":
        """Top-k BM25 (ties by row) plus the scores of ``extra_rows`` (e.g. the dense leg's candidates).

        ``allowed`` is a boolean mask over rows (filters); rows outside it score 0.
        """
        return search_scores(self.scores(query_terms), k, allowed, extra_rows)


@dataclass
class LexicalResult:
    rows: np.ndarray
    """Top-k chunk rows with a positive score, best first (ties: lower row first)."""
    scores: np.ndarray
    extra_scores: np.ndarray
    """Exact scores of the requested extra rows, in their order."""


def search_scores(scores: np.ndarray, k: int, allowed: np.ndarray | None = None,
                  extra_rows: np.ndarray | None = None) -> LexicalResult:
    """Top-k of a full score vector (rows outside ``allowed`` score 0) plus the scores of ``extra_rows``."""
    extra_rows = np.zeros(0, np.int64) if extra_rows is None else np.asarray(extra_rows, dtype=np.int64)
    if allowed is not None:
        scores = np.where(allowed, scores, np.float32(0.0))
    rows = top_rows(scores, k)
    return LexicalResult(rows, scores[rows], scores[extra_rows])


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best positive scores, best first (ties by position)."""
    if k <= 0:
        return np.zeros(0, np.int64)
    positive = np.flatnonzero(scores > 0)
    if positive.size > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))].astype(np.int64)


def _vectorised_index(retriever: bm25s.BM25, table: TermIds, stats: CorpusStats | None = None) -> None:
    """``retriever.index(term lists)`` for the Lucene variant, computed with whole-array numpy.

    Same matrix as bm25s builds (CSC over the vocabulary, each term's chunk rows ascending, float32
    ``idf * tf / (tf + k1 * (1 - b + b * len / avg_len))``, Lucene idf ``log(1 + (N - df + 0.5) /
    (df + 0.5))``) and the same attributes, so searching, saving and loading are bm25s' own. bm25s
    walks every chunk's terms in Python several times (vocabulary, ids, document frequencies,
    per-chunk counts): on 134,545 chunks that was 340 s of a 523 s first answer
    (docs/BENCHMARKS.md, bench-first-answer). ``tests/test_lexical_index.py`` checks the two agree.

    With ``stats`` (a shard), idf, N and the average length are the collection's, so every
    posting weighs what it weighs in the unsharded index (``tests/test_sharding.py``).
    """
    lengths = table.lengths
    vocab: dict[str, int] = {term: i for i, term in enumerate(table.vocab)}  # first appearance, as bm25s numbers
    ids = table.ids.astype(np.int64)
    n_docs, n_vocab = len(table), len(vocab)
    docs = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    pairs, tf = np.unique(ids * n_docs + docs, return_counts=True)  # sorted: term-major, rows ascending
    del ids, docs
    term, doc = np.divmod(pairs, n_docs)
    df = np.bincount(term, minlength=n_vocab)
    if stats is None:
        idf_n, idf_df, avg_len = n_docs, df, lengths.mean()
    else:
        known = stats.document_frequency
        idf_n, avg_len = stats.n_docs, stats.avg_doc_len
        idf_df = np.fromiter((known[t] for t in vocab), dtype=np.int64, count=n_vocab)
    idf = np.log(1.0 + (idf_n - idf_df + 0.5) / (idf_df + 0.5)).astype(retriever.dtype)
    length_norm = retriever.k1 * ((1.0 - retriever.b) + retriever.b * lengths / avg_len)
    data = (idf[term].astype(np.float64) * (tf / (length_norm[doc] + tf))).astype(retriever.dtype)
    vocab.setdefault("", n_vocab)  # the empty token bm25s adds (no postings unless a chunk had one)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1 : n_vocab + 1])
    indptr[n_vocab + 1 :] = indptr[n_vocab]
    retriever.scores = {"data": data, "indices": doc.astype(retriever.int_dtype),
                        "indptr": indptr.astype(retriever.int_dtype if indptr[-1] < 2**31 else np.int64),
                        "num_docs": n_docs}
    retriever.vocab_dict = vocab
    retriever.nonoccurrence_array = None
    retriever.unique_token_ids_set = set(vocab.values())

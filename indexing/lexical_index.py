"""BM25 over analyzer terms, via bm25s (sparse, precomputed scores), persisted beside the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import bm25s
import numpy as np

log = logging.getLogger("ragmem.indexing.lexical_index")
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG


@dataclass
class LexicalIndex:
    retriever: bm25s.BM25
    n_docs: int

    @classmethod
    def build(cls, corpus_terms: Sequence[list[str]], k1: float, b: float, method: str) -> "LexicalIndex":
        retriever = bm25s.BM25(k1=k1, b=b, method=method)
        # bm25s needs at least one term per document to keep row ids aligned; its empty token handles that.
        retriever.index(list(corpus_terms), show_progress=False)
        return cls(retriever=retriever, n_docs=len(corpus_terms))

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path, mmap: bool = False) -> "LexicalIndex":
        retriever = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False)
        return cls(retriever=retriever, n_docs=int(retriever.scores["num_docs"]))

    def describe(self) -> dict:
        return {"k1": self.retriever.k1, "b": self.retriever.b, "method": self.retriever.method,
                "vocabulary": len(self.retriever.vocab_dict)}

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk row for the query (zeros when no term is in the vocabulary)."""
        vocab = self.retriever.vocab_dict
        known = [term for term in query_terms if term in vocab]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)

    def top_k(self, query_terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the k best-scoring chunks with a positive score, best first."""
        scores = self.scores(query_terms)
        k = min(k, scores.shape[0])
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows = np.argpartition(-scores, k - 1)[:k]
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        keep = scores[rows] > 0
        return rows[keep].astype(np.int64), scores[rows][keep]

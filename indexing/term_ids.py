"""Analysed chunks as one flat array of term ids over a vocabulary: the form BM25 indexing reads.

Why not lists of strings: the lexical tier of a large collection is analysed in worker processes
(:mod:`indexing.lexical_pass`), and 134,545 chunks hold ~50 M terms; pickled as strings they
would cost more to send back than to compute. As ids they are one int32 array per worker and a
vocabulary of a few hundred thousand terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np


@dataclass
class TermIds:
    vocab: list[str]
    """Term of each id, numbered in order of first appearance (as bm25s numbers them)."""
    ids: np.ndarray
    """int32, every chunk's terms one after the other, in chunk order."""
    lengths: np.ndarray
    """int64, terms per chunk."""

    @classmethod
    def of(cls, corpus_terms: Sequence[list[str]]) -> "TermIds":
        # dict.fromkeys and map run in C, where a per-term setdefault in a generator was most of
        # an index build's time.
        lengths = np.fromiter(map(len, corpus_terms), dtype=np.int64, count=len(corpus_terms))
        index = {term: i for i, term in enumerate(dict.fromkeys(chain.from_iterable(corpus_terms)))}
        ids = np.fromiter(map(index.__getitem__, chain.from_iterable(corpus_terms)), dtype=np.int32,
                          count=int(lengths.sum()))
        return cls(list(index), ids, lengths)

    @classmethod
    def concatenated(cls, parts: Sequence["TermIds"]) -> "TermIds":
        """The parts' chunks one after the other; ids renumbered in order of first appearance, so
        the result equals ``TermIds.of`` over all chunks at once."""
        index: dict[str, int] = {}
        ids = []
        for part in parts:
            remap = np.fromiter((index.setdefault(term, len(index)) for term in part.vocab), dtype=np.int32,
                                count=len(part.vocab))
            ids.append(remap[part.ids] if part.ids.size else part.ids)
        return cls(list(index), np.concatenate(ids) if ids else np.zeros(0, np.int32),
                   np.concatenate([p.lengths for p in parts]) if parts else np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.lengths)

    def term_lists(self) -> list[list[str]]:
        """Each chunk's terms as strings (for the bm25s variants indexed by bm25s itself)."""
        vocab = np.array(self.vocab, dtype=object)
        bounds = np.cumsum(self.lengths)[:-1]
        return [list(chunk) for chunk in np.split(vocab[self.ids], bounds)] if len(self) else []

"""The agents' diversity rules: which of the ranked candidates a search returns."""

from __future__ import annotations

from collections import Counter

import numpy as np

from graphmem.similarity import relative_cutoff

from indexing.collection import Collection
from service.engine.model import SearchParams
from service.engine.ranking import Ranked

NEAR_DUPLICATE_COSINE = 0.9
"""See ``near_duplicate_cutoff``: 0.9 of the way from a typical candidate pair to identical."""
"""Two chunks whose embeddings have cosine >= this are near-duplicates (reposted articles)."""


def near_duplicate_cutoff(vectors: np.ndarray) -> float:
    """The raw cosine that makes two candidates near duplicates in this embedding space:
    ``NEAR_DUPLICATE_COSINE`` of the way from the candidates' median pairwise cosine to identical.
    Spaces differ in where merely related text lands (MiniLM ~0.2, multilingual-e5 ~0.8), so a raw
    cosine would call every e5 candidate a duplicate of every other."""
    if len(vectors) < 3:
        return NEAR_DUPLICATE_COSINE
    pairwise = vectors @ vectors.T
    baseline = max(float(np.median(pairwise[np.triu_indices(len(vectors), 1)])), 0.0)
    return relative_cutoff(baseline, NEAR_DUPLICATE_COSINE)


def select(collection: Collection, ranked: Ranked, params: SearchParams) -> list[int]:
    """Positions in ``ranked`` to return.

    With ``diverse``: first the best chunk of each of the top ``min_docs`` documents, then fill
    to ``top_k`` in score order with at most ``max_per_doc`` chunks per document, skipping any
    chunk whose embedding is a near duplicate of one already chosen (these corpora repost one
    article under several titles; see ``near_duplicate_cutoff``; a collection still without its
    dense leg skips this test). Without it: the plain top_k.
    """
    n = len(ranked.rows)
    if not params.diverse:
        return list(range(min(params.top_k, n)))
    doc_of = collection.store.chunk_doc_rows[ranked.rows] if n else np.zeros(0, np.int64)
    vectors = (collection.dense.reconstruct(ranked.rows[: min(n, max(params.top_k * 10, 100))])
               if collection.dense is not None else np.zeros((0, 0), np.float32))  # BM25 tier: no vectors yet
    cutoff = near_duplicate_cutoff(vectors)
    chosen: list[int] = []
    per_doc: Counter = Counter()

    def near_duplicate(position: int) -> bool:
        if position >= len(vectors) or not chosen:
            return False
        picked = vectors[[c for c in chosen if c < len(vectors)]]
        return bool(picked.size) and float((picked @ vectors[position]).max()) >= cutoff

    rejected: set[int] = set()

    def take(position: int) -> None:
        if near_duplicate(position):
            rejected.add(position)
        else:
            chosen.append(position)
            per_doc[doc_of[position]] += 1

    want_docs = min(params.min_docs, params.top_k)
    for position in range(n):  # the best chunk of each of the top min_docs documents
        if len(per_doc) >= want_docs:
            break
        if doc_of[position] not in per_doc:
            take(position)
    for position in range(n):  # then fill in score order, max_per_doc per document
        if len(chosen) >= params.top_k:
            break
        if position not in chosen and position not in rejected and per_doc[doc_of[position]] < params.max_per_doc:
            take(position)
    return sorted(chosen)

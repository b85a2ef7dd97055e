"""Fusing the BM25 and dense legs into one score in [0, 1].

What the fused score means: each leg's score is first mapped to [0, 1] *within this query*
(BM25: score / best BM25 score of the query; dense: cosine similarity clipped to [0, 1]), then
the fused score is the weighted mean of the two with weights that sum to 1. A result scoring
1.0 is the best lexical match of the query and has cosine 1.0 to it; 0.5 means "half as good as
the best lexical match, or half-similar, or a mix". Per-leg components are always returned
beside it (``scores``) so a caller can see *why* a chunk ranked where it did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_VISIBLE = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class LegScores:
    """Per-candidate raw scores of both legs (aligned with ``rows``)."""

    rows: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray


@dataclass(frozen=True)
class Fused:
    """Candidates best first with the raw and normalised leg scores, all aligned with ``rows``."""

    rows: np.ndarray
    score: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray
    bm25_norm: np.ndarray
    dense_norm: np.ndarray
    bm25_weight: float


def cjk_share(text: str) -> float:
    """Share of word characters that are CJK; an English-only embedder cannot represent those."""
    visible = _VISIBLE.findall(text)
    if not visible:
        return 0.0
    return len(_CJK.findall(text)) / len(visible)


def normalise(legs: LegScores) -> tuple[np.ndarray, np.ndarray]:
    best = float(legs.bm25.max()) if legs.bm25.size else 0.0
    bm25_norm = legs.bm25 / best if best > 0 else np.zeros_like(legs.bm25)
    dense_norm = np.clip(legs.dense, 0.0, 1.0)
    return bm25_norm.astype(np.float32), dense_norm.astype(np.float32)


def weighted(legs: LegScores, bm25_weight: float) -> Fused:
    bm25_norm, dense_norm = normalise(legs)
    score = bm25_weight * bm25_norm + (1.0 - bm25_weight) * dense_norm
    order = np.argsort(-score, kind="stable")
    return Fused(legs.rows[order], score[order], legs.bm25[order], legs.dense[order], bm25_norm[order],
                 dense_norm[order], bm25_weight)


def rrf(legs: LegScores, k: int = 60) -> Fused:
    """Reciprocal rank fusion, rescaled so a candidate ranked first by both legs scores 1.0."""
    bm25_norm, dense_norm = normalise(legs)
    bm25_rank = np.empty(len(legs.rows)); bm25_rank[np.argsort(-legs.bm25, kind="stable")] = np.arange(len(legs.rows))
    dense_rank = np.empty(len(legs.rows)); dense_rank[np.argsort(-legs.dense, kind="stable")] = np.arange(len(legs.rows))
    raw = 1.0 / (k + 1 + bm25_rank) + 1.0 / (k + 1 + dense_rank)
    score = (raw / (2.0 / (k + 1))).astype(np.float32)
    order = np.argsort(-score, kind="stable")
    return Fused(legs.rows[order], score[order], legs.bm25[order], legs.dense[order], bm25_norm[order],
                 dense_norm[order], 0.5)


def adaptive_bm25_weight(query: str, multilingual_embedder: bool, base: float = 0.5) -> float:
    """Shift weight to BM25 for text the embedder cannot represent (CJK with an English-only model)."""
    if multilingual_embedder:
        return base
    share = cjk_share(query)
    return base + (0.95 - base) * min(1.0, share * 2.0)

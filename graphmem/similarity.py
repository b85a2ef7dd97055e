"""One rule for every cosine cutoff: "this far from a typical pair towards identical".

Embedding spaces differ in where unrelated text lands (about 0.1 for MiniLM, 0.8 for
multilingual-e5), so a raw cosine cutoff means something different in each. Synonym edges,
question-to-triple links and near-duplicate suppression all place their cutoff relative to the
median cosine of pairs drawn from the data at hand instead.
"""

from __future__ import annotations

import numpy as np


def relative_cutoff(baseline: float, fraction: float) -> float:
    """The raw cosine ``fraction`` of the way from ``baseline`` (a typical pair) to 1 (identical)."""
    baseline = min(max(float(baseline), -1.0), 1.0)
    return baseline + fraction * (1.0 - baseline)


def random_pair_cosines(vectors: np.ndarray, pairs: int, seed: int = 0) -> np.ndarray:
    """Cosines of ``pairs`` seeded random pairs of distinct rows (L2-normalised rows; empty below 2 rows).

    Seeded so that two builds of the same data derive the same cutoffs and weights from it."""
    count = vectors.shape[0] if vectors.ndim == 2 else 0
    if count < 2:
        return np.zeros(0, np.float32)
    i, j = np.random.default_rng(seed).integers(0, count, size=(2, pairs))
    keep = i != j
    return np.einsum("ij,ij->i", vectors[i[keep]], vectors[j[keep]])

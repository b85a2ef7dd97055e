"""One rule for every cosine cutoff: "this far from a typical pair towards identical".

Embedding spaces differ in where unrelated text lands (about 0.1 for MiniLM, 0.8 for
multilingual-e5), so a raw cosine cutoff means something different in each. Synonym edges,
question-to-triple links and near-duplicate suppression all place their cutoff relative to the
median cosine of pairs drawn from the data at hand instead.
"""

from __future__ import annotations


def relative_cutoff(baseline: float, fraction: float) -> float:
    """The raw cosine ``fraction`` of the way from ``baseline`` (a typical pair) to 1 (identical)."""
    baseline = min(max(float(baseline), -1.0), 1.0)
    return baseline + fraction * (1.0 - baseline)

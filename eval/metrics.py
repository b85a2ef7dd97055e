"""Retrieval metrics for the QA benchmarks, written out rather than taken from a library.

The definitions follow the HippoRAG papers (passage Recall@k = |gold ∩ top-k| / |gold|) plus
the two this project needs that IR libraries lack (all-gold recall, answer-string recall), and
every ranking is first deduplicated: several chunks of one passage are one retrieved passage,
ranked where its best chunk was. Keeping the arithmetic here (a few dozen lines, each checked
against hand-computed cases in ``tests/test_eval_metrics.py``) avoids a compiled dependency and
the run/qrels dict conversion cost per question.

Conventions: ``k`` larger than the ranking just means "all of it"; a question with empty gold
has no defined passage metrics (functions return 0.0, ``metrics_for_question`` omits the keys)
and counts only towards answer recall.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence

__all__ = [
    "DEFAULT_KS",
    "all_recall_at_k",
    "answer_recall_at_k",
    "dedupe",
    "document_recall_at_k",
    "metrics_for_question",
    "mrr_at_k",
    "ndcg_at_k",
    "normalize_answer",
    "recall_at_k",
    "summarize",
]

DEFAULT_KS = (1, 2, 5, 10, 20)


def dedupe(ranked: Iterable[str]) -> list[str]:
    """Keys in rank order, each kept at its first (best) position."""
    return list(dict.fromkeys(ranked))


def _top(ranked: Iterable[str], k: int) -> list[str]:
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return dedupe(ranked)[:k]


def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Share of gold passages among the top k (HippoRAG's passage recall)."""
    gold = set(gold)
    if not gold:
        return 0.0
    return len(gold.intersection(_top(ranked, k))) / len(gold)


def all_recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when every gold passage is in the top k (a multi-hop question is fully supported)."""
    gold = set(gold)
    if not gold:
        return 0.0
    return 1.0 if gold.issubset(_top(ranked, k)) else 0.0


def mrr_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Reciprocal rank of the first gold passage within the top k, else 0."""
    gold = set(gold)
    for rank, key in enumerate(_top(ranked, k), 1):
        if key in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG; the ideal ranking puts min(|gold|, k) gold passages first."""
    gold = set(gold)
    if not gold:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, key in enumerate(_top(ranked, k), 1) if key in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def document_recall_at_k(ranked_doc_ids: Sequence[str], gold_doc_ids: Iterable[str], k: int) -> float:
    """Recall over documents instead of passages (map passage keys to their document first);
    duplicates from several passages of one document collapse like chunks do."""
    return recall_at_k(ranked_doc_ids, gold_doc_ids, k)


def normalize_answer(text: str) -> str:
    """NFKC, case-folded, with punctuation and whitespace removed, so "U.S." matches "us" and
    MuSiQue's "self - actualizing" matches "self-actualizing"; works the same for Chinese."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def answer_recall_at_k(ranked_texts: Sequence[str], answers: Iterable[str], k: int) -> float:
    """1.0 if any (normalised, non-empty) answer occurs in any of the top-k texts.

    ``ranked_texts`` are taken as given (not deduplicated): repeated texts cannot change
    whether an answer is found, and callers may pass chunk texts rather than passages."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    needles = {n for n in (normalize_answer(a) for a in answers) if n}  # "" would match anything
    if not needles:
        return 0.0
    for text in ranked_texts[:k]:
        haystack = normalize_answer(text)
        if any(needle in haystack for needle in needles):
            return 1.0
    return 0.0


def metrics_for_question(
    ranked: Sequence[str],
    gold: Iterable[str],
    ranked_texts: Sequence[str] | None = None,
    answers: Iterable[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """All report metrics for one question: ``recall@k`` for each k, ``all_recall@5``,
    ``mrr@10``, ``ndcg@10`` (only when gold is non-empty) and ``answer_recall@5`` (only when
    answers and texts are given)."""
    gold = set(gold)
    out: dict[str, float] = {}
    if gold:
        ranked = dedupe(ranked)
        for k in ks:
            out[f"recall@{k}"] = recall_at_k(ranked, gold, k)
        out["all_recall@5"] = all_recall_at_k(ranked, gold, 5)
        out["mrr@10"] = mrr_at_k(ranked, gold, 10)
        out["ndcg@10"] = ndcg_at_k(ranked, gold, 10)
    answers = [a for a in (answers or []) if a and a.strip()]
    if answers:
        if ranked_texts is None:
            raise ValueError("answers given without ranked_texts; answer recall needs the retrieved texts")
        out["answer_recall@5"] = answer_recall_at_k(ranked_texts, answers, 5)
    return out


def summarize(per_question: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the questions that have it, so empty-gold questions (which
    carry only ``answer_recall@5``) do not drag passage recall down. Empty input gives {}."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for metrics in per_question:
        for name, value in metrics.items():
            sums[name] = sums.get(name, 0.0) + float(value)
            counts[name] = counts.get(name, 0) + 1
    return {name: sums[name] / counts[name] for name in sums}

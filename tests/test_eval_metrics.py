"""Retrieval metrics against hand-computed values (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest

from eval.metrics import (
    all_recall_at_k,
    answer_recall_at_k,
    dedupe,
    document_recall_at_k,
    metrics_for_question,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    recall_at_k,
    summarize,
)

RANKED = ["a", "x", "b", "y", "z"]
GOLD = {"a", "b", "c"}


def test_recall_at_k_hand_computed():
    assert recall_at_k(RANKED, GOLD, 1) == pytest.approx(1 / 3)  # top1 {a}: 1 of 3 gold
    assert recall_at_k(RANKED, GOLD, 2) == pytest.approx(1 / 3)  # {a, x}: still 1 of 3
    assert recall_at_k(RANKED, GOLD, 3) == pytest.approx(2 / 3)  # {a, x, b}: 2 of 3
    assert recall_at_k(RANKED, GOLD, 5) == pytest.approx(2 / 3)  # c never retrieved
    assert recall_at_k(RANKED, GOLD, 0) == 0.0  # nothing considered
    assert recall_at_k(["a", "b", "c"], GOLD, 3) == 1.0


def test_all_recall_at_k():
    assert all_recall_at_k(RANKED, GOLD, 5) == 0.0  # c missing
    assert all_recall_at_k(RANKED, {"a", "b"}, 3) == 1.0  # a@1, b@3 both within 3
    assert all_recall_at_k(RANKED, {"a", "b"}, 2) == 0.0  # b is at rank 3


def test_mrr_at_k():
    assert mrr_at_k(RANKED, GOLD, 10) == 1.0  # a at rank 1
    assert mrr_at_k(["x", "y", "b"], GOLD, 10) == pytest.approx(1 / 3)  # first gold at rank 3
    assert mrr_at_k(["x", "y", "b"], GOLD, 2) == 0.0  # rank 3 is outside the top 2
    assert mrr_at_k(["x", "y"], GOLD, 10) == 0.0


def test_ndcg_at_k_hand_computed():
    # gold {a, b, c}, ranking a x b y z, k = 10 (longer than the list):
    # DCG  = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5
    # IDCG = 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.63093 + 0.5 = 2.13093
    expected = 1.5 / (1 + 1 / math.log2(3) + 0.5)
    assert ndcg_at_k(RANKED, GOLD, 10) == pytest.approx(expected)
    assert expected == pytest.approx(0.70392, abs=1e-5)
    # k = 2 → DCG = 1 (only a); IDCG uses min(|gold|, k) = 2 slots: 1 + 0.63093
    assert ndcg_at_k(RANKED, GOLD, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # single gold at rank 2: DCG = 1/log2(3) = 0.63093, IDCG = 1
    assert ndcg_at_k(["x", "a"], {"a"}, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["a", "b", "c"], GOLD, 3) == pytest.approx(1.0)  # perfect ranking
    assert ndcg_at_k(["x"], GOLD, 10) == 0.0


def test_dedupe_keeps_first_occurrence():
    # chunks of passage a at ranks 1 and 2, b at 4: deduped order is a, x, b
    ranked = ["a", "a", "x", "b", "x", "c"]
    assert dedupe(ranked) == ["a", "x", "b", "c"]
    # without dedupe top-3 would be {a, x}; with it {a, x, b} → 2 of 3 gold
    assert recall_at_k(ranked, GOLD, 3) == pytest.approx(2 / 3)
    assert all_recall_at_k(ranked, GOLD, 4) == 1.0  # a, x, b, c
    assert mrr_at_k(["x", "x", "x", "a"], GOLD, 2) == pytest.approx(1 / 2)  # x, a after dedupe
    # DCG over a x b: 1 + 1/log2(4) = 1.5 — same as the undeduplicated RANKED case
    assert ndcg_at_k(["a", "a", "x", "b"], GOLD, 10) == pytest.approx(ndcg_at_k(RANKED, GOLD, 10))


def test_empty_gold_and_empty_ranking():
    for fn in (recall_at_k, all_recall_at_k, mrr_at_k, ndcg_at_k):
        assert fn(RANKED, set(), 5) == 0.0
        assert fn([], GOLD, 5) == 0.0


def test_k_larger_than_list():
    assert recall_at_k(["a", "b"], GOLD, 100) == pytest.approx(2 / 3)
    assert all_recall_at_k(["a", "b", "c"], GOLD, 100) == 1.0


def test_negative_k_rejected():
    with pytest.raises(ValueError):
        recall_at_k(RANKED, GOLD, -1)
    with pytest.raises(ValueError):
        answer_recall_at_k(["text"], ["text"], -1)


def test_document_recall():
    # passages p1, p2 of doc D1 and p3 of D2 → ranked docs D1 D1 D3 → deduped D1 D3
    assert document_recall_at_k(["D1", "D1", "D3"], {"D1", "D2"}, 2) == pytest.approx(1 / 2)
    assert document_recall_at_k(["D1", "D1", "D2"], {"D1", "D2"}, 2) == 1.0  # dedupe lets D2 in


def test_normalize_answer():
    assert normalize_answer("  The U.S.  Army! ") == "theusarmy"
    assert normalize_answer("Self - actualizing") == normalize_answer("self-actualizing")
    assert normalize_answer("４分钟。") == "4分钟"  # NFKC full-width digit, CJK punctuation dropped
    assert normalize_answer("Ｆｕｌｌ") == "full"


def test_answer_recall_at_k():
    texts = ["Nothing here.", "It was founded in the U.S. in 1935.", "George Washington"]
    assert answer_recall_at_k(texts, ["u.s."], 2) == 1.0  # "us" in text 2
    assert answer_recall_at_k(texts, ["george washington"], 2) == 0.0  # only at rank 3
    assert answer_recall_at_k(texts, ["george washington"], 3) == 1.0
    assert answer_recall_at_k(texts, ["nope", "1935"], 5) == 1.0  # any answer; k > len
    assert answer_recall_at_k(texts, [], 5) == 0.0
    assert answer_recall_at_k(texts, ["...", "  "], 5) == 0.0  # empty after normalising: never matches
    assert answer_recall_at_k(["玩家以水枪、小枪泡封敌人"], ["水枪，小枪"], 1) == 1.0


def test_metrics_for_question_keys_and_values():
    ranked = ["x", "a", "a", "y", "b"]  # deduped: x a y b
    gold = {"a", "b"}
    texts = ["noise", "the answer is Paris", "more", "b text"]
    m = metrics_for_question(ranked, gold, ranked_texts=texts, answers=["paris"])
    assert set(m) == {
        "recall@1", "recall@2", "recall@5", "recall@10", "recall@20",
        "all_recall@5", "mrr@10", "ndcg@10", "answer_recall@5",
    }
    assert m["recall@1"] == 0.0  # x
    assert m["recall@2"] == 0.5  # x a
    assert m["recall@5"] == 1.0  # x a y b
    assert m["recall@20"] == 1.0
    assert m["all_recall@5"] == 1.0
    assert m["mrr@10"] == 0.5  # a at rank 2
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068; IDCG = 1 + 0.63093
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    assert m["answer_recall@5"] == 1.0


def test_metrics_for_question_without_answers_and_with_empty_gold():
    m = metrics_for_question(["a"], {"a"})
    assert "answer_recall@5" not in m and len(m) == 8
    only_answers = metrics_for_question(["p1"], set(), ranked_texts=["Paris is big"], answers=["Paris"])
    assert only_answers == {"answer_recall@5": 1.0}
    assert metrics_for_question(["p1"], set()) == {}
    with pytest.raises(ValueError):
        metrics_for_question(["a"], {"a"}, answers=["x"])  # answers need texts


def test_summarize_averages_per_metric():
    per_question = [
        metrics_for_question(["a", "b"], {"a"}, ["ans", "t"], ["ans"]),  # recall@1 = 1, answer 1
        metrics_for_question(["b", "a"], {"a"}, ["t", "u"], ["ans"]),  # recall@1 = 0, answer 0
        metrics_for_question(["c"], set(), ["the ans"], ["ans"]),  # empty gold: answer 1 only
    ]
    summary = summarize(per_question)
    assert summary["recall@1"] == pytest.approx(0.5)  # (1 + 0) / 2 — empty-gold question excluded
    assert summary["mrr@10"] == pytest.approx(0.75)  # (1 + 1/2) / 2
    assert summary["answer_recall@5"] == pytest.approx(2 / 3)  # (1 + 0 + 1) / 3
    assert summarize([]) == {}

import numpy as np
from rank_bm25 import BM25Okapi

from indexing.analyzer import Analyzer
from indexing.lexical_index import LexicalIndex, top_rows

DOCS = [
    "Quantum computers use qubits and entanglement for computation.",
    "Giant pandas eat bamboo in Sichuan nature reserves.",
    "High speed rail connects Beijing and Shanghai in hours.",
    "Longjing tea grows near West Lake in Hangzhou.",
    "The Great Wall stretches from Shanhaiguan to Jiayuguan.",
    "量子计算利用量子比特进行运算。",
    "大熊猫主要以竹子为食。",
    "高铁让北京到上海只需几个小时。",
]
QUERIES = ["quantum qubits", "panda bamboo Sichuan", "量子比特", "北京 上海 高铁", "tea lake"]


def test_scores_match_rank_bm25_okapi(tmp_path):
    analyzer = Analyzer()
    corpus = [analyzer.tokenize(d) for d in DOCS]
    ours = LexicalIndex.build(corpus, k1=1.5, b=0.75, method="robertson")
    ours.save(tmp_path / "bm25")
    reloaded = LexicalIndex.load(tmp_path / "bm25")
    reference = BM25Okapi(corpus, k1=1.5, b=0.75)
    for query in QUERIES:
        terms = analyzer.tokenize(query)
        # bm25s omits Okapi's constant (k1 + 1) numerator factor (as Lucene does): same ranking, scaled scores.
        expected = reference.get_scores(terms) / (1.5 + 1)
        assert np.allclose(ours.scores(terms), expected, atol=1e-4), query
        assert np.allclose(reloaded.scores(terms), expected, atol=1e-4), query
        assert list(np.argsort(-ours.scores(terms), kind="stable")) == list(np.argsort(-expected, kind="stable"))


def test_top_k_and_unknown_terms():
    analyzer = Analyzer()
    index = LexicalIndex.build([analyzer.tokenize(d) for d in DOCS], 1.2, 0.75, "lucene")
    rows, scores = index.top_k(analyzer.tokenize("bamboo panda"), 3)
    assert rows[0] == 1 and list(scores) == sorted(scores, reverse=True)
    rows, scores = index.top_k(analyzer.tokenize("zzzz unknownword"), 3)
    assert len(rows) == 0
    assert not index.scores([]).any()


def test_scores_equal_bm25s_own_scoring_for_every_method():
    rng = np.random.default_rng(3)
    vocabulary = [f"t{i}" for i in range(40)]
    corpus = [list(rng.choice(vocabulary, size=int(rng.integers(1, 30)))) for _ in range(300)]
    for method in ("lucene", "robertson", "bm25+", "bm25l", "atire"):
        index = LexicalIndex.build(corpus, k1=1.2, b=0.75, method=method)
        for _ in range(20):
            # repeated and unknown terms included: a repeated term counts again, as in bm25s
            query = list(rng.choice(vocabulary + ["unknown"], size=int(rng.integers(1, 8))))
            known = [t for t in query if t in index.retriever.vocab_dict]
            expected = index.retriever.get_scores(known) if known else np.zeros(300)
            assert np.allclose(index.scores(query), expected, atol=1e-5), (method, query)


def _zipf_corpus(seed: int, n_docs: int = 600):
    """Skewed term frequencies like CJK characters: a few terms in most chunks, a long tail."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(400)])
    weights = 1.0 / np.arange(1, 401) ** 1.1
    weights /= weights.sum()
    return rng, vocabulary, weights, [list(rng.choice(vocabulary, size=int(rng.integers(5, 60)), p=weights))
                                      for _ in range(n_docs)]


def test_search_matches_full_evaluation_with_filters_and_extra_rows():
    rng, vocabulary, weights, corpus = _zipf_corpus(11)
    index = LexicalIndex.build(corpus, k1=1.2, b=0.75, method="lucene")
    for trial in range(60):
        query = list(rng.choice(vocabulary, size=int(rng.integers(1, 25)), p=weights))
        query += list(rng.choice(vocabulary[200:], size=int(rng.integers(0, 3))))  # some rare terms
        k = int(rng.choice([1, 5, 10, 50]))
        allowed = rng.random(len(corpus)) < 0.7 if trial % 3 == 0 else None
        extra = rng.choice(len(corpus), size=15, replace=False)
        known = [t for t in query if t in index.retriever.vocab_dict]  # bm25s itself is the reference
        full = index.retriever.get_scores(known).astype(np.float64) if known else np.zeros(len(corpus))
        if allowed is not None:
            full = np.where(allowed, full, 0.0)
        result = index.search(query, k, allowed, extra_rows=extra)
        expected = top_rows(full, k)
        assert np.allclose(result.scores, full[result.rows], atol=1e-5)
        # same top-k scores; the rows may differ only among exact ties
        assert np.allclose(np.sort(result.scores), np.sort(full[expected]), atol=1e-5), (trial, query)
        assert np.allclose(result.extra_scores, full[extra], atol=1e-5)
        assert list(result.scores) == sorted(result.scores, reverse=True)
        assert len(result.rows) == min(k, int((full > 0).sum()))


def test_vectorised_lucene_index_equals_bm25s():
    """The numpy build of the Lucene index gives bm25s' own postings and scores, term by term."""
    import random

    import bm25s
    import numpy as np

    from indexing.lexical_index import LexicalIndex

    rng = random.Random(3)
    words = [f"w{i}" for i in range(300)] + ["量子", "计算", "熊猫"]
    corpus = [[rng.choice(words[: rng.randint(5, len(words))]) for _ in range(rng.randint(0, 60))] for _ in range(400)]
    corpus[7] = []  # an empty chunk keeps its row
    ours = LexicalIndex.build(corpus, 1.2, 0.75, "lucene").retriever
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index(corpus, show_progress=False)
    assert set(ours.vocab_dict) == set(ref.vocab_dict)

    def postings(retriever, term):
        i = retriever.vocab_dict[term]
        m = retriever.scores
        span = slice(int(m["indptr"][i]), int(m["indptr"][i + 1]))
        return m["indices"][span], m["data"][span]

    for term in set(ref.vocab_dict) - {""}:  # bm25s' empty token has no postings (nor a slot in its indptr)
        rows, data = postings(ours, term)
        ref_rows, ref_data = postings(ref, term)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_allclose(data, ref_data, rtol=1e-6)
    assert ours.scores["num_docs"] == ref.scores["num_docs"] == 400
    query = ["量子", "w3", "w17", "missing"]
    index = LexicalIndex.build(corpus, 1.2, 0.75, "lucene")
    expected = ref.get_scores(query)
    np.testing.assert_allclose(index.scores(query), expected, rtol=1e-5)

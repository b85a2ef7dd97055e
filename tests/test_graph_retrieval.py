"""The graph channel end to end on a tiny corpus, with the real embedder (no mocks)."""

import numpy as np

from graphmem.memory import ChunkText, build_graph
from graphmem.retrieve import GraphQueryParams, graph_search

CHUNKS = [
    ("Nature Physics", "Nature Physics is a monthly journal published by the Helvetic Physical Society."),
    ("Helvetic Physical Society", "The Helvetic Physical Society was founded by Heinrich Vogel in Basel in 1842."),
    ("Volcanoes", "Magma rises through the crust and erupts from the vent of Mount Etna in Sicily."),
    ("Jazz", "Jazz originated in New Orleans, where Louis Armstrong learned the cornet."),
    ("Tea", "龙井茶产于杭州西湖，乾隆皇帝曾经到访狮峰山。"),
    ("Rail", "京沪高铁连接北京和上海，全长一千三百多公里。"),
]


def _memory(embedder):
    chunks = [ChunkText(row=i, text=text, title=title) for i, (title, text) in enumerate(CHUNKS)]
    return build_graph(chunks, embedder.encode)


def test_second_hop_reached_through_an_entity(embedder):
    memory = _memory(embedder)
    query = "Who founded the society that publishes Nature Physics?"
    qvec = embedder.encode([query])
    dense = (embedder.encode([t for _, t in CHUNKS]) @ qvec[0]).astype(np.float32)
    rows = np.arange(len(CHUNKS))
    result = graph_search(memory, query, qvec, rows, dense)
    assert result.chunk_scores.shape == (len(CHUNKS),)
    best_two = set(np.argsort(-result.chunk_scores)[:2].tolist())
    assert best_two == {0, 1}  # the journal's chunk and, through the society, its founder's chunk
    assert result.chunk_scores[1] > max(result.chunk_scores[2:])
    linked = {memory.entity_keys[e] for e, _ in result.entities}
    assert "helvetic physical society" in linked or "nature physics" in linked


def test_subgraph_budget_and_no_links_for_unrelated_questions(embedder):
    memory = _memory(embedder)
    query = "Nature Physics Helvetic Physical Society Heinrich Vogel Basel"
    qvec = embedder.encode([query])
    budget = GraphQueryParams(top_triples=2, min_link_score=0.0)
    result = graph_search(memory, query, qvec, np.zeros(0, np.int64), np.zeros(0, np.float32), budget)
    assert 0 < len(result.triples) <= 2
    assert [t.score for t in result.triples] == sorted((t.score for t in result.triples), reverse=True)
    assert 0 < float(result.chunk_scores.sum()) <= 1 + 1e-6  # the rest of the mass sits on entity nodes
    assert int(np.argmax(result.chunk_scores)) in (0, 1)
    unrelated = graph_search(memory, "zzzz qqqq", embedder.encode(["zzzz qqqq"]), np.zeros(0, np.int64),
                             np.zeros(0, np.float32), GraphQueryParams(min_link_score=0.5))
    assert not unrelated.triples and not unrelated.chunk_scores.any()

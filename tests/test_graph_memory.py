"""Tests for graphmem.memory: building, linking, capping and persisting the graph memory."""

from __future__ import annotations

import time
import zlib

import networkx as nx
import numpy as np
import pytest

import graphmem.memory as memory_module
from graphmem.extraction import extract, normalise_entity
from graphmem.memory import ChunkText, GraphLimits, GraphMemory, build_graph, load_graph, save_graph
from graphmem.ppr import personalized_pagerank, transition_matrix


def trigram_encode(texts: list[str], dim: int = 64) -> np.ndarray:
    """Deterministic stand-in for the embedder: hashed character trigrams, L2-normalised.

    Names sharing most trigrams ("Barack Obama" / "Barack H. Obama") get a high cosine;
    it is only a test input, the memory does not depend on how vectors are made.
    """
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for r, text in enumerate(texts):
        padded = f"  {text.casefold()}  "
        for i in range(len(padded) - 2):
            out[r, zlib.crc32(padded[i : i + 3].encode("utf-8")) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=out, where=norms > 0)


CHUNKS = [
    ChunkText(0, "Barack Obama was born in Honolulu. Obama served as President of the United States.", "Barack Obama"),
    ChunkText(1, "He studied at Columbia University in New York. Barack H. Obama moved to Chicago.", "Barack Obama"),
    ChunkText(2, "马云创立了阿里巴巴集团。阿里巴巴集团总部位于杭州。", "阿里巴巴"),
    ChunkText(3, "Honolulu is the capital of Hawaii.", "Honolulu"),
    ChunkText(4, "just some lowercase words here.", ""),
]
LIMITS = GraphLimits(synonym_cutoff=0.85)  # the 64-dim trigram cosine of the two Obamas is 0.88


@pytest.fixture(scope="module")
def memory() -> GraphMemory:
    return build_graph(CHUNKS, trigram_encode, LIMITS)


def entity_id(mem: GraphMemory, key: str) -> int:
    assert key in mem.entity_keys, f"{key!r} not among {mem.entity_keys}"
    return mem.entity_keys.index(key)


def spo(mem: GraphMemory) -> dict[tuple[str, str, str], int]:
    return {
        (mem.entity_keys[h], r, mem.entity_keys[t]): i
        for i, (h, r, t) in enumerate(zip(mem.triple_head, mem.triple_relation, mem.triple_tail))
    }


def test_entities_english_and_chinese(memory: GraphMemory) -> None:
    for key in ["barack obama", "honolulu", "columbia university", "new york", "chicago", "hawaii", "马云", "阿里巴巴", "杭州"]:
        entity_id(memory, key)
    assert memory.entity_names[entity_id(memory, "barack obama")] == "Barack Obama"
    assert memory.entity_names[entity_id(memory, "马云")] == "马云"
    assert memory.entity_kinds[entity_id(memory, "马云")] == "person"
    assert len(set(memory.entity_keys)) == memory.n_entities
    assert len(memory.entity_names) == len(memory.entity_kinds) == len(memory.entity_chunks) == memory.n_entities
    assert memory.n_chunks == 5
    assert set(memory.stage_seconds) == {"extract", "graph", "embed", "synonyms"}


def test_entity_provenance(memory: GraphMemory) -> None:
    expected: dict[str, set[int]] = {}
    for chunk in CHUNKS:
        keys = {m.key for m in extract(chunk.text, chunk.title).mentions}
        if chunk.title:
            keys.add(normalise_entity(chunk.title))  # the title counts as mentioned
        for key in keys:
            expected.setdefault(key, set()).add(chunk.row)
    assert set(memory.entity_keys) == set(expected)
    for key, rows in zip(memory.entity_keys, memory.entity_chunks):
        assert rows.tolist() == sorted(expected[key]), key
    assert memory.entity_chunks[entity_id(memory, "barack obama")].tolist() == [0, 1]  # title-only in row 1
    assert memory.entity_chunks[entity_id(memory, "honolulu")].tolist() == [0, 3]
    assert memory.entity_chunks[entity_id(memory, "杭州")].tolist() == [2]


def test_triple_provenance_spans(memory: GraphMemory) -> None:
    texts = {c.row: c.text for c in CHUNKS}
    titles = {c.row: c.title for c in CHUNKS}
    assert memory.n_triples > 0
    for i in range(memory.n_triples):
        assert memory.triple_head[i] != memory.triple_tail[i]
        assert memory.triple_spans[i], "every triple has evidence"
        assert sorted({r for r, _, _ in memory.triple_spans[i]}) == memory.triple_chunks[i].tolist()
        tail_key = memory.entity_keys[memory.triple_tail[i]]
        for row, start, end in memory.triple_spans[i]:
            evidence = texts[row][start:end]
            tail_surfaces = {m.surface for m in extract(texts[row], titles[row]).mentions if m.key == tail_key}
            assert any(s in evidence for s in tail_surfaces), (memory.triple_text(i), evidence)
    triples = spo(memory)
    assert ("barack obama", "was born in", "honolulu") in triples
    assert ("马云", "创立", "阿里巴巴") in triples
    assert ("honolulu", "is the capital of", "hawaii") in triples
    i = triples[("barack obama", "was born in", "honolulu")]
    assert memory.triple_text(i) == "Barack Obama was born in Honolulu"


def test_identical_triples_merge_across_chunks() -> None:
    chunks = [
        ChunkText(0, "Paris is the capital of France.", ""),
        ChunkText(1, "Berlin is the capital of Germany.", ""),
        ChunkText(2, "Some say that Paris is the capital of France.", ""),
    ]
    mem = build_graph(chunks, trigram_encode)
    triples = spo(mem)
    i = triples[("paris", "is the capital of", "france")]
    assert mem.triple_chunks[i].tolist() == [0, 2]
    assert [r for r, _, _ in mem.triple_spans[i]] == [0, 2]
    row, start, end = mem.triple_spans[i][1]
    assert "France" in chunks[2].text[start:end]
    assert len(triples) == mem.n_triples  # no duplicate (head, relation, tail)


def test_max_triples_keeps_most_supported() -> None:
    sentences = (
        ["Rome is the capital of Italy."] * 1
        + ["Paris is the capital of France."] * 3
        + ["Madrid is the capital of Spain."] * 1
        + ["Berlin is the capital of Germany."] * 2
    )
    chunks = [ChunkText(i, s, "") for i, s in enumerate(sentences)]
    full = build_graph(chunks, trigram_encode)
    assert full.n_triples == 4
    capped = build_graph(chunks, trigram_encode, GraphLimits(max_triples=2))
    assert [capped.entity_keys[h] for h in capped.triple_head] == ["paris", "berlin"]  # first-seen order
    assert [len(c) for c in capped.triple_chunks] == [3, 2]
    tie = build_graph(chunks, trigram_encode, GraphLimits(max_triples=3))
    assert [tie.entity_keys[h] for h in tie.triple_head] == ["rome", "paris", "berlin"]  # rome beats madrid
    assert tie.triple_vectors.shape == (3, 64)
    # entities of dropped triples stay nodes (they are still mentioned)
    assert "madrid" in tie.entity_keys
    assert build_graph(chunks, trigram_encode, GraphLimits(max_triples=0)).n_triples == 0


def test_synonym_edges(memory: GraphMemory) -> None:
    a, b = entity_id(memory, "barack obama"), entity_id(memory, "barack h obama")
    pairs = {(i, j): c for i, j, c in memory.synonyms}
    assert (min(a, b), max(a, b)) in pairs
    assert pairs[(min(a, b), max(a, b))] >= LIMITS.cosine_cutoff()
    assert all(i < j for i, j in pairs)
    assert len(pairs) == len(memory.synonyms)
    assert memory.synonyms == sorted(memory.synonyms)
    unrelated = {entity_id(memory, k) for k in ("honolulu", "杭州", "columbia university", "马云")}
    assert not any(i in unrelated or j in unrelated for i, j in pairs)
    # cosine of the stored vectors agrees with the recorded score
    for i, j, c in memory.synonyms:
        assert float(memory.entity_vectors[i] @ memory.entity_vectors[j]) == pytest.approx(c, abs=1e-5)
    # a stricter threshold or no neighbours removes them
    assert build_graph(CHUNKS, trigram_encode, GraphLimits(synonym_cutoff=0.95)).synonyms == []
    assert build_graph(CHUNKS, trigram_encode, GraphLimits(synonym_cutoff=0.5, synonym_neighbours=0)).synonyms == []


def test_synonyms_approximate_path_agrees(monkeypatch: pytest.MonkeyPatch, memory: GraphMemory) -> None:
    monkeypatch.setattr(memory_module, "EXACT_SYNONYM_MAX", 0)  # force the HNSW index
    mem = build_graph(CHUNKS, trigram_encode, LIMITS)
    assert [(i, j) for i, j, _ in mem.synonyms] == [(i, j) for i, j, _ in memory.synonyms]


def test_synonym_neighbour_limit() -> None:
    names = ["Alexander Hamilton", "Alexander Hamiltonn", "Alexander Hamiltonnn", "Alexander Hamiltonnnn"]
    chunks = [ChunkText(i, f"{n} visited Paris.", "") for i, n in enumerate(names)]
    one = build_graph(chunks, trigram_encode, GraphLimits(synonym_cutoff=0.5, synonym_neighbours=1))
    many = build_graph(chunks, trigram_encode, GraphLimits(synonym_cutoff=0.5, synonym_neighbours=5))
    ham = [i for i, k in enumerate(many.entity_keys) if k.startswith("alexander")]
    many_pairs = {(i, j) for i, j, _ in many.synonyms if i in ham and j in ham}
    assert len(many_pairs) == 6  # all pairs among the four spellings
    one_pairs = {(i, j) for i, j, _ in one.synonyms}
    assert len(one_pairs) < len(many_pairs)
    # every entity keeps at most its single nearest neighbour (pairs may be shared)
    assert len(one_pairs) <= one.n_entities


def test_graph_nodes_and_edges(memory: GraphMemory) -> None:
    g = memory.graph()
    assert g is memory.graph()  # cached
    assert g.number_of_nodes() == memory.n_entities + memory.n_chunks
    nodes = memory.node_list()
    assert nodes[: memory.n_entities] == [("e", i) for i in range(memory.n_entities)]
    assert nodes[memory.n_entities :] == [("c", r) for r in range(memory.n_chunks)]
    relation_pairs = {frozenset((int(h), int(t))) for h, t in zip(memory.triple_head, memory.triple_tail)}
    synonym_pairs = {frozenset((i, j)) for i, j, _ in memory.synonyms}
    mentions = sum(len(c) for c in memory.entity_chunks)
    assert g.number_of_edges() == len(relation_pairs | synonym_pairs) + mentions
    info = memory.describe()
    assert info["mention_edges"] == mentions
    assert info["relation_edges"] == len(relation_pairs)
    assert info["synonym_edges"] == len(memory.synonyms)
    assert info["entities"] == memory.n_entities and info["triples"] == memory.n_triples
    assert info["limits"]["synonym_cutoff"] == 0.85

    h, t = entity_id(memory, "barack obama"), entity_id(memory, "honolulu")
    edge = g.edges[("e", h), ("e", t)]
    assert "was born in" in edge["relations"]
    c = entity_id(memory, "杭州")
    assert g.edges[("e", c), ("c", 2)] == {"weight": 1.0, "mention": True}
    a, b = entity_id(memory, "barack obama"), entity_id(memory, "barack h obama")
    assert g.edges[("e", a), ("e", b)]["synonym"] is True
    assert nx.degree(g, ("c", 4)) == 0  # chunk without entities or title


def test_transition_rows(memory: GraphMemory) -> None:
    t = memory.transition()
    n = memory.n_entities + memory.n_chunks
    assert t.shape == (n, n)
    sums = np.asarray(t.sum(axis=1)).ravel()
    isolated = memory.node_list().index(("c", 4))
    assert sums[isolated] == 0
    np.testing.assert_allclose(np.delete(sums, isolated), 1.0)
    reference = transition_matrix(memory.graph(), memory.node_list())
    np.testing.assert_allclose(t.toarray(), reference.toarray(), atol=1e-12)
    # a walk seeded at Honolulu reaches the chunks that mention it first
    seeds = np.zeros(n)
    seeds[entity_id(memory, "honolulu")] = 1.0
    ranks = personalized_pagerank(t, seeds)[memory.n_entities :]
    assert set(np.argsort(-ranks)[:2].tolist()) == {0, 3}


def test_save_load_roundtrip(memory: GraphMemory, tmp_path) -> None:
    target = tmp_path / "nested" / "graph"
    save_graph(memory, target)
    assert sorted(p.name for p in target.iterdir()) == ["graph_arrays.npz", "graph_strings.json"]
    loaded = load_graph(target)
    for name in ["entity_keys", "entity_names", "entity_kinds", "triple_relation", "triple_spans", "synonyms",
                 "n_chunks", "stage_seconds", "limits"]:
        assert getattr(loaded, name) == getattr(memory, name), name
    for name in ["triple_head", "triple_tail", "entity_vectors", "triple_vectors"]:
        a, b = getattr(loaded, name), getattr(memory, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    for name in ["entity_chunks", "triple_chunks"]:
        a, b = getattr(loaded, name), getattr(memory, name)
        assert len(a) == len(b)
        assert all(x.dtype == y.dtype and x.tolist() == y.tolist() for x, y in zip(a, b))
    assert (loaded.transition() != memory.transition()).nnz == 0
    assert loaded.describe() == memory.describe()
    save_graph(loaded, target)  # overwriting an existing memory works
    assert load_graph(target).entity_keys == memory.entity_keys


def test_empty_inputs(tmp_path) -> None:
    for chunks in ([], [ChunkText(0, "", ""), ChunkText(1, "just lowercase words.", "")]):
        mem = build_graph(chunks, trigram_encode)
        assert mem.n_entities == mem.n_triples == 0
        assert mem.entity_vectors.shape == (0, 64) and mem.entity_vectors.dtype == np.float32
        assert mem.triple_vectors.shape == (0, 64) and mem.triple_vectors.dtype == np.float32
        assert mem.triple_head.dtype == np.int32 and mem.triple_head.shape == (0,)
        assert mem.synonyms == []
        assert mem.n_chunks == len(chunks)
        assert mem.transition().shape == (len(chunks), len(chunks))
        assert mem.graph().number_of_nodes() == len(chunks)
        save_graph(mem, tmp_path / f"g{len(chunks)}")
        loaded = load_graph(tmp_path / f"g{len(chunks)}")
        assert loaded.entity_vectors.shape == (0, 64) and loaded.n_chunks == len(chunks)
        assert mem.describe()["entities"] == 0

    def no_dimension(texts: list[str]) -> np.ndarray:
        if not texts:
            raise ValueError("empty batch")
        return trigram_encode(texts, dim=8)

    assert build_graph([], no_dimension).entity_vectors.shape == (0, 0)  # nothing encoded: dim 0
    mem = build_graph(CHUNKS[:1], no_dimension)  # dimension from the first batch
    assert mem.entity_vectors.shape == (mem.n_entities, 8)
    assert mem.triple_vectors.shape == (mem.n_triples, 8)


def test_sparse_rows_and_validation() -> None:
    mem = build_graph([ChunkText(2, "Paris is the capital of France.", "")], trigram_encode)
    assert mem.n_chunks == 3
    assert mem.entity_chunks[mem.entity_keys.index("paris")].tolist() == [2]
    with pytest.raises(ValueError):
        build_graph([ChunkText(-1, "Paris.", "")], trigram_encode)
    with pytest.raises(ValueError):
        build_graph(CHUNKS[:1], lambda texts: np.zeros((len(texts) + 1, 4), dtype=np.float32))


def test_batched_encoding_and_progress(monkeypatch: pytest.MonkeyPatch, memory: GraphMemory) -> None:
    batches: list[int] = []

    def counting(texts: list[str]) -> np.ndarray:
        batches.append(len(texts))
        return trigram_encode(texts)

    events: list[tuple[str, float]] = []
    monkeypatch.setattr(memory_module, "ENCODE_BATCH", 3)
    mem = build_graph(CHUNKS, counting, LIMITS, progress=lambda s, f: events.append((s, f)))
    assert max(batches) <= 3 and sum(batches) >= mem.n_entities
    np.testing.assert_array_equal(mem.entity_vectors, memory.entity_vectors)
    np.testing.assert_array_equal(mem.triple_vectors, memory.triple_vectors)
    stages = [s for s, _ in events]
    assert stages.index("extract") < stages.index("graph") < stages.index("embed") < stages.index("synonyms")
    assert all(0.0 <= f <= 1.0 for _, f in events)
    for stage in ("extract", "graph", "embed", "synonyms"):
        assert (stage, 1.0) in events


def test_real_embedder(embedder) -> None:
    chunks = [
        ChunkText(0, "Marie Curie was born in Warsaw. She later moved to Paris.", "Marie Curie"),
        ChunkText(1, "Marie Curie won the Nobel Prize in Physics in 1903.", "Marie Curie"),
        ChunkText(2, "居里夫人出生于华沙。", "居里夫人"),
    ]
    started = time.perf_counter()
    mem = build_graph(chunks, embedder.encode)
    elapsed = time.perf_counter() - started
    dim = embedder.dimension
    assert mem.entity_vectors.shape == (mem.n_entities, dim)
    assert mem.triple_vectors.shape == (mem.n_triples, dim)
    np.testing.assert_allclose(np.linalg.norm(mem.entity_vectors, axis=1), 1.0, atol=1e-4)
    i = spo(mem)[("marie curie", "was born in", "warsaw")]
    expected = embedder.encode([mem.triple_text(i)])[0]
    # int8 runtimes quantise activations per batch, so a text's vector moves slightly with its batch mates
    assert float(mem.triple_vectors[i] @ expected) == pytest.approx(1.0, abs=1e-2)
    assert mem.entity_chunks[mem.entity_keys.index("marie curie")].tolist() == [0, 1]
    assert elapsed < 20, f"build took {elapsed:.1f}s"


def test_synonym_cutoff_is_relative_to_the_space_unrelated_pairs() -> None:
    from graphmem.memory import synonym_cutoff

    rng = np.random.default_rng(1)
    spread = rng.normal(size=(500, 32)).astype(np.float32)
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    # the same directions squeezed into a narrow cone: unrelated pairs land near 0.8 cosine
    cone = spread * 0.45 + np.ones(32, np.float32) / np.sqrt(32)
    cone /= np.linalg.norm(cone, axis=1, keepdims=True)
    wide, narrow = synonym_cutoff(spread, 0.75), synonym_cutoff(cone, 0.75)
    assert 0.7 < wide < 0.8  # median of random pairs ~0: cutoff ~0.75
    baseline = float(np.median((cone[:250] * cone[250:]).sum(axis=1)))
    assert baseline > 0.6 and narrow == pytest.approx(baseline + 0.75 * (1 - baseline), abs=0.02)

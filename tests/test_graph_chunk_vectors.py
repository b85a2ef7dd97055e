"""Graph memories whose triples carry their chunk's vector (what collection builds make since
format 2): which vectors are stored, which names are embedded, how questions link, how live
updates extend them, and that format-1 (text-embedded) graphs still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphmem.memory import (STRINGS_FILE, TRIPLE_VECTORS_CHUNK, TRIPLE_VECTORS_TEXT, ChunkText, GraphLimits,
                             GraphMemory, build_graph, load_graph, save_graph)
from graphmem.retrieve import GraphQueryParams, link_triples
from graphmem.update import update_graph
from tests.test_graph_memory import CHUNKS, LIMITS, trigram_encode

CHUNK_LIMITS = GraphLimits(synonym_cutoff=0.85, synonym_min_chunks=2)


class CountingEncoder:
    """trigram_encode that remembers every text it was asked to embed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return trigram_encode(texts)


def chunk_vectors(chunks: list[ChunkText]) -> np.ndarray:
    """Stand-in chunk embeddings, deliberately not unit length (the memory re-normalises them)."""
    return 3.0 * trigram_encode([c.text for c in chunks])


@pytest.fixture(scope="module")
def chunked() -> tuple[GraphMemory, CountingEncoder]:
    encoder = CountingEncoder()
    return build_graph(CHUNKS, encoder, CHUNK_LIMITS, chunk_vectors=chunk_vectors(CHUNKS)), encoder


def test_triples_carry_their_chunks_vector_and_no_triple_text_is_embedded(chunked) -> None:
    memory, encoder = chunked
    assert memory.limits.triple_vectors == TRIPLE_VECTORS_CHUNK
    assert memory.triple_owner is not None and len(memory.triple_owner) == memory.n_triples
    expected = trigram_encode([c.text for c in CHUNKS])
    for t in range(memory.n_triples):
        owner = int(memory.triple_owner[t])
        assert owner == memory.triple_spans[t][0][0]  # the chunk it was first extracted from
        np.testing.assert_allclose(memory.triple_vectors[t], expected[owner], atol=1e-6)
    triple_texts = {memory.triple_text(t) for t in range(memory.n_triples)}
    assert not triple_texts & set(encoder.seen)


def test_only_entities_named_in_enough_chunks_are_embedded(chunked) -> None:
    memory, encoder = chunked
    counts = np.array([len(c) for c in memory.entity_chunks])
    norms = np.linalg.norm(memory.entity_vectors, axis=1)
    assert (counts >= 2).any() and (counts < 2).any()
    assert np.all(norms[counts >= 2] > 0.99) and np.all(norms[counts < 2] == 0)
    assert sorted(encoder.seen) == sorted(memory.entity_names[i] for i in np.flatnonzero(counts >= 2))
    for i, j, _ in memory.synonyms:
        assert counts[i] >= 2 and counts[j] >= 2


def test_text_vectors_when_asked_or_without_chunk_vectors() -> None:
    asked = build_graph(CHUNKS, trigram_encode, GraphLimits(synonym_cutoff=0.85, triple_vectors=TRIPLE_VECTORS_TEXT),
                        chunk_vectors=chunk_vectors(CHUNKS))
    plain = build_graph(CHUNKS, trigram_encode, LIMITS)
    for memory in (asked, plain):
        assert memory.limits.triple_vectors == TRIPLE_VECTORS_TEXT and memory.triple_owner is None
        np.testing.assert_allclose(memory.triple_vectors[0], trigram_encode([memory.triple_text(0)])[0], atol=1e-6)


def test_mismatched_chunk_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk vectors"):
        build_graph(CHUNKS, trigram_encode, CHUNK_LIMITS, chunk_vectors=chunk_vectors(CHUNKS)[:2])


def test_a_chunks_own_vector_links_its_triples_and_words_break_the_tie(chunked) -> None:
    memory, _ = chunked
    obama = 0  # "Barack Obama was born in Honolulu. Obama served as President of the United States."
    qvec = trigram_encode([CHUNKS[obama].text])[0]
    params = GraphQueryParams(top_triples=2)
    plain = link_triples(memory, qvec, params)
    owned = {t for t in range(memory.n_triples) if memory.triple_owner[t] == obama}
    assert len(owned) >= 2 and {t.triple for t in plain} <= owned
    asked = link_triples(memory, qvec, params, query="who served as President of the United States")
    assert "president" in memory.triple_text(asked[0].triple).casefold()
    assert asked[0].score == pytest.approx(plain[0].score)


def test_save_load_keeps_owners_and_linking(chunked, tmp_path) -> None:
    memory, _ = chunked
    save_graph(memory, tmp_path / "g")
    loaded = load_graph(tmp_path / "g")
    assert loaded.limits == memory.limits
    np.testing.assert_array_equal(loaded.triple_owner, memory.triple_owner)
    qvec = trigram_encode(["Honolulu capital Hawaii"])[0]
    before, after = memory.top_triples(qvec, 5), loaded.top_triples(qvec, 5)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], atol=1e-6)


def test_format_1_graphs_still_load_as_text_vectors(tmp_path) -> None:
    old = build_graph(CHUNKS, trigram_encode, LIMITS)
    save_graph(old, tmp_path / "g")
    strings_path = tmp_path / "g" / STRINGS_FILE
    strings = json.loads(strings_path.read_text())
    strings["format_version"] = 1
    for field in ("triple_vectors", "synonym_min_chunks"):
        strings["limits"].pop(field, None)
    strings_path.write_text(json.dumps(strings))
    loaded = load_graph(tmp_path / "g")
    assert loaded.limits.triple_vectors == TRIPLE_VECTORS_TEXT and loaded.limits.synonym_min_chunks == 1
    assert loaded.triple_owner is None
    qvec = trigram_encode(["Obama born Honolulu"])[0]
    np.testing.assert_array_equal(loaded.top_triples(qvec, 3)[0], old.top_triples(qvec, 3)[0])


def test_live_additions_carry_the_added_chunks_vectors(chunked) -> None:
    memory, _ = chunked
    added = [ChunkText(memory.n_chunks, "Angela Merkel was born in Hamburg. Merkel led Germany.", "Merkel")]
    given = chunk_vectors(added)
    after = update_graph(memory, added, np.ones(memory.n_chunks + 1, dtype=bool), trigram_encode, given)
    new = np.flatnonzero(after.triple_owner == memory.n_chunks)
    assert new.size and new.min() >= memory.n_triples
    own = given[0] / np.linalg.norm(given[0])
    np.testing.assert_allclose(after.extra_triple_vectors[new - memory.n_triples], np.tile(own, (new.size, 1)),
                               atol=1e-6)
    ids, scores = after.top_triples(own, new.size)
    assert set(ids.tolist()) == set(new.tolist()) and scores[0] == pytest.approx(1.0, abs=1e-5)
    hamburg = after.entity_id("hamburg")  # named in one chunk, embedded all the same: new names always are
    assert hamburg is not None and hamburg >= memory.n_entities
    assert np.linalg.norm(after.entity_vectors[hamburg]) > 0.99

"""Tests for graphmem.update: live additions and deletions merged into a built graph memory."""

from __future__ import annotations

import numpy as np
import pytest

from graphmem.memory import ChunkText, GraphMemory, build_graph
from graphmem.update import update_graph
from tests.test_graph_memory import CHUNKS, LIMITS, trigram_encode


@pytest.fixture(scope="module")
def base() -> GraphMemory:
    return build_graph(CHUNKS, trigram_encode, LIMITS)


def triple_of(mem: GraphMemory, head: str, relation: str, tail: str) -> int:
    tid = mem.triple_id(mem.entity_id(head), relation, mem.entity_id(tail))
    assert tid is not None, (head, relation, tail)
    return tid


def test_nothing_changed_keeps_the_base(base: GraphMemory) -> None:
    same = update_graph(base, [], np.ones(base.n_chunks, dtype=bool), trigram_encode)
    assert same.entity_keys == base.entity_keys
    assert same.triple_relation == base.triple_relation
    assert np.array_equal(same.triple_head, base.triple_head) and np.array_equal(same.triple_tail, base.triple_tail)
    assert all(np.array_equal(a, b) for a, b in zip(same.entity_chunks, base.entity_chunks))
    assert same.synonyms == base.synonyms
    assert same.triple_alive.all() and same.extra_triple_vectors is None


def test_deleted_rows_kill_their_triples_and_keep_ids(base: GraphMemory) -> None:
    alive = np.ones(base.n_chunks, dtype=bool)
    alive[3] = False  # "Honolulu is the capital of Hawaii."
    after = update_graph(base, [], alive, trigram_encode)
    assert after.entity_keys == base.entity_keys  # ids stay stable
    capital = triple_of(after, "honolulu", "is the capital of", "hawaii")
    assert not after.triple_alive[capital] and len(after.triple_chunks[capital]) == 0
    assert after.triple_spans[capital] == []
    assert len(after.entity_chunks[after.entity_id("hawaii")]) == 0
    assert after.entity_chunks[after.entity_id("honolulu")].tolist() == [0]
    assert after.describe()["triples"] == base.n_triples - 1
    assert base.triple_alive is None  # the base itself is untouched


def test_added_chunks_merge_known_entities_and_append_new_ones(base: GraphMemory) -> None:
    alive = np.ones(base.n_chunks + 1, dtype=bool)
    added = [ChunkText(base.n_chunks, "Barack Obama was born in Honolulu. Obama visited Reykjavik.", "")]
    after = update_graph(base, added, alive, trigram_encode)
    assert after.entity_keys[: base.n_entities] == base.entity_keys
    born = triple_of(after, "barack obama", "was born in", "honolulu")
    assert born == triple_of(base, "barack obama", "was born in", "honolulu")
    assert after.triple_chunks[born].tolist() == [0, base.n_chunks]
    new = after.entity_id("reykjavik")
    assert new is not None and new >= base.n_entities
    assert after.entity_vectors.shape[0] == after.n_entities
    appended = after.n_triples - base.n_triples
    assert appended > 0 and after.extra_triple_vectors.shape[0] == appended
    assert after.n_chunks == base.n_chunks + 1


def test_new_support_revives_a_dead_triple(base: GraphMemory) -> None:
    alive = np.ones(base.n_chunks, dtype=bool)
    alive[3] = False
    dead = update_graph(base, [], alive, trigram_encode)
    revived = update_graph(
        dead, [ChunkText(base.n_chunks, "Honolulu is the capital of Hawaii.", "Honolulu")],
        np.append(alive, True), trigram_encode,
    )
    capital = triple_of(revived, "honolulu", "is the capital of", "hawaii")
    assert revived.triple_alive[capital]
    assert revived.triple_chunks[capital].tolist() == [base.n_chunks]
    assert revived.triple_spans[capital] == [(base.n_chunks, 0, 34)]

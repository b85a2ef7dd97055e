"""The graph memory of a live collection: the base build's memory with chunks added and deleted.

Rebuilding the memory on every write would re-extract and re-embed the whole collection. Instead
the added chunks are extracted into a small memory of their own and merged in: an entity or
triple already known gains the new chunks as provenance, new ones are appended (ids stay
stable, so the base's FAISS triple index keeps serving). Deleted chunks are removed from every
entity's and triple's provenance; a triple or entity left without any is dead — edgeless,
never linked, seeded or exported (LightRAG#985 is what happens otherwise). Synonym edges of
dead entities go with them; new entities get synonym edges to live ones. Compaction rebuilds
the memory from scratch and drops the dead entries for good.

A memory whose triples carry chunk vectors gives the appended triples their added chunk's vector.
Every new entity gets a name vector whatever ``synonym_min_chunks`` says: a write's handful of
chunks would otherwise leave its entities without synonym edges, and embedding them is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from graphmem.memory import TRIPLE_VECTORS_CHUNK, ChunkText, GraphMemory, build_graph

__all__ = ["update_graph"]


@dataclass
class _Merging:
    """The merged memory's entity and triple lists while one write is applied to them.

    Base ids keep their positions (the base's FAISS triple index refers to them); new entities
    and triples are appended, their vectors kept apart until the end.
    """

    entity_keys: list[str]
    entity_names: list[str]
    entity_kinds: list[str]
    entity_chunks: list[np.ndarray]
    triple_head: list[int]
    triple_tail: list[int]
    triple_relation: list[str]
    triple_chunks: list[np.ndarray]
    triple_spans: list[list[tuple[int, int, int]]]
    triple_alive: np.ndarray
    """Covers the base's triples only; appended triples are alive (see :meth:`all_alive`)."""
    triple_owner: list[int] | None
    """Chunk vectors only: the chunk row whose vector each triple carries (None: text vectors)."""
    new_entity_vectors: list[np.ndarray] = field(default_factory=list)
    new_triple_vectors: list[np.ndarray] = field(default_factory=list)

    def append_entity(self, delta: GraphMemory, j: int) -> int:
        i = len(self.entity_keys)
        self.entity_keys.append(delta.entity_keys[j])
        self.entity_names.append(delta.entity_names[j])
        self.entity_kinds.append(delta.entity_kinds[j])
        self.entity_chunks.append(delta.entity_chunks[j])
        self.new_entity_vectors.append(delta.entity_vectors[j])
        return i

    def append_triple(self, head: int, relation: str, tail: int, delta: GraphMemory, j: int) -> None:
        self.triple_head.append(head)
        self.triple_tail.append(tail)
        self.triple_relation.append(relation)
        self.triple_chunks.append(delta.triple_chunks[j])
        self.triple_spans.append(list(delta.triple_spans[j]))
        self.new_triple_vectors.append(delta.triple_vectors[j])
        if self.triple_owner is not None:
            self.triple_owner.append(int(delta.triple_owner[j]))

    def support_triple(self, i: int, delta: GraphMemory, j: int) -> None:
        """Base triple ``i`` (perhaps dead) is supported by the new chunks of delta triple ``j``."""
        self.triple_chunks[i] = np.union1d(self.triple_chunks[i], delta.triple_chunks[j]).astype(np.int32)
        self.triple_spans[i] = self.triple_spans[i] + list(delta.triple_spans[j])
        self.triple_alive[i] = True

    def all_alive(self) -> np.ndarray:
        return np.concatenate(
            [self.triple_alive, np.ones(len(self.triple_relation) - self.triple_alive.size, dtype=bool)]
        )


def update_graph(base: GraphMemory, added: Sequence[ChunkText], alive_rows: np.ndarray,
                 encode: Callable[[list[str]], np.ndarray], chunk_vectors: np.ndarray | None = None) -> GraphMemory:
    """``base`` with ``added`` chunks merged in and only chunk rows where ``alive_rows`` holds kept.

    ``alive_rows`` covers every chunk row of the live collection (base rows first); ``encode``
    is the collection's embedder (through its embedding cache). ``chunk_vectors`` are the added
    chunks' own vectors (aligned with ``added``); when the base's triples carry chunk vectors and
    none are given, the added chunks' texts are encoded for them.
    """
    alive_rows = np.asarray(alive_rows, dtype=bool)
    merging = _live_base(base, alive_rows)
    delta_synonyms: list[tuple[int, int, float]] = []
    delta = build_graph(list(added), encode, replace(base.limits, synonym_min_chunks=1),
                        chunk_vectors=_added_chunk_vectors(base, added, encode, chunk_vectors)) if added else None
    if delta is not None:
        entity_map = _merge_entities(merging, base, delta)
        _merge_triples(merging, base, delta, entity_map)
        delta_synonyms = _mapped_synonyms(delta, entity_map)
    entity_vectors, extra_triple_vectors = _merged_vectors(base, merging)
    synonyms = _merged_synonyms(base, merging.entity_chunks, entity_vectors, delta_synonyms)
    return GraphMemory(
        entity_keys=merging.entity_keys,
        entity_names=merging.entity_names,
        entity_kinds=merging.entity_kinds,
        entity_chunks=merging.entity_chunks,
        triple_head=np.asarray(merging.triple_head, dtype=np.int32),
        triple_tail=np.asarray(merging.triple_tail, dtype=np.int32),
        triple_relation=merging.triple_relation,
        triple_chunks=merging.triple_chunks,
        triple_spans=merging.triple_spans,
        entity_vectors=entity_vectors,
        triple_vectors=base.triple_vectors,
        extra_triple_vectors=extra_triple_vectors,
        synonyms=synonyms,
        n_chunks=int(alive_rows.shape[0]),
        stage_seconds=dict(base.stage_seconds),
        limits=base.limits,
        triple_index=base.triple_index,
        triple_alive=merging.all_alive(),
        triple_owner=None if merging.triple_owner is None else np.asarray(merging.triple_owner, dtype=np.int64),
    )


def _added_chunk_vectors(base: GraphMemory, added: Sequence[ChunkText], encode: Callable[[list[str]], np.ndarray],
                         chunk_vectors: np.ndarray | None) -> np.ndarray | None:
    """The vectors the added chunks' triples carry: None when the base's triples embed their texts."""
    if base.triple_owner is None or base.limits.triple_vectors != TRIPLE_VECTORS_CHUNK or not added:
        return None
    if chunk_vectors is None:
        return np.asarray(encode([c.text for c in added]), dtype=np.float32)
    return np.asarray(chunk_vectors, dtype=np.float32)


def _live_base(base: GraphMemory, alive_rows: np.ndarray) -> _Merging:
    """Copies of the base's lists with deleted chunk rows gone from every provenance; triples
    left without a chunk are marked dead (entities without one are dead by having none)."""
    entity_chunks, _ = _without_dead(base.entity_chunks, alive_rows)
    triple_chunks, touched = _without_dead(base.triple_chunks, alive_rows)
    triple_spans = list(base.triple_spans)
    for t in touched:
        triple_spans[t] = [span for span in triple_spans[t] if alive_rows[span[0]]]
    triple_alive = np.ones(base.n_triples, dtype=bool) if base.triple_alive is None else base.triple_alive.copy()
    triple_alive[touched] = [len(triple_chunks[t]) > 0 for t in touched]
    return _Merging(
        entity_keys=list(base.entity_keys),
        entity_names=list(base.entity_names),
        entity_kinds=list(base.entity_kinds),
        entity_chunks=entity_chunks,
        triple_head=base.triple_head.tolist(),
        triple_tail=base.triple_tail.tolist(),
        triple_relation=list(base.triple_relation),
        triple_chunks=triple_chunks,
        triple_spans=triple_spans,
        triple_alive=triple_alive,
        triple_owner=None if base.triple_owner is None else base.triple_owner.tolist(),
    )


def _merge_entities(merging: _Merging, base: GraphMemory, delta: GraphMemory) -> np.ndarray:
    """Merge the delta's entities by key; returns the merged id of each delta entity."""
    entity_map = np.empty(delta.n_entities, dtype=np.int64)
    for j, key in enumerate(delta.entity_keys):
        i = base.entity_id(key)
        if i is None:
            i = merging.append_entity(delta, j)
        else:
            merging.entity_chunks[i] = np.union1d(merging.entity_chunks[i], delta.entity_chunks[j]).astype(np.int32)
        entity_map[j] = i
    return entity_map


def _merge_triples(merging: _Merging, base: GraphMemory, delta: GraphMemory, entity_map: np.ndarray) -> None:
    """Merge the delta's triples into the base's or append them.

    The delta's triples are distinct and ``entity_map`` is one-to-one, so each one either is a
    base triple (both ends already known) or is new.
    """
    first_new_entity = base.n_entities
    for j in range(delta.n_triples):
        head, relation, tail = int(entity_map[delta.triple_head[j]]), delta.triple_relation[j], int(
            entity_map[delta.triple_tail[j]])
        i = base.triple_id(head, relation, tail) if head < first_new_entity and tail < first_new_entity else None
        if i is None:
            merging.append_triple(head, relation, tail, delta, j)
        else:
            merging.support_triple(i, delta, j)


def _mapped_synonyms(delta: GraphMemory, entity_map: np.ndarray) -> list[tuple[int, int, float]]:
    """The delta's synonym edges in merged ids, still ordered (low id, high id)."""
    return [(int(min(entity_map[a], entity_map[b])), int(max(entity_map[a], entity_map[b])), c)
            for a, b, c in delta.synonyms]


def _merged_vectors(base: GraphMemory, merging: _Merging) -> tuple[np.ndarray, np.ndarray | None]:
    """Entity vectors with the new entities' rows appended, and the live-update triple vectors.

    New triple vectors go to ``extra_triple_vectors`` so that the base's (large) triple matrix is
    never copied on a write.
    """
    dim = base.entity_vectors.shape[1] if base.entity_vectors.ndim == 2 else 0
    entity_vectors = _stack(base.entity_vectors, merging.new_entity_vectors, dim)
    extra_triple_vectors = base.extra_triple_vectors
    if merging.new_triple_vectors:
        extra_triple_vectors = _stack(np.zeros((0, dim), np.float32) if extra_triple_vectors is None
                                      else extra_triple_vectors, merging.new_triple_vectors, dim)
    return entity_vectors, extra_triple_vectors


def _merged_synonyms(base: GraphMemory, entity_chunks: list[np.ndarray], entity_vectors: np.ndarray,
                     delta_synonyms: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """The base's synonym edges between live entities, plus the delta's and the new entities' own.

    A pair found more than once keeps its highest cosine.
    """
    first_new_entity = base.n_entities
    entity_alive = np.fromiter((len(c) > 0 for c in entity_chunks), dtype=bool, count=len(entity_chunks))
    synonyms = {(i, j): c for i, j, c in base.synonyms if entity_alive[i] and entity_alive[j]}
    for i, j, c in delta_synonyms + _new_entity_synonyms(entity_vectors, first_new_entity, entity_alive, base):
        if i != j:
            synonyms[(i, j)] = max(c, synonyms.get((i, j), 0.0))
    return sorted((i, j, c) for (i, j), c in synonyms.items())


def _without_dead(parts: list[np.ndarray], alive_rows: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """``parts`` with dead chunk rows removed, and the indices of the parts that lost any.

    Vectorised over all parts at once: a graph at 100k chunks has 500k triples, and a Python
    pass over every one of them would dominate each write."""
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    if not lengths.sum() or alive_rows.all():
        return list(parts), np.zeros(0, np.int64)
    dead = ~alive_rows[np.concatenate(parts).astype(np.int64)]
    owner = np.repeat(np.arange(len(parts)), lengths)
    touched = np.unique(owner[dead])
    out = list(parts)
    for i in touched:
        out[i] = parts[i][alive_rows[parts[i]]]
    return out, touched


def _stack(base: np.ndarray, extra: list[np.ndarray], dim: int) -> np.ndarray:
    if not extra:
        return base
    return np.ascontiguousarray(np.vstack([base.reshape(-1, dim), np.stack(extra)]), dtype=np.float32)


def _new_entity_synonyms(vectors: np.ndarray, first_new: int, alive: np.ndarray,
                         base: GraphMemory) -> list[tuple[int, int, float]]:
    """Synonym edges from each new entity to its nearest live older entities (same rule as the build)."""
    if vectors.shape[0] <= first_new or first_new == 0:
        return []
    limits = base.limits
    new = vectors[first_new:]
    dead = ~alive[:first_new]
    if dead.all():
        return []
    older_vectors = vectors[:first_new].T  # a view: no copy of the base's entity vectors
    out = []
    for start in range(0, new.shape[0], 256):
        cos = new[start : start + 256] @ older_vectors
        cos[:, dead] = -np.inf
        for r, row in enumerate(cos):
            top = np.argpartition(-row, min(limits.synonym_neighbours, row.size - 1))[: limits.synonym_neighbours]
            out.extend((int(t), first_new + start + r, float(min(row[t], 1.0)))
                       for t in top if row[t] >= limits.cosine_cutoff())
    return out

"""The graph memory of a live collection: the base build's memory with chunks added and deleted.

Rebuilding the memory on every write would re-extract and re-embed the whole collection. Instead
the added chunks are extracted into a small memory of their own and merged in: an entity or
triple already known gains the new chunks as provenance, new ones are appended (ids stay
stable, so the base's FAISS triple index keeps serving). Deleted chunks are removed from every
entity's and triple's provenance; a triple or entity left without any is dead — edgeless,
never linked, seeded or exported (LightRAG#985 is what happens otherwise). Synonym edges of
dead entities go with them; new entities get synonym edges to live ones. Compaction rebuilds
the memory from scratch and drops the dead entries for good.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from graphmem.memory import ChunkText, GraphMemory, build_graph

__all__ = ["update_graph"]


def update_graph(base: GraphMemory, added: Sequence[ChunkText], alive_rows: np.ndarray,
                 encode: Callable[[list[str]], np.ndarray]) -> GraphMemory:
    """``base`` with ``added`` chunks merged in and only chunk rows where ``alive_rows`` holds kept.

    ``alive_rows`` covers every chunk row of the live collection (base rows first); ``encode``
    is the collection's embedder (through its embedding cache).
    """
    alive_rows = np.asarray(alive_rows, dtype=bool)

    entity_keys, entity_names, entity_kinds = list(base.entity_keys), list(base.entity_names), list(base.entity_kinds)
    entity_chunks, _ = _without_dead(base.entity_chunks, alive_rows)
    triple_head, triple_tail = base.triple_head.tolist(), base.triple_tail.tolist()
    triple_relation = list(base.triple_relation)
    triple_chunks, touched = _without_dead(base.triple_chunks, alive_rows)
    triple_spans = list(base.triple_spans)
    for t in touched:
        triple_spans[t] = [span for span in triple_spans[t] if alive_rows[span[0]]]
    triple_alive = np.ones(base.n_triples, dtype=bool) if base.triple_alive is None else base.triple_alive.copy()
    triple_alive[touched] = [len(triple_chunks[t]) > 0 for t in touched]
    new_entity_vectors: list[np.ndarray] = []
    new_triple_vectors: list[np.ndarray] = []
    delta_synonyms: list[tuple[int, int, float]] = []
    first_new_entity = base.n_entities

    delta = build_graph(list(added), encode, base.limits) if added else None
    if delta is not None:
        entity_map = np.empty(delta.n_entities, dtype=np.int64)
        for j, key in enumerate(delta.entity_keys):
            i = base.entity_id(key)
            if i is None:
                i = len(entity_keys)
                entity_keys.append(key)
                entity_names.append(delta.entity_names[j])
                entity_kinds.append(delta.entity_kinds[j])
                entity_chunks.append(delta.entity_chunks[j])
                new_entity_vectors.append(delta.entity_vectors[j])
            else:
                entity_chunks[i] = np.union1d(entity_chunks[i], delta.entity_chunks[j]).astype(np.int32)
            entity_map[j] = i
        # The delta's triples are distinct and entity_map is one-to-one, so each one either is a
        # base triple (both ends already known) or is new.
        for j in range(delta.n_triples):
            head, relation, tail = int(entity_map[delta.triple_head[j]]), delta.triple_relation[j], int(
                entity_map[delta.triple_tail[j]])
            i = base.triple_id(head, relation, tail) if head < first_new_entity and tail < first_new_entity else None
            if i is None:
                triple_head.append(head)
                triple_tail.append(tail)
                triple_relation.append(relation)
                triple_chunks.append(delta.triple_chunks[j])
                triple_spans.append(list(delta.triple_spans[j]))
                new_triple_vectors.append(delta.triple_vectors[j])
            else:
                triple_chunks[i] = np.union1d(triple_chunks[i], delta.triple_chunks[j]).astype(np.int32)
                triple_spans[i] = triple_spans[i] + list(delta.triple_spans[j])
                triple_alive[i] = True  # a base triple (perhaps dead) supported by the new chunks
        delta_synonyms = [(int(min(entity_map[a], entity_map[b])), int(max(entity_map[a], entity_map[b])), c)
                          for a, b, c in delta.synonyms]

    triple_alive = np.concatenate([triple_alive, np.ones(len(triple_relation) - triple_alive.size, dtype=bool)])
    dim = base.entity_vectors.shape[1] if base.entity_vectors.ndim == 2 else 0
    entity_vectors = _stack(base.entity_vectors, new_entity_vectors, dim)
    extra_triple_vectors = base.extra_triple_vectors
    if new_triple_vectors:
        extra_triple_vectors = _stack(np.zeros((0, dim), np.float32) if extra_triple_vectors is None
                                      else extra_triple_vectors, new_triple_vectors, dim)
    entity_alive = np.fromiter((len(c) > 0 for c in entity_chunks), dtype=bool, count=len(entity_chunks))
    synonyms = {(i, j): c for i, j, c in base.synonyms if entity_alive[i] and entity_alive[j]}
    for i, j, c in delta_synonyms + _new_entity_synonyms(entity_vectors, first_new_entity, entity_alive, base):
        if i != j:
            synonyms[(i, j)] = max(c, synonyms.get((i, j), 0.0))
    return GraphMemory(
        entity_keys=entity_keys,
        entity_names=entity_names,
        entity_kinds=entity_kinds,
        entity_chunks=entity_chunks,
        triple_head=np.asarray(triple_head, dtype=np.int32),
        triple_tail=np.asarray(triple_tail, dtype=np.int32),
        triple_relation=triple_relation,
        triple_chunks=triple_chunks,
        triple_spans=triple_spans,
        entity_vectors=entity_vectors,
        triple_vectors=base.triple_vectors,
        extra_triple_vectors=extra_triple_vectors,
        synonyms=sorted((i, j, c) for (i, j), c in synonyms.items()),
        n_chunks=int(alive_rows.shape[0]),
        stage_seconds=dict(base.stage_seconds),
        limits=base.limits,
        triple_index=base.triple_index,
        triple_alive=triple_alive,
    )


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
                       for t in top if row[t] >= limits.synonym_threshold)
    return out

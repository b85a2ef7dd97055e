"""The explicit evidence subgraph of a query: linked triples with the chunks that support them.

This is what makes the graph channel inspectable: every triple names the chunks it was
extracted from, as citations the agent can use directly.
"""

from __future__ import annotations

from graphmem.retrieve import GraphResult
from indexing.build_format import LEG_GRAPH
from indexing.collection import Collection
from service.engine.graph import graph_for_query
from service.engine.model import citation

MAX_SUPPORT = 3
"""Supporting chunks listed per triple (the most are not more useful to a reader)."""
MAX_ENTITIES = 20


def subgraph_for(collection: Collection, query: str, graph: GraphResult | None) -> dict | None:
    """JSON-ready subgraph; runs the graph channel when the search mode did not. None while the
    collection's graph tier is still being built (the response's ``pending`` says when)."""
    if graph is None and LEG_GRAPH in collection.pending:
        return None
    if graph is None:
        graph = graph_for_query(collection, query)
    memory = collection.graph
    rows = sorted({int(r) for linked in graph.triples for r in memory.triple_chunks[linked.triple][:MAX_SUPPORT]})
    records = {r.chunk_row: r for r in collection.store.chunks(rows)} if rows else {}
    triples = []
    for linked in graph.triples:
        t = linked.triple
        support = [records[int(r)] for r in memory.triple_chunks[t][:MAX_SUPPORT] if int(r) in records]
        triples.append({
            "head": memory.entity_names[memory.triple_head[t]],
            "relation": memory.triple_relation[t],
            "tail": memory.entity_names[memory.triple_tail[t]],
            "score": round(linked.score, 4),
            "chunk_ids": [r.chunk_id for r in support],
            "citations": [citation(r.title, r.chunk_index) for r in support],
        })
    entities = [{"name": memory.entity_names[e], "key": memory.entity_keys[e], "kind": memory.entity_kinds[e],
                 "score": round(weight, 4)} for e, weight in graph.entities[:MAX_ENTITIES]]
    return {"triples": triples, "entities": entities}

"""The graph channel: the query linked to triples, then personalized PageRank to chunks."""

from __future__ import annotations

import numpy as np

from graphmem.retrieve import GraphResult, graph_search
from indexing.collection import Collection
from service.engine.model import InvalidQuery
from service.engine.query_vector import query_vector


def graph_channel(collection: Collection, query: str, qvec: np.ndarray, dense_rows: np.ndarray,
                  dense_cos: np.ndarray) -> GraphResult:
    """The channel seeded with the dense leg's candidates (they anchor the walk in chunks)."""
    memory = collection.graph
    if memory is None:
        raise InvalidQuery(f"collection {collection.name!r} was built without the graph memory "
                           "(RAGMEM_GRAPH=false); re-index it to use the graph modes")
    return graph_search(memory, query, qvec, dense_rows, dense_cos, collection.graph_params)


def graph_for_query(collection: Collection, query: str, pool: int = 100) -> GraphResult:
    """The graph channel alone (for ``include_subgraph`` in modes that do not use it)."""
    qvec, _ = query_vector(collection, query, collection.lexical.term_coverage(collection.analyzer.tokenize(query)))
    dense_rows, dense_cos = collection.dense.top(qvec, pool, None)
    return graph_channel(collection, query, qvec, dense_rows, dense_cos)

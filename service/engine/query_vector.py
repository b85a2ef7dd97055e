"""The query's vector in its collection's embedding space, with the spaces weighted for this query."""

from __future__ import annotations

import numpy as np

from indexing.collection import Collection
from indexing.joint_embedder import JointEmbedder
from service.engine.fusion import space_weights


def query_vector(collection: Collection, query: str, term_coverage: float) -> tuple[np.ndarray, tuple[float, ...]]:
    """(1, dim) query vector and the weights of the spaces in it (``fusion.space_weights``; (1,) for one space).

    A joint space's weights depend on the query (its term coverage), so they are applied here, on
    the query side; the index holds every space unweighted."""
    embedder = collection.embedder
    if not isinstance(embedder, JointEmbedder):
        return embedder.encode_query(query), (1.0,)
    weights = space_weights(term_coverage, collection.manifest.embedder.spreads)
    if len(weights) != len(embedder.parts):  # a build whose spreads were not recorded: equal weights
        weights = tuple([1.0 / len(embedder.parts)] * len(embedder.parts))
    return embedder.encode_query_mixed(query, weights), weights

"""Every candidate of a mode, best first: the legs (BM25, dense, graph) and their fusion.

Each leg runs inside a named stage (``service.engine.stages``) so a benchmark can time this
exact code path instead of a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphmem.retrieve import GraphResult
from indexing.collection import Collection
from indexing.lexical_index import top_rows
from service.engine import fusion
from service.engine.filters import allowed_rows
from service.engine.graph import graph_channel
from service.engine.limits import GRAPH_MODES
from service.engine.model import SearchFilters
from service.engine.query_vector import query_vector
from service.engine.requests import check_mode
from service.engine.stages import StageTimer, stage


@dataclass
class Ranked:
    """Candidates best first; ``legs`` holds per-candidate score components aligned with ``rows``."""

    rows: np.ndarray
    score: np.ndarray
    legs: dict[str, np.ndarray] = field(default_factory=dict)
    constants: dict[str, float] = field(default_factory=dict)
    graph: GraphResult | None = None

    def components(self, position: int) -> dict[str, float]:
        """Built only for returned hits: dicts for every pooled candidate cost more than the fusion."""
        out = {name: float(values[position]) for name, values in self.legs.items()}
        out.update(self.constants)
        return out


def rank_candidates(collection: Collection, query: str, mode: str, pool: int,
                    filters: SearchFilters | None = None, timer: StageTimer | None = None) -> Ranked:
    """All candidates of the mode, best first, with the fused score and each leg's components.

    ``mode`` is one the collection can answer (``retrieval.answered_mode``): its legs are ready."""
    check_mode(mode)
    with stage(timer, "filter"):
        mask = allowed_rows(collection, filters)
    with stage(timer, "analyze"):
        terms = collection.analyzer.tokenize(query)
    if mode == "bm25":
        return _bm25_only(collection, terms, pool, mask, timer)
    coverage = collection.lexical.term_coverage(terms)
    with stage(timer, "encode"):
        qvec, spaces = query_vector(collection, query, coverage)
    with stage(timer, "dense"):
        dense_rows, dense_cos = collection.dense.top(qvec, pool, mask)
    if mode == "dense":
        return Ranked(dense_rows, np.clip(dense_cos, 0.0, 1.0), {"dense": dense_cos}, _space_constants(spaces))
    graph = graph_rows = None
    if mode in GRAPH_MODES:
        with stage(timer, "graph"):
            graph = graph_channel(collection, query, qvec, dense_rows, dense_cos)
            graph_scores = graph.chunk_scores if mask is None else np.where(mask, graph.chunk_scores, 0.0)
            graph_rows = top_rows(graph_scores, pool)
        if mode == "graph":
            mass = graph_scores[graph_rows]
            best = float(mass[0]) if mass.size else 1.0
            return Ranked(graph_rows, (mass / best).astype(np.float32), {"graph": mass}, graph=graph)
    extra = dense_rows if graph_rows is None else np.concatenate([dense_rows, graph_rows])
    with stage(timer, "lexical"):
        lexical = collection.lexical.search(terms, pool, mask, extra_rows=extra)
    with stage(timer, "rescore"):
        legs = _leg_scores(collection, lexical, extra, qvec, graph)
    if legs.rows.size == 0:
        return Ranked(legs.rows, np.zeros(0, np.float32), graph=graph)
    with stage(timer, "fuse"):
        fused, constants = _fuse(coverage, mode, legs)
    return Ranked(fused.rows, fused.score, fused.components(), {**constants, **_space_constants(spaces)}, graph=graph)


def _space_constants(weights: tuple[float, ...]) -> dict[str, float]:
    """The cross-lingual space's weight inside the dense score, for a joint space (every hit reports it)."""
    return {} if len(weights) < 2 else {"cross_lingual_weight": round(sum(weights[1:]), 4)}


def _bm25_only(collection: Collection, terms: list[str], pool: int, mask: np.ndarray | None,
               timer: StageTimer | None) -> Ranked:
    """BM25 scores divided by the best one, so the top hit scores 1.0."""
    with stage(timer, "lexical"):
        lexical = collection.lexical.search(terms, pool, mask)
    best = float(lexical.scores[0]) if lexical.rows.size else 1.0
    norm = (lexical.scores / best).astype(np.float32)
    return Ranked(lexical.rows, norm, {"bm25": lexical.scores, "bm25_norm": norm})


def _leg_scores(collection: Collection, lexical, extra: np.ndarray, qvec: np.ndarray,
                graph: GraphResult | None) -> fusion.LegScores:
    """Every candidate any leg proposed, with each leg's raw score for it: fusion standardises over
    this union, so a chunk only one leg found still gets the other leg's (low) score."""
    rows, first = np.unique(np.concatenate([lexical.rows, extra]), return_index=True)
    if rows.size == 0:
        empty = np.zeros(0, np.float32)
        return fusion.LegScores(rows=rows, bm25=empty, dense=empty)
    bm25 = np.concatenate([lexical.scores, lexical.extra_scores])[first]
    dense = collection.dense.reconstruct(rows) @ qvec[0]
    return fusion.LegScores(rows=rows, bm25=bm25.astype(np.float32), dense=dense.astype(np.float32),
                            graph=None if graph is None else graph.chunk_scores[rows])


def _fuse(term_coverage: float, mode: str, legs: fusion.LegScores) -> tuple[fusion.Fused, dict[str, float]]:
    """The mode's fusion rule with the query's weights (``fusion.surface_weights``); the weights are
    returned as well because every hit reports them beside its score."""
    weights = fusion.surface_weights(term_coverage)
    bm25_weight = weights.bm25
    constants = {"bm25_weight": round(bm25_weight, 4), "term_coverage": round(term_coverage, 4)}
    if mode == "hybrid+graph":
        fused = fusion.interleave_with_graph(legs, bm25_weight, weights.graph_share)
        constants["graph_share"] = round(weights.graph_share, 4)
    else:
        fused = fusion.FUSIONS[mode](legs, bm25_weight)
    constants["bm25_weight"] = round(fused.bm25_weight, 4)
    return fused, constants

"""Query orchestration over one collection: the legs, fusion, filters and the agents' diversity rules.

The service, the MCP tools and the eval harness all call ``search`` so every number the eval
reports is produced by exactly the code that answers agents.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from graphmem.retrieve import GraphResult, graph_search
from indexing.collection import Collection
from indexing.lexical_index import top_rows
from indexing.store import ChunkRecord
from service import fusion

GRAPH_MODES = ("graph", "hybrid+graph")
MODES = ("hybrid", "bm25", "dense", *GRAPH_MODES, *(name for name in fusion.FUSIONS if name != "hybrid"))
DEFAULT_MODE = "hybrid+graph"
"""The best mode in docs/EVAL.md; collections built without the graph answer it as plain hybrid."""
NEAR_DUPLICATE_COSINE = 0.95
"""Two chunks whose embeddings have cosine >= this are near-duplicates (reposted articles)."""


class InvalidQuery(ValueError):
    pass


@dataclass
class SearchFilters:
    doc_ids: list[str] | None = None
    title_contains: str | None = None
    url_contains: str | None = None
    metadata: dict[str, object] | None = None

    def is_empty(self) -> bool:
        return not (self.doc_ids or self.title_contains or self.url_contains or self.metadata)


@dataclass
class SearchParams:
    top_k: int = 10
    diverse: bool = True
    min_docs: int = 5
    max_per_doc: int = 2
    mode: str = DEFAULT_MODE
    filters: SearchFilters | None = None
    pool: int | None = None
    """Candidates taken from each leg before fusion; default max(100, 10 * top_k)."""


def citation(title: str, chunk_index: int) -> str:
    """The agents' citation form: the title's first 50 characters and the chunk index."""
    return f'[long_context: "{title[:50]}", chunk {chunk_index}]'


@dataclass
class Hit:
    rank: int
    record: ChunkRecord
    score: float
    scores: dict[str, float]

    @property
    def citation(self) -> str:
        return citation(self.record.title, self.record.chunk_index)


@dataclass
class SearchResult:
    query: str
    collection: str
    build_id: str
    mode: str
    hits: list[Hit]
    took_ms: float
    candidates: int = 0
    graph: GraphResult | None = None
    """The graph channel's linked triples and entities (graph modes only)."""


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


def _allowed_rows(collection: Collection, filters: SearchFilters | None) -> np.ndarray | None:
    """Boolean mask over chunk rows that pass the filters (None: no filtering)."""
    if filters is None or filters.is_empty():
        return None
    allowed_docs = []
    wanted_ids = set(filters.doc_ids or [])
    for doc in collection.store.documents():
        if wanted_ids and doc["doc_id"] not in wanted_ids:
            continue
        if filters.title_contains and filters.title_contains.lower() not in doc["title"].lower():
            continue
        if filters.url_contains and filters.url_contains.lower() not in (doc["url"] or "").lower():
            continue
        allowed_docs.append(doc["doc_row"])
    mask = np.isin(collection.store.chunk_doc_rows, np.array(allowed_docs, dtype=np.int64))
    if filters.metadata and mask.any():
        rows = np.flatnonzero(mask)
        records = collection.store.chunks(rows.tolist())
        keep = {r.chunk_row for r in records
                if all(r.metadata.get(key) == value for key, value in filters.metadata.items())}
        mask = np.isin(np.arange(mask.shape[0]), np.array(sorted(keep), dtype=np.int64))
    return mask


def _dense_top(collection: Collection, qvec: np.ndarray, pool: int, mask: np.ndarray | None):
    return collection.dense.top(qvec, pool, mask)


def rank_candidates(collection: Collection, query: str, mode: str, pool: int,
                    filters: SearchFilters | None = None) -> Ranked:
    """All candidates of the mode, best first, with the fused score and each leg's components."""
    mask = _allowed_rows(collection, filters)
    terms = collection.analyzer.tokenize(query)
    if mode == "bm25":
        lexical = collection.lexical.search(terms, pool, mask)
        best = float(lexical.scores[0]) if lexical.rows.size else 1.0
        norm = (lexical.scores / best).astype(np.float32)
        return Ranked(lexical.rows, norm, {"bm25": lexical.scores, "bm25_norm": norm})
    qvec = collection.embedder.encode_query(query)
    if mode == "dense":
        rows, cos = _dense_top(collection, qvec, pool, mask)
        return Ranked(rows, np.clip(cos, 0.0, 1.0), {"dense": cos})
    if mode not in fusion.FUSIONS and mode not in GRAPH_MODES:
        raise InvalidQuery(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "hybrid+graph" and not collection.has_graph:
        mode = "hybrid"  # the default must work on every collection; only explicit "graph" insists
    dense_rows, dense_cos = _dense_top(collection, qvec, pool, mask)
    graph = graph_rows = None
    if mode in GRAPH_MODES:
        graph = _graph_channel(collection, query, qvec, dense_rows, dense_cos)
        graph_scores = graph.chunk_scores if mask is None else np.where(mask, graph.chunk_scores, 0.0)
        graph_rows = top_rows(graph_scores, pool)
        if mode == "graph":
            mass = graph_scores[graph_rows]
            best = float(mass[0]) if mass.size else 1.0
            return Ranked(graph_rows, (mass / best).astype(np.float32), {"graph": mass}, graph=graph)
    extra = dense_rows if graph_rows is None else np.concatenate([dense_rows, graph_rows])
    lexical = collection.lexical.search(terms, pool, mask, extra_rows=extra)
    rows, first = np.unique(np.concatenate([lexical.rows, extra]), return_index=True)
    if rows.size == 0:
        return Ranked(rows, np.zeros(0, np.float32), graph=graph)
    bm25 = np.concatenate([lexical.scores, lexical.extra_scores])[first]
    dense = collection.dense.reconstruct(rows) @ qvec[0]
    legs = fusion.LegScores(rows=rows, bm25=bm25.astype(np.float32), dense=dense.astype(np.float32),
                            graph=None if graph is None else graph.chunk_scores[rows])
    multilingual = bool(collection.manifest.get("embedder", {}).get("multilingual", False))
    bm25_weight = fusion.adaptive_bm25_weight(query, multilingual)
    constants = {"bm25_weight": round(bm25_weight, 4)}
    if mode == "hybrid+graph":
        graph_weight = fusion.graph_weight_for(bm25_weight)
        fused = fusion.zscore_with_graph(legs, bm25_weight, graph_weight)
        constants["graph_weight"] = round(graph_weight, 4)
    else:
        fused = fusion.FUSIONS[mode](legs, bm25_weight)
    constants["bm25_weight"] = round(fused.bm25_weight, 4)
    return Ranked(fused.rows, fused.score, fused.components(), constants, graph=graph)


def graph_for_query(collection: Collection, query: str, pool: int = 100) -> GraphResult:
    """The graph channel alone (for ``include_subgraph`` in modes that do not use it)."""
    qvec = collection.embedder.encode_query(query)
    dense_rows, dense_cos = _dense_top(collection, qvec, pool, None)
    return _graph_channel(collection, query, qvec, dense_rows, dense_cos)


def _graph_channel(collection: Collection, query: str, qvec: np.ndarray, dense_rows: np.ndarray,
                   dense_cos: np.ndarray) -> GraphResult:
    memory = collection.graph
    if memory is None:
        raise InvalidQuery(f"collection {collection.name!r} was built without the graph memory "
                           "(RAGMEM_GRAPH=false); re-index it to use the graph modes")
    return graph_search(memory, query, qvec, dense_rows, dense_cos, collection.graph_params)


def select(collection: Collection, ranked: Ranked, params: SearchParams) -> list[int]:
    """Positions in ``ranked`` to return.

    With ``diverse``: first the best chunk of each of the top ``min_docs`` documents, then fill
    to ``top_k`` in score order with at most ``max_per_doc`` chunks per document, skipping any
    chunk whose embedding has cosine >= NEAR_DUPLICATE_COSINE with one already chosen (these
    corpora repost one article under several titles). Without it: the plain top_k.
    """
    n = len(ranked.rows)
    if not params.diverse:
        return list(range(min(params.top_k, n)))
    doc_of = collection.store.chunk_doc_rows[ranked.rows] if n else np.zeros(0, np.int64)
    vectors = collection.dense.reconstruct(ranked.rows[: min(n, max(params.top_k * 10, 100))])
    chosen: list[int] = []
    per_doc: Counter = Counter()

    def near_duplicate(position: int) -> bool:
        if position >= len(vectors) or not chosen:
            return False
        picked = vectors[[c for c in chosen if c < len(vectors)]]
        return bool(picked.size) and float((picked @ vectors[position]).max()) >= NEAR_DUPLICATE_COSINE

    rejected: set[int] = set()

    def take(position: int) -> None:
        if near_duplicate(position):
            rejected.add(position)
        else:
            chosen.append(position)
            per_doc[doc_of[position]] += 1

    want_docs = min(params.min_docs, params.top_k)
    for position in range(n):  # the best chunk of each of the top min_docs documents
        if len(per_doc) >= want_docs:
            break
        if doc_of[position] not in per_doc:
            take(position)
    for position in range(n):  # then fill in score order, max_per_doc per document
        if len(chosen) >= params.top_k:
            break
        if position not in chosen and position not in rejected and per_doc[doc_of[position]] < params.max_per_doc:
            take(position)
    return sorted(chosen)


def search(collection: Collection, query: str, params: SearchParams) -> SearchResult:
    started = time.perf_counter()
    if not query or not query.strip():
        raise InvalidQuery("query must not be empty")
    pool = params.pool or max(100, params.top_k * 10)
    ranked = rank_candidates(collection, query, params.mode, pool, params.filters)
    positions = select(collection, ranked, params)
    records = collection.store.chunks([int(ranked.rows[p]) for p in positions])
    hits = [Hit(rank=i + 1, record=record, score=round(float(ranked.score[p]), 6), scores=ranked.components(p))
            for i, (p, record) in enumerate(zip(positions, records))]
    return SearchResult(query=query, collection=collection.name, build_id=collection.build_id, mode=params.mode,
                        hits=hits, took_ms=round((time.perf_counter() - started) * 1000, 3),
                        candidates=len(ranked.rows), graph=ranked.graph)

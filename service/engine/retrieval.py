"""``search``: one query over one collection, from the ranked candidates to cited hits.

The service, the MCP tools and the eval harness all call ``search`` so every number the eval
reports is produced by exactly the code that answers agents.
"""

from __future__ import annotations

import time

from indexing.collection import Collection
from service.engine.diversity import select
from service.engine.limits import MODE_LEGS, answerable_mode
from service.engine.model import Hit, InvalidQuery, SearchParams, SearchResult
from service.engine.ranking import rank_candidates
from service.engine.requests import check_query
from service.engine.stages import StageTimer, stage


def search(collection: Collection, query: str, params: SearchParams,
           timer: StageTimer | None = None) -> SearchResult:
    """The best chunks for ``query`` under ``params``; ``timer`` (optional) receives each stage's
    duration (see ``service.engine.stages``).

    The result's ``mode`` is the mode answered: ``params.mode`` once the collection has its legs,
    before that the best mode its published legs allow (``limits.answerable_mode``).
    """
    started = time.perf_counter()
    check_query(query, params.max_query_chars)
    mode = answered_mode(collection, params.mode)
    pool = params.pool or max(100, params.top_k * 10)
    ranked = rank_candidates(collection, query, mode, pool, params.filters, timer)
    with stage(timer, "select"):
        positions = select(collection, ranked, params)
    with stage(timer, "fetch"):
        records = collection.store.chunks([int(ranked.rows[p]) for p in positions])
    hits = [Hit(rank=i + 1, record=record, score=round(float(ranked.score[p]), 6), scores=ranked.components(p))
            for i, (p, record) in enumerate(zip(positions, records))]
    return SearchResult(query=query, collection=collection.name, build_id=collection.build_id, mode=mode,
                        hits=hits, took_ms=round((time.perf_counter() - started) * 1000, 3),
                        candidates=len(ranked.rows), graph=ranked.graph, requested_mode=params.mode,
                        legs_used=MODE_LEGS[mode])


def answered_mode(collection: Collection, mode: str) -> str:
    """``mode``, or what it is answered as while the collection's legs are being built."""
    answered = answerable_mode(mode, collection.legs, collection.pending)
    if answered is None:
        raise InvalidQuery(f"collection {collection.name!r} was built without the graph memory "
                           f"(RAGMEM_GRAPH=false); re-index it to use mode {mode!r}")
    return answered

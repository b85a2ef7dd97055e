"""HTTP routes that answer queries: ``POST /rag_search`` and ``POST /rag_get_context``.

Each parses the request, asks the engine, and serialises the answer (JSON models or the agents'
text layout); the ranking itself is the engine's.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse

from indexing.collection import Collection
from indexing.settings import Settings
from service import formatting
from service.http.models import (ContextBlockOut, ContextRequest, ContextResponse, SearchHit, SearchRequest,
                                SearchResponse)
from service.http.auth import may_build, require_reader
from service.engine import (ContextResult, SearchFilters, SearchParams, SearchResult, build_params, get_context,
                            search, subgraph_for)
from service.http.metrics import MODE_SCOPE_KEY
from service.collections.readiness import LegProgress, describe as describe_progress
from service.collections.registry import CollectionRegistry

_QUERY_RESPONSES = {200: {"content": {"text/plain": {}}}, 401: {}, 403: {}, 404: {}, 400: {}, 503: {}}


def add_query_routes(app: FastAPI, registry: CollectionRegistry, settings: Settings) -> None:
    reader = [Depends(require_reader(settings))]

    def resolve(request: SearchRequest, http: Request) -> tuple[Collection, str]:
        if request.json_path:
            return (registry.collection_for_path(request.json_path, may_build=may_build(settings, http)),
                    request.json_path)
        return registry.get(request.collection), request.collection

    @app.post("/rag_search", response_model=SearchResponse, dependencies=reader, responses=_QUERY_RESPONSES)
    def rag_search(request: SearchRequest, http: Request):
        http.scope[MODE_SCOPE_KEY] = request.mode
        params = _params(request, settings)
        collection, source = resolve(request, http)
        result = search(collection, request.query, params)
        subgraph = subgraph_for(collection, request.query, result.graph) if request.include_subgraph else None
        pending = registry.pending(collection)
        if request.format == "text":
            return PlainTextResponse(formatting.format_search_text(result, source, request.include_content,
                                                                   subgraph=subgraph, pending=pending))
        return _search_response(result, request.include_content, subgraph, pending)

    @app.post("/rag_get_context", response_model=ContextResponse, dependencies=reader, responses=_QUERY_RESPONSES)
    def rag_get_context(request: ContextRequest, http: Request):
        http.scope[MODE_SCOPE_KEY] = request.mode
        params = _params(request, settings)
        collection, source = resolve(request, http)
        ctx = get_context(collection, request.query, params, request.max_tokens)
        pending = registry.pending(collection)
        if request.format == "text":
            return PlainTextResponse(formatting.format_context_text(ctx, source, pending=pending))
        return _context_response(ctx, pending)


def _params(request: SearchRequest, settings: Settings) -> SearchParams:
    """The engine's parameters; pydantic has checked the static bounds, the engine checks the
    configured query length (``settings.max_query_chars``)."""
    filters = None if request.filters is None else SearchFilters(**request.filters.model_dump())
    return build_params(request.query, top_k=request.top_k, diverse=request.diverse, min_docs=request.min_docs,
                        max_per_doc=request.max_per_doc, mode=request.mode, filters=filters,
                        max_query_chars=settings.max_query_chars)


def _search_response(result: SearchResult, include_content: bool, subgraph: dict | None,
                     pending: dict[str, LegProgress]) -> SearchResponse:
    hits = [SearchHit(rank=h.rank, citation=h.citation, doc_index=h.record.doc_index,
                      chunk_index=h.record.chunk_index, doc_id=h.record.doc_id, chunk_id=h.record.chunk_id,
                      title=h.record.title, url=h.record.url, start_char=h.record.start_char,
                      end_char=h.record.end_char, content=h.record.text if include_content else None,
                      score=h.score, scores=h.scores) for h in result.hits]
    return SearchResponse(query=result.query, collection=result.collection, build_id=result.build_id,
                          mode=result.mode, requested_mode=result.requested_mode, legs_used=list(result.legs_used),
                          pending=describe_progress(pending), took_ms=result.took_ms, results=hits,
                          subgraph=subgraph)


def _context_response(ctx: ContextResult, pending: dict[str, LegProgress]) -> ContextResponse:
    blocks = [ContextBlockOut(citation=b.hit.citation, doc_index=b.hit.record.doc_index,
                              doc_id=b.hit.record.doc_id, title=b.hit.record.title, url=b.hit.record.url,
                              first_chunk=b.first_chunk, last_chunk=b.last_chunk, start_char=b.start_char,
                              end_char=b.end_char, tokens=b.n_tokens, score=b.hit.score, text=b.text)
              for b in ctx.blocks]
    return ContextResponse(query=ctx.query, collection=ctx.collection, mode=ctx.mode, legs_used=list(ctx.legs_used),
                           pending=describe_progress(pending), took_ms=ctx.took_ms,
                           total_tokens=ctx.total_tokens, max_tokens=ctx.max_tokens, blocks=blocks)

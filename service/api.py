"""The HTTP API: ``POST /rag_search``, ``POST /rag_get_context``, collections, health and metrics."""

from __future__ import annotations

import logging
import time

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from indexing.collection import Collection
from indexing.embedder import configure_query_serving
from indexing.settings import Settings
from service import formatting
from service.api_models import (AddDocumentsRequest, CompactResponse, ContextBlockOut, ContextRequest,
                                ContextResponse, DeleteDocumentsRequest, SearchHit, SearchRequest, SearchResponse,
                                WriteResponse)
from service.auth import may_build, require_metrics_reader, require_reader, require_writer
from service.http_limits import RequestLimits
from service.errors import NotFound
from service.live_documents import add_documents, delete_document, delete_documents
from service.context import get_context
from service.metrics import MODE_SCOPE_KEY, RequestMetrics, create_metrics
from service.subgraph import subgraph_for
from service.registry import CollectionRegistry, ServiceError
from service.retrieval import InvalidQuery, SearchFilters, SearchParams, search

log = logging.getLogger("ragmem.service.api")


def _params(request: SearchRequest) -> SearchParams:
    filters = None
    if request.filters is not None:
        filters = SearchFilters(doc_ids=request.filters.doc_ids, title_contains=request.filters.title_contains,
                                url_contains=request.filters.url_contains, metadata=request.filters.metadata)
    return SearchParams(top_k=request.top_k, diverse=request.diverse, min_docs=request.min_docs,
                        max_per_doc=request.max_per_doc, mode=request.mode, filters=filters)


def create_app(settings: Settings, registry: CollectionRegistry | None = None) -> FastAPI:
    configure_query_serving(settings)
    registry = registry or CollectionRegistry(settings)
    metrics = create_metrics()
    app = FastAPI(title="ragmem", version="0.1.0",
                  description="Hybrid BM25 + dense retrieval with cited, diverse results for LLM agents.")
    app.state.registry = registry

    def resolve(request: SearchRequest, http: Request) -> tuple[Collection, str]:
        if request.json_path:
            return (registry.collection_for_path(request.json_path, may_build=may_build(settings, http)),
                    request.json_path)
        return registry.get(request.collection), request.collection

    # Added first, so it sits inside RequestMetrics (the last added is outermost): the metrics count
    # its 413/408/503 answers under their real status, and it still runs before routing, body
    # parsing and auth, so a refused request costs a header scan and a counter.
    app.add_middleware(RequestLimits, max_request_bytes=settings.max_request_bytes,
                       body_timeout_seconds=settings.request_body_timeout_seconds,
                       max_inflight_requests=settings.max_inflight_requests)
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError):
        return JSONResponse({"detail": exc.message, **exc.extra}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(InvalidQuery)
    async def invalid_query(_: Request, exc: InvalidQuery):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    reader = [Depends(require_reader(settings))]
    writer = [Depends(require_writer(settings))]

    @app.post("/rag_search", response_model=SearchResponse, dependencies=reader,
              responses={200: {"content": {"text/plain": {}}}, 401: {}, 403: {}, 404: {}, 400: {}, 503: {}})
    def rag_search(request: SearchRequest, http: Request):
        http.scope[MODE_SCOPE_KEY] = request.mode
        collection, source = resolve(request, http)
        result = search(collection, request.query, _params(request))
        subgraph = subgraph_for(collection, request.query, result.graph) if request.include_subgraph else None
        if request.format == "text":
            return PlainTextResponse(formatting.format_search_text(result, source, request.include_content,
                                                                   subgraph=subgraph))
        hits = [SearchHit(rank=h.rank, citation=h.citation, doc_index=h.record.doc_index,
                          chunk_index=h.record.chunk_index, doc_id=h.record.doc_id, chunk_id=h.record.chunk_id,
                          title=h.record.title, url=h.record.url, start_char=h.record.start_char,
                          end_char=h.record.end_char, content=h.record.text if request.include_content else None,
                          score=h.score, scores=h.scores) for h in result.hits]
        return SearchResponse(query=result.query, collection=result.collection, build_id=result.build_id,
                              mode=result.mode, took_ms=result.took_ms, results=hits, subgraph=subgraph)

    @app.post("/rag_get_context", response_model=ContextResponse, dependencies=reader,
              responses={200: {"content": {"text/plain": {}}}, 401: {}, 403: {}, 404: {}, 400: {}, 503: {}})
    def rag_get_context(request: ContextRequest, http: Request):
        http.scope[MODE_SCOPE_KEY] = request.mode
        collection, source = resolve(request, http)
        ctx = get_context(collection, request.query, _params(request), request.max_tokens)
        if request.format == "text":
            return PlainTextResponse(formatting.format_context_text(ctx, source))
        blocks = [ContextBlockOut(citation=b.hit.citation, doc_index=b.hit.record.doc_index,
                                  doc_id=b.hit.record.doc_id, title=b.hit.record.title, url=b.hit.record.url,
                                  first_chunk=b.first_chunk, last_chunk=b.last_chunk, start_char=b.start_char,
                                  end_char=b.end_char, tokens=b.n_tokens, score=b.hit.score, text=b.text)
                  for b in ctx.blocks]
        return ContextResponse(query=ctx.query, collection=ctx.collection, took_ms=ctx.took_ms,
                               total_tokens=ctx.total_tokens, max_tokens=ctx.max_tokens, blocks=blocks)

    @app.post("/collections/{name}/documents", response_model=WriteResponse, dependencies=writer,
              responses={401: {}, 404: {}, 422: {}})
    def post_documents(name: str, request: AddDocumentsRequest):
        """Add documents, or replace them by doc_id; acknowledged once durable and searchable."""
        return add_documents(registry, name, request.documents, settings.max_batch_documents)

    @app.post("/collections/{name}/documents/delete", response_model=WriteResponse, dependencies=writer,
              responses={401: {}, 404: {}, 422: {}})
    def remove_documents(name: str, request: DeleteDocumentsRequest):
        """Delete documents named in the body (any doc_id, whatever characters it holds), atomically."""
        return delete_documents(registry, name, request.doc_ids, settings.max_batch_documents)

    @app.delete("/collections/{name}/documents/{doc_id:path}", response_model=WriteResponse, dependencies=writer,
                responses={401: {}, 404: {}})
    def remove_document(name: str, doc_id: str):
        """Delete a document (percent-encode '/', '?', '#' and '%' in its id); from the moment this
        returns no mode returns it."""
        return delete_document(registry, name, doc_id)

    @app.delete("/collections/{name}/build", dependencies=writer, responses={401: {}, 404: {}})
    def cancel_build(name: str):
        """Stop the json_path build of this collection; nothing of it is published."""
        if not registry.cancel_build(name):
            raise NotFound(f"no build of {name!r} is running")
        return {"collection": name, "cancelled": True}

    @app.post("/collections/{name}/compact", response_model=CompactResponse, dependencies=writer,
              responses={401: {}, 404: {}})
    def compact_collection(name: str):
        """Fold the live journal into a fresh build (scores then equal a full rebuild)."""
        started = time.perf_counter()
        info = registry.compact(name)
        info.pop("seconds", None)
        return CompactResponse(**info, took_ms=round((time.perf_counter() - started) * 1000, 3))

    @app.get("/collections", dependencies=reader)
    def list_collections():
        out = []
        for name in registry.names():
            try:
                info = registry.describe(name)
            except ServiceError:
                continue
            info.pop("document_list", None)
            out.append(info)
        return {"collections": out}

    @app.get("/collections/{name}", dependencies=reader)
    def collection_stats(name: str):
        return registry.describe(name)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "collections": len(registry.names())}

    @app.get("/metrics", dependencies=[Depends(require_metrics_reader(settings))])
    def prometheus_metrics():
        for name in registry.names():
            try:
                collection = registry.get(name)
            except ServiceError:
                continue
            metrics.chunks.labels(name).set(collection.store.n_chunks)
            metrics.documents.labels(name).set(collection.store.n_documents)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.on_event("shutdown")
    def _close() -> None:
        registry.close()

    return app


def app_from_environment() -> FastAPI:
    """App factory for ``ragmem serve --workers N`` (each worker process builds its own app)."""
    from indexing.settings import load_settings

    return create_app(load_settings())

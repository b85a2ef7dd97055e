"""The HTTP API: ``POST /rag_search``, ``POST /rag_get_context``, collections, health and metrics.

This module assembles the app: middleware, the error table (``service.http.errors``) and the
routes, one module per concern (``service.http.routes_query``, ``_write``, ``_collections``).
Retrieval itself is the engine's (``service.engine``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from indexing.embedder import QueryEncoding
from indexing.settings import Settings
from service.http.errors import install_error_handlers
from service.http.limits import RequestLimits
from service.http.routes_collections import add_collection_routes
from service.http.routes_query import add_query_routes
from service.http.routes_write import add_write_routes
from service.http.metrics import RequestMetrics, create_metrics
from service.collections.registry import CollectionRegistry

log = logging.getLogger("ragmem.service.http.app")


def create_app(settings: Settings, registry: CollectionRegistry | None = None) -> FastAPI:
    registry = registry or CollectionRegistry(settings, QueryEncoding.for_serving(settings))
    metrics = create_metrics()
    app = FastAPI(title="ragmem", version="0.1.0",
                  description="Hybrid BM25 + dense retrieval with cited, diverse results for LLM agents.")
    app.state.registry = registry

    # Added first, so it sits inside RequestMetrics (the last added is outermost): the metrics count
    # its 413/408/503 answers under their real status, and it still runs before routing, body
    # parsing and auth, so a refused request costs a header scan and a counter.
    app.add_middleware(RequestLimits, max_request_bytes=settings.max_request_bytes,
                       body_timeout_seconds=settings.request_body_timeout_seconds,
                       max_inflight_requests=settings.max_inflight_requests)
    app.add_middleware(RequestMetrics, metrics=metrics)
    install_error_handlers(app)

    # Registered in this order, as before the split: search and context, writes, then the
    # collection listing, health and metrics.
    add_query_routes(app, registry, settings)
    add_write_routes(app, registry, settings)
    add_collection_routes(app, registry, settings, metrics)

    @app.on_event("shutdown")
    def _close() -> None:
        registry.close()

    return app


def app_from_environment() -> FastAPI:
    """App factory for ``ragmem serve --workers N`` (each worker process builds its own app)."""
    from indexing.settings import load_settings
    from service.collections.warmup import warm_up

    settings = load_settings()
    app = create_app(settings)
    warm_up(settings, app.state.registry)
    return app

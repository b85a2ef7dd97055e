"""HTTP routes that describe the service: collections, health and Prometheus metrics."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from indexing.settings import Settings
from service.http.auth import require_metrics_reader, require_reader
from service.collections.errors import ServiceError
from service.http.metrics import Metrics
from service.collections.registry import CollectionRegistry


def add_collection_routes(app: FastAPI, registry: CollectionRegistry, settings: Settings, metrics: Metrics) -> None:
    reader = [Depends(require_reader(settings))]

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

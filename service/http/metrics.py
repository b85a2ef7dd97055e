"""Prometheus metrics, in a registry per app so tests can run several apps in one process."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    chunks: Gauge
    documents: Gauge


def create_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter("ragmem_requests_total", "HTTP requests", ["endpoint", "status"], registry=registry),
        latency=Histogram("ragmem_request_seconds", "Request latency", ["endpoint", "mode"], registry=registry,
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)),
        chunks=Gauge("ragmem_collection_chunks", "Chunks in the published build", ["collection"], registry=registry),
        documents=Gauge("ragmem_collection_documents", "Documents in the published build", ["collection"],
                        registry=registry),
    )


MODE_SCOPE_KEY = "ragmem.mode"
"""Handlers put the retrieval mode of a request here so latency can be labelled by it."""


class RequestMetrics:
    """Plain ASGI middleware (Starlette's BaseHTTPMiddleware costs ~1 ms per request in task hand-offs)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint, scope.get(MODE_SCOPE_KEY, "")).observe(
                time.perf_counter() - started)

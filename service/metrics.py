"""Prometheus metrics, in a registry per app so tests can run several apps in one process."""

from __future__ import annotations

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

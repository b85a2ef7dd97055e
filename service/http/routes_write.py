"""HTTP routes that change a collection: live document writes, build cancellation, compaction."""

from __future__ import annotations

import time

from fastapi import Depends, FastAPI

from indexing.settings import Settings
from service.http.models import AddDocumentsRequest, CompactResponse, DeleteDocumentsRequest, WriteResponse
from service.http.auth import require_writer
from service.collections.errors import NotFound
from service.collections.live_documents import add_documents, delete_document, delete_documents
from service.collections.registry import CollectionRegistry


def add_write_routes(app: FastAPI, registry: CollectionRegistry, settings: Settings) -> None:
    writer = [Depends(require_writer(settings))]

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

"""The write endpoints' logic: per-item validation, then one atomic journal batch."""

from __future__ import annotations

from typing import Any

from indexing.documents import Document
from indexing.live import WriteReport
from indexing.loaders import document_from_record
from service.http.models import AddedDocument, RejectedDocument, WriteResponse
from service.collections.errors import BadCorpus, NotFound, Unprocessable
from service.collections.registry import CollectionRegistry


def add_documents(registry: CollectionRegistry, name: str, items: list[Any], max_batch: int) -> WriteResponse:
    """Valid items are added in one batch; each invalid one is reported and nothing else is lost."""
    if len(items) > max_batch:
        raise BadCorpus(f"{len(items)} documents in one request; the limit is {max_batch} (RAGMEM_MAX_BATCH_DOCUMENTS)")
    accepted: list[tuple[int, Document]] = []
    rejected: list[RejectedDocument] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append(RejectedDocument(index=index, error=str(document_from_record(item, index, "api"))))
            continue
        raw_id = item.get("doc_id")
        doc_id = raw_id.strip() if isinstance(raw_id, str) else ""
        if not doc_id:
            rejected.append(RejectedDocument(index=index, error="'doc_id' must be a non-empty string"))
            continue
        if doc_id in seen:
            rejected.append(RejectedDocument(index=index, doc_id=doc_id,
                                             error=f"doc_id repeats item {seen[doc_id]} of this batch"))
            continue
        result = document_from_record(item, index, f"api:{name}")
        if isinstance(result, str):
            rejected.append(RejectedDocument(index=index, doc_id=doc_id, error=result))
            continue
        seen[doc_id] = index
        accepted.append((index, result))
    if not accepted:
        raise Unprocessable("no valid document in the batch", extra={"rejected": [r.model_dump() for r in rejected]})
    report = registry.write(name, [doc for _, doc in accepted], [])
    added = [AddedDocument(index=index, doc_id=info["doc_id"], chunks=info["chunks"], replaced=info["replaced"])
             for (index, _), info in zip(accepted, report.added)]
    return _response(report, added=added, rejected=rejected)


def delete_document(registry: CollectionRegistry, name: str, doc_id: str) -> WriteResponse:
    report = registry.write(name, [], [doc_id])
    if report.not_found:
        raise NotFound(f"no document {doc_id!r} in collection {name!r}")
    return _response(report, deleted=report.deleted)


def delete_documents(registry: CollectionRegistry, name: str, doc_ids: list[str], max_batch: int) -> WriteResponse:
    """Delete several documents in one atomic batch; ids that are not there are listed, not fatal."""
    if len(doc_ids) > max_batch:
        raise BadCorpus(f"{len(doc_ids)} doc_ids in one request; the limit is {max_batch} "
                        "(RAGMEM_MAX_BATCH_DOCUMENTS)")
    report = registry.write(name, [], list(dict.fromkeys(doc_ids)))
    return _response(report, deleted=report.deleted, not_found=report.not_found)


def _response(report: WriteReport, **outcome) -> WriteResponse:
    return WriteResponse(collection=report.collection, build_id=f"{report.build_id}+{report.seq}", seq=report.seq,
                         took_ms=round(report.seconds * 1000, 3), **outcome)

"""Which chunk rows a query's filters allow: one boolean mask that every leg honours."""

from __future__ import annotations

import numpy as np

from indexing.collection import Collection
from service.engine.model import SearchFilters


def allowed_rows(collection: Collection, filters: SearchFilters | None) -> np.ndarray | None:
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

"""FAISS inner-product index over normalised embeddings: exact below a size threshold, HNSW above.

Exact search is cheap and has perfect recall for the corpora agents send (tens to thousands
of chunks); HNSW keeps queries in the millisecond range for hundreds of thousands.
The choice and its parameters are recorded in the manifest so a reader knows what it got.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger("ragmem.indexing.vector_index")


def gpu_count() -> int:
    try:
        return int(faiss.get_num_gpus())
    except AttributeError:  # faiss-cpu builds may lack the symbol entirely
        return 0


@dataclass
class VectorIndex:
    index: faiss.Index
    info: dict = field(default_factory=dict)

    @classmethod
    def build(cls, vectors: np.ndarray, hnsw_threshold: int, hnsw_m: int, ef_construction: int,
              ef_search: int) -> "VectorIndex":
        n, dim = vectors.shape
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if n > hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            info = {"type": "hnsw", "M": hnsw_m, "efConstruction": ef_construction, "efSearch": ef_search}
        else:
            index = faiss.IndexFlatIP(dim)
            info = {"type": "flat", "exact": True}
        if n:
            index.add(vectors)
        info.update({"metric": "inner_product", "dimension": dim, "vectors": n, "threshold": hnsw_threshold})
        return cls(index=index, info=info)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, info: dict | None = None, use_gpu: bool | None = None) -> "VectorIndex":
        index = faiss.read_index(str(path))
        info = dict(info or {})
        if use_gpu is None:
            use_gpu = gpu_count() > 0
        if use_gpu and isinstance(index, faiss.IndexFlat):  # HNSW has no GPU implementation
            index = faiss.index_cpu_to_all_gpus(index)
            info["gpu"] = True
            log.info("FAISS index moved to %d GPU(s)", gpu_count())
        return cls(index=index, info=info)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosine scores) per query, best first; rows of -1 (missing) are removed for one query."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return rows, scores

    def top(self, qvec: np.ndarray, k: int, mask: np.ndarray | None = None,
            exclude: "faiss.IDSelector | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the k nearest vectors for one query, best first, restricted to ``mask``
        (a boolean array over rows) or, without a mask, to rows not in ``exclude``."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        qvec = np.ascontiguousarray(qvec, dtype=np.float32).reshape(1, -1)
        selector = exclude
        if mask is not None:
            allowed = np.flatnonzero(mask[: self.size]).astype(np.int64)
            if allowed.size == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            selector = faiss.IDSelectorBatch(allowed)
            k = min(k, allowed.size)
        if selector is None:
            scores, rows = self.index.search(qvec, k)
        else:
            if hasattr(self.index, "hnsw"):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.index.hnsw.efSearch, k))
            else:
                params = faiss.SearchParameters(sel=selector)
            scores, rows = self.index.search(qvec, k, params=params)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def reconstruct(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors for ``rows`` (used for near-duplicate removal and MMR)."""
        if len(rows) == 0:
            return np.zeros((0, self.index.d), dtype=np.float32)
        return self.index.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64))

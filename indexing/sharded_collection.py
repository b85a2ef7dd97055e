"""Reading a sharded build: the three query seams (store, lexical, dense) over S shards.

``ShardedStore``, ``ShardedLexical`` and ``ShardedDense`` implement the Protocols of
:mod:`indexing.read_interfaces` by asking every shard and merging, so the unchanged query engine
(``service.engine``) runs over a sharded build exactly as over one index: each shard returns its
own top candidates with raw scores, the merge keeps the collection-wide best, and fusion then
standardises over the same pool it would have had unsharded. BM25 scores are equal because every
shard was indexed with the collection's statistics (:mod:`indexing.sharded_build`); exact (flat)
FAISS scores are equal because a cosine does not depend on the other rows. (An HNSW shard, above
``hnsw_threshold`` chunks per shard, is approximate in both builds, so its neighbours may differ.)

A shard is reached through a :class:`ShardClient`: in this process (:class:`LocalShardClient`) or,
under ``ragmem serve --ray-address``, through Ray Serve replicas (``service.cluster``). Every call
is submitted to all shards first and awaited after, so remote shards work in parallel.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from indexing.build_format import BM25_DIR, FAISS_FILE, STORE_FILE, Manifest, shard_dir
from indexing.documents import SkippedDocument
from indexing.lexical_index import LexicalIndex, LexicalResult
from indexing.shard_layout import ShardLayout
from indexing.store import ChunkRecord, StoreReader
from indexing.vector_index import VectorIndex


@dataclass(frozen=True)
class ShardSummary:
    """What the merge needs of a shard once, when the collection is opened."""

    n_chunks: int
    n_documents: int
    chunk_doc_rows: np.ndarray


@dataclass(frozen=True)
class ShardLexicalResult:
    result: LexicalResult
    present: np.ndarray
    """For each distinct query term (in the order sent), whether this shard's vocabulary has it."""


class ShardService:
    """One shard's parts and the calls a query makes on them, in shard-local rows.

    The same object answers in this process and inside a Ray Serve replica (``service.cluster``),
    so both paths run this code.
    """

    def __init__(self, build_dir: Path | str, index: int, faiss_info: dict | None = None) -> None:
        directory = Path(build_dir) if index == WHOLE_BUILD else shard_dir(Path(build_dir), index)
        self.store = StoreReader(directory / STORE_FILE)
        self.lexical = LexicalIndex.load(directory / BM25_DIR)
        self.dense = VectorIndex.load(directory / FAISS_FILE, faiss_info)

    def summary(self) -> ShardSummary:
        return ShardSummary(self.store.n_chunks, self.store.n_documents, self.store.chunk_doc_rows)

    def lexical_search(self, terms: list[str], distinct: list[str], k: int, allowed: np.ndarray | None,
                       extra_rows: np.ndarray) -> ShardLexicalResult:
        vocab = self.lexical.retriever.vocab_dict
        present = np.fromiter((t in vocab for t in distinct), dtype=bool, count=len(distinct))
        return ShardLexicalResult(self.lexical.search(terms, k, allowed, extra_rows), present)

    def lexical_scores(self, terms: list[str]) -> np.ndarray:
        return self.lexical.scores(terms)

    def dense_top(self, qvec: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return self.dense.top(qvec, k, mask)

    def reconstruct(self, rows: np.ndarray) -> np.ndarray:
        return self.dense.reconstruct(rows)

    def chunks(self, rows: list[int]) -> list[ChunkRecord]:
        return self.store.chunks(rows)

    def document_chunks(self, doc_row: int, first: int, last: int) -> list[ChunkRecord]:
        return self.store.document_chunks(doc_row, first, last)

    def document_text(self, doc_row: int) -> str:
        return self.store.document_text(doc_row)

    def documents(self) -> list[dict]:
        return self.store.documents()

    def skipped(self) -> list[SkippedDocument]:
        return self.store.skipped()


class Pending(Protocol):
    def result(self) -> Any: ...


class ShardClient(Protocol):
    """Calls one shard's :class:`ShardService` method by name; ``submit`` returns at once."""

    def submit(self, method: str, *args: Any) -> Pending: ...


@dataclass
class _Done:
    value: Any

    def result(self) -> Any:
        return self.value


class LocalShardClient:
    """A shard opened in this process."""

    def __init__(self, service: ShardService) -> None:
        self.service = service

    def submit(self, method: str, *args: Any) -> Pending:
        return _Done(getattr(self.service, method)(*args))


WHOLE_BUILD = -1
"""The shard index that stands for an unsharded build's own parts, served as one shard (so a
cluster can place a small collection on any node like a shard of a large one)."""

ShardOpener = Callable[[Path, int, Manifest], "ShardClient | None"]
"""How this process reaches shard ``i`` of a build (or :data:`WHOLE_BUILD`): in process, or a Ray
Serve deployment; None: no remote copy, read the build in this process as usual."""


def open_local_shard(build_dir: Path, index: int, manifest: Manifest) -> ShardClient | None:
    if index == WHOLE_BUILD:
        return None
    infos = (manifest.faiss or {}).get("shards") or []
    return LocalShardClient(ShardService(build_dir, index, infos[index] if index < len(infos) else None))


_opener: ShardOpener = open_local_shard
_opener_lock = threading.Lock()


def use_shard_opener(opener: ShardOpener | None) -> None:
    """Make this process reach shards through ``opener`` (None: back to in-process shards)."""
    global _opener
    with _opener_lock:
        _opener = opener or open_local_shard


def open_shards(build_dir: Path, manifest: Manifest) -> tuple[ShardLayout, list[ShardClient]]:
    layout = ShardLayout.from_dict(manifest.shards or {})
    clients = [_opener(build_dir, i, manifest) or open_local_shard(build_dir, i, manifest) for i in range(layout.count)]
    return layout, clients


def _gather(clients: Sequence[ShardClient], method: str, args_of: Callable[[int], tuple] | None = None,
            shards: Sequence[int] | None = None) -> list[Any]:
    """``method`` on the given shards (default all), submitted to every one before any is awaited."""
    targets = range(len(clients)) if shards is None else shards
    pending = [clients[s].submit(method, *(args_of(s) if args_of else ())) for s in targets]
    return [p.result() for p in pending]


class _Shards:
    """The layout and clients every sharded seam shares, and the row bookkeeping between them."""

    def __init__(self, layout: ShardLayout, clients: list[ShardClient]) -> None:
        self.layout, self.clients = layout, clients
        self.row_offsets = np.asarray(layout.row_offsets, dtype=np.int64)
        self.doc_offsets = np.asarray(layout.doc_offsets, dtype=np.int64)

    def local(self, shard: int, mask: np.ndarray | None) -> np.ndarray | None:
        """A collection-wide row mask cut to one shard."""
        if mask is None:
            return None
        return mask[self.row_offsets[shard] : self.row_offsets[shard + 1]]

    def split(self, rows: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """shard -> (positions in ``rows``, shard-local rows) for the rows it owns."""
        rows = np.asarray(rows, dtype=np.int64)
        owner = self.layout.shard_of_rows(rows)
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for shard in np.unique(owner):
            positions = np.flatnonzero(owner == shard)
            out[int(shard)] = (positions, rows[positions] - self.row_offsets[shard])
        return out

    def record(self, shard: int, record: ChunkRecord) -> ChunkRecord:
        """A shard's record with the collection's row numbers."""
        return replace(record, chunk_row=record.chunk_row + int(self.row_offsets[shard]),
                       doc_row=record.doc_row + int(self.doc_offsets[shard]))


def _best(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (score descending, then row ascending), as one index's top-k orders them."""
    order = np.lexsort((rows, -scores))[:k]
    return rows[order], scores[order]


class ShardedStore:
    """:class:`indexing.read_interfaces.ChunkStore` over the shards' stores."""

    def __init__(self, shards: _Shards, summaries: list[ShardSummary]) -> None:
        self._s = shards
        self.chunk_doc_rows = np.concatenate([s.chunk_doc_rows + shards.doc_offsets[i]
                                              for i, s in enumerate(summaries)]).astype(np.int64)
        self.n_documents = int(sum(s.n_documents for s in summaries))

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_doc_rows.shape[0])

    def chunks(self, rows: Sequence[int]) -> list[ChunkRecord]:
        rows = np.asarray([int(r) for r in rows if 0 <= int(r) < self.n_chunks], dtype=np.int64)
        if rows.size == 0:
            return []
        parts = self._s.split(rows)
        shards = list(parts)
        found = _gather(self._s.clients, "chunks", lambda s: (parts[s][1].tolist(),), shards)
        by_row = {rec.chunk_row: rec for shard, records in zip(shards, found)
                  for rec in (self._s.record(shard, r) for r in records)}
        return [by_row[int(r)] for r in rows if int(r) in by_row]

    def document_chunks(self, doc_row: int, first: int, last: int) -> list[ChunkRecord]:
        shard = self._s.layout.shard_of_doc(doc_row)
        if not 0 <= shard < self._s.layout.count:
            return []
        local = doc_row - int(self._s.doc_offsets[shard])
        records = self._s.clients[shard].submit("document_chunks", local, first, last).result()
        return [self._s.record(shard, r) for r in records]

    def document_text(self, doc_row: int) -> str:
        shard = self._s.layout.shard_of_doc(doc_row)
        if not 0 <= doc_row < self.n_documents:
            return ""
        return self._s.clients[shard].submit("document_text", doc_row - int(self._s.doc_offsets[shard])).result()

    def documents(self) -> list[dict]:
        out: list[dict] = []
        for shard, docs in enumerate(_gather(self._s.clients, "documents")):
            out.extend({**d, "doc_row": d["doc_row"] + int(self._s.doc_offsets[shard])} for d in docs)
        return out

    def skipped(self) -> list[SkippedDocument]:
        return [s for part in _gather(self._s.clients, "skipped") for s in part]


COVERAGE_MEMO = 256
"""Recent queries whose term coverage the last lexical search already worked out (see ``term_coverage``)."""


class ShardedLexical:
    """:class:`indexing.read_interfaces.LexicalLeg` over the shards' BM25 indexes."""

    def __init__(self, shards: _Shards, bm25: dict) -> None:
        self._s = shards
        self._describe = {k: bm25[k] for k in ("k1", "b", "method", "vocabulary") if k in bm25}
        self._coverage: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def n_docs(self) -> int:
        return int(self._s.row_offsets[-1])

    def describe(self) -> dict:
        return dict(self._describe)

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        terms = list(query_terms)
        return np.concatenate(_gather(self._s.clients, "lexical_scores", lambda s: (terms,))).astype(np.float32)

    def term_coverage(self, query_terms: Sequence[str]) -> float:
        """Share of distinct terms some shard has; a search that just ran for these terms already knows it."""
        key = tuple(query_terms)
        with self._lock:
            if key in self._coverage:
                return self._coverage[key]
        self.search(query_terms, 0)
        with self._lock:
            return self._coverage.get(key, 0.0)

    def search(self, query_terms: Sequence[str], k: int, allowed: np.ndarray | None = None,
               extra_rows: np.ndarray | None = None) -> LexicalResult:
        terms = list(query_terms)
        distinct = sorted(set(terms))
        extra = np.zeros(0, np.int64) if extra_rows is None else np.asarray(extra_rows, dtype=np.int64)
        parts = self._s.split(extra)
        empty = np.zeros(0, np.int64)

        def args(shard: int) -> tuple:
            return terms, distinct, k, self._s.local(shard, allowed), parts.get(shard, (empty, empty))[1]

        results: list[ShardLexicalResult] = _gather(self._s.clients, "lexical_search", args)
        rows = np.concatenate([r.result.rows + self._s.row_offsets[s] for s, r in enumerate(results)])
        scores = np.concatenate([r.result.scores for r in results]).astype(np.float32)
        top, top_scores = _best(rows, scores, k)
        extra_scores = np.zeros(extra.shape[0], np.float32)
        for shard, (positions, _) in parts.items():
            extra_scores[positions] = results[shard].result.extra_scores
        present = np.logical_or.reduce([r.present for r in results]) if distinct else np.zeros(0, bool)
        with self._lock:
            self._coverage[tuple(terms)] = float(present.sum() / len(distinct)) if distinct else 0.0
            while len(self._coverage) > COVERAGE_MEMO:
                self._coverage.popitem(last=False)
        return LexicalResult(top.astype(np.int64), top_scores, extra_scores)


class ShardedDense:
    """:class:`indexing.read_interfaces.DenseLeg` over the shards' FAISS indexes."""

    def __init__(self, shards: _Shards, info: dict) -> None:
        self._s = shards
        self.info = dict(info)

    @property
    def size(self) -> int:
        return int(self._s.row_offsets[-1])

    def top(self, qvec: np.ndarray, k: int, mask: np.ndarray | None = None,
            exclude: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if exclude is not None:
            raise NotImplementedError("a sharded collection takes no live deletes (re-index it instead)")
        qvec = np.ascontiguousarray(qvec, dtype=np.float32).reshape(1, -1)
        results = _gather(self._s.clients, "dense_top", lambda s: (qvec, k, self._s.local(s, mask)))
        rows = np.concatenate([r + self._s.row_offsets[s] for s, (r, _) in enumerate(results)])
        scores = np.concatenate([c for _, c in results]).astype(np.float32)
        top, top_scores = _best(rows, scores, k)
        return top.astype(np.int64), top_scores

    def reconstruct(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        dimension = int(self.info.get("dimension", 0))
        if rows.size == 0:
            return np.zeros((0, dimension), np.float32)
        parts = self._s.split(rows)
        shards = list(parts)
        vectors = _gather(self._s.clients, "reconstruct", lambda s: (parts[s][1],), shards)
        out = np.zeros((rows.size, vectors[0].shape[1]), np.float32)
        for shard, block in zip(shards, vectors):
            out[parts[shard][0]] = block
        return out


Parts = tuple[ShardedStore, ShardedLexical, ShardedDense]


def open_sharded_parts(build_dir: Path, manifest: Manifest) -> Parts:
    """The three seams of a sharded build, its shards reached through this process's opener."""
    layout, clients = open_shards(build_dir, manifest)
    return _parts(layout, clients, manifest)


def open_remote_build(build_dir: Path, manifest: Manifest) -> Parts | None:
    """An unsharded, complete build as one remote shard, when this process's opener has one for it."""
    if not manifest.complete:
        return None
    client = _opener(build_dir, WHOLE_BUILD, manifest)
    if client is None:
        return None
    layout = ShardLayout((0, manifest.counts.documents), (0, manifest.counts.chunks))
    return _parts(layout, [client], manifest)


def _parts(layout: ShardLayout, clients: list[ShardClient], manifest: Manifest) -> Parts:
    shards = _Shards(layout, clients)
    summaries = _gather(clients, "summary")
    return (ShardedStore(shards, summaries), ShardedLexical(shards, manifest.bm25.to_dict()),
            ShardedDense(shards, manifest.faiss or {}))

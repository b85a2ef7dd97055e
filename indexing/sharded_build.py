"""A sharded build: the collection split by document into S shards, built in parallel, published once.

Why the split is by contiguous document ranges: a chunk's row in the sharded build is then the
row it has in the unsharded build (shard offset + row in the shard), so the graph memory, which
is built once over the whole collection, addresses the same rows, and a query's results can be
compared with the unsharded build's chunk for chunk. Ranges are balanced by characters, the
unit chunking and embedding cost grows with.

Two passes, each one task per shard (:mod:`indexing.shard_tasks` runs them on Ray, or in this
process when there is no Ray):

1. chunk + analyse: every shard returns its BM25 statistics (document frequencies, lengths);
   they are merged into the collection's :class:`indexing.lexical_index.CorpusStats`.
2. write: every shard builds BM25 with those collection-wide statistics (so its scores equal
   the unsharded index's), writes its chunk store, embeds its chunks and builds its FAISS index,
   each into ``shards/<i>/`` of the one staging directory.

Then the graph memory is built over all chunks and the build is published with one manifest:
all shards or none, so a build killed anywhere leaves the previous build serving.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from indexing.analyzer import Analyzer
from indexing.build_format import shard_dir
from indexing.build_writer import PartsWriter
from indexing.documents import Document, SkippedDocument
from indexing.embedder import EmbedderSpec, load_embedder
from indexing.embedding_cache import embed_texts, open_embedding_cache
from indexing.lexical_index import CorpusStats, LexicalIndex
from indexing.settings import Settings
from indexing.shard_layout import ShardLayout, plan_shards
from indexing.store import ChunkRow
from indexing.vector_index import VectorIndex

if TYPE_CHECKING:
    from indexing.build_format import ChunkingParams, Manifest
    from indexing.build_writer import BuildWriter
    from indexing.builder import _Stages
    from indexing.documents import LoadedCorpus
    from indexing.embedder import TextEmbedder
    from indexing.shard_tasks import ShardTasks

log = logging.getLogger("ragmem.indexing.sharded_build")


@dataclass
class ShardJob:
    """Everything one shard's tasks need; sent to a Ray worker as is (picklable)."""

    index: int
    documents: list[Document]
    settings: Settings
    staging: str
    skipped: list[SkippedDocument]
    """Only shard 0 records the corpus' skipped inputs (a collection lists them once)."""


@dataclass
class ShardChunks:
    """Pass 1's output of one shard: its chunks (rows numbered within the shard) and their BM25 terms."""

    rows: list[ChunkRow]
    embed_inputs: list[str]
    counts: list[int]
    terms: list[list[str]]
    seconds: float


@dataclass
class ShardOutput:
    """Pass 2's output of one shard: its chunk vectors (for the graph memory) and what it wrote."""

    vectors: np.ndarray
    embedded: int
    faiss: dict
    seconds: dict[str, float]


def chunk_shard(job: ShardJob) -> tuple[CorpusStats, ShardChunks]:
    """Pass 1: chunk and analyse one shard's documents, exactly as an unsharded build does."""
    from indexing.builder import chunking_params
    from indexing.lexical_pass import chunk_documents, chunk_terms

    started = time.perf_counter()
    embedder = load_embedder(EmbedderSpec.from_settings(job.settings))
    params = chunking_params(job.settings, embedder)
    rows, embed_inputs, counts = chunk_documents(job.documents, embedder, params, show_progress=False)
    terms = chunk_terms(job.documents, rows, Analyzer())
    chunks = ShardChunks(rows, embed_inputs, counts, terms, time.perf_counter() - started)
    return CorpusStats.of(terms), chunks


def write_shard(job: ShardJob, chunks: ShardChunks, stats: CorpusStats) -> ShardOutput:
    """Pass 2: one shard's BM25 (collection-wide statistics), store, embeddings and FAISS index."""
    settings = job.settings
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    target = shard_dir(Path(job.staging), job.index)
    target.mkdir(parents=True, exist_ok=True)
    parts = PartsWriter(target)
    parts.lexical(LexicalIndex.build(chunks.terms, settings.bm25_k1, settings.bm25_b, settings.bm25_method, stats))
    parts.store(job.documents, chunks.counts, chunks.rows, job.skipped)
    seconds["bm25+store"] = time.perf_counter() - started
    embedder = load_embedder(EmbedderSpec.from_settings(settings))
    cache = open_embedding_cache(settings.data_dir, embedder)
    try:
        started = time.perf_counter()
        vectors, embedded = embed_texts(embedder, chunks.embed_inputs, cache, settings.embed_batch_size,
                                        desc=f"embedding shard {job.index}", show_progress=False)
        seconds["embed"] = time.perf_counter() - started
    finally:
        cache.close()
    started = time.perf_counter()
    dense = VectorIndex.build(vectors if len(chunks.rows) else np.zeros((0, embedder.dimension), np.float32),
                              settings.hnsw_threshold, settings.hnsw_m, settings.hnsw_ef_construction,
                              settings.hnsw_ef_search)
    parts.dense(dense)
    seconds["faiss"] = time.perf_counter() - started
    return ShardOutput(vectors, embedded, dense.info, seconds)


def collection_rows(parts: Sequence[ShardChunks]) -> list[ChunkRow]:
    """Every shard's chunk rows renumbered into the collection's order (shard offsets added)."""
    rows: list[ChunkRow] = []
    doc_offset = 0
    for part in parts:
        for r in part.rows:
            rows.append(ChunkRow(len(rows), r.doc_row + doc_offset, r.chunk_index, r.start_char, r.end_char,
                                 r.n_tokens, r.text))
        doc_offset += len(part.counts)
    return rows


def layout_of(parts: Sequence[ShardChunks]) -> ShardLayout:
    docs, rows = [0], [0]
    for part in parts:
        docs.append(docs[-1] + len(part.counts))
        rows.append(rows[-1] + len(part.rows))
    return ShardLayout(tuple(docs), tuple(rows))


def build_sharded_into(build: "BuildWriter", name: str, corpus: "LoadedCorpus", corpus_path: Path, fingerprint: str,
                       embedder: "TextEmbedder", analyzer: Analyzer, params: "ChunkingParams", settings: Settings,
                       stages: "_Stages", show_progress: bool, tasks: "ShardTasks") -> "Manifest":
    """Write every shard and the graph memory into ``build``'s staging directory; returns the
    manifest the caller completes with the stage and publish times and publishes (one publish: a
    sharded build is never tiered)."""
    from indexing.build_format import (LEG_BM25, LEG_DENSE, LEG_GRAPH, AnalyzerConfig, Bm25Config, CorpusInfo,
                                       Counts, EmbedderInfo, Manifest, utc_timestamp)
    from indexing.builder import _build_graph_memory, _GraphProgress

    documents = corpus.documents
    ranges = plan_shards(documents, settings.shards)
    jobs = [ShardJob(i, documents[r.start : r.stop], settings, str(build.staging), corpus.skipped if i == 0 else [])
            for i, r in enumerate(ranges)]
    log.info("collection %s: %d documents in %d shards on %s", name, len(documents), len(jobs), tasks.where)
    with stages.stage("chunk"):
        shard_stats, handles = tasks.chunk(jobs)
        stats = CorpusStats.merged(shard_stats)
    with stages.stage("shards"):
        outputs = tasks.write(jobs, handles, stats)
    parts = tasks.chunks(handles)
    layout = layout_of(parts)
    rows = collection_rows(parts)
    vectors = (np.concatenate([o.vectors for o in outputs]) if rows
               else np.zeros((0, embedder.dimension), np.float32))
    build.report({"files": corpus.files, "documents": len(documents),
                  "skipped": [asdict(s) for s in corpus.skipped]})
    graph_info = None
    legs = [LEG_BM25, LEG_DENSE]
    if settings.graph:
        cache = open_embedding_cache(settings.data_dir, embedder)
        try:
            with stages.stage("graph"):
                graph_info = _build_graph_memory(build, documents, rows, vectors, embedder, cache, settings,
                                                 _GraphProgress(stages), show_progress)
        finally:
            cache.close()
        legs.append(LEG_GRAPH)
    bm25 = {"k1": settings.bm25_k1, "b": settings.bm25_b, "method": settings.bm25_method,
            "vocabulary": len(stats.document_frequency)}
    faiss = {"type": "sharded", "shards": [o.faiss for o in outputs], "vectors": int(len(rows)),
             "dimension": embedder.dimension}
    shard_info = {**layout.to_dict(), "ran_on": tasks.where,
                  "seconds": [{k: round(v, 3) for k, v in o.seconds.items()} for o in outputs]}
    return Manifest(
        collection=name, build_id=build.build_id, created_at=utc_timestamp(),
        corpus=CorpusInfo(path=str(corpus_path.resolve()), fingerprint=fingerprint, files=len(corpus.files)),
        embedder=EmbedderInfo.of(embedder, vectors), chunking=params, analyzer=AnalyzerConfig.from_dict(analyzer.describe()),
        bm25=Bm25Config.from_dict(bm25), faiss=faiss,
        counts=Counts(documents=len(documents), chunks=len(rows), skipped=len(corpus.skipped),
                      embedded=sum(o.embedded for o in outputs), tokens=int(sum(r.n_tokens for r in rows))),
        graph=graph_info, legs=legs, pending=[], shards=shard_info)

"""The index build: load -> chunk -> BM25 + store -> publish -> embed + FAISS -> publish -> graph -> publish.

A build is published tier by tier (:data:`indexing.build_format.TIERS`): BM25 and the chunk store
first (seconds), then the dense leg, then the graph memory. Each tier is written into a staging
directory and published with one atomic rename, so a failed, interrupted or SIGKILLed build leaves
the last published tier (or the previous collection) serving untouched, and a new collection
answers keyword queries while its embeddings are still being computed. A build of the same corpus
that finds an incomplete build (a killed builder) builds it again, reusing the embedding cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

ProgressCallback = Callable[[str, float], None]
"""Called with (stage, fraction of that stage done); lets a server show build progress."""
TierCallback = Callable[[str, Path], None]
"""Called with (leg, build directory) right after each tier is published."""

import numpy as np

from graphmem.memory import TRIPLE_HNSW_THRESHOLD, ChunkText, GraphLimits, build_graph, save_graph
from indexing import publish
from indexing.analyzer import Analyzer, default_analyzer
from indexing.build_format import (LEG_BM25, LEG_DENSE, LEG_GRAPH, REPORT_FILE, SCHEMA_VERSION, TIERS, ChunkingParams,
                                   CorpusInfo, EmbedderInfo, Manifest, journal_path, read_manifest, utc_timestamp)
from indexing.build_writer import BuildWriter, manifest_sections, write_build
from indexing.documents import CorpusError, Document, LoadedCorpus, SkippedDocument
from indexing.embedder import EmbedderSpec, TextEmbedder, load_embedder
from indexing.file_gate import ReadLimits
from indexing.embedding_cache import EmbeddingCache, embed_texts, open_embedding_cache
from indexing.lexical_index import LexicalIndex
from indexing.lexical_pass import lexical_pass
from indexing.loaders import load_corpus
from indexing.settings import DEFAULT_CHUNK_TOKENS, Settings
from indexing.store import ChunkRow
from indexing.vector_index import VectorIndex

log = logging.getLogger("ragmem.indexing.builder")


@dataclass
class BuildSummary:
    collection: str
    build_dir: Path
    unchanged: bool
    documents: int
    chunks: int
    skipped: list[SkippedDocument]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    bytes_on_disk: int = 0
    embedded: int = 0
    """Chunks that had to be embedded (the rest came from the embedding cache)."""
    tier_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds from the start of the build to the publish of each tier (leg)."""

    def lines(self) -> list[str]:
        """Human summary for the CLI."""
        state = "unchanged (same corpus fingerprint), nothing rebuilt" if self.unchanged else "published"
        out = [f"collection {self.collection!r} {state}: {self.build_dir}",
               f"  documents: {self.documents}   chunks: {self.chunks}   skipped: {len(self.skipped)}"
               f"   embedded now: {self.embedded}   on disk: {self.bytes_on_disk / 1e6:.1f} MB"]
        if self.stage_seconds:
            out.append("  seconds: " + "  ".join(f"{k}={v:.2f}" for k, v in self.stage_seconds.items()))
        if self.tier_seconds and not self.unchanged:
            out.append("  legs published after (s): "
                       + "  ".join(f"{leg}={seconds:.2f}" for leg, seconds in self.tier_seconds.items()))
        for skip in self.skipped[:50]:
            where = f"{skip.source}" + (f" (doc_index {skip.doc_index})" if skip.doc_index is not None else "")
            out.append(f"  skipped {where}: {skip.reason}")
        if len(self.skipped) > 50:
            out.append(f"  ... and {len(self.skipped) - 50} more skipped (see {REPORT_FILE})")
        return out


class _Stages:
    def __init__(self, progress: ProgressCallback | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress or (lambda stage, fraction: None)
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.progress(name, 0.0)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 4)


def chunking_params(settings: Settings, embedder: TextEmbedder) -> ChunkingParams:
    chunk_tokens = settings.chunk_tokens or min(DEFAULT_CHUNK_TOKENS, embedder.max_seq_length)
    overlap = settings.chunk_overlap if settings.chunk_overlap is not None else round(chunk_tokens * 0.15)
    if chunk_tokens > embedder.max_seq_length:
        log.warning("chunk budget %d exceeds the model's max_seq_length %d: the model will truncate chunks",
                    chunk_tokens, embedder.max_seq_length)
    return ChunkingParams(chunk_tokens=chunk_tokens, overlap_tokens=overlap, title_tokens=settings.title_tokens,
                          tokenizer=embedder.name, splitters=["paragraph", "line", "sentence", "token"])


def corpus_fingerprint(corpus: LoadedCorpus, config: dict) -> str:
    """Digest of the config and of the bytes the loader indexed (their sha256s, recorded as read).

    Files are never re-opened here: one replaced after loading must not give the old content
    the new content's fingerprint (the next build would then wrongly be "unchanged").
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name in corpus.files:
        if name not in corpus.file_digests:
            raise ValueError(f"{name}: no digest of the bytes loaded from it (LoadedCorpus.file_digests)")
        digest.update(Path(name).name.encode())
        digest.update(bytes.fromhex(corpus.file_digests[name]))
    return digest.hexdigest()


def build_collection(corpus_path: str | Path, collection: str | None, settings: Settings, force: bool = False,
                     show_progress: bool = True, progress: ProgressCallback | None = None,
                     roots: Sequence[Path] | None = None, limits: ReadLimits | None = None,
                     cancel: Callable[[], None] | None = None, on_tier: TierCallback | None = None) -> BuildSummary:
    """Load, build and publish ``corpus_path``, tier by tier when ``settings.tiered_publish``.

    ``roots`` are where the loaders may read (None: the corpus itself), ``limits`` bound what
    they read (default: the settings'), and ``cancel`` is called while loading and may raise to
    stop the build (later stages stop through ``progress``). ``on_tier`` hears of each publish.
    """
    corpus_path = Path(corpus_path)
    name = publish.check_name(collection or publish.collection_name_from(corpus_path))
    stages = _Stages(progress)
    with stages.stage("load"):
        corpus = load_corpus(corpus_path, roots, limits or ReadLimits.from_settings(settings), cancel)
    return _build_and_publish(name, corpus, corpus_path, settings, stages, force, show_progress,
                              lambda config: corpus_fingerprint(corpus, config), tiered=settings.tiered_publish,
                              on_tier=on_tier)


def build_from_documents(name: str, documents: list[Document], corpus_path: Path, settings: Settings,
                         show_progress: bool = False) -> BuildSummary:
    """Build and publish ``name`` from documents already in hand (compaction of a live collection).

    The same pipeline as :func:`build_collection`, so the result equals a fresh build of the same
    documents, published in one step: the collection serves every leg now and must not drop to
    BM25 while it is rebuilt. The caller holds the collection's build lock.
    """
    corpus = LoadedCorpus(documents=documents, skipped=[], files=[])

    def fingerprint(config: dict) -> str:
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for doc in documents:
            digest.update(json.dumps([doc.doc_id, doc.title, doc.url, doc.text], ensure_ascii=False).encode())
        return digest.hexdigest()

    return _build_and_publish(name, corpus, corpus_path, settings, _Stages(None), True, show_progress, fingerprint,
                              locked=True)


def _build_and_publish(name: str, corpus: LoadedCorpus, corpus_path: Path, settings: Settings, stages: "_Stages",
                       force: bool, show_progress: bool, fingerprint_of: Callable[[dict], str],
                       locked: bool = False, tiered: bool = False, on_tier: TierCallback | None = None) -> BuildSummary:
    root = publish.collection_root(settings.data_dir, name)
    if not corpus.documents and not locked:
        raise CorpusError(_nothing_to_index(corpus_path, corpus))
    with stages.stage("model"):
        embedder = load_embedder(EmbedderSpec.from_settings(settings))
    params = chunking_params(settings, embedder)
    analyzer = default_analyzer()
    config = {"schema": SCHEMA_VERSION, "embedder": f"{embedder.backend}:{embedder.cache_key}", "chunking": params.to_dict(),
              "analyzer": analyzer.describe(),
              "bm25": {"k1": settings.bm25_k1, "b": settings.bm25_b, "method": settings.bm25_method},
              "faiss": {"threshold": settings.hnsw_threshold, "M": settings.hnsw_m},
              "graph": {**asdict(graph_limits(settings)), "triple_hnsw_above": TRIPLE_HNSW_THRESHOLD}
              if settings.graph else None}
    if settings.shards > 1 and not locked:
        config["shards"] = settings.shards  # a sharded build of the same corpus is a different build
    fingerprint = fingerprint_of(config)

    with (nullcontext() if locked else publish.build_lock(root)):
        current = publish.current_build_dir(settings.data_dir, name)
        if current is not None and not force:
            manifest = read_manifest(current)
            if manifest.corpus.fingerprint == fingerprint and manifest.complete:
                return BuildSummary(name, current, True, manifest.counts.documents, manifest.counts.chunks,
                                    corpus.skipped, stages.seconds, publish.directory_bytes(current),
                                    tier_seconds=manifest.tier_seconds)
            if manifest.corpus.fingerprint == fingerprint:
                log.info("collection %s: build %s of this corpus stopped before %s; building it again (cached "
                         "embeddings are reused)", name, current.name, ", ".join(manifest.pending))
        if current is not None and not locked and journal_path(root, current.name).exists():
            log.warning("collection %s has live changes (add/delete) on build %s; this rebuild from %s replaces "
                        "them (the journal stays at %s)", name, current.name, corpus_path,
                        journal_path(root, current.name))
        with write_build(root) as build:
            if "shards" in config:
                manifest, final = _build_sharded(build, name, corpus, corpus_path, fingerprint, embedder, analyzer,
                                                 params, settings, stages, show_progress)
            else:
                tiers = _Tiers(build, settings.keep_builds, stages, tiered, on_tier or (lambda leg, path: None),
                               settings.fault_pause_after_tier)
                manifest = _build_into(tiers, name, corpus, corpus_path, fingerprint, embedder, analyzer, params,
                                       settings, stages, show_progress)
                final = tiers.published
    summary = BuildSummary(name, final, False, manifest.counts.documents, manifest.counts.chunks, corpus.skipped,
                           stages.seconds, publish.directory_bytes(final), manifest.counts.embedded,
                           manifest.tier_seconds)
    log.info("published %s (%d documents, %d chunks) in %.1fs", name, summary.documents, summary.chunks,
             sum(stages.seconds.values()))
    return summary


def _build_sharded(build: BuildWriter, name: str, corpus: LoadedCorpus, corpus_path: Path, fingerprint: str,
                   embedder: TextEmbedder, analyzer: Analyzer, params: ChunkingParams, settings: Settings,
                   stages: "_Stages", show_progress: bool) -> tuple[Manifest, Path]:
    """``settings.shards`` shards built as Ray tasks (:mod:`indexing.sharded_build`), published once."""
    from indexing.shard_tasks import shard_tasks
    from indexing.sharded_build import build_sharded_into

    tasks = shard_tasks(settings.ray_address)
    manifest = build_sharded_into(build, name, corpus, corpus_path, fingerprint, embedder, analyzer, params,
                                  settings, stages, show_progress, tasks)
    with stages.stage("publish"):
        manifest = replace(manifest, stage_seconds=dict(stages.seconds),
                           tier_seconds={leg: round(stages.elapsed(), 3) for leg in manifest.legs})
        final = build.publish(manifest, settings.keep_builds)
    return manifest, final


def _nothing_to_index(corpus_path: Path, corpus: LoadedCorpus) -> str:
    """Why a corpus gave no document: a build of nothing would only hide the mistake."""
    if not corpus.skipped:
        return f"{corpus_path.name}: the corpus has no documents"
    first = corpus.skipped[0]
    return (f"{corpus_path.name}: the corpus has no indexable document ({len(corpus.skipped)} skipped; first: "
            f"{first.source}: {first.reason})")


def graph_limits(settings: Settings) -> GraphLimits:
    """The limits a collection build gives ``build_graph`` (part of the build's fingerprint)."""
    return GraphLimits(max_triples_per_chunk=settings.graph_max_triples_per_chunk,
                       max_triples=settings.graph_max_triples, synonym_threshold=settings.graph_synonym_threshold,
                       synonym_min_chunks=settings.graph_synonym_min_chunks,
                       triple_vectors=settings.graph_triple_vectors)


def _build_graph_memory(build: BuildWriter, documents: list[Document], rows: list[ChunkRow], chunk_vectors: np.ndarray,
                        embedder: TextEmbedder, cache: EmbeddingCache, settings: Settings, stages: "_Stages",
                        show_progress: bool) -> dict:
    """Knowledge-graph memory of the chunks, embedded through the same cache as the chunks.

    Its triples carry their chunk's vector (``graphmem.memory.TRIPLE_VECTORS_CHUNK``), the one the
    embed stage has just computed, so the graph stage embeds only entity names.
    """
    def encode(texts: list[str]) -> np.ndarray:
        vectors, _ = embed_texts(embedder, texts, cache, max(256, settings.embed_batch_size), show_progress=False)
        return vectors

    memory = build_graph([ChunkText(row=i, text=r.text, title=documents[r.doc_row].title) for i, r in enumerate(rows)],
                         encode, graph_limits(settings), progress=stages.progress, show_progress=show_progress,
                         chunk_vectors=chunk_vectors if len(rows) else None)
    build.graph(lambda directory: save_graph(memory, directory))
    return memory.describe()


GRAPH_PROGRESS_SHARES = {"extract": (0.0, 0.4), "graph": (0.4, 0.45), "embed": (0.45, 0.95), "synonyms": (0.95, 1.0)}
"""Where each of the graph memory's own stages lies within the graph leg's progress (0-1); rough
shares of its time in ``make bench-index``, used only to report progress and an ETA."""


class _GraphProgress:
    """Stands in for :class:`_Stages` inside the graph stage: the graph memory's stages (extract,
    graph, embed, synonyms) become fractions of one ``graph`` stage, so its embedding is not
    reported as the chunk embedding's."""

    def __init__(self, stages: _Stages) -> None:
        self.stages = stages

    def progress(self, stage: str, fraction: float) -> None:
        low, high = GRAPH_PROGRESS_SHARES.get(stage, (0.0, 0.0))
        if high:
            self.stages.progress("graph", low + (high - low) * min(max(fraction, 0.0), 1.0))


class _Tiers:
    """Publishes a build leg by leg (or, untiered, once with every leg), timing each publish."""

    def __init__(self, build: BuildWriter, keep_builds: int, stages: _Stages, tiered: bool,
                 on_tier: TierCallback, pause_after_tier: float = 0.0) -> None:
        self.build, self.keep_builds, self.stages = build, keep_builds, stages
        self.tiered, self.on_tier = tiered, on_tier
        self.pause_after_tier = pause_after_tier
        """``RAGMEM_FAULT_PAUSE_AFTER_TIER``: lets a test search each tier before the next one lands."""
        self.seconds: dict[str, float] = {}
        self.published: Path | None = None

    def ready(self, leg: str, legs: Sequence[str], manifest_of: Callable[[list[str], list[str], dict], Manifest]
              ) -> Manifest:
        """``leg`` is written; publish it unless a later leg comes and the build is untiered."""
        ready = list(TIERS[: TIERS.index(leg) + 1])
        pending = [other for other in legs if other not in ready]
        if pending and not self.tiered:
            return manifest_of(ready, pending, dict(self.seconds))
        with self.stages.stage("publish"):
            self.seconds[leg] = round(self.stages.elapsed(), 3)
            manifest = manifest_of(ready, pending, dict(self.seconds))
            self.published = self.build.publish(manifest, self.keep_builds)
            if pending:
                self.build.next_tier()
        log.info("published %s of %s (%s) after %.1fs", leg, manifest.collection, self.published.name,
                 self.seconds[leg])
        self.on_tier(leg, self.published)
        if pending and self.pause_after_tier:
            time.sleep(self.pause_after_tier)
        return manifest


def _build_into(tiers: _Tiers, name: str, corpus: LoadedCorpus, corpus_path: Path, fingerprint: str,
                embedder: TextEmbedder, analyzer: Analyzer, params: ChunkingParams, settings: Settings, stages: _Stages,
                show_progress: bool) -> Manifest:
    """Write every part of the build, publishing each tier as soon as its leg exists; returns the
    final manifest. BM25 and the store come first because they need no model inference."""
    build = tiers.build
    documents = corpus.documents
    legs = [LEG_BM25, LEG_DENSE] + ([LEG_GRAPH] if settings.graph else [])
    with stages.stage("chunk"):  # chunking and BM25 analysis: the lexical pass
        chunked = lexical_pass(documents, embedder, params, analyzer, settings.chunk_processes, show_progress,
                               lambda fraction: stages.progress("chunk", fraction))
        rows, embed_inputs, counts = chunked.rows, chunked.embed_inputs, chunked.counts
    with stages.stage("bm25"):
        lexical = LexicalIndex.build(chunked.terms, settings.bm25_k1, settings.bm25_b, settings.bm25_method)
        build.lexical(lexical)
    with stages.stage("store"):
        build.store(documents, counts, rows, corpus.skipped)
        build.report({"files": corpus.files, "documents": len(documents),
                      "skipped": [asdict(s) for s in corpus.skipped]})

    def manifest_of(dense: VectorIndex | None, graph_info: dict | None, embedded: int,
                    embedder_info: EmbedderInfo | None = None):
        def make(ready: list[str], pending: list[str], tier_seconds: dict) -> Manifest:
            return Manifest(
                collection=name, build_id=build.build_id, created_at=utc_timestamp(),
                corpus=CorpusInfo(path=str(corpus_path.resolve()), fingerprint=fingerprint, files=len(corpus.files)),
                embedder=embedder_info or EmbedderInfo.of(embedder), chunking=params,
                **manifest_sections(analyzer, lexical, dense, documents, rows, len(corpus.skipped), embedded),
                graph=graph_info, stage_seconds=dict(stages.seconds), legs=ready, pending=pending,
                tier_seconds=tier_seconds)
        return make

    manifest = tiers.ready(LEG_BM25, legs, manifest_of(None, None, 0))
    cache = open_embedding_cache(settings.data_dir, embedder)
    try:
        with stages.stage("embed"):
            vectors, embedded = embed_texts(embedder, embed_inputs, cache, settings.embed_batch_size,
                                            show_progress=show_progress,
                                            on_progress=lambda fraction: stages.progress("embed", fraction))
        with stages.stage("faiss"):
            dense = VectorIndex.build(vectors if len(rows) else np.zeros((0, embedder.dimension), np.float32),
                                      settings.hnsw_threshold, settings.hnsw_m, settings.hnsw_ef_construction,
                                      settings.hnsw_ef_search)
            build.dense(dense)
        embedder_info = EmbedderInfo.of(embedder, vectors)  # measures a joint space's spreads once
        manifest = tiers.ready(LEG_DENSE, legs, manifest_of(dense, None, embedded, embedder_info))
        if settings.graph:
            with stages.stage("graph"):
                graph_info = _build_graph_memory(build, documents, rows, vectors, embedder, cache, settings,
                                                 _GraphProgress(stages), show_progress)
            manifest = tiers.ready(LEG_GRAPH, legs, manifest_of(dense, graph_info, embedded, embedder_info))
    finally:
        cache.close()
    return manifest

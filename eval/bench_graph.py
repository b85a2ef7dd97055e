"""`make bench-graph`: what the knowledge-graph memory costs — build seconds per 1,000 chunks and
the query latency it adds at 100k chunks.

* Build: real collection builds with the real embedder (cold embedding cache, throw-away data
  roots) of the real agent corpus ``miro/005/..._128k.json``, graph on. Baseline in the same run:
  the previous graph stage, which embedded every triple's text and every entity name
  (``RAGMEM_GRAPH_TRIPLE_VECTORS=text``, ``RAGMEM_GRAPH_SYNONYM_MIN_CHUNKS=1``); the default gives
  each triple its chunk's vector and embeds only entities named in two or more chunks.
* Query: a 100,000-chunk graph memory extracted for real (the offline extractor) from synthetic
  chunks made of sentences sampled from all real miro corpora, built as collections build it (chunk
  vectors for triples). Embedding its chunks and entity names on a CPU would take hours, so they get
  *hashed* vectors: deterministic, unit-length,
  distinct per text, and meaningless. That measures latency (sizes, degrees, PageRank support),
  not retrieval quality; quality is measured by ``make eval``.

The added query latency is the graph channel of ``hybrid+graph`` — question-to-triple linking,
exact-mention extraction, personalized PageRank, the chunk top-k — timed in-process. Baseline in
the same run: the same channel with brute-force numpy linking and whole-graph power iteration.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from eval.report_sections import emit_section, start_bench
from graphmem.memory import (LARGE_WALK_STEPS, MIN_SYNONYM_CHUNKS, TRIPLE_VECTORS_TEXT, ChunkText, GraphLimits,
                             GraphMemory, build_graph, load_graph, save_graph)
from graphmem.retrieve import GraphQueryParams, graph_search, graph_seeds, walk_from_seeds
from indexing.embedder import QueryEncoding
from indexing.lexical_index import top_rows
from indexing.settings import Settings

log = logging.getLogger("ragmem.bench.graph")

BUILD_CORPUS = "corpora/miro/005/long_context_sampled_128k.json"
GOAL_ADDED_P50_MS = 15.0
HASH_DIM = 384
CHUNK_CHARS = (200, 900)


def hashed_encoder(dim: int = HASH_DIM):
    """Texts -> deterministic unit vectors that depend only on the text (no model)."""
    rng = np.random.default_rng(0)
    table_a = rng.standard_normal((1 << 16, dim)).astype(np.float32)
    table_b = rng.standard_normal((1 << 16, dim)).astype(np.float32)

    def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, dim), np.float32)
        h = np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                        "little") for t in texts), dtype=np.uint64, count=len(texts))
        v = table_a[(h & np.uint64(0xFFFF)).astype(np.int64)] + table_b[((h >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.int64)]
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return encode


def synthetic_chunks(shared: Path, n_chunks: int, seed: int) -> tuple[list[ChunkText], str]:
    """Chunks of random real sentences (real entity and co-occurrence statistics, synthetic documents)."""
    from eval.bench_query import POOL_GLOB, pool_documents

    texts, titles, files = pool_documents(shared)
    if files:
        where = f"sentences of all {len(files)} `{POOL_GLOB}` corpora"
    else:
        from eval.generated_corpus import make_documents

        docs = make_documents(n_docs=200, seed=seed, paragraphs=12)
        texts = [d["page_body"] for d in docs]
        titles = [d["title"] for d in docs]
        where = f"a generated corpus (`eval.generated_corpus.make_documents`): `{shared}` was absent"
    sentences = sorted({s.strip() for t in texts for s in _split_sentences(t) if len(s.strip()) >= 8})
    rng = random.Random(seed)
    chunks = []
    for row in range(n_chunks):
        target = rng.randint(*CHUNK_CHARS)
        parts: list[str] = []
        while sum(map(len, parts)) < target:
            parts.append(rng.choice(sentences))
        chunks.append(ChunkText(row=row, text="".join(parts), title=rng.choice(titles)))
    return chunks, where


def _split_sentences(text: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in "。！？!?；;\n" or (ch == "." and i + 1 < len(text) and text[i + 1] == " "):
            out.append(text[start : i + 1])
            start = i + 1
    out.append(text[start:])
    return out


def synthetic_graph(shared: Path, n_chunks: int, seed: int, cache_dir: Path) -> tuple[GraphMemory, dict]:
    """The 100k-chunk memory, reused from ``cache_dir`` when built earlier with the same parameters."""
    directory = cache_dir / f"synthetic-graph-{n_chunks}-{seed}-chunk-vectors"
    if (directory / "done").exists():
        started = time.perf_counter()
        memory = load_graph(directory)
        log.info("reused %s (%.1fs to load)", directory, time.perf_counter() - started)
        return memory, {"where": (directory / "done").read_text(), "build_seconds": memory.stage_seconds}
    chunks, where = synthetic_chunks(shared, n_chunks, seed)
    encode = hashed_encoder()
    memory = build_graph(chunks, encode, GraphLimits(synonym_min_chunks=MIN_SYNONYM_CHUNKS), show_progress=True,
                         chunk_vectors=encode([c.text for c in chunks]))
    shutil.rmtree(directory, ignore_errors=True)
    save_graph(memory, directory)
    (directory / "done").write_text(where)
    return memory, {"where": where, "build_seconds": memory.stage_seconds}


# ---------------------------------------------------------------------------------------------
# build cost on a real corpus
# ---------------------------------------------------------------------------------------------

BASELINE_GRAPH = {"graph_triple_vectors": TRIPLE_VECTORS_TEXT, "graph_synonym_min_chunks": 1}
"""The graph stage before issue 14: every triple's text and every entity name embedded."""
GOAL_GRAPH_OVER_EMBED = 0.5
"""Issue 14: the graph stage within half the chunk embedding's time."""


def build_cost(shared: Path, data_dir: Path, **overrides: object) -> dict:
    """Build the real 128k agent corpus with the graph on, from a cold embedding cache."""
    from indexing.builder import build_collection
    from indexing.collection import open_collection

    data_dir.mkdir(parents=True, exist_ok=True)
    corpus = shared / BUILD_CORPUS
    if not corpus.exists():
        from eval.generated_corpus import write_json_corpus

        corpus = write_json_corpus(data_dir / "generated_corpus.json", n_docs=60, seed=3, paragraphs=12)
    settings = Settings(data_dir=data_dir, graph=True, **overrides)
    started = time.perf_counter()
    summary = build_collection(corpus, "graph-build", settings, show_progress=False)
    wall = time.perf_counter() - started
    collection = open_collection(data_dir, "graph-build")
    info = collection.manifest.graph
    return {"corpus": str(corpus.relative_to(shared)) if corpus.is_relative_to(shared) else "generated",
            "chunks": summary.chunks, "wall": wall, "stages": dict(summary.stage_seconds), "graph": info,
            "collection": collection}


# ---------------------------------------------------------------------------------------------
# query latency at 100k chunks
# ---------------------------------------------------------------------------------------------

def graph_queries(memory: GraphMemory, chunks_text: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    queries = []
    while len(queries) < n:
        text = rng.choice(chunks_text)
        length = rng.randint(10, 40)
        if len(text) > length:
            start = rng.randrange(len(text) - length)
            queries.append(" ".join(text[start : start + length].split()))
    return queries


def added_latency(memory: GraphMemory, queries: list[str], seed: int, pool: int = 100) -> dict:
    """Per-query ms of the graph channel (new) and of the same channel done by brute force (baseline)."""
    encode = hashed_encoder(memory.triple_vectors.shape[1] if memory.triple_vectors.ndim == 2 else HASH_DIM)
    rng = np.random.default_rng(seed)
    params = GraphQueryParams()
    walk_started = time.perf_counter()
    memory.walk()
    prepare = time.perf_counter() - walk_started
    prepared = []
    for query in queries:
        dense_rows = rng.choice(memory.n_chunks, size=pool, replace=False).astype(np.int64)
        dense_scores = np.sort(rng.uniform(0.2, 0.8, pool).astype(np.float32))[::-1]
        prepared.append((query, encode([query]), dense_rows, dense_scores))
    for query, qvec, rows, scores in prepared[:5]:  # warm-up (jieba, faiss)
        graph_search(memory, query, qvec, rows, scores, params)

    new, old, overlap = [], [], []
    for query, qvec, rows, scores in tqdm(prepared, desc="graph channel", leave=False):
        started = time.perf_counter()
        result = graph_search(memory, query, qvec, rows, scores, params)
        top = top_rows(result.chunk_scores, pool)
        new.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        exact = _brute_force_channel(memory, query, qvec, rows, scores, params)
        exact_top = top_rows(exact, pool)
        old.append((time.perf_counter() - started) * 1000)
        overlap.append(len(set(top.tolist()) & set(exact_top.tolist())) / max(1, len(exact_top)))
    return {"new": np.array(new), "old": np.array(old), "overlap": np.array(overlap), "prepare_s": prepare}


def live_update_cost(memory: GraphMemory, seed: int) -> dict[str, tuple[float, float]]:
    """Seconds to merge a change into the memory, and to rebuild the walk matrices after it."""
    from graphmem.update import update_graph

    rng = random.Random(seed)
    texts = [memory.triple_text(rng.randrange(memory.n_triples)) + "." for _ in range(30)]
    added = [ChunkText(row=memory.n_chunks + i, text=" ".join(texts[i * 10 : (i + 1) * 10]), title="Live note")
             for i in range(3)]
    encode = hashed_encoder(memory.triple_vectors.shape[1])
    out = {}
    for change in ("first add after loading", "add", "delete"):
        adding = change != "delete"
        alive = np.ones(memory.n_chunks + (3 if adding else 0), dtype=bool)
        if not adding:
            alive[[10, 11, 12]] = False
        started = time.perf_counter()
        updated = update_graph(memory, added if adding else [], alive, encode)
        merged = time.perf_counter() - started
        started = time.perf_counter()
        updated.walk().backward()
        out[change] = (merged, time.perf_counter() - started)
    return out


def _brute_force_channel(memory: GraphMemory, query: str, qvec: np.ndarray, rows: np.ndarray,
                         scores: np.ndarray, params: GraphQueryParams) -> np.ndarray:
    """The graph channel with numpy linking over every triple and whole-graph PageRank to convergence."""
    saved = memory.triple_index
    memory.triple_index = None  # top_triples falls back to scoring every triple vector
    try:
        seeds = graph_seeds(memory, query, qvec, rows, scores, params).seeds
    finally:
        memory.triple_index = saved
    return walk_from_seeds(memory, seeds, params.damping, exact=True)


def real_collection_latency(collection, n: int) -> dict[str, np.ndarray]:
    """In-process search() p50 of hybrid vs hybrid+graph on the real corpus just built."""
    from eval.bench_query import PARAMS, make_queries, timed
    from service.engine import SearchParams, search

    queries = make_queries(collection)
    out = {}
    for mode in ("hybrid", "hybrid+graph"):
        params = SearchParams(mode=mode, **PARAMS)
        for q in queries[:10]:
            search(collection, q, params)
        out[mode] = timed(lambda q: search(collection, q, params), queries, n)
    return out


def main(argv: list[str] | None = None) -> int:
    from eval.bench_query import fmt, machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks of the synthetic graph memory")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/.cache/bench"),
                        help="the synthetic graph is kept here and reused by later runs")
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_graph", argv)
    run_started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="ragmem-bench-graph-") as tmp:
        baseline = build_cost(args.shared, Path(tmp) / "baseline", **BASELINE_GRAPH)
        baseline.pop("collection")
        build = build_cost(args.shared, Path(tmp) / "default")
        collection = build.pop("collection")
        collection.query_encoding = QueryEncoding.for_serving(Settings(data_dir=Path(tmp)))
        real = real_collection_latency(collection, args.queries)

    memory, synth = synthetic_graph(args.shared, args.chunks, args.seed, args.cache_dir)
    texts = [memory.triple_text(i) for i in range(0, memory.n_triples, max(1, memory.n_triples // 2000))]
    queries = graph_queries(memory, texts, args.queries, args.seed)
    latency = added_latency(memory, queries, args.seed)
    live = live_update_cost(memory, args.seed)
    size = memory.describe()
    walk = memory.walk()

    stages = build["stages"]
    graph_s = stages.get("graph", 0.0)
    inner = build["graph"].get("stage_seconds", {})
    base_stages, base_inner = baseline["stages"], baseline["graph"].get("stage_seconds", {})
    ratio, base_ratio = (graph_s / max(stages.get("embed", 0), 1e-9),
                         base_stages.get("graph", 0) / max(base_stages.get("embed", 0), 1e-9))

    def per_k(seconds: float) -> str:
        return f"{seconds / max(1, build['chunks']) * 1000:.1f}"
    p50_new, p50_old = float(np.median(latency["new"])), float(np.median(latency["old"]))
    lines = [
        f"Command: `{command}` ({time.perf_counter() - run_started:.0f} s). Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "### Build cost (real corpus, real embedder, cold embedding cache)",
        "",
        f"`{build['corpus']}`: {build['chunks']} chunks, {build['graph']['entities']:,} entities, "
        f"{build['graph']['triples']:,} triples. Two builds in this run, each from a cold cache in its own data "
        "root: the baseline graph stage (every triple text and entity name embedded: "
        f"{', '.join(f'{k}={v}' for k, v in BASELINE_GRAPH.items())}) and the default (triples carry their "
        f"chunk's vector; only entities named in >= {MIN_SYNONYM_CHUNKS} chunks embedded). Seconds, and per "
        "1,000 chunks in brackets.",
        "",
        "| stage | baseline s | default s |",
        "|---|---:|---:|",
        f"| chunk embedding (`embed`) | {base_stages.get('embed', 0):.1f} ({per_k(base_stages.get('embed', 0))}) | "
        f"{stages.get('embed', 0):.1f} ({per_k(stages.get('embed', 0))}) |",
        f"| **graph memory (`graph`)** | {base_stages.get('graph', 0):.1f} ({per_k(base_stages.get('graph', 0))}) | "
        f"**{graph_s:.1f}** ({per_k(graph_s)}) |",
    ]
    for name in dict.fromkeys([*base_inner, *inner]):
        lines.append(f"| graph: {name} | {base_inner.get(name, 0):.1f} | {inner.get(name, 0):.1f} |")
    lines += [
        f"| whole build (wall) | {baseline['wall']:.1f} | {build['wall']:.1f} |",
        f"| graph / embed | {base_ratio:.2f} | **{ratio:.2f}** |",
        "",
        f"- Goal (issue 14): graph stage <= {GOAL_GRAPH_OVER_EMBED}x the chunk embedding: "
        f"**{'PASS' if ratio <= GOAL_GRAPH_OVER_EMBED else 'FAIL'}** — {ratio:.2f}x (baseline {base_ratio:.2f}x). "
        "Recall of both settings: `make eval` (docs/EVAL.md).",
        "",
        f"Real-corpus query cost, in-process `search()` on the same collection, {args.queries} queries "
        f"(make_queries of bench-query): hybrid p50 {fmt(np.median(real['hybrid']))} ms, "
        f"hybrid+graph p50 {fmt(np.median(real['hybrid+graph']))} ms "
        f"(+{np.median(real['hybrid+graph']) - np.median(real['hybrid']):.1f} ms); p95 "
        f"{fmt(np.percentile(real['hybrid'], 95))} / {fmt(np.percentile(real['hybrid+graph'], 95))} ms.",
        "",
        f"### Added query latency at {memory.n_chunks:,} chunks (synthetic graph memory)",
        "",
        f"Graph: {size['entities']:,} entities, {size['triples']:,} triples (cap {size['limits']['max_triples']:,}), "
        f"{size['relation_edges']:,} relation edges, {size['mention_edges']:,} mention edges, "
        f"{walk.edges:,} stored transitions; triple index `{size['triple_index']}`. Extracted for real from "
        f"chunks of random sentences ({synth['where']}); entity and triple vectors are hashed (no model), so "
        "linking picks arbitrary triples: this measures latency, not quality. Preparing the walk matrices "
        f"once per loaded collection: {latency['prepare_s']:.1f} s.",
        "",
        f"{args.queries} queries (10–40 character spans of triple texts); per query: triple linking, exact "
        "mentions in the question, personalized PageRank, top-100 chunks.",
        "",
        "| graph channel | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| baseline: numpy linking over every triple + whole-graph PageRank to convergence | {fmt(p50_old)} | "
        f"{fmt(np.percentile(latency['old'], 95))} | {fmt(np.percentile(latency['old'], 99))} |",
        f"| ragmem: HNSW linking + PageRank in float32 for a fixed {LARGE_WALK_STEPS} steps | **{fmt(p50_new)}** | {fmt(np.percentile(latency['new'], 95))} | "
        f"{fmt(np.percentile(latency['new'], 99))} |",
        "",
        f"Top-100 chunks of the {LARGE_WALK_STEPS}-step walk vs the converged walk: mean overlap {latency['overlap'].mean():.3f}, "
        f"min {latency['overlap'].min():.2f}.",
        "",
        f"- Goal: added latency ≤ {GOAL_ADDED_P50_MS:.0f} ms p50 at 100k chunks: "
        f"**{'PASS' if p50_new <= GOAL_ADDED_P50_MS else 'FAIL'}** — {p50_new:.1f} ms "
        f"(baseline {p50_old:.1f} ms, {p50_old / max(p50_new, 1e-9):.1f}x).",
        "",
        f"### Graph side of a live write at {memory.n_chunks:,} chunks",
        "",
        "`graphmem.update.update_graph` on the same memory (what a live collection's snapshot refresh does "
        "for the graph), then the first query's transition-matrix rebuild; hashed vectors as above:",
        "",
        "| change | update_graph s | transition + walk s |",
        "|---|---:|---:|",
        f"| add one 3-chunk document, first write after loading (indexes the base's triples) | "
        f"{live['first add after loading'][0]:.2f} | {live['first add after loading'][1]:.2f} |",
        f"| add one 3-chunk document | {live['add'][0]:.2f} | {live['add'][1]:.2f} |",
        f"| delete 3 chunks' document | {live['delete'][0]:.2f} | {live['delete'][1]:.2f} |",
        "",
        "This is per write and per server process, on top of the store/BM25/FAISS side measured by bench-live; "
        "it is linear in the graph's size, so large graph collections should batch writes.",
    ]
    return emit_section(args.out, "bench-graph", lines)


if __name__ == "__main__":
    sys.exit(main())

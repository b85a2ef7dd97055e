"""`ragmem eval`: index each benchmark's corpus with the real pipeline, query it through the
service's own retrieval code (or a live server with ``--url``), and score every mode side by side."""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm.auto import tqdm

from eval.datasets import EvalDataset, load_dataset
from eval.metrics import metrics_for_question, summarize
from eval.seed_baseline import SeedBaseline
from indexing.builder import build_collection
from indexing.collection import Collection, open_collection
from indexing.embedder import QueryEncoding
from indexing.embedding_cache import embedding_cache_dir
from indexing.joint_embedder import first_space
from indexing.settings import Settings
from service.engine import LIMITS, MODES, SearchParams, search

log = logging.getLogger("ragmem.eval.runner")

SEED_BASELINE = "seed-baseline"
DEFAULT_KS = (1, 2, 5, 10, 20)
REPORT_METRICS = ("recall@1", "recall@2", "recall@5", "recall@10", "recall@20", "all_recall@5", "mrr@10",
                  "ndcg@10", "answer_recall@5", "latency_ms_p50")


def available_modes() -> list[str]:
    return [*MODES, SEED_BASELINE]


@dataclass
class EvalConfig:
    datasets: list[Path]
    modes: list[str] = field(default_factory=available_modes)
    ks: tuple[int, ...] = DEFAULT_KS
    out_dir: Path | None = None
    url: str | None = None
    graph_walk_steps: int | None = None
    """Run the graph's PageRank for exactly this many steps (None: the service's own choice), to
    measure what the fixed-step walk used on large graphs costs in recall on these small ones."""


def _collection_for(dataset: EvalDataset, settings: Settings) -> Collection:
    corpus_dir = Path(settings.data_dir) / "eval-corpora"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    corpus = corpus_dir / f"{dataset.name}.json"
    payload = json.dumps(dataset.corpus_documents(), ensure_ascii=False)
    if not corpus.exists() or corpus.read_text(encoding="utf-8") != payload:
        corpus.write_text(payload, encoding="utf-8")
    name = f"eval-{dataset.name}"
    build_collection(corpus, name, settings)  # a no-op when the corpus and settings are unchanged
    return open_collection(settings.data_dir, name, settings.device)


def _ranked_local(collection: Collection, query: str, mode: str, depth: int) -> list[tuple[str, str]]:
    result = search(collection, query, SearchParams(top_k=depth, diverse=False, mode=mode, pool=max(100, depth)))
    return [(hit.record.metadata.get("doc_key", hit.record.doc_id), hit.record.text) for hit in result.hits]


def _ranked_remote(client: httpx.Client, collection: str, query: str, mode: str, depth: int,
                   key_of: dict[str, str]) -> list[tuple[str, str]]:
    response = client.post("/rag_search", json={"query": query, "collection": collection, "mode": mode,
                                                "top_k": min(depth, LIMITS.top_k.high), "diverse": False})
    response.raise_for_status()
    return [(key_of.get(r["doc_id"], r["doc_id"]), r["content"] or "") for r in response.json()["results"]]


def _doc_keys(collection: Collection) -> dict[str, str]:
    """doc_id -> benchmark passage key, for results that come back from a live server."""
    records = collection.store.chunks(list(range(collection.store.n_chunks)))
    return {r.doc_id: r.metadata.get("doc_key", r.doc_id) for r in records}


def evaluate_dataset(dataset: EvalDataset, config: EvalConfig, settings: Settings,
                     collection: Collection | None = None) -> dict:
    collection = collection or _collection_for(dataset, settings)
    passages = dataset.passages_by_key()
    depth = max(config.ks) * 3  # several chunks of one passage collapse to one key
    queries = [q for q in dataset.queries if q.query.strip()]
    blank = [q.qid for q in dataset.queries if not q.query.strip()]
    if blank:  # the service rejects an empty query (422), so the benchmark cannot ask it either
        log.warning("%s: skipping %d question(s) with empty text: %s", dataset.name, len(blank), blank[:10])
    out: dict = {"layout": dataset.layout, "passages": len(dataset.passages), "queries": len(queries),
                 "skipped_queries": blank, "chunks": collection.store.n_chunks, "modes": {}, "per_question": {},
                 "build": {"build_id": collection.build_id, "stage_seconds": collection.manifest.stage_seconds,
                           "graph": collection.manifest.graph}}
    baseline = None
    client = httpx.Client(base_url=config.url, timeout=120) if config.url else None
    key_of = _doc_keys(collection) if client is not None else {}
    for mode in config.modes:
        if mode == SEED_BASELINE and baseline is None:
            # The seed tool embedded with one model: the collection's first space.
            baseline = SeedBaseline.build(dataset.corpus_documents(), first_space(collection.embedder),
                                          embedding_cache_dir(settings.data_dir))
        per_question, latencies, ranks = [], [], []
        for q in tqdm(queries, desc=f"{dataset.name} {mode}", unit="q", leave=False):
            started = time.perf_counter()
            if mode == SEED_BASELINE:
                keys = baseline.search(q.query, depth)
                ranked = [(key, passages[key].text) for key in keys]
            elif client is not None:
                ranked = _ranked_remote(client, collection.name, q.query, mode, depth, key_of)
            else:
                ranked = _ranked_local(collection, q.query, mode, depth)
            latencies.append((time.perf_counter() - started) * 1000)
            keys = [key for key, _ in ranked]
            metrics = metrics_for_question(keys, set(q.gold), [text for _, text in ranked], q.answers or None,
                                           ks=config.ks)
            per_question.append(metrics)
            seen: list[str] = list(dict.fromkeys(keys))
            ranks.append({"qid": q.qid, "gold_ranks": {g: (seen.index(g) + 1 if g in seen else None) for g in q.gold},
                          "top": seen[:10]})
        summary = summarize(per_question)
        summary["latency_ms_p50"] = round(statistics.median(latencies), 3) if latencies else 0.0
        out["modes"][mode] = {k: round(v, 4) for k, v in summary.items()}
        out["per_question"][mode] = ranks
        log.info("%s %s: %s", dataset.name, mode, {k: out["modes"][mode].get(k) for k in ("recall@2", "recall@5")})
    if client is not None:
        client.close()
    return out


def run_eval(config: EvalConfig, settings: Settings) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S")
    out_dir = config.out_dir or Path("eval") / "results" / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"run_id": run_id, "config": {"modes": config.modes, "ks": list(config.ks), "url": config.url,
                                            "graph_walk_steps": config.graph_walk_steps,
                                            "embed_model": settings.embed_model,
                                            "embed_cross_lingual": settings.embed_cross_lingual,
                                            "datasets": [str(p) for p in config.datasets]},
               "datasets": {}}
    datasets = [load_dataset(path) for path in config.datasets]
    # Index first with the builder's torch threads; query-serving settings limit them afterwards.
    collections = [_collection_for(dataset, settings) for dataset in datasets]
    for collection in collections:
        collection.graph_params = dataclasses.replace(collection.graph_params, walk_steps=config.graph_walk_steps)
    encoding = QueryEncoding.for_serving(settings)
    for collection in collections:
        collection.query_encoding = encoding
    for dataset, collection in zip(datasets, collections):
        results["datasets"][dataset.name] = evaluate_dataset(dataset, config, settings, collection)
    (out_dir / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1))
    from eval.report import write_plot, write_report

    write_report(results, out_dir / "report.md")
    write_plot(results, out_dir / "recall_at_k.png")
    log.info("eval results in %s", out_dir)
    return out_dir

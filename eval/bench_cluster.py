"""`make bench-cluster`: ragmem on a local multi-node Ray cluster against single-node serving.

A local cluster (``ray.cluster_utils.Cluster``: a head and worker nodes, all processes of this one
host) stands in for a real one. On a 2-core machine every node shares the same two cores, so no
speed-up is possible here and none is claimed: what this measures is the cost of the design (the
fan-out per query, the Serve proxy hop, per-task start-up in builds) and the per-shard inputs
``docs/SCALING.md`` extrapolates from.

1. Builds: the corpus unsharded in this process, and in ``--shards`` shards as Ray tasks, each on
   an empty embedding cache: chunks/s of each and per worker (concurrent tasks).
2. Queries, the agents' default call (``top_k=10, diverse, min_docs=5, max_per_doc=2``, default
   mode) over HTTP, at concurrency 1 and ``--concurrency``: single-node ``ragmem serve`` (the
   baseline), Ray Serve on the unsharded collection (one replica-held shard: the proxy hop and
   the remote shard calls), and Ray Serve on the sharded collection with 1 and 2 replicas per
   shard (the fan-out to more shards).
3. Bytes per chunk of each part of the sharded build on disk (BM25, FAISS, store, graph).
4. What one call costs to a Ray actor and to a Ray Serve handle (why shard replicas are actors).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from eval.bench_query import Load, fmt, machine, make_queries, run_load
from eval.generated_corpus import write_json_corpus
from eval.local_server import free_port, running_server, wait_until_serving
from eval.report_sections import emit_section, start_bench
from indexing import publish
from indexing.build_format import BM25_DIR, FAISS_FILE, GRAPH_DIR, STORE_FILE, SHARDS_DIR
from indexing.builder import build_collection
from indexing.collection import open_collection
from indexing.settings import Settings

log = logging.getLogger("ragmem.bench.cluster")

SECTION = "bench-cluster"
REAL_CORPUS = "corpora/miro/006/long_context_sampled_128k.json"
NODE_CPUS = 2
"""Logical CPUs each local node declares (they all share this host's cores)."""
SERVE_START_TIMEOUT_S = 300.0


def _serve_cluster(address: str, data_dir: Path, replicas: int, log_path: Path, port: int
                   ) -> tuple[subprocess.Popen, str]:
    """``ragmem serve --ray-address``; ``port`` is the same for every run (Serve's proxy port is the cluster's)."""
    env = {**os.environ, "RAGMEM_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--ray-address", address, "--replicas",
                             str(replicas), "--port", str(port)], env=env, stdout=open(log_path, "w"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(f"{base}/collections", proc, log_path, SERVE_START_TIMEOUT_S)  # the app, not just the proxy
    return proc, base


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()


def _loads(base: str, collection: str, queries: list[str], concurrency: int, n: int) -> dict[int, Load]:
    run_load(base, collection, "hybrid+graph", queries, 1, 10, 60)  # warm: model load, first fan-out
    return {1: run_load(base, collection, "hybrid+graph", queries, 1, n, 90),
            concurrency: run_load(base, collection, "hybrid+graph", queries, concurrency, n * 2, 90)}


CALLS = 200


class _Echo:
    """What a shard call costs with no work in it: the arguments back."""

    def call(self, method: str, *args):
        return args


def call_latency() -> dict[str, tuple[float, float]]:
    """p50/p99 ms of one call from a non-event-loop thread (as the ingress makes them) to a Ray actor
    and to a Ray Serve deployment handle, same payload as a dense top-k call (384 floats + ints).
    This is why shard replicas are plain actors (service/cluster/shard_client.py)."""
    import threading

    import numpy as np
    import ray
    from ray import serve

    actor = ray.remote(num_cpus=0.25)(_Echo).remote()
    handle = serve.run(serve.deployment(_Echo, name="echo", ray_actor_options={"num_cpus": 0.25},
                                        max_ongoing_requests=64).bind(), name="bench-echo", route_prefix=None)
    payload = ("dense_top", np.zeros((1, 384), np.float32), 100, None)
    calls = {"Ray actor call": lambda: ray.get(actor.call.remote(*payload)),
             "Ray Serve handle call": lambda: handle.call.remote(*payload).result()}
    out: dict[str, tuple[float, float]] = {}

    def measure(name, fn) -> None:
        for _ in range(10):
            fn()
        times = []
        for _ in range(CALLS):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
        out[name] = (float(np.percentile(times, 50)), float(np.percentile(times, 99)))

    for name, fn in calls.items():
        thread = threading.Thread(target=measure, args=(name, fn))
        thread.start()
        thread.join()
    serve.delete("bench-echo")
    ray.kill(actor)
    return out


def _bytes_per_chunk(build_dir: Path, chunks: int) -> dict[str, float]:
    def size(paths) -> int:
        return sum(p.stat().st_size for path in paths for p in ([path] if path.is_file() else path.rglob("*"))
                   if p.is_file())

    shards = sorted((build_dir / SHARDS_DIR).iterdir())
    return {"bm25": size([s / BM25_DIR for s in shards]) / chunks,
            "faiss": size([s / FAISS_FILE for s in shards]) / chunks,
            "store": size([s / STORE_FILE for s in shards]) / chunks,
            "graph": size([build_dir / GRAPH_DIR]) / chunks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=150, help="requests per load run at concurrency 1")
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_cluster", argv)
    import ray
    from ray.cluster_utils import Cluster

    run_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ragmem-bench-cluster-") as tmp:
        root = Path(tmp)
        corpus = args.shared / REAL_CORPUS
        shown = REAL_CORPUS
        if not corpus.exists():
            corpus, shown = write_json_corpus(root / "generated.json", n_docs=80, seed=3, paragraphs=12), \
                "a generated 80-document corpus"
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": NODE_CPUS})
        for _ in range(args.nodes - 1):
            cluster.add_node(num_cpus=NODE_CPUS)
        cluster.wait_for_nodes()
        cluster.connect()
        try:
            served, cold = root / "served", root / "cold"
            started = time.perf_counter()
            one = build_collection(corpus, "one", Settings(data_dir=served), show_progress=False)
            one_s = time.perf_counter() - started
            started = time.perf_counter()
            sharded = build_collection(corpus, "sharded", Settings(data_dir=cold, shards=args.shards,
                                                                   ray_address=cluster.address), show_progress=False)
            sharded_s = time.perf_counter() - started
            # the served sharded copy reads the unsharded build's cached vectors (same chunks and scores)
            build_collection(corpus, "sharded", Settings(data_dir=served, shards=args.shards,
                                                         ray_address=cluster.address), show_progress=False)
            manifest = open_collection(cold, "sharded").manifest
            per_chunk = _bytes_per_chunk(publish.current_build_dir(cold, "sharded"), sharded.chunks)
            queries = make_queries(open_collection(served, "one"))
            from ray import serve

            serve_port = free_port()  # Serve's HTTP options are the cluster's: set once, as ragmem serve will
            serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": serve_port})
            latency = call_latency()
            ray.shutdown()

            results: list[tuple[str, str, str, dict[int, Load]]] = []
            with running_server(served, env={"RAGMEM_WARM_UP": "true"}, timeout=180) as base:
                results.append(("single-node `ragmem serve`", "one", "1 x 1",
                                _loads(base, "one", queries, args.concurrency, args.requests)))
            for replicas in (1, 2):
                proc, base = _serve_cluster(cluster.address, served, replicas, root / f"serve-{replicas}.log",
                                            serve_port)
                try:
                    if replicas == 1:
                        results.append(("Ray Serve, unsharded collection", "one", "1 x 1",
                                        _loads(base, "one", queries, args.concurrency, args.requests)))
                    results.append((f"Ray Serve, {args.shards} shards", "sharded", f"{args.shards} x {replicas}",
                                    _loads(base, "sharded", queries, args.concurrency, args.requests)))
                finally:
                    _stop(proc)
        finally:
            ray.shutdown()
            cluster.shutdown()

    c = args.concurrency
    workers = min(args.shards, args.nodes * NODE_CPUS)
    base_p50 = results[0][3][1].pct(50)
    lines = [
        f"Command: `{command}` ({time.perf_counter() - run_started:.0f} s). Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"A local Ray cluster of {args.nodes} nodes ({NODE_CPUS} logical CPUs each, all on this host's cores), "
        f"corpus `{shown}` ({sharded.chunks} chunks, {sharded.documents} documents). On one 2-core host the "
        "nodes share the same cores, so no speed-up can show here; the rows measure what the design costs.",
        "",
        "### Builds (empty embedding cache each)",
        "",
        "| build | seconds | chunks/s | tasks at once | chunks/s per worker |",
        "|---|---:|---:|---:|---:|",
        f"| unsharded, this process | {one_s:.1f} | {one.chunks / one_s:.1f} | 1 | {one.chunks / one_s:.1f} |",
        f"| {args.shards} shards as Ray tasks | {sharded_s:.1f} | {sharded.chunks / sharded_s:.1f} | {workers} | "
        f"{sharded.chunks / sharded_s / workers:.1f} |",
        "",
        "Sharded build stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in manifest.stage_seconds.items())
        + "; per shard: " + "; ".join(", ".join(f"{k} {v:.1f}" for k, v in s.items())
                                     for s in manifest.shards["seconds"]) + ".",
        "",
        f"### Queries (default mode, HTTP, {args.requests} requests at c=1, {args.requests * 2} at c={c})",
        "",
        f"| server | collection | shards x replicas | c=1 p50 ms | c=1 p99 ms | c={c} QPS | c={c} p50 ms | "
        f"c={c} p99 ms | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, collection, shape, loads in results:
        one_c, many = loads[1], loads[c]
        lines.append(f"| {name} | {collection} | {shape} | {fmt(one_c.pct(50))} | {fmt(one_c.pct(99))} | "
                     f"{many.qps:.1f} | {fmt(many.pct(50))} | {fmt(many.pct(99))} | {one_c.errors + many.errors} |")
    serve_one = next(r for r in results if r[1] == "one" and r[0].startswith("Ray"))[3][1].pct(50)
    sharded_one = next(r for r in results if r[2] == f"{args.shards} x 1")[3][1].pct(50)
    lines += [
        "",
        f"- Serve proxy + remote shard calls (unsharded collection as one shard, c=1 p50): "
        f"{serve_one - base_p50:+.1f} ms over single-node.",
        f"- Fan-out to {args.shards} shards instead of 1 (c=1 p50, both on Serve): "
        f"{sharded_one - serve_one:+.1f} ms per query (5 rounds of shard calls: dense top-k and BM25 top-k on every "
        "shard; candidate vectors, pool vectors and chunk records on the shards that own them).",
        f"- Call latency, {CALLS} calls from a thread, 384-float payload (p50 / p99 ms): "
        + "; ".join(f"{name} {p50:.1f} / {p99:.1f}" for name, (p50, p99) in latency.items())
        + ". Shard replicas are plain actors for this reason.",
        "- Bytes per chunk of the sharded build on disk: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in per_chunk.items()) + " (docs/SCALING.md uses them).",
    ]
    Path("eval/results").mkdir(parents=True, exist_ok=True)
    (Path("eval/results") / "bench_cluster.json").write_text(json.dumps(
        {"bytes_per_chunk": per_chunk, "chunks": sharded.chunks, "call_latency_ms": latency,
         "rows": [{"server": n, "collection": col, "shape": s, "c1_p50": l[1].pct(50), "c1_p99": l[1].pct(99),
                   "qps": l[c].qps, "p50": l[c].pct(50), "p99": l[c].pct(99)} for n, col, s, l in results]},
        indent=1))
    return emit_section(args.out, SECTION, lines)


if __name__ == "__main__":
    sys.exit(main())

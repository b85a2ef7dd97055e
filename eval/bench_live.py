"""`make bench-live`: live collections under load and faults, measured.

1. Load test: a real ``ragmem serve`` subprocess on 127.0.0.1; 32 client threads search while one
   writer adds documents and deletes them again, for a bounded time. Counted: errors, and results
   citing a document whose DELETE had returned before the search was sent (must be zero).
2. Fuzz: schemathesis generates requests from the server's OpenAPI spec (every endpoint, with the
   write key), bounded in examples and time; any 5xx fails the ``not_a_server_error`` check.
3. Single-document add and delete latency on a 100,000-chunk collection (written in the builder's
   format as in bench-query: real sentences, perturbed real vectors), in-process, journal on disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from eval.report_sections import emit_section, start_bench
from indexing.builder import build_collection
from indexing.documents import Document
from indexing.live import open_live
from indexing.settings import Settings

log = logging.getLogger("ragmem.bench.live")
ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-live-key"
SEARCHERS = 32


def load_test(url: str, seconds: float, queries: list[str]) -> dict:
    deleted: dict[str, float] = {}  # doc_id -> when its DELETE returned
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    stale: list[str] = []
    writes = {"add": [], "delete": []}
    markers: list[str] = []

    def searcher(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=60) as client:
            while time.perf_counter() < stop:
                with lock:
                    query = rng.choice(markers[-20:]) if markers and rng.random() < 0.5 else rng.choice(queries)
                sent = time.perf_counter()
                try:
                    r = client.post(f"{url}/rag_search", json={"query": query, "collection": "load", "top_k": 10})
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append((time.perf_counter() - sent) * 1000)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                with lock:
                    for hit in r.json()["results"]:
                        gone = deleted.get(hit["doc_id"])
                        if gone is not None and gone < sent:
                            stale.append(hit["doc_id"])

    def writer() -> None:
        n = 0
        with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {KEY}"}) as client:
            while time.perf_counter() < stop:
                marker = f"zqx{n}marker"
                doc = {"doc_id": f"live-{n}", "title": f"Live note {marker}",
                       "content": f"{marker} is a made-up word. The {marker} report covers okapi tracking in Epulu."}
                started = time.perf_counter()
                r = client.post(f"{url}/collections/load/documents", json={"documents": [doc]})
                writes["add"].append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    errors.append(f"add {r.status_code}: {r.text[:200]}")
                with lock:
                    markers.append(marker)
                time.sleep(0.5)
                started = time.perf_counter()
                r = client.delete(f"{url}/collections/load/documents/live-{n}")
                writes["delete"].append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    errors.append(f"delete {r.status_code}: {r.text[:200]}")
                with lock:
                    deleted[f"live-{n}"] = time.perf_counter()
                n += 1

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(SEARCHERS)] + [threading.Thread(target=writer)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"seconds": wall, "searches": len(latencies), "errors": errors, "stale": stale,
            "latency": np.array(latencies), "adds": np.array(writes["add"]), "deletes": np.array(writes["delete"])}


def fuzz(url: str, examples: int, seconds: float, scratch: Path) -> dict:
    # Path parameters `name` point at the real collection, so writes, deletes and compaction are
    # exercised on live data instead of mostly answering 404 for random names.
    config = scratch / "schemathesis.toml"
    config.write_text('[parameters]\n"path.name" = "load"\n')
    args = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
            f"{url}/openapi.json",
            "--checks", "not_a_server_error", "--max-examples", str(examples), "--header",
            f"Authorization: Bearer {KEY}", "--no-color", "--workers", "2", "--seed", "1"]
    started = time.perf_counter()
    try:
        run = subprocess.run(args, capture_output=True, text=True, timeout=seconds)
        output, code = run.stdout + run.stderr, run.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), -1
    wall = time.perf_counter() - started
    requests = sum(int(n) for n in re.findall(r"(\d+)\s+generated", output)) or None
    return {"code": code, "seconds": wall, "output": output, "requests": requests}


def latency_at_scale(shared: Path, data_dir: Path, settings: Settings, n_chunks: int, repeats: int) -> dict:
    from eval.bench_query import build_synthetic
    from indexing.collection import open_collection

    small = open_collection(data_dir, "load")
    info = build_synthetic(data_dir, small, shared, settings, n_chunks, seed=0, sigma=0.03)
    live = open_live(data_dir, info["name"], settings)
    live.snapshot()
    base_docs = live.base.store.documents()
    adds, deletes = [], []
    rng = random.Random(0)
    for i in range(repeats):
        doc = Document(doc_index=0, title=f"Added {i}", text=" ".join(rng.sample(base_docs, 1)[0]["title"] for _ in
                                                                      range(3)) + f" unique{i}", doc_id=f"add-{i}")
        started = time.perf_counter()
        live.write([doc], [])
        adds.append((time.perf_counter() - started) * 1000)
    for i in range(repeats):
        started = time.perf_counter()
        live.write([], [base_docs[i]["doc_id"]])
        deletes.append((time.perf_counter() - started) * 1000)
    return {"name": info["name"], "chunks": live.base.store.n_chunks, "adds": np.array(adds),
            "deletes": np.array(deletes), "faiss": live.base.dense.info.get("type")}


def main(argv: list[str] | None = None) -> int:
    from eval.bench_query import fmt, machine
    from eval.generated_corpus import write_json_corpus
    from eval.local_server import running_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--seconds", type=float, default=60.0, help="load-test duration")
    parser.add_argument("--fuzz-examples", type=int, default=1200, help="schemathesis examples per operation")
    parser.add_argument("--fuzz-seconds", type=float, default=900.0)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_live", argv)
    run_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ragmem-bench-live-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = Settings(data_dir=data_dir)
        corpus = write_json_corpus(Path(tmp) / "load.json", n_docs=60, seed=1, paragraphs=6)
        summary = build_collection(corpus, "load", settings, show_progress=False)
        queries = [d["title"] for d in json.loads(corpus.read_text())] + ["okapi tracking", "Epulu report"]
        with running_server(data_dir, env={"RAGMEM_API_KEY": KEY}) as url:
            for q in queries[:5]:
                httpx.post(f"{url}/rag_search", json={"query": q, "collection": "load"}, timeout=120)
            load = load_test(url, args.seconds, queries)
            fuzzed = fuzz(url, args.fuzz_examples, args.fuzz_seconds, Path(tmp))
        scale = latency_at_scale(args.shared, data_dir, settings, args.chunks, args.repeats)

    lat = load["latency"]
    fuzz_tail = "\n".join(line for line in fuzzed["output"].splitlines()[-25:] if line.strip())
    lines = [
        f"Command: `{command}` ({time.perf_counter() - run_started:.0f} s). Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"### Load: {SEARCHERS} searchers + 1 writer for {load['seconds']:.0f} s (HTTP, default mode hybrid+graph)",
        "",
        f"Collection `load`: {summary.documents} generated documents, {summary.chunks} chunks, with graph memory. "
        "The writer adds a document with a new marker word, waits 0.5 s, deletes it, and repeats; half the "
        "searches ask for the newest markers.",
        "",
        "| searches | errors | results citing a deleted document | p50 ms | p95 ms | p99 ms | adds | add p50 ms | deletes | delete p50 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {load['searches']} | {len(load['errors'])} | {len(load['stale'])} | {fmt(np.percentile(lat, 50))} | "
        f"{fmt(np.percentile(lat, 95))} | {fmt(np.percentile(lat, 99))} | {load['adds'].size} | "
        f"{fmt(np.median(load['adds']))} | {load['deletes'].size} | {fmt(np.median(load['deletes']))} |",
        "",
        f"- Zero errors: **{'PASS' if not load['errors'] else 'FAIL'}**"
        + (f" (first: {load['errors'][0]})" if load["errors"] else "") + ".",
        f"- Zero results citing a deleted document: **{'PASS' if not load['stale'] else 'FAIL'}**.",
        "",
        "### Fuzz: schemathesis over the OpenAPI spec",
        "",
        "`schemathesis --config-file schemathesis.toml run <url>/openapi.json --checks not_a_server_error "
        f"--max-examples {args.fuzz_examples} "
        f"--header 'Authorization: Bearer …' --workers 2 --seed 1` against the same server, bounded at "
        f"{args.fuzz_seconds:.0f} s: exit code {fuzzed['code']}, {fuzzed['seconds']:.0f} s"
        + (f", {fuzzed['requests']} generated cases" if fuzzed["requests"] else "") + ". The config file sets every "
        "`{name}` path parameter to the `load` collection, so add, delete and compact run on real data "
        "(after the load test). Its summary:",
        "",
        "```",
        fuzz_tail,
        "```",
        "",
        f"- Zero 5xx: **{'PASS' if fuzzed['code'] == 0 else 'FAIL'}**.",
        "",
        f"### Single-document writes at {scale['chunks']:,} chunks (in-process, FAISS `{scale['faiss']}`)",
        "",
        f"`{scale['name']}` written as in bench-query (no graph memory). Each write is one journal transaction "
        "(fsync) plus this process's snapshot refresh; the time until it is searchable.",
        "",
        "| operation | n | p50 ms | max ms |",
        "|---|---:|---:|---:|",
        f"| add one document | {scale['adds'].size} | {fmt(np.median(scale['adds']))} | {fmt(scale['adds'].max())} |",
        f"| delete one document | {scale['deletes'].size} | {fmt(np.median(scale['deletes']))} | "
        f"{fmt(scale['deletes'].max())} |",
    ]
    return emit_section(args.out, "bench-live", lines)


if __name__ == "__main__":
    sys.exit(main())

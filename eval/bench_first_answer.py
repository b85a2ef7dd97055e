"""`make bench-first-answer`: how soon an agent's first `rag_search` on an unseen json_path is
answered, and how the answer improves tier by tier, over real HTTP.

Each measurement starts a real ``ragmem serve`` on loopback with a fresh data root (so a cold
embedding cache; exported model graphs under ``~/.cache/ragmem`` are reused, as on any machine
that has served once). Once ``/healthz`` answers, one client posts the agents' exact call
(``top_k=10, diverse=true, min_docs=5, max_per_doc=2``) for a path the server has never seen,
and repeats it every ``POLL_S`` (faster than ``Retry-After`` asks, to time the tiers to a
quarter second), recording when the first 200 with results came, which legs answered it, when
the dense leg joined, and when ``pending`` went empty (the full default mode).

* ``miro-128k``: ``corpora/miro/006/long_context_sampled_128k.json`` (a generated corpus when
  ../shared is absent). Baseline in the same run: ragmem before issue 14, i.e. one publish when
  every leg is built (``RAGMEM_TIERED_PUBLISH=false``) and a graph stage that embeds every triple
  text and entity name (``RAGMEM_GRAPH_TRIPLE_VECTORS=text``, ``RAGMEM_GRAPH_SYNONYM_MIN_CHUNKS=1``).
* ``synthetic-12k``: 12,000 documents made of the real documents of every shared agent corpus
  (each document one real document plus one paragraph of another, under a varied title, so no two
  are identical). Its dense tier alone would take hours on 2 cores, so the run stops at the
  first answer: it records the BM25 tier's time and the ETA the service reports for the other
  legs, then cancels the build (``DELETE /collections/{name}/build``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from eval.generated_corpus import write_json_corpus
from eval.local_server import running_server
from eval.report_sections import emit_section, start_bench
from indexing.loaders import load_corpus

log = logging.getLogger("ragmem.bench.first_answer")

SECTION = "bench-first-answer"
REAL_CORPUS = "corpora/miro/006/long_context_sampled_128k.json"
POOL_GLOB = "corpora/miro/*/long_context_sampled_*.json"
QUERY = "量子计算 芯片 发展 quantum computing chip"
AGENT_ARGS = {"top_k": 10, "diverse": True, "min_docs": 5, "max_per_doc": 2}
POLL_S = 0.25
ETA_WAIT_S = 60.0
"""How long after its first answer the large collection is watched for the service's ETA of the other legs."""
GOAL_FIRST_S, GOAL_FULL_S, GOAL_LARGE_FIRST_S = 5.0, 90.0, 60.0
"""Issue 14: first 200 within 5 s, full default mode within 90 s (128k); 12,000 documents: 60 s."""
BASELINE_ENV = {"RAGMEM_TIERED_PUBLISH": "false", "RAGMEM_GRAPH_TRIPLE_VECTORS": "text",
                "RAGMEM_GRAPH_SYNONYM_MIN_CHUNKS": "1"}
ONE_PROCESS_ENV = {"RAGMEM_CHUNK_PROCESSES": "1"}
"""The large collection's same-run baseline: chunking and analysis without worker processes."""


@dataclass
class Timeline:
    """Seconds from the first request, per event of one unseen json_path."""

    first_s: float | None = None
    first_legs: list[str] = field(default_factory=list)
    first_status_503: int = 0
    dense_s: float | None = None
    full_s: float | None = None
    pending_at_first: dict = field(default_factory=dict)
    """Without ``until_full``: ``pending`` once every leg has an ETA (or ``ETA_WAIT_S`` after the first answer)."""
    eta_after_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    collection: str = ""
    chunks: int = 0


def _post(client: httpx.Client, url: str, json_path: str) -> httpx.Response:
    return client.post(f"{url}/rag_search", json={"query": QUERY, "json_path": json_path, **AGENT_ARGS})


def follow(url: str, json_path: str, until_full: bool, timeout: float) -> Timeline:
    """Post the agents' call until the first answer (and, with ``until_full``, until nothing is pending)."""
    timeline = Timeline()
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            response = _post(client, url, json_path)
            elapsed = time.perf_counter() - started
            if response.status_code == 503:
                timeline.first_status_503 += timeline.first_s is None
            elif response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
            else:
                body = response.json()
                if timeline.first_s is None and body["results"]:
                    timeline.first_s, timeline.first_legs = elapsed, body["legs_used"]
                    timeline.pending_at_first, timeline.collection = body["pending"], body["collection"]
                if timeline.first_s is not None and not until_full:
                    timeline.pending_at_first = body["pending"]
                    estimated = all(p.get("eta_seconds") is not None for p in body["pending"].values())
                    if estimated or elapsed - timeline.first_s > ETA_WAIT_S:
                        timeline.eta_after_s = elapsed - timeline.first_s
                        break
                if timeline.dense_s is None and "dense" in body["legs_used"]:
                    timeline.dense_s = elapsed
                if not body["pending"]:
                    timeline.full_s = elapsed
                    break
            time.sleep(POLL_S)
        if timeline.collection:
            stats = client.get(f"{url}/collections/{timeline.collection}").json()
            timeline.stages = stats.get("stage_seconds") or stats.get("build", {}).get("stage_seconds") or {}
            timeline.chunks = int(stats.get("chunks", 0))
    return timeline


def cancel(url: str, collection: str) -> None:
    response = httpx.delete(f"{url}/collections/{collection}/build", timeout=30)
    log.info("cancelled the build of %s: %s", collection, response.status_code)


def synthetic_collection(shared: Path, n_docs: int, seed: int, path: Path) -> tuple[Path, int, int]:
    """``n_docs`` documents from the shared agent corpora's real documents; (path, unique sources, chars)."""
    pool: dict[str, tuple[str, list[str]]] = {}
    for corpus in sorted(shared.glob(POOL_GLOB)):
        for doc in load_corpus(corpus).documents:
            paragraphs = [p for p in doc.text.split("\n") if p.strip()]
            if paragraphs:
                pool.setdefault(doc.text, (doc.title, paragraphs))
    sources = list(pool.values())
    if not sources:
        raise RuntimeError(f"no documents under {shared / POOL_GLOB}")
    rng = random.Random(seed)
    docs, chars = [], 0
    for i in range(n_docs):
        title, paragraphs = sources[i % len(sources)]
        extra = rng.choice(rng.choice(sources)[1])
        body = "\n".join([*paragraphs, extra])
        chars += len(body)
        docs.append({"title": f"{title} ({i // len(sources) + 1}/{rng.randint(1, 99)})", "content": body,
                     "url": f"https://example.org/synthetic/{i}"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    return path, len(sources), chars


def measure(corpus: Path, root: Path, env: dict[str, str], until_full: bool, timeout: float,
            name: str) -> Timeline:
    data = root / f"data-{name}"
    with running_server(data, corpus_roots=[corpus.parent], env=env, timeout=180, log_name=name) as url:
        timeline = follow(url, str(corpus), until_full, timeout)
        if not until_full and timeline.collection:
            cancel(url, timeline.collection)
    log.info("%s: %s", name, timeline)
    return timeline


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _eta(pending: dict) -> str:
    parts = [f"{leg} {p['state']} {p['progress']:.0%}, ETA {_s(p.get('eta_seconds'))} s" for leg, p in pending.items()]
    return "; ".join(parts) or "none"


def _verdict(value: float | None, goal: float) -> str:
    return "**not reached** (never)" if value is None else (
        f"**met** ({value:.1f} s)" if value <= goal else f"**not reached** ({value:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    from eval.bench_query import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--docs", type=int, default=12_000, help="documents of the synthetic collection")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true", help="only the 128k collection")
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_first_answer", argv)
    run_started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="ragmem-bench-first-") as tmp:
        root = Path(tmp)
        real = args.shared / REAL_CORPUS
        if not real.exists():
            real = write_json_corpus(root / "generated" / "long_context.json", n_docs=80, seed=3, paragraphs=12)
        corpus = root / "corpora" / "miro-128k" / "long_context.json"  # a path the servers have never seen
        corpus.parent.mkdir(parents=True)
        corpus.write_bytes(real.read_bytes())
        baseline = measure(corpus, root, BASELINE_ENV, True, 900, "baseline")
        tiered = measure(corpus, root, {}, True, 900, "tiered")
        large = None
        if not args.skip_large and any(args.shared.glob(POOL_GLOB)):
            big, sources, chars = synthetic_collection(args.shared, args.docs, args.seed,
                                                       root / "corpora" / "synthetic-12k" / "long_context.json")
            large = measure(big, root, {}, False, 900, "large")
            large_one = measure(big, root, ONE_PROCESS_ENV, False, 900, "large-one-process")

    shown = REAL_CORPUS if (args.shared / REAL_CORPUS).exists() else "a generated 80-document corpus"
    lines = [
        f"Command: `{command}` ({time.perf_counter() - run_started:.0f} s). Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"A real `ragmem serve` per row, fresh data root, the agents' call repeated every {POLL_S} s from the "
        "moment the server is healthy; seconds from the first request. Baseline in the same run: one publish "
        f"when every leg is built and the old graph stage ({', '.join(f'{k}={v}' for k, v in BASELINE_ENV.items())}).",
        "",
        f"### Unseen 128k json_path (`{shown}`, {tiered.chunks} chunks)",
        "",
        "| server | 503s before it | first 200 with results s | legs of that answer | dense joins s | "
        "full default mode s |",
        "|---|---:|---:|---|---:|---:|",
        f"| baseline (untiered, text-embedded graph) | {baseline.first_status_503} | {_s(baseline.first_s)} | "
        f"{' + '.join(baseline.first_legs)} | {_s(baseline.dense_s)} | {_s(baseline.full_s)} |",
        f"| ragmem (tiered, chunk-vector graph) | {tiered.first_status_503} | **{_s(tiered.first_s)}** | "
        f"{' + '.join(tiered.first_legs)} | {_s(tiered.dense_s)} | **{_s(tiered.full_s)}** |",
        "",
        "Stage seconds of the tiered build (manifest): "
        + ", ".join(f"{k} {v:.1f}" for k, v in tiered.stages.items()) + ". Baseline: "
        + ", ".join(f"{k} {v:.1f}" for k, v in baseline.stages.items()) + ".",
        "",
        f"- First 200 with results ≤ {GOAL_FIRST_S:.0f} s: {_verdict(tiered.first_s, GOAL_FIRST_S)} "
        f"(baseline {_s(baseline.first_s)} s).",
        f"- Full default mode ≤ {GOAL_FULL_S:.0f} s: {_verdict(tiered.full_s, GOAL_FULL_S)} "
        f"(baseline {_s(baseline.full_s)} s).",
    ]
    if large is not None:
        lines += [
            "",
            f"### Synthetic {args.docs:,}-document collection ({large.chunks:,} chunks)",
            "",
            f"{args.docs:,} documents from the {sources} distinct real documents of `{POOL_GLOB}` "
            f"({chars / 1e6:.1f} M characters), each one real document plus one paragraph of another, "
            "under a varied title. The run stops at the first answer and cancels the build.",
            "",
            f"- First 200 with results: **{_s(large.first_s)} s** ({large.first_status_503} 503s before it), from "
            f"{' + '.join(large.first_legs)}; goal ≤ {GOAL_LARGE_FIRST_S:.0f} s: "
            f"{_verdict(large.first_s, GOAL_LARGE_FIRST_S)}.",
            "- Tier times (manifest of the BM25 tier; `chunk` is chunking and BM25 analysis, `bm25` the index): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in large.stages.items()) + ".",
            f"- Baseline in the same run, the lexical pass in the server's own process "
            f"({', '.join(f'{k}={v}' for k, v in ONE_PROCESS_ENV.items())}): first 200 after "
            f"{_s(large_one.first_s)} s; " + ", ".join(f"{k} {v:.1f} s" for k, v in large_one.stages.items()) + ".",
            f"- Pending legs as the service reported them {large.eta_after_s:.0f} s after the first answer: "
            f"{_eta(large.pending_at_first)}.",
        ]
    return emit_section(args.out, SECTION, lines)


if __name__ == "__main__":
    sys.exit(main())

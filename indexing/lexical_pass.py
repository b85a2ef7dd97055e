"""The lexical tier's work, chunking and BM25 analysis of every document, over every core.

Why processes, not threads: the e5 tokenizer's normaliser, the analyzer's regular expressions and
rjieba all hold the GIL, so threads would run them one at a time. Why only for large
collections: a worker process starts in about 3 s (imports, then the tokenizer's 250k-piece
model), longer than a small collection's whole pass (``PROCESS_MIN_CHARS``).

The documents are cut into contiguous parts of similar size (characters, the unit both steps
grow with), several per worker so that the slowest part does not hold up the end; the parts'
results are joined in document order, so the chunks, their rows and the BM25 terms are exactly
what one process computes (``tests/test_lexical_pass.py``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Sequence

from tqdm.auto import tqdm

from indexing.analyzer import Analyzer
from indexing.build_format import ChunkingParams
from indexing.chunking import chunk_text
from indexing.documents import Document
from indexing.embedder import TextEmbedder, TokenCounter
from indexing.store import ChunkRow
from indexing.term_ids import TermIds

log = logging.getLogger("ragmem.indexing.lexical_pass")

SPECIAL_TOKENS = 2  # [CLS] and [SEP] that the model adds around every input
PROGRESS_EVERY_DOCUMENTS = 500
"""In-process chunking reports progress this often, which is also how often a cancelled build notices."""
PROCESS_MIN_CHARS = 4_000_000
"""Below this many characters one process does the pass. One core chunks and analyses about 0.25 M
characters a second (2,000 agent documents, 6 M characters: 23.5 s on a 2-core AMD EPYC), so this
is ~16 s of work, against ~3 s for the workers to start and load the tokenizer."""
PARTS_PER_PROCESS = 4
"""At least this many parts per worker process, so that the workers finish close together."""
PART_CHARS = 1_000_000
"""At most about this many characters per part (~4 s of one core): progress is reported, and a
cancelled build stops, at part boundaries."""


@dataclass
class LexicalPass:
    """Every chunk of the collection with its embedder input, chunks per document, and BM25 terms."""

    rows: list[ChunkRow]
    embed_inputs: list[str]
    counts: list[int]
    terms: TermIds


@dataclass
class _Part:
    """What one worker needs for one contiguous run of documents (sent by pickle)."""

    documents: list[Document]
    tokens: TokenCounter
    params: ChunkingParams
    analyzer: dict


def lexical_pass(documents: Sequence[Document], embedder: TextEmbedder, params: ChunkingParams,
                 analyzer: Analyzer, processes: int, show_progress: bool,
                 on_progress: Callable[[float], None] | None = None) -> LexicalPass:
    """Chunk and analyse ``documents``; in ``processes`` worker processes when that pays (see above)."""
    documents = list(documents)
    chars = sum(len(d.text) for d in documents)
    workers = min(processes or len(os.sched_getaffinity(0)), len(documents))
    if workers < 2 or chars < PROCESS_MIN_CHARS:
        return _one_part(documents, embedder, params, analyzer, show_progress, on_progress)
    try:
        return _in_processes(documents, embedder.token_counter, params, analyzer, workers, chars, show_progress,
                             on_progress)
    except BrokenProcessPool as exc:
        # A worker died: killed, out of memory, or a script without an ``if __name__ == "__main__":``
        # guard that spawn's re-import of the main module ran again. The pass is still owed.
        log.warning("the chunking processes failed (%s); chunking in this process instead", exc)
        return _one_part(documents, embedder, params, analyzer, show_progress, on_progress)


def _in_processes(documents: list[Document], tokens: TokenCounter, params: ChunkingParams, analyzer: Analyzer,
                  workers: int, chars: int, show_progress: bool,
                  on_progress: Callable[[float], None] | None) -> LexicalPass:
    parts = _split(documents, max(workers * PARTS_PER_PROCESS, -(-chars // PART_CHARS)))
    log.info("chunking and analysing %d documents (%.1f M characters) in %d processes", len(documents),
             chars / 1e6, workers)
    config = analyzer.describe()
    results: list[LexicalPass | None] = [None] * len(parts)
    sizes = [sum(len(d.text) for d in part) for part in parts]
    done = 0
    # spawn, not fork: a server forking while its other threads hold locks (logging, the model
    # runtimes) could leave a child waiting on a lock no thread will ever release.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    bar = tqdm(total=chars, desc="chunking", unit="char", unit_scale=True, disable=not show_progress, leave=False)
    try:
        futures = {pool.submit(_run_part, _Part(part, tokens, params, config)): i for i, part in enumerate(parts)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = futures[future]
                results[index] = future.result()
                done += sizes[index]
                bar.update(sizes[index])
            if on_progress is not None:
                on_progress(done / max(chars, 1))  # may raise to cancel the build
    finally:
        bar.close()
        pool.shutdown(wait=False, cancel_futures=True)
    return _joined([r for r in results if r is not None], [len(p) for p in parts])


def _title_prefix(embedder: TokenCounter, title: str, max_tokens: int) -> str:
    spans = embedder.token_spans(title)
    if len(spans) <= max_tokens:
        return title
    return title[: spans[max_tokens - 1][1]]


def chunk_documents(documents: list[Document], embedder: TokenCounter, params: ChunkingParams, show_progress: bool,
                    on_progress: Callable[[float], None] | None = None) -> tuple[list[ChunkRow], list[str], list[int]]:
    """Chunk every document; returns chunk rows, the embedder input of each, and chunks per document."""
    rows: list[ChunkRow] = []
    embed_inputs: list[str] = []
    counts: list[int] = []
    for doc_row, doc in enumerate(tqdm(documents, desc="chunking", unit="doc", disable=not show_progress,
                                       leave=False)):
        if on_progress is not None and doc_row % PROGRESS_EVERY_DOCUMENTS == 0:
            on_progress(doc_row / len(documents))
        prefix = _title_prefix(embedder, doc.title, params.title_tokens) if doc.title else ""
        reserved = SPECIAL_TOKENS + (embedder.count_tokens(prefix) + 1 if prefix else 0)
        budget = max(16, params.chunk_tokens - reserved)
        spans = chunk_text(doc.text, embedder.token_spans, budget, params.overlap_tokens)
        for chunk_index, span in enumerate(spans):
            text = doc.text[span.start : span.end]
            rows.append(ChunkRow(len(rows), doc_row, chunk_index, span.start, span.end, span.n_tokens, text))
            embed_inputs.append(f"{prefix}\n{text}" if prefix else text)
        counts.append(len(spans))
    return rows, embed_inputs, counts


def _one_part(documents: list[Document], tokens: TokenCounter, params: ChunkingParams, analyzer: Analyzer,
              show_progress: bool, on_progress: Callable[[float], None] | None) -> LexicalPass:
    rows, embed_inputs, counts = chunk_documents(documents, tokens, params, show_progress, on_progress)
    return LexicalPass(rows, embed_inputs, counts, TermIds.of(chunk_terms(documents, rows, analyzer)))


def chunk_terms(documents: Sequence[Document], rows: Sequence[ChunkRow], analyzer: Analyzer) -> list[list[str]]:
    """Each chunk's BM25 terms: its document's title terms, then its own."""
    title_terms = [analyzer.tokenize(doc.title) for doc in documents]
    return [title_terms[r.doc_row] + analyzer.tokenize(r.text) for r in rows]


_ANALYZERS: dict[str, Analyzer] = {}


def _run_part(part: _Part) -> LexicalPass:
    """In a worker: one part, rows numbered from 0 (``_joined`` renumbers them)."""
    key = repr(sorted(part.analyzer.items()))
    if key not in _ANALYZERS:
        _ANALYZERS[key] = Analyzer.from_config(part.analyzer)
    return _one_part(part.documents, part.tokens, part.params, _ANALYZERS[key], False, None)


def _split(documents: list[Document], n_parts: int) -> list[list[Document]]:
    """Contiguous runs of documents of about equal characters, none empty."""
    total = sum(len(d.text) for d in documents)
    target = total / max(n_parts, 1)
    parts: list[list[Document]] = [[]]
    filled = 0
    for doc in documents:
        if parts[-1] and filled >= target * len(parts) and len(parts) < n_parts:
            parts.append([])
        parts[-1].append(doc)
        filled += len(doc.text)
    return parts


def _joined(results: list[LexicalPass], part_docs: list[int]) -> LexicalPass:
    """The parts' results as one pass: document and chunk rows offset by the parts before."""
    rows: list[ChunkRow] = []
    embed_inputs: list[str] = []
    counts: list[int] = []
    doc_offset = 0
    for result, n_docs in zip(results, part_docs):
        chunk_offset = len(rows)
        rows.extend(ChunkRow(r.chunk_row + chunk_offset, r.doc_row + doc_offset, r.chunk_index, r.start_char,
                             r.end_char, r.n_tokens, r.text) for r in result.rows)
        embed_inputs.extend(result.embed_inputs)
        counts.extend(result.counts)
        doc_offset += n_docs
    return LexicalPass(rows, embed_inputs, counts, TermIds.concatenated([r.terms for r in results]))

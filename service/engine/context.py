"""Cited context packed into a token budget, for agents that want text to read rather than hits.

Tokens are counted with the collection's embedder tokenizer on the exact text returned (not
characters / 4). For Chinese, that is about one token per character, close to what LLM
tokenizers charge. Each hit grows by one neighbouring chunk at a time, round-robin in rank
order, so the budget is shared instead of being spent on the first document.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from indexing.collection import Collection
from service.engine.model import Hit, SearchParams
from service.engine.retrieval import search


@dataclass
class ContextBlock:
    hit: Hit
    first_chunk: int
    last_chunk: int
    start_char: int
    end_char: int
    text: str
    n_tokens: int


@dataclass
class ContextResult:
    query: str
    collection: str
    blocks: list[ContextBlock]
    total_tokens: int
    max_tokens: int
    took_ms: float
    mode: str = ""
    """The mode answered (see ``SearchResult.mode``)."""
    legs_used: tuple[str, ...] = ()


def get_context(collection: Collection, query: str, params: SearchParams, max_tokens: int) -> ContextResult:
    started = time.perf_counter()
    result = search(collection, query, params)
    store, count = collection.store, collection.embedder.count_tokens
    doc_texts: dict[int, str] = {}
    spans: dict[int, dict[int, tuple[int, int]]] = {}  # doc_row -> chunk_index -> (start, end)

    def chunk_span(doc_row: int, chunk_index: int) -> tuple[int, int] | None:
        if doc_row not in spans:
            spans[doc_row] = {}
        known = spans[doc_row]
        if chunk_index not in known:
            for record in store.document_chunks(doc_row, chunk_index - 4, chunk_index + 4):
                known[record.chunk_index] = (record.start_char, record.end_char)
            known.setdefault(chunk_index, None)
        return known[chunk_index]

    def text_of(doc_row: int, first: int, last: int) -> tuple[int, int, str]:
        if doc_row not in doc_texts:
            doc_texts[doc_row] = store.document_text(doc_row)
        start, end = chunk_span(doc_row, first)[0], chunk_span(doc_row, last)[1]
        return start, end, doc_texts[doc_row][start:end]

    def covered(doc_row: int, chunk_index: int) -> bool:
        return any(b.hit.record.doc_row == doc_row and b.first_chunk <= chunk_index <= b.last_chunk for b in blocks)

    blocks: list[ContextBlock] = []
    used = 0
    for hit in result.hits:
        record = hit.record
        if covered(record.doc_row, record.chunk_index):
            continue
        tokens = count(record.text)
        if used + tokens > max_tokens:
            continue
        blocks.append(ContextBlock(hit, record.chunk_index, record.chunk_index, record.start_char, record.end_char,
                                   record.text, tokens))
        used += tokens
    grew = True
    while grew:
        grew = False
        for block in blocks:
            doc_row = block.hit.record.doc_row
            for first, last in ((block.first_chunk, block.last_chunk + 1), (block.first_chunk - 1, block.last_chunk)):
                edge = last if last > block.last_chunk else first
                if edge < 0 or chunk_span(doc_row, edge) is None or covered(doc_row, edge):
                    continue
                start, end, text = text_of(doc_row, first, last)
                tokens = count(text)
                if used - block.n_tokens + tokens > max_tokens:
                    continue
                used += tokens - block.n_tokens
                block.first_chunk, block.last_chunk, block.start_char, block.end_char = first, last, start, end
                block.text, block.n_tokens = text, tokens
                grew = True
                break
    return ContextResult(query=query, collection=collection.name, blocks=blocks, total_tokens=used,
                         max_tokens=max_tokens, took_ms=round((time.perf_counter() - started) * 1000, 3),
                         mode=result.mode, legs_used=result.legs_used)

"""The text the agents read: the legacy rag_search layout, context blocks and document stats."""

from __future__ import annotations

from indexing.store import ChunkRecord
from service.engine import ContextBlock, ContextResult, Hit, SearchResult
from service.formatting import RULE, format_context_text, format_search_text, format_stats_text

LONG_TITLE = "如何更有效的将深度学习算法部署在计算资源有限的设备？澎湃号·湃客_澎湃新闻-The Paper 附加的标题尾巴"
SCORES = {"bm25": 8.41234, "bm25_z": 0.7312, "dense": 0.61249, "dense_z": 0.61249, "bm25_weight": 0.7}


def record(doc_index: int, chunk_index: int, title: str, text: str, url: str = "") -> ChunkRecord:
    return ChunkRecord(chunk_row=doc_index * 10 + chunk_index, chunk_id=f"d{doc_index}:{chunk_index}",
                       chunk_index=chunk_index, start_char=0, end_char=len(text), n_tokens=len(text) // 2,
                       text=text, doc_row=doc_index, doc_id=f"d{doc_index}", doc_index=doc_index, title=title,
                       url=url, metadata={})


def result(hits: list[Hit], query: str = "Transformer 方法；SFT 监督微调", mode: str = "hybrid") -> SearchResult:
    return SearchResult(query=query, collection="long_context", build_id="b1", mode=mode, hits=hits, took_ms=1.0)


def two_hits(long_text: str = "short content") -> list[Hit]:
    return [
        Hit(rank=1, record=record(49, 2, LONG_TITLE, long_text), score=0.55321, scores=dict(SCORES)),
        Hit(rank=2, record=record(43, 3, "Short title", "second chunk text", url="https://example.org/43"),
            score=0.5, scores={"bm25": 3.0, "dense": 0.25}),
    ]


def test_search_text_layout_matches_the_legacy_tool() -> None:
    text = format_search_text(result(two_hits()), "/data/long_context_sampled_60.json.chunks.db")
    cite1 = f'[long_context: "{LONG_TITLE[:50]}", chunk 2]'
    assert LONG_TITLE[:50] != LONG_TITLE
    expected_head = "\n".join([
        "=== RAG Search Results ===",
        "Query: 'Transformer 方法；SFT 监督微调'",
        "Source File: /data/long_context_sampled_60.json.chunks.db",
        "Results Found: 2",
        "",
        "",
        RULE,
        "Result 1",
        f"Citation: {cite1}",
        RULE,
        "Relevance Score: 0.553",
        "Score Components: bm25=8.412, bm25_z=0.731, dense=0.612, dense_z=0.612, bm25_weight=0.700",
        "Document Index: 49",
        "Chunk Index: 2",
        f"Title: {LONG_TITLE}",
        "",
        "--- Content ---",
        f"(Cite as: {cite1})",
        "short content",
        "",
        "",
        RULE,
        "Result 2",
        "Citation: [long_context: \"Short title\", chunk 3]",
        RULE,
        "Relevance Score: 0.500",
        "Score Components: bm25=3.000, dense=0.250",
        "Document Index: 43",
        "Chunk Index: 3",
        "Title: Short title",
        "Source URL: https://example.org/43",
        "",
        "--- Content ---",
        "(Cite as: [long_context: \"Short title\", chunk 3])",
        "second chunk text",
        "",
        "",
        RULE,
        "CITATION GUIDANCE",
        RULE,
    ])
    assert text.startswith(expected_head + "\n")
    assert "RAG Search Results" in text.splitlines()[0]
    # 50-character title cut in citations only; the full title stays on the Title line.
    results_part = text.split("CITATION GUIDANCE", 1)[0]
    assert results_part.count(f'"{LONG_TITLE[:50]}", chunk 2]') == 2
    assert results_part.count("Citation: [long_context: \"") == 2
    # Source URL only where the document has one.
    assert text.count("Source URL:") == 1
    guidance = text.split("CITATION GUIDANCE", 1)[1]
    assert "exact citation string" in guidance and cite1 in guidance
    assert "every chunk" in guidance
    assert "[0, 1]" in guidance and "standard deviations" in guidance


def test_content_truncated_at_max_chars_with_note() -> None:
    long_text = "甲" * 2990 + "abcdefghij" + "乙" * 500
    text = format_search_text(result(two_hits(long_text)), "src")
    body = text.split(f"(Cite as: [long_context: \"{LONG_TITLE[:50]}\", chunk 2])\n", 1)[1]
    assert body.startswith(long_text[:3000] + "\n... [Content truncated: showing 3000 of 3500 characters]\n")
    assert "乙" not in body.split("Result 2")[0]
    shorter = format_search_text(result(two_hits(long_text)), "src", max_content_chars=100)
    assert "[Content truncated: showing 100 of 3500 characters]" in shorter
    exact = format_search_text(result(two_hits("x" * 3000)), "src")
    assert "Content truncated" not in exact


def test_without_content() -> None:
    text = format_search_text(result(two_hits()), "src", include_content=False)
    assert "--- Content ---" not in text and "Cite as:" not in text and "short content" not in text
    assert text.count("Citation: [long_context:") == 2
    assert "Title: Short title\nSource URL: https://example.org/43\n\n\n" + RULE + "\nCITATION GUIDANCE" in text


def test_evidence_graph_block_between_results_and_guidance() -> None:
    subgraph = {
        "triples": [
            {"head": "DPO", "relation": "optimises", "tail": "preference", "score": 0.8712,
             "citations": ['[long_context: "Short title", chunk 3]', {"title": LONG_TITLE, "chunk_index": 2}]},
            {"head": "SFT", "relation": "precedes", "tail": "DPO", "score": 0.5, "citations": []},
        ],
        "entities": [{"name": "DPO", "score": 0.9}, {"name": "SFT", "score": 0.75}],
    }
    text = format_search_text(result(two_hits()), "src", subgraph=subgraph)
    graph_at, guidance_at = text.index("=== Evidence Graph ==="), text.index("CITATION GUIDANCE")
    assert text.index("second chunk text") < graph_at < guidance_at
    graph = text[graph_at:guidance_at]
    assert ('DPO --optimises--> preference (0.871) [long_context: "Short title", chunk 3] '
            f'[long_context: "{LONG_TITLE[:50]}", chunk 2]') in graph
    assert "SFT --precedes--> DPO (0.500)\n" in graph
    assert "Entities: DPO (0.900), SFT (0.750)" in graph
    assert "Evidence Graph" not in format_search_text(result(two_hits()), "src")


def test_empty_result_says_so() -> None:
    text = format_search_text(result([], query="nothing here"), "src")
    assert text.startswith("=== RAG Search Results ===\nQuery: 'nothing here'\nSource File: src\nResults Found: 0\n")
    assert "No results found" in text
    assert "Result 1" not in text and "Citation:" not in text
    assert "CITATION GUIDANCE" in text


def test_score_explanation_follows_the_mode() -> None:
    assert "cosine similarity between the query" in format_search_text(result(two_hits(), mode="dense"), "src")
    assert "best BM25 score" in format_search_text(result(two_hits(), mode="bm25"), "src")


def test_context_text() -> None:
    hits = two_hits()
    blocks = [ContextBlock(hits[0], 1, 3, 100, 900, "widened text of chunks one to three", 180),
              ContextBlock(hits[1], 3, 3, 0, 17, "second chunk text", 20)]
    ctx = ContextResult(query="q?", collection="c", blocks=blocks, total_tokens=200, max_tokens=4000, took_ms=2.0)
    text = format_context_text(ctx, "/data/x.json")
    assert text.startswith("=== RAG Context ===\nQuery: 'q?'\nSource File: /data/x.json\n"
                           "Context Blocks: 2 (200 tokens of 4000)\n")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("Context 1:"))
    assert f'[long_context: "{LONG_TITLE[:50]}", chunk 2]' in header
    assert "chunks 1-3" in header and "Document Index: 49" in header and f"Title: {LONG_TITLE}" in header
    assert lines[lines.index(header) + 2] == "widened text of chunks one to three"
    header2 = next(line for line in lines if line.startswith("Context 2:"))
    assert "| chunk 3 |" in header2 and "Document Index: 43" in header2
    assert text.index("second chunk text") < text.index("CITATION GUIDANCE")
    empty = format_context_text(ContextResult("q", "c", [], 0, 100, 1.0), "src")
    assert "Context Blocks: 0 (0 tokens of 100)" in empty and "No context found" in empty


def _ready_info(n_docs: int) -> dict:
    return {
        "name": "long_context-abc", "status": "ready", "documents": n_docs, "chunks": n_docs * 3, "skipped": 1,
        "embedder": {"name": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 384, "max_seq_length": 256},
        "chunking": {"chunk_tokens": 256, "overlap_tokens": 38, "title_tokens": 32},
        "analyzer": "multilingual-v1",
        "faiss": {"type": "flat", "exact": True, "metric": "inner_product", "dimension": 384, "vectors": n_docs * 3},
        "build_id": "20250101T000000-abcd", "created_at": "2025-01-01T00:00:00Z",
        "corpus": {"path": "/data/x.json"}, "stage_seconds": {},
        "document_list": [{"doc_index": i, "doc_id": f"d{i}", "title": f"Doc {i}", "url": "", "chunks": 3 if i else 1,
                           "chars": 1000 + i} for i in range(n_docs)],
    }


def test_stats_text_ready() -> None:
    text = format_stats_text(_ready_info(3), "/data/x.json")
    assert text.startswith("=== Document Statistics ===\nSource File: /data/x.json\n")
    for line in ("Status: ready", "Total Documents: 3", "Total Chunks: 9", "Skipped Documents: 1",
                 "Embedding Model: sentence-transformers/all-MiniLM-L6-v2 (dimension 384)",
                 "Chunking: 256 tokens per chunk, 38 tokens overlap",
                 "Build: 20250101T000000-abcd (created 2025-01-01T00:00:00Z)",
                 "Documents:", "[0] Doc 0 (1 chunk, 1000 chars)", "[2] Doc 2 (3 chunks, 1002 chars)"):
        assert line in text.splitlines(), line
    assert any(line.startswith("Index: ") and "flat" in line for line in text.splitlines())


def test_stats_text_caps_document_list() -> None:
    text = format_stats_text(_ready_info(250), "src")
    assert "[199] Doc 199 (3 chunks, 1199 chars)" in text
    assert "[200] Doc 200" not in text
    assert "... and 50 more" in text


def test_stats_text_while_building() -> None:
    info = {"name": "c", "status": "building",
            "build": {"status": "building", "stage": "embed", "progress": 0.45, "started_at": 0.0, "corpus": "/x"}}
    text = format_stats_text(info, "/x")
    assert "Status: building" in text and "Stage: embed (45%)" in text
    assert "Total Documents" not in text
    failed = format_stats_text({"name": "c", "status": "failed", "build": {"status": "failed", "stage": "load",
                                                                           "progress": 0.0, "error": "bad json"}}, "/x")
    assert "Status: failed" in failed and "Error: bad json" in failed

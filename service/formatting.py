"""Plain-text renderings the agents read: the old ``rag_search`` layout, context, and stats.

Pure functions over result objects (no I/O), so the MCP tools, the HTTP ``format=text``
answers and the tests all produce byte-identical text. ``format_search_text`` reproduces the
legacy tool's layout line for line (header, ``Result N`` blocks with a ``Citation:`` line,
``--- Content ---`` with a ``(Cite as: ...)`` line) and adds only a ``Score Components`` line
and a closing ``CITATION GUIDANCE`` block.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from service.collections.readiness import LEG_LABELS, LegProgress
from service.engine import ContextResult, SearchResult, citation

RULE = "=" * 60
MAX_DOCUMENT_LINES = 200
MAX_GRAPH_TRIPLES = 100

_SCORE_MEANING = {
    "hybrid": ("Relevance Score is the fused hybrid score in [0, 1]: the logistic of how many standard "
               "deviations this chunk stands above the query's average candidate, averaged over the BM25 leg "
               "(log-compressed) and the dense leg; 0.5 = average candidate, 0.88 = two deviations above. "
               "Score Components shows the per-leg values (raw bm25, bm25_z, dense cosine, dense_z, bm25_weight)."),
    "hybrid+graph": ("Relevance Score says when the chunk was picked: results alternate between the hybrid "
                     "ranking (BM25 + embeddings) and the knowledge-graph ranking (PageRank mass, which finds "
                     "chunks the question's entities lead to); 1.0 = either ranking's first choice, 0.333 = a "
                     "second choice, 0.2 = a third. Score Components shows each leg (bm25, dense, graph) with "
                     "its z-score, the term coverage and the graph's share of the turns."),
    "graph": ("Relevance Score is the chunk's personalized-PageRank mass in the knowledge graph, divided by the "
              "best chunk's mass for this query, in [0, 1]. Score Components shows the raw mass."),
    "hybrid-maxnorm": ("Relevance Score is the weighted mean of the BM25 score divided by the best BM25 score "
                       "for this query and the cosine similarity, in [0, 1]. Score Components shows the "
                       "per-leg values."),
    "rrf": ("Relevance Score is reciprocal-rank fusion of the BM25 and dense rankings, rescaled to [0, 1] "
            "(1.0 = ranked first by both legs). Score Components shows the per-leg values."),
    "bm25": ("Relevance Score is the BM25 score divided by the best BM25 score for this query, in [0, 1] "
             "(1.0 = the best lexical match). Score Components shows the raw BM25 score."),
    "dense": ("Relevance Score is the cosine similarity between the query and the chunk embeddings, "
              "clipped to [0, 1]. Score Components shows the raw cosine."),
}


# ---- helpers -------------------------------------------------------------------------------
def _fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def score_components(scores: dict[str, Any] | None) -> str:
    """``bm25=8.412, bm25_norm=0.731, dense=0.612, ...`` in the order the retriever produced them."""
    return ", ".join(f"{key}={_fmt_number(value)}" for key, value in (scores or {}).items())


def _truncate(text: str, limit: int | None) -> str:
    if limit is None or limit <= 0 or len(text) <= limit:
        return text
    return f"{text[:limit]}\n... [Content truncated: showing {limit} of {len(text)} characters]"


def _guidance(mode: str | None, example: str | None, context: bool = False) -> list[str]:
    lines = ["", RULE, "CITATION GUIDANCE", RULE]
    shown = example or '[long_context: "Title", chunk N]'
    lines.append(f"- Cite every fact you take from these results with the exact citation string shown above, "
                 f"e.g. {shown}. Copy it verbatim: the title is cut at 50 characters on purpose.")
    lines.append("- Cite every chunk you use, each with its own citation; do not merge chunks into one "
                 "citation or cite a chunk you did not use.")
    if context:
        lines.append("- A context block may span neighbouring chunks (chunks A-B); its citation names the chunk "
                     "that matched the query. For a fact from a neighbouring chunk, cite the same title with "
                     "that chunk number.")
    lines.append("- " + _SCORE_MEANING.get(mode or "hybrid", _SCORE_MEANING["hybrid"]))
    return lines


def _citation_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "title" in value and ("chunk_index" in value or "chunk" in value):
        return citation(str(value["title"]), int(value.get("chunk_index", value.get("chunk"))))
    return str(value)


def _graph_lines(subgraph: dict) -> list[str]:
    lines = ["", "=== Evidence Graph ==="]
    entities = subgraph.get("entities") or []
    triples = subgraph.get("triples") or []
    if entities:
        shown = ", ".join(
            f"{e.get('name', '?')} ({_fmt_number(float(e['score']))})" if e.get("score") is not None
            else str(e.get("name", "?")) for e in entities)
        lines.append(f"Entities: {shown}")
    if not triples:
        lines.append("(no relations found for this query)")
    for triple in triples[:MAX_GRAPH_TRIPLES]:
        line = f"{triple.get('head', '?')} --{triple.get('relation', '?')}--> {triple.get('tail', '?')}"
        if triple.get("score") is not None:
            line += f" ({_fmt_number(float(triple['score']))})"
        cites = " ".join(_citation_text(c) for c in triple.get("citations") or [])
        if cites:
            line += f" {cites}"
        lines.append(line)
    if len(triples) > MAX_GRAPH_TRIPLES:
        lines.append(f"... and {len(triples) - MAX_GRAPH_TRIPLES} more relations")
    return lines + [""]


# ---- collections still being built -------------------------------------------------------------
def _eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "time still being estimated"
    return f"ready in about {max(1, round(seconds))} s" if seconds < 120 else f"ready in about {round(seconds / 60)} min"


def _leg_text(progress: LegProgress) -> str:
    label = LEG_LABELS.get(progress.leg, progress.leg)
    if progress.state == "failed":
        return f"{label} could not be built ({progress.error})"
    if progress.state == "stopped":
        return f"{label} is not being built right now (its build stopped; the next request for this file resumes it)"
    if progress.state == "queued":
        return f"{label} is queued, {_eta_text(progress.eta_seconds)}"
    return f"{label} is {progress.progress:.0%} built, {_eta_text(progress.eta_seconds)}"


def readiness_note(legs_used: Iterable[str], pending: Mapping[str, LegProgress] | None) -> str | None:
    """The one line that tells an agent its results come from part of the index, and when the rest
    will be ready; None for a complete collection (the legacy layout then stays line for line)."""
    if not pending:
        return None
    used = list(legs_used)
    kind = "keyword-only (BM25)" if used == ["bm25"] else f"from {' + '.join(used)} only"
    return (f"Note: this collection is still being indexed, so these results are {kind} for now: "
            + "; ".join(_leg_text(p) for p in pending.values()) + ". Search again then for better results.")


# ---- rag_search ----------------------------------------------------------------------------
def format_search_text(result: SearchResult, source: str, include_content: bool = True,
                       max_content_chars: int = 3000, subgraph: dict | None = None,
                       pending: Mapping[str, LegProgress] | None = None) -> str:
    """The legacy ``rag_search`` text, result for result, plus a readiness note while legs are pending."""
    hits = result.hits
    lines = ["=== RAG Search Results ===", f"Query: '{result.query}'", f"Source File: {source}",
             f"Results Found: {len(hits)}", ""]
    note = readiness_note(result.legs_used, pending)
    if note:
        lines[-1:-1] = [f"Search Mode: {result.mode} (requested {result.requested_mode})", note]
    if not hits:
        lines += ["", "No results found for this query in this source. Try other keywords, a shorter query, "
                      "or another language for the key terms.", ""]
    for position, hit in enumerate(hits, start=1):
        record = hit.record
        cite = hit.citation
        lines += ["", RULE, f"Result {position}", f"Citation: {cite}", RULE,
                  f"Relevance Score: {hit.score:.3f}"]
        components = score_components(hit.scores)
        if components:
            lines.append(f"Score Components: {components}")
        lines += [f"Document Index: {record.doc_index}", f"Chunk Index: {record.chunk_index}",
                  f"Title: {record.title}"]
        if record.url:
            lines.append(f"Source URL: {record.url}")
        if include_content:
            lines += ["", "--- Content ---", f"(Cite as: {cite})", _truncate(record.text, max_content_chars)]
        lines.append("")
    if subgraph:
        lines += _graph_lines(subgraph)
    lines += _guidance(result.mode, hits[0].citation if hits else None)
    return "\n".join(lines) + "\n"


# ---- rag_get_context -----------------------------------------------------------------------
def format_context_text(ctx: ContextResult, source: str, mode: str | None = None,
                        pending: Mapping[str, LegProgress] | None = None) -> str:
    """``get_context`` blocks as text; ``mode`` only picks the score explanation (default: the mode answered)."""
    lines = ["=== RAG Context ===", f"Query: '{ctx.query}'", f"Source File: {source}",
             f"Context Blocks: {len(ctx.blocks)} ({ctx.total_tokens} tokens of {ctx.max_tokens})", ""]
    note = readiness_note(ctx.legs_used, pending)
    if note:
        lines[-1:-1] = [note]
    if not ctx.blocks:
        lines += ["", "No context found for this query in this source (no results, or none fits the token "
                      "budget). Try other keywords or a larger max_tokens.", ""]
    for position, block in enumerate(ctx.blocks, start=1):
        record = block.hit.record
        span = (f"chunk {block.first_chunk}" if block.first_chunk == block.last_chunk
                else f"chunks {block.first_chunk}-{block.last_chunk}")
        lines += ["", RULE,
                  f"Context {position}: {block.hit.citation} | {span} | Document Index: {record.doc_index} | "
                  f"Title: {record.title} | Relevance Score: {block.hit.score:.3f} | {block.n_tokens} tokens",
                  RULE, block.text, ""]
    mode = mode or ctx.mode or None
    lines += _guidance(mode, ctx.blocks[0].hit.citation if ctx.blocks else None, context=True)
    return "\n".join(lines) + "\n"


# ---- rag_document_stats --------------------------------------------------------------------
def _faiss_text(faiss: dict) -> str:
    kind = faiss.get("type", "?")
    parts = []
    if kind == "hnsw":
        parts.append(", ".join(f"{key}={faiss[key]}" for key in ("M", "efConstruction", "efSearch") if key in faiss))
    elif faiss.get("exact"):
        parts.append("exact")
    for key in ("metric",):
        if faiss.get(key):
            parts.append(str(faiss[key]))
    if faiss.get("vectors") is not None:
        parts.append(f"{faiss['vectors']} vectors")
    if faiss.get("gpu"):
        parts.append("GPU")
    return f"FAISS {kind}" + (f" ({', '.join(p for p in parts if p)})" if parts else "")


def _build_progress_lines(build: dict, prefix: str = "") -> list[str]:
    lines = [f"{prefix}Stage: {build.get('stage', '?')} ({float(build.get('progress', 0.0)):.0%})"]
    if build.get("error"):
        lines.append(f"{prefix}Error: {build['error']}")
    return lines


def _documents_lines(documents: Iterable[dict]) -> list[str]:
    documents = list(documents)
    lines = ["", "Documents:"]
    for doc in documents[:MAX_DOCUMENT_LINES]:
        chunks = doc.get("chunks", 0)
        lines.append(f"[{doc.get('doc_index', '?')}] {doc.get('title', '')} "
                     f"({chunks} chunk{'' if chunks == 1 else 's'}, {doc.get('chars', 0)} chars)")
    if len(documents) > MAX_DOCUMENT_LINES:
        lines.append(f"... and {len(documents) - MAX_DOCUMENT_LINES} more")
    if not documents:
        lines.append("(none)")
    return lines


def format_stats_text(info: dict, source: str) -> str:
    """``CollectionRegistry.describe()`` as text."""
    status = info.get("status", "unknown")
    lines = ["=== Document Statistics ===", f"Source File: {source}"]
    if info.get("name"):
        lines.append(f"Collection: {info['name']}")
    lines.append(f"Status: {status}")
    if status != "ready":
        build = info.get("build") or {}
        lines += _build_progress_lines(build)
        if status == "building":
            lines.append("The index is being built; call again shortly.")
        return "\n".join(lines) + "\n"
    lines += [f"Total Documents: {info.get('documents', 0)}", f"Total Chunks: {info.get('chunks', 0)}"]
    if info.get("skipped"):
        lines.append(f"Skipped Documents: {info['skipped']}")
    embedder = info.get("embedder") or {}
    if embedder:
        lines.append(f"Embedding Model: {embedder.get('name', '?')} (dimension {embedder.get('dimension', '?')})")
    chunking = info.get("chunking") or {}
    if chunking:
        lines.append(f"Chunking: {chunking.get('chunk_tokens', '?')} tokens per chunk, "
                     f"{chunking.get('overlap_tokens', '?')} tokens overlap")
    if info.get("analyzer"):
        lines.append(f"Lexical Analyzer: {info['analyzer']}")
    if info.get("faiss"):
        lines.append(f"Index: BM25 + {_faiss_text(info['faiss'])}")
    if info.get("legs"):
        lines.append(f"Legs Ready: {', '.join(info['legs'])}")
    for leg, progress in (info.get("pending") or {}).items():
        lines.append(f"Pending: {_leg_text(LegProgress(leg=leg, **progress))}")
    if info.get("build_id"):
        lines.append(f"Build: {info['build_id']} (created {info.get('created_at', '?')})")
    if info.get("build"):  # a rebuild is running while the previous build keeps serving
        lines += ["Rebuild in progress:"] + _build_progress_lines(info["build"], prefix="  ")
    lines += _documents_lines(info.get("document_list") or [])
    return "\n".join(lines) + "\n"

"""The agents' ``rag_search`` MCP server: same tool names, arguments and text as the old tool.

Built on the official ``mcp`` SDK (2.x, ``mcp.server.mcpserver.MCPServer``). Three tools:

* ``rag_search(query, json_path, top_k=10, diverse=True, min_docs=5, max_per_doc=2)`` - the
  legacy results text (``service.formatting.format_search_text``);
* ``rag_get_context(query, json_path, max_tokens=4000, ...)`` - cited context in a token budget;
* ``rag_document_stats(json_path)`` - what is indexed.

Each also takes ``collection`` (a published collection name, used instead of ``json_path``) and
the search tools take ``mode`` (``service.engine.MODES``). A ``json_path`` seen for the first
time is indexed on the spot; MCP callers wait for its first tier, keyword search over the chunks
(seconds; at most ``BUILD_WAIT_SECONDS`` for the whole build), instead of getting "retry later",
and the results text says which legs are still being built and when they will be ready. Blocking
work runs in worker threads so the server keeps answering other requests meanwhile.

Failures the caller can fix (path outside the allowed roots, unknown corpus, empty query, bad
argument) are raised as the SDK's ``ToolError``: the client receives a ``CallToolResult`` with
``isError: true`` and the message as text content; the server never crashes on them. Arguments
are checked by the engine against the same limits HTTP's schema is built from
(``service.engine.limits``).

Run: ``ragmem mcp ...`` or ``python -m service.mcp_server --data-dir DIR --corpus-root DIR``.
In stdio mode nothing but protocol messages reaches stdout: logging goes to stderr, and the
SDK's stdio transport points fd 1 at stderr while serving.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from typing import Annotated, Callable, Optional, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from indexing.collection import Collection
from indexing.embedder import QueryEncoding
from indexing.settings import Settings, load_settings
from service.engine import (DEFAULT_MODE, LIMITS, MODES, InvalidQuery, SearchParams, build_params, check_bound,
                            get_context, search, subgraph_for)
from service.collections.errors import Building, Forbidden, ServiceError
from service.formatting import format_context_text, format_search_text, format_stats_text
from service.collections.registry import CollectionRegistry
from service.collections.warmup import warm_up

log = logging.getLogger("ragmem.service.mcp")

SERVER_NAME = "ragmem"
BUILD_WAIT_SECONDS = 600.0
TRANSPORTS = ("stdio", "streamable-http")

INSTRUCTIONS = (
    "Hybrid (BM25 + embedding) search over long-context document collections. Pass the corpus file as "
    "json_path (a legacy '<file>.json.chunks.db' path works too); the first call on a new file indexes it. "
    "Results carry citations of the form [long_context: \"Title\", chunk N]; cite facts with them verbatim."
)

T = TypeVar("T")

# Argument annotations: names and defaults are the agents' existing tool; descriptions are new.
Query = Annotated[str, Field(description="What to search for (natural language or keywords, any language).")]
JsonPath = Annotated[str, Field(description="Path of the corpus JSON file (or its legacy .json.chunks.db path); "
                                            "may be empty when 'collection' is given.")]
TopK = Annotated[int, Field(description="Number of results to return.")]
Diverse = Annotated[bool, Field(description="Spread results over documents: first the best chunk of the top "
                                            "min_docs documents, at most max_per_doc chunks per document, "
                                            "near-duplicate chunks dropped.")]
MinDocs = Annotated[int, Field(description="With diverse: at least this many distinct documents (when available).")]
MaxPerDoc = Annotated[int, Field(description="With diverse: at most this many chunks from one document.")]
CollectionName = Annotated[Optional[str], Field(description="Name of an already indexed collection to search "
                                                            "instead of json_path.")]
IncludeSubgraph = Annotated[bool, Field(description="Append the evidence graph: the triples linked to the query, "
                                                 "each with the citations of the chunks supporting it.")]
_OTHER_MODES = [m for m in MODES if m != DEFAULT_MODE]
Mode = Annotated[str, Field(description=f"Retrieval mode: {DEFAULT_MODE} (default), {', '.join(_OTHER_MODES[:-1])} "
                                        f"or {_OTHER_MODES[-1]}.")]
MaxTokens = Annotated[int, Field(description="Token budget of the returned context.")]


class _Tools:
    """The tool bodies (synchronous; called in a worker thread)."""

    def __init__(self, registry: CollectionRegistry) -> None:
        self.registry = registry

    # ---- shared ----------------------------------------------------------------------------
    def resolve(self, json_path: str, collection: str | None) -> tuple[Collection, str]:
        """The collection to use and the 'Source File' to print."""
        if collection:
            return self.registry.get(collection), (json_path or collection)
        if not json_path or not json_path.strip():
            raise ToolError("json_path is required (or pass 'collection' with the name of an indexed collection)")
        return self.registry.collection_for_path(json_path, wait_seconds=BUILD_WAIT_SECONDS), json_path

    def params(self, query: str, top_k: int, diverse: bool, min_docs: int, max_per_doc: int,
               mode: str) -> SearchParams:
        """The engine's checks (InvalidQuery, turned into a ToolError by ``guarded``)."""
        return build_params(query, top_k=top_k, diverse=diverse, min_docs=min_docs, max_per_doc=max_per_doc,
                            mode=mode, max_query_chars=self.registry.settings.max_query_chars)

    def guarded(self, work: Callable[[], T]) -> T:
        """Run ``work``, turning the errors a caller can act on into tool errors."""
        try:
            return work()
        except ToolError as exc:
            log.info("tool error: %s", exc)
            raise
        except Forbidden as exc:
            roots = ", ".join(str(root) for root in self.registry.roots)
            message = f"{exc.message} (allowed roots: {roots})"
        except Building as exc:
            retry = exc.headers.get("Retry-After")
            message = exc.message + (f"; retry in about {retry} s" if retry else "")
        except ServiceError as exc:
            message = exc.message
        except InvalidQuery as exc:
            message = str(exc)
        log.info("tool error: %s", message)
        raise ToolError(message)

    # ---- tools -----------------------------------------------------------------------------
    def search_text(self, query: str, json_path: str, top_k: int, diverse: bool, min_docs: int,
                    max_per_doc: int, collection: str | None, mode: str, include_subgraph: bool = False) -> str:
        def work() -> str:
            params = self.params(query, top_k, diverse, min_docs, max_per_doc, mode)
            target, source = self.resolve(json_path, collection)
            result = search(target, query, params)
            subgraph = subgraph_for(target, query, result.graph) if include_subgraph else None
            return format_search_text(result, source, subgraph=subgraph, pending=self.registry.pending(target))
        return self.guarded(work)

    def context_text(self, query: str, json_path: str, max_tokens: int, top_k: int, diverse: bool,
                     min_docs: int, max_per_doc: int, collection: str | None, mode: str) -> str:
        def work() -> str:
            params = self.params(query, top_k, diverse, min_docs, max_per_doc, mode)
            check_bound("max_tokens", max_tokens, LIMITS.max_tokens)
            target, source = self.resolve(json_path, collection)
            return format_context_text(get_context(target, query, params, max_tokens), source,
                                       pending=self.registry.pending(target))
        return self.guarded(work)

    def stats_text(self, json_path: str, collection: str | None) -> str:
        def work() -> str:
            target, source = self.resolve(json_path, collection)
            return format_stats_text(self.registry.describe(target.name), source)
        return self.guarded(work)


async def _in_thread(fn: Callable[..., T], *args: object) -> T:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def build_mcp_server(registry: CollectionRegistry) -> MCPServer:
    """An ``MCPServer`` with ``rag_search``, ``rag_get_context`` and ``rag_document_stats``."""
    tools = _Tools(registry)
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=_version())
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False)

    async def rag_search(query: Query, json_path: JsonPath, top_k: TopK = LIMITS.top_k.default,
                         diverse: Diverse = True, min_docs: MinDocs = LIMITS.min_docs.default,
                         max_per_doc: MaxPerDoc = LIMITS.max_per_doc.default, collection: CollectionName = None,
                         mode: Mode = DEFAULT_MODE, include_subgraph: IncludeSubgraph = False) -> str:
        """Search a long-context document collection (hybrid BM25 + embeddings) and return the best chunks.

        Each result shows its Citation ([long_context: "Title", chunk N]), Relevance Score (fused, 0-1),
        Document Index, Chunk Index, Title and Content. Cite facts with the citation strings verbatim.
        """
        return await _in_thread(tools.search_text, query, json_path, top_k, diverse, min_docs, max_per_doc,
                                collection, mode, include_subgraph)

    async def rag_get_context(query: Query, json_path: JsonPath, max_tokens: MaxTokens = LIMITS.max_tokens.default,
                              top_k: TopK = LIMITS.top_k.default, diverse: Diverse = True,
                              min_docs: MinDocs = LIMITS.min_docs.default,
                              max_per_doc: MaxPerDoc = LIMITS.max_per_doc.default,
                              collection: CollectionName = None, mode: Mode = DEFAULT_MODE) -> str:
        """Return cited context for a query packed into max_tokens: the best chunks, each widened with its
        neighbouring chunks while the budget allows. Every block carries its citation."""
        return await _in_thread(tools.context_text, query, json_path, max_tokens, top_k, diverse, min_docs,
                                max_per_doc, collection, mode)

    async def rag_document_stats(json_path: JsonPath, collection: CollectionName = None) -> str:
        """Statistics of an indexed corpus: document and chunk counts, embedding model, chunking, index
        type, and the list of documents with their Document Index."""
        return await _in_thread(tools.stats_text, json_path, collection)

    for fn in (rag_search, rag_get_context, rag_document_stats):
        server.add_tool(fn, annotations=read_only, structured_output=False)
    return server


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ragmem")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "0"


def mount_streamable_http(app, registry: CollectionRegistry, host: str) -> None:
    """Add the MCP tools at ``/mcp`` of an HTTP API app (``starlette``/FastAPI), over its registry.

    For ``ragmem serve --ray-address``, whose one ASGI app is Ray Serve's ingress: the MCP
    session manager runs inside that app's lifespan, so MCP calls share its collections and
    limits. Hosts other than loopback are allowed as the app's own routes are.
    """
    from contextlib import asynccontextmanager

    from mcp.server.transport_security import TransportSecuritySettings

    server = build_mcp_server(registry)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=host in ("127.0.0.1", "localhost", "::1"),
                                         allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                                         allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host)
    app.router.routes.extend(mcp_app.routes)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi_app):
        async with server.session_manager.run():
            async with inner(asgi_app) as state:
                yield state

    app.router.lifespan_context = lifespan


def _setup_logging(verbose: bool = False) -> None:
    """Everything to stderr: in stdio mode stdout carries the protocol."""
    root = logging.getLogger()
    if not any(getattr(h, "_ragmem_mcp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._ragmem_mcp = True  # type: ignore[attr-defined]
        for existing in list(root.handlers):  # e.g. a stdout handler someone installed earlier
            if getattr(existing, "stream", None) is sys.stdout:
                root.removeHandler(existing)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "sentence_transformers", "transformers", "faiss", "jieba", "bm25s", "mcp",
                  "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_mcp(settings: Settings, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the tools over ``stdio`` or ``streamable-http`` (at ``http://host:port/mcp``) until stopped."""
    if transport == "http":
        transport = "streamable-http"
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; expected one of {', '.join(TRANSPORTS)}")
    _setup_logging(logging.getLogger().isEnabledFor(logging.DEBUG))
    registry = CollectionRegistry(settings, QueryEncoding.for_serving(settings))
    warm_up(settings, registry)
    server = build_mcp_server(registry)
    roots = ", ".join(str(root) for root in registry.roots)
    try:
        if transport == "stdio":
            log.info("ragmem MCP server on stdio (allowed roots: %s)", roots)
            server.run("stdio")
        else:
            log.info("ragmem MCP server on http://%s:%d/mcp (allowed roots: %s)", host, port, roots)
            server.run("streamable-http", host=host, port=port)
    finally:
        registry.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.mcp_server", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="Data root (RAGMEM_DATA_DIR, default ./data).")
    parser.add_argument("--corpus-root", action="append", default=None,
                        help="Extra root json_path may point into (repeatable; RAGMEM_CORPUS_ROOTS).")
    parser.add_argument("--transport", choices=("stdio", "http", "streamable-http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    settings = load_settings(data_dir=args.data_dir, corpus_roots=args.corpus_root)
    run_mcp(settings, args.transport, args.host, args.port)


if __name__ == "__main__":  # pragma: no cover
    main()

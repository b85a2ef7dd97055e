"""Loading the default embedder while a server starts, so that its first answer does not pay for it.

An unseen json_path answers from BM25 as soon as that tier is published, but its dense tier, and
every dense query of an already published collection, first loads the model (the e5 engine's
weights, or a sentence-transformers model and its ONNX export: seconds). A background thread
does that at start-up instead; requests that arrive earlier simply wait on the same cached load.
"""

from __future__ import annotations

import logging
import threading
import time

from indexing.embedder import EmbedderError, EmbedderSpec, load_embedder
from indexing.settings import Settings

log = logging.getLogger("ragmem.service.collections.warmup")

WARM_UP_QUERY = "warm-up 预热"
"""Encoded once, so both scripts' tokenizer paths are exercised before a real query comes."""


def warm_default_embedder(settings: Settings) -> threading.Thread | None:
    """Start loading ``settings``' embedder in a daemon thread (None when ``settings.warm_up`` is off)."""
    if not settings.warm_up:
        return None

    def load() -> None:
        started = time.perf_counter()
        try:
            embedder = load_embedder(EmbedderSpec.from_settings(settings))
            embedder.encode_queries([WARM_UP_QUERY])
        except (EmbedderError, OSError, RuntimeError, ValueError) as exc:  # the first build reports it properly
            log.warning("embedder warm-up failed: %s", exc)
            return
        log.info("embedder %s warmed up in %.1fs", settings.embed_model, time.perf_counter() - started)

    thread = threading.Thread(target=load, name="ragmem-warm-up", daemon=True)
    thread.start()
    return thread

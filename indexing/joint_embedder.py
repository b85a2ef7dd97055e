"""One dense leg over two embedding spaces: the collection's embedder plus a cross-lingual one.

Why two: multilingual-e5 reads Chinese and English well within a language, but across languages
its nearest neighbour is right only about 0.65-0.70 of the time (XQuAD R@1), and
USE-multilingual-v3 (``use_space``), much weaker within a language, errs on different questions.
Mixed, the two are right about 0.80 of the time across languages (docs/EVAL.md).

How the spaces share one FAISS index: a chunk's vector is the concatenation of its unit vector in
each of the n spaces, divided by sqrt(n), so it is unit-norm and chunk-to-chunk inner products are
the mean of the per-space cosines (every relative cutoff elsewhere keeps working). A query vector
is the concatenation of ``w_m * sqrt(n) * q_m``, so its inner product with a chunk is
``sum_m w_m * cos_m``: the weights are chosen per query (``service.engine.fusion.space_weights``)
without touching the index. The chunker budgets in the first space's tokens; the others take
any length.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from graphmem.similarity import random_pair_cosines
from indexing.embedder import QueryEncoding, TextEmbedder, TokenCounter

SPREAD_PAIRS = 4096
"""Random chunk pairs whose cosine spread sets each space's weight (seeded, so builds repeat)."""


@runtime_checkable
class EmbeddingSpace(Protocol):
    """What a second space must do: embed passages and queries into L2-normalised rows."""

    name: str

    @property
    def dimension(self) -> int: ...

    @property
    def cache_key(self) -> str: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...

    def submit_query(self, text: str) -> Future:
        """``encode_query``'s result as a future, returned at once (``QueryBatcher.submit``)."""
        ...


@dataclass
class JointEmbedder:
    """A :class:`~indexing.embedder.TextEmbedder` whose vectors join ``primary`` and ``spaces``.

    It reports the primary's name, backend, runtime and tokens (the build reloads the primary
    by them and chunks by its tokens); ``spaces`` are recorded beside it in the manifest."""

    primary: TextEmbedder
    spaces: tuple[EmbeddingSpace, ...]

    @property
    def name(self) -> str:
        return self.primary.name

    @property
    def backend(self) -> str:
        return self.primary.backend

    @property
    def runtime(self) -> str:
        return self.primary.runtime

    @property
    def device(self) -> str:
        return self.primary.device

    @property
    def query_prefix(self) -> str:
        return self.primary.query_prefix

    @property
    def passage_prefix(self) -> str:
        return self.primary.passage_prefix

    @property
    def parts(self) -> tuple[EmbeddingSpace, ...]:
        """Every space in vector order, the primary first."""
        return (self.primary, *self.spaces)

    @property
    def dimension(self) -> int:
        return sum(part.dimension for part in self.parts)

    @property
    def max_seq_length(self) -> int:
        return self.primary.max_seq_length

    @property
    def multilingual(self) -> bool:
        return True

    @property
    def cache_key(self) -> str:
        """The build fingerprint's identity of the joint space (the cache keeps each part apart)."""
        return "+".join(part.cache_key for part in self.parts)

    @property
    def token_counter(self) -> TokenCounter:
        return self.primary.token_counter

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.primary.token_spans(text)

    def count_tokens(self, text: str) -> int:
        return self.primary.count_tokens(text)

    def join(self, part_vectors: Sequence[np.ndarray]) -> np.ndarray:
        """Per-space unit rows (in ``parts`` order) -> joint unit rows."""
        joined = np.hstack([np.asarray(v, dtype=np.float32) for v in part_vectors])
        return np.ascontiguousarray(joined / np.float32(math.sqrt(len(self.parts))))

    def split(self, vectors: np.ndarray) -> list[np.ndarray]:
        """Joint rows -> per-space unit rows (the inverse of ``join``)."""
        scale = np.float32(math.sqrt(len(self.parts)))
        out, start = [], 0
        for part in self.parts:
            out.append(vectors[:, start:start + part.dimension] * scale)
            start += part.dimension
        return out

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self.join([part.encode(texts, batch_size=batch_size) for part in self.parts])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Equal weights (the mix of a query whose coverage is unknown); the engine uses ``encode_query_mixed``."""
        return np.vstack([self.encode_query(text) for text in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_query_mixed(text, [1.0 / len(self.parts)] * len(self.parts))

    def encode_query_mixed(self, text: str, weights: Sequence[float]) -> np.ndarray:
        """(1, dim) whose inner product with a chunk is ``sum_m weights[m] * cos_m`` (a zero weight
        skips that space's model altogether)."""
        if len(weights) != len(self.parts):
            raise ValueError(f"{len(weights)} weights for {len(self.parts)} embedding spaces")
        scale = math.sqrt(len(self.parts))
        # Every model is asked before any answer is awaited: each encodes on its own thread with
        # the GIL released (onnxruntime, numpy BLAS), so a query costs the slowest model, not the sum.
        pending = [None if weight == 0.0 else part.submit_query(text) for part, weight in zip(self.parts, weights)]
        pieces = [np.zeros((1, part.dimension), np.float32) if future is None
                  else future.result() * np.float32(weight * scale)
                  for part, weight, future in zip(self.parts, weights, pending)]
        return np.hstack(pieces).astype(np.float32)

    def serve_queries(self, encoding: QueryEncoding) -> None:
        for part in self.parts:
            serve = getattr(part, "serve_queries", None)
            if serve is not None:
                serve(encoding)

    def spreads(self, vectors: np.ndarray) -> list[float]:
        """Each space's standard deviation of cosines between random chunk pairs of this collection.

        A space that packs unrelated text into a narrow band of cosines (multilingual-e5: about
        0.02) must weigh more than one that spreads it (USE: about 0.1) for the two to count
        equally; the spread says how far apart "related" and "unrelated" lie in that space."""
        return [float(np.std(cosines)) if cosines.size else 1.0
                for cosines in (random_pair_cosines(part, SPREAD_PAIRS) for part in self.split(vectors))]


def first_space(embedder: TextEmbedder) -> TextEmbedder:
    """The embedder itself, or a joint embedder's primary (what a single-model baseline compares with)."""
    return embedder.primary if isinstance(embedder, JointEmbedder) else embedder

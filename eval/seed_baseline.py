"""What the agents' current tool does, reproduced for comparison: 1,500-character chunks with 200
characters of overlap (``title + "\\n\\n" + body`` as it stored them), dense cosine only, same embedder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexing.embedder import TextEmbedder
from indexing.embedding_cache import EmbeddingCache, cache_path_for, embed_texts

CHUNK_CHARS = 1500
OVERLAP_CHARS = 200


def char_chunks(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    step = size - overlap
    return [text[i : i + size] for i in range(0, max(len(text) - overlap, 1), step)] or [text]


@dataclass
class SeedBaseline:
    embedder: TextEmbedder
    keys: list[str]
    vectors: np.ndarray

    @classmethod
    def build(cls, documents: list[dict], embedder: TextEmbedder, cache_dir: Path) -> "SeedBaseline":
        keys, texts = [], []
        for doc in documents:
            for chunk in char_chunks(f"{doc['title']}\n\n{doc['text']}"):
                keys.append(doc["doc_key"])
                texts.append(chunk)
        cache = EmbeddingCache(cache_path_for(cache_dir, embedder), embedder.dimension)
        try:
            vectors, _ = embed_texts(embedder, texts, cache, desc="seed-baseline embedding")
        finally:
            cache.close()
        return cls(embedder, keys, vectors)

    def search(self, query: str, k: int) -> list[str]:
        """Encode, cosine against every chunk, argsort: the old tool's per-query work."""
        scores = self.vectors @ self.embedder.encode_queries([query])[0]
        order = np.argsort(-scores)[:k]
        return [self.keys[i] for i in order]

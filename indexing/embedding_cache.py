"""Persistent text -> vector cache, so rebuilds and eval runs only embed text they have not seen.

Embedding is >90% of an index build on CPU; re-indexing a corpus that changed in one
document, or re-running the eval harness, should cost seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from indexing.embedder import TextEmbedder
from indexing.joint_embedder import JointEmbedder

log = logging.getLogger("ragmem.indexing.embedding_cache")


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def cache_path_for(cache_dir: Path, embedder: TextEmbedder) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder.cache_key).strip("_")[-80:]
    return cache_dir / f"{slug}-{embedder.dimension}.sqlite"


def embedding_cache_dir(data_dir: Path) -> Path:
    """Where a data root keeps its embedding caches (one file per model)."""
    return Path(data_dir) / ".cache" / "embeddings"


def open_embedding_cache(data_dir: Path, embedder: TextEmbedder) -> "EmbeddingCache | JointCache":
    """The data root's cache for ``embedder`` (one per space of a joint embedder); the caller closes it."""
    if isinstance(embedder, JointEmbedder):
        return JointCache([EmbeddingCache(cache_path_for(embedding_cache_dir(data_dir), part), part.dimension)
                           for part in embedder.parts])
    return EmbeddingCache(cache_path_for(embedding_cache_dir(data_dir), embedder), embedder.dimension)


class EmbeddingCache:
    def __init__(self, path: Path, dimension: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dimension = dimension
        self._conn = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            batch = list(keys[start : start + 500])
            marks = ",".join("?" * len(batch))
            for key, blob in self._conn.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", batch):
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape[0] == self.dimension:
                    found[bytes(key)] = vector
        return found

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors(key, vec) VALUES (?, ?)",
                [(key, np.asarray(vec, dtype=np.float32).tobytes()) for key, vec in items],
            )

    def close(self) -> None:
        self._conn.close()


class JointCache:
    """The caches of a joint embedder's spaces, in its ``parts`` order: each space's vectors are
    cached under its own model, so adding or dropping a second space never re-embeds the first."""

    def __init__(self, parts: list[EmbeddingCache]) -> None:
        self.parts = parts

    def close(self) -> None:
        for part in self.parts:
            part.close()


def embed_texts(
    embedder: TextEmbedder,
    texts: Sequence[str],
    cache: "EmbeddingCache | JointCache | None",
    batch_size: int = 64,
    desc: str = "embedding",
    show_progress: bool = True,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Embed ``texts`` (normalised float32), reusing cached vectors. Returns (vectors, n_computed)."""
    if isinstance(embedder, JointEmbedder):
        return _embed_joint(embedder, texts, cache, batch_size, desc, show_progress, on_progress)
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    keys = [_key(text) for text in texts]
    cached = cache.get_many(list(dict.fromkeys(keys))) if cache is not None else {}
    todo: dict[bytes, list[int]] = {}
    for position, key in enumerate(keys):
        hit = cached.get(key)
        if hit is not None:
            out[position] = hit
        else:
            todo.setdefault(key, []).append(position)
    if not todo:
        return out, 0
    unique_keys = list(todo)
    # Sorting by length keeps padding (wasted compute) low inside each batch.
    order = sorted(range(len(unique_keys)), key=lambda i: len(texts[todo[unique_keys[i]][0]]))
    step = max(batch_size * 4, 256)
    with tqdm(total=len(order), desc=desc, unit="chunk", disable=not show_progress, leave=False) as bar:
        for start in range(0, len(order), step):
            block = [unique_keys[i] for i in order[start : start + step]]
            vectors = embedder.encode([texts[todo[key][0]] for key in block], batch_size=batch_size)
            for key, vector in zip(block, vectors):
                out[todo[key]] = vector
            if cache is not None:
                cache.put_many(list(zip(block, vectors)))
            bar.update(len(block))
            if on_progress is not None:
                on_progress(min(1.0, (start + len(block)) / len(order)))
    return out, len(unique_keys)


def _embed_joint(embedder: JointEmbedder, texts: Sequence[str], cache: "JointCache | EmbeddingCache | None",
                 batch_size: int, desc: str, show_progress: bool,
                 on_progress: Callable[[float], None] | None) -> tuple[np.ndarray, int]:
    """Each space through its own cache, the primary first (the slow one: progress then errs late, not early)."""
    if cache is not None and not isinstance(cache, JointCache):
        raise TypeError("a joint embedder needs the JointCache open_embedding_cache gives it")
    parts, computed = [], 0
    count = len(embedder.parts)
    for index, part in enumerate(embedder.parts):
        report = None if on_progress is None else (lambda f, i=index: on_progress((i + f) / count))
        vectors, embedded = embed_texts(part, texts, None if cache is None else cache.parts[index], batch_size,
                                        f"{desc} ({part.name})", show_progress, report)
        parts.append(vectors)
        computed = max(computed, embedded)
    return embedder.join(parts), computed

"""How much of the data root json_path builds may take: a count and a byte quota.

Any caller that may read may also send a new ``json_path``, and every new path is a build that
writes many times its corpus' size (chunk store, BM25, FAISS, graph, and the embedding cache,
which grows with every text embedded). So new json_path collections are admitted only while
their number and the bytes they use, with the expected size of the new build, stay inside
``RAGMEM_MAX_PATH_COLLECTIONS`` and ``RAGMEM_MAX_PATH_COLLECTIONS_BYTES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexing import publish
from indexing.embedding_cache import embedding_cache_dir
from service.collections.errors import QuotaExceeded

BUILD_BYTES_PER_CORPUS_BYTE = 80
"""Expected bytes written (build + embedding cache) per corpus byte read, rounded up from the 73x
measured with the default settings (graph on): ``ragmem index corpora/miro/005/long_context_sampled_32k.json``
read 121,587 bytes and wrote a 4.51 MB build plus 4.33 MB of embedding cache (docs/BENCHMARKS.md, bench-attack)."""


@dataclass(frozen=True)
class PathQuota:
    max_collections: int
    max_bytes: int

    def admit(self, data_dir: Path, path_collections: list[str], building: int, corpus_bytes: int) -> None:
        """Raise QuotaExceeded unless one more json_path collection of ``corpus_bytes`` fits."""
        count = len(path_collections) + building
        if count >= self.max_collections:
            raise QuotaExceeded(f"json_path collections are at their limit ({count} of {self.max_collections}, "
                                "RAGMEM_MAX_PATH_COLLECTIONS); index the corpus with `ragmem index` instead")
        cache = embedding_cache_dir(data_dir)
        used = sum(publish.directory_bytes(Path(data_dir) / name) for name in path_collections)
        used += publish.directory_bytes(cache) if cache.is_dir() else 0
        expected = corpus_bytes * BUILD_BYTES_PER_CORPUS_BYTE
        if used + expected > self.max_bytes:
            raise QuotaExceeded(f"json_path collections would use {(used + expected) / 1e6:.1f} MB with this one "
                                f"(about {expected / 1e6:.1f} MB expected for it), over the "
                                f"{self.max_bytes / 1e6:.1f} MB allowed (RAGMEM_MAX_PATH_COLLECTIONS_BYTES)")

"""Which documents and chunk rows each shard of a sharded build holds.

Kept apart from :mod:`indexing.sharded_build` so a shard replica (which only reads) imports
neither the analyzer nor the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from indexing.documents import Document


@dataclass(frozen=True)
class ShardLayout:
    """Where each shard's documents and chunk rows start in the collection's order (S + 1 offsets each)."""

    doc_offsets: tuple[int, ...]
    row_offsets: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.doc_offsets) - 1

    def shard_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """The shard holding each chunk row."""
        return np.searchsorted(np.asarray(self.row_offsets[1:]), np.asarray(rows, dtype=np.int64), side="right")

    def shard_of_doc(self, doc_row: int) -> int:
        return int(np.searchsorted(np.asarray(self.doc_offsets[1:]), doc_row, side="right"))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "doc_offsets": list(self.doc_offsets), "row_offsets": list(self.row_offsets)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShardLayout":
        layout = cls(tuple(int(x) for x in data["doc_offsets"]), tuple(int(x) for x in data["row_offsets"]))
        if layout.count < 1 or len(layout.row_offsets) != len(layout.doc_offsets):
            raise ValueError(f"malformed shard layout {data!r}")
        return layout


def plan_shards(documents: Sequence[Document], shards: int) -> list[range]:
    """Contiguous document ranges, about equal in characters; never an empty one (at most one shard
    per document)."""
    n = len(documents)
    shards = max(1, min(shards, n))
    sizes = np.fromiter((len(d.text) + len(d.title) + 1 for d in documents), dtype=np.float64, count=n)
    cumulative = np.cumsum(sizes)
    cuts = [0]
    for s in range(1, shards):
        cut = int(np.searchsorted(cumulative, cumulative[-1] * s / shards, side="left")) + 1
        cut = min(max(cut, cuts[-1] + 1), n - (shards - s))  # leave at least one document per later shard
        cuts.append(cut)
    cuts.append(n)
    return [range(a, b) for a, b in zip(cuts, cuts[1:])]

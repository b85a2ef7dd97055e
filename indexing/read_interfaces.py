"""What a query may ask of a collection's chunk store, lexical leg and dense leg.

A :class:`indexing.collection.Collection` holds either a published build's objects
(``StoreReader``, ``LexicalIndex``, ``VectorIndex``) or, in a live snapshot, overlays of the
change journal on them (``LiveStore``, ``LiveLexical``, ``LiveDense`` in
:mod:`indexing.live_overlay`). Both kinds are handed to the same query code, so the members
that code may use are declared here once; anything else (``StoreReader.full_documents``,
``VectorIndex.search``, ``LexicalIndex.retriever``, ...) exists on a published build only.

Each member is here because the query path (``service.engine``: retrieval, context,
subgraph; ``service.collections.registry.describe``, the API metrics, ``eval``) reads it through
a Collection, or because a live overlay reads it from the view it wraps (noted "overlay").
Data members are read-only properties: readers never assign them, and a plain attribute or a
dataclass field satisfies a read-only property.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np

from indexing.documents import SkippedDocument
from indexing.lexical_index import LexicalResult
from indexing.store import ChunkRecord

if TYPE_CHECKING:
    import faiss


@runtime_checkable
class ChunkStore(Protocol):
    """Chunks and documents by row; a chunk's row is its row in both index legs."""

    @property
    def n_chunks(self) -> int:
        """Chunks a query can return (registry, API metrics, eval)."""

    @property
    def n_documents(self) -> int:
        """Documents a query can return (registry, API metrics)."""

    @property
    def chunk_doc_rows(self) -> np.ndarray:
        """Document row of every chunk row, over all rows of the legs (filters, diversity)."""

    def chunks(self, rows: Sequence[int]) -> list[ChunkRecord]:
        """Records of the given rows, in that order; unknown or hidden rows are left out (hits)."""

    def document_chunks(self, doc_row: int, first: int, last: int) -> list[ChunkRecord]:
        """Chunks ``first..last`` (chunk_index, inclusive) of one document (context expansion)."""

    def document_text(self, doc_row: int) -> str:
        """A document's full text, "" when unknown (context expansion)."""

    def documents(self) -> list[dict]:
        """One summary dict per document, in row order (filters, registry)."""

    def skipped(self) -> list[SkippedDocument]:
        """Inputs the build left out, and why (registry)."""


@runtime_checkable
class LexicalLeg(Protocol):
    """BM25 over analyzer terms: one score per chunk row."""

    @property
    def n_docs(self) -> int:
        """Rows scored (overlay: the base rows the journal rows follow)."""

    def describe(self) -> dict:
        """The BM25 parameters of the build (overlay: reported unchanged by a live view)."""

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """float32 score of every row (overlay: the base scores the journal's are laid over)."""

    def term_coverage(self, query_terms: Sequence[str]) -> float:
        """Share of the query's distinct terms that occur in the collection at all (0 for no terms)."""

    def search(self, query_terms: Sequence[str], k: int, allowed: np.ndarray | None = None,
               extra_rows: np.ndarray | None = None) -> LexicalResult:
        """Top-k rows with a positive score plus the exact scores of ``extra_rows`` (retrieval)."""


@runtime_checkable
class DenseLeg(Protocol):
    """Cosine search over the chunks' normalised embeddings."""

    @property
    def size(self) -> int:
        """Rows of the leg (overlay: where the base rows end)."""

    @property
    def info(self) -> dict:
        """How the vectors are searched, as recorded in the manifest (overlay, bench_live)."""

    def top(self, qvec: np.ndarray, k: int, mask: np.ndarray | None = None,
            exclude: "faiss.IDSelector | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the k nearest rows, best first (retrieval).

        ``mask`` (booleans over rows) restricts the search; without one, ``exclude`` is a FAISS
        selector that accepts the rows to search (overlay: it hides deleted base rows this way).
        """

    def reconstruct(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors of ``rows``, shape (len(rows), dimension) (fusion, diversity)."""

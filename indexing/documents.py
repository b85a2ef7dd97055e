"""What a corpus becomes before it is indexed: cleaned documents plus a record of what was skipped.

Loaders never raise for one bad document; they append a ``SkippedDocument`` so the operator
can see exactly what was left out and why (an index that silently drops text loses recall).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


class CorpusError(ValueError):
    """The corpus as a whole cannot be read (missing path, invalid JSON file, unknown format).

    The message always names the file, and the line/column when the problem is positional.
    """


class CorpusTooLarge(CorpusError):
    """A read limit (``RAGMEM_MAX_FILE_BYTES``, ``RAGMEM_MAX_CORPUS_BYTES``,
    ``RAGMEM_MAX_CORPUS_DOCUMENTS``) was exceeded.

    Separate from :class:`CorpusError` so a server can answer 413 rather than 400: the corpus is
    well-formed, just bigger than this deployment accepts. The message names the file, the limit
    and the setting that raises it.
    """


@dataclass
class Document:
    doc_index: int
    """Position in the source as agents cite it (array index, JSONL record, file order)."""
    title: str
    text: str
    """Cleaned text; every chunk is an exact slice of it."""
    url: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    """Where the document came from (file path, plus ``:line`` for JSONL)."""
    doc_id: str = ""

    def __post_init__(self) -> None:
        if not self.doc_id:
            self.doc_id = content_doc_id(self.title, self.text)


@dataclass(frozen=True)
class SkippedDocument:
    source: str
    doc_index: int | None
    reason: str


@dataclass
class LoadedCorpus:
    documents: list[Document]
    skipped: list[SkippedDocument]
    files: list[str]
    """Every file that was read (real paths), for fingerprinting and the ingest report."""
    file_digests: dict[str, str] = field(default_factory=dict)
    """Real path -> sha256 hex of exactly the bytes indexed from it, so the fingerprint describes
    the index and not whatever the file holds by the time the build finishes."""


def content_doc_id(title: str, text: str) -> str:
    """Stable id from content, so the same article keeps its id across rebuilds and re-orderings."""
    digest = hashlib.sha256()
    digest.update(title.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()[:20]

"""Turn whatever path an agent passes (JSON, JSONL, Markdown/text, a directory of those, or the
legacy ``*.chunks.db`` cache) into cleaned ``Document`` objects.

Design rules, all for the benefit of agents citing documents and operators debugging ingests:

* ``doc_index`` is what agents cite, so it is the position in the source and never shifts when
  an earlier item is skipped.
* One bad document never aborts a load; it becomes a ``SkippedDocument`` with a reason. Only a
  corpus that cannot be read at all (missing path, a single-file corpus with invalid JSON, an
  unreadable legacy database) raises ``CorpusError``, naming the file (and line/column).
* Every file is read through one ``FileGate`` (``file_gate.py``): only regular files inside the
  allowed roots, within the read limits. Inside a directory a refused or oversized file is a
  skip; a corpus over the byte or document budget raises ``CorpusTooLarge`` (never a silently
  partial index).
* Output is deterministic: sorted directory walk, content-derived ``doc_id``.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cleaning import clean_text, decode_bytes
from .documents import CorpusError, Document, LoadedCorpus, SkippedDocument
from .file_gate import FileGate, FileTooLarge, ReadLimits, UnsafeFile

logger = logging.getLogger("ragmem.indexing.loaders")

__all__ = ["load_corpus"]

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
JSON_SUFFIX = ".json"
JSONL_SUFFIX = ".jsonl"
SQLITE_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})
# Documents a user plausibly meant to index but that need a parser we do not ship: listed as
# skipped (so nobody wonders where they went) rather than silently ignored.
UNSUPPORTED_SUFFIXES = frozenset(
    {".pdf", ".doc", ".docx", ".odt", ".rtf", ".html", ".htm", ".xhtml", ".epub", ".ppt", ".pptx",
     ".xls", ".xlsx", ".csv", ".tsv", ".xml", ".rst", ".tex"}
)

TEXT_FIELDS = ("content", "page_body", "text")
URL_FIELDS = ("url", "permalink", "link", "source_url")
TITLE_FIELD = "title"
DOC_ID_FIELD = "doc_id"
TITLE_FALLBACK_CHARS = 100

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_WAL_VERSION_BYTES = slice(18, 20)  # file format write/read versions: 2 = WAL, 1 = rollback journal
CANCEL_EVERY_RECORDS = 1000
_ATX_H1_RE = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~)")
# Legacy chunks.db reconstruction: chunk boundaries were stripped of whitespace, so unknown
# positions are only ever short whitespace runs; anything longer means the offsets are wrong.
_MAX_GAP = 16
_MIN_FALLBACK_OVERLAP = 8
_MAX_FALLBACK_OVERLAP = 4000


class _FileProblem(Exception):
    """A whole file cannot be used; fatal for a single-file corpus, a skip inside a directory."""


@dataclass
class _Collector:
    """Accumulates documents and skips, assigning directory-wide ``doc_index`` values.

    Holds the gate every read goes through and the caller's ``cancel`` hook, called once per
    file and every ``CANCEL_EVERY_RECORDS`` records so a cancelled build stops promptly.
    """

    gate: FileGate
    cancel: Callable[[], None] | None = None
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedDocument] = field(default_factory=list)
    next_index: int = 0
    _first_index_of: dict[str, int] = field(default_factory=dict)
    _records: int = 0

    def checkpoint(self) -> None:
        if self.cancel is not None:
            self.cancel()

    def reserve(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def skip(self, source: str, doc_index: int | None, reason: str) -> None:
        logger.debug("skipped %s (doc_index %s): %s", source, doc_index, reason)
        self._count_record()
        self.skipped.append(SkippedDocument(source=source, doc_index=doc_index, reason=reason))

    def add(self, document: Document) -> None:
        first = self._first_index_of.get(document.doc_id)
        if first is not None:
            self.skip(document.source, document.doc_index, f"duplicate of doc_index {first}")
            return
        self._count_record()
        self.gate.limits.check_documents(len(self.documents) + 1, document.source)
        self._first_index_of[document.doc_id] = document.doc_index
        self.documents.append(document)

    def _count_record(self) -> None:
        self._records += 1
        if self._records % CANCEL_EVERY_RECORDS == 0:
            self.checkpoint()


# --- public entry point -----------------------------------------------------------------------


def load_corpus(path: str | Path, roots: Sequence[Path] | None = None, limits: ReadLimits | None = None,
                cancel: Callable[[], None] | None = None) -> LoadedCorpus:
    """Load a corpus file or directory into cleaned documents plus a list of what was skipped.

    Only files whose real path lies inside ``roots`` are read; ``None`` means the corpus itself
    (the CLI case: the operator named the path). ``limits`` defaults to :class:`ReadLimits`.
    ``cancel`` is called once per file and every ~1000 documents; make it raise to stop a load.
    Raises ``CorpusError`` (``CorpusTooLarge`` past a corpus-wide limit).
    """
    started = time.perf_counter()
    given = str(path)
    root = Path(path).expanduser()
    if not root.exists():
        raise CorpusError(f"{given}: no such file or directory")
    gate = FileGate(roots if roots is not None else [root], limits)
    collector = _Collector(gate, cancel)
    if root.is_dir():
        _load_directory(root, collector)
    else:
        try:
            _load_file(root, given, collector)
        except _FileProblem as problem:
            raise CorpusError(str(problem)) from problem.__cause__
    corpus = LoadedCorpus(
        documents=collector.documents,
        skipped=collector.skipped,
        files=sorted(gate.digests),
        file_digests=dict(gate.digests),
    )
    logger.info(
        "%s: %d documents, %d skipped, %d files in %.2fs",
        given, len(corpus.documents), len(corpus.skipped), len(corpus.files),
        time.perf_counter() - started,
    )
    return corpus


# --- dispatch ---------------------------------------------------------------------------------


def _load_file(path: Path, label: str, collector: _Collector) -> None:
    """Load one file given directly by the caller; every file-level problem is fatal."""
    suffix = path.suffix.lower()
    if suffix == JSON_SUFFIX:
        _load_json_file(path, label, collector)
    elif suffix == JSONL_SUFFIX:
        _load_jsonl_file(path, label, collector)
    elif suffix in TEXT_SUFFIXES:
        _load_text_file(path, label, path.name, collector)
    elif suffix in SQLITE_SUFFIXES:
        _load_chunks_db(_read_bytes(path, label, collector), label, collector)
    else:
        _load_unknown_file(path, label, collector)


def _load_unknown_file(path: Path, label: str, collector: _Collector) -> None:
    """An unknown extension may still be a legacy cache, known by its magic; anything else is fatal.

    The sniff reads through the gate like every other read (bounded, regular files only).
    """
    if path.suffix.lower() not in UNSUPPORTED_SUFFIXES:
        data = _read_bytes(path, label, collector)
        if data.startswith(_SQLITE_MAGIC):
            _load_chunks_db(data, label, collector)
            return
    kind = f"'{path.suffix}'" if path.suffix else "a file without extension"
    raise _FileProblem(
        f"{label}: unsupported format {kind} (expected .json, .jsonl, .md, .markdown, .txt "
        "or a legacy .chunks.db)"
    )


def _load_directory(root: Path, collector: _Collector) -> None:
    """Sorted walk through the gate; a bad or refused file is listed as skipped, never fatal.

    Only the corpus-wide limits (``CorpusTooLarge``) and ``cancel`` stop the load.
    """
    walk = collector.gate.walk(root, collector.cancel)
    for refusal in walk.refused:
        collector.skip(refusal.rel, None, refusal.reason)
    for rel in walk.files:
        file_path = root / rel
        suffix = file_path.suffix.lower()
        try:
            if suffix == JSON_SUFFIX:
                _load_json_file(file_path, rel, collector)
            elif suffix == JSONL_SUFFIX:
                _load_jsonl_file(file_path, rel, collector)
            elif suffix in TEXT_SUFFIXES:
                _load_text_file(file_path, rel, rel, collector)
            elif suffix in UNSUPPORTED_SUFFIXES:
                collector.skip(rel, None, "unsupported format")
            else:
                logger.debug("ignoring %s (extension not indexed)", rel)
        except (_FileProblem, UnsafeFile, FileTooLarge) as problem:
            collector.skip(rel, None, str(problem))


# --- reading helpers --------------------------------------------------------------------------


def _read_bytes(path: Path, label: str, collector: _Collector) -> bytes:
    """The one way a loader reads a file: through the gate, which records what was read."""
    collector.checkpoint()
    try:
        return collector.gate.read(path, label)
    except OSError as error:
        raise _FileProblem(f"{label}: cannot read file: {error.strerror or error}") from error


def _read_text(path: Path, label: str, collector: _Collector) -> str:
    text = decode_bytes(_read_bytes(path, label, collector), label)
    if text is None:
        raise _FileProblem(f"{label}: not text (binary content or unknown encoding)")
    return text


def _json_error(label: str, error: json.JSONDecodeError) -> str:
    return f"{label}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --- JSON / JSONL -----------------------------------------------------------------------------


def _load_json_file(path: Path, label: str, collector: _Collector) -> None:
    text = _read_text(path, label, collector)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise _FileProblem(_json_error(label, error)) from error
    items = _document_array(data, label)
    for position, item in enumerate(items):
        _add_record(item, collector.reserve(), f"{label}[{position}]", collector)


def _document_array(data: Any, label: str) -> list[Any]:
    """The two accepted shapes: ``[...]`` and ``{"documents": [...]}``."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        documents = data.get("documents")
        if isinstance(documents, list):
            return documents
        if "documents" in data:
            raise _FileProblem(
                f'{label}: "documents" is a JSON {_type_name(documents)}, expected an array of documents'
            )
        keys = ", ".join(repr(key) for key in list(data)[:8]) + (", ..." if len(data) > 8 else "")
        raise _FileProblem(
            f'{label}: expected a JSON array of documents or an object with a "documents" array, '
            f"found an object with keys {keys or '(none)'}"
        )
    raise _FileProblem(
        f'{label}: expected a JSON array of documents or an object with a "documents" array, '
        f"found a JSON {_type_name(data)}"
    )


def _load_jsonl_file(path: Path, label: str, collector: _Collector) -> None:
    text = _read_text(path, label, collector)
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue  # blank lines are not records, so they do not consume a doc_index
        doc_index = collector.reserve()
        source = f"{label}:{line_number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            collector.skip(
                source, doc_index,
                f"{source}: invalid JSON: {error.msg} (column {error.colno})",
            )
            continue
        _add_record(item, doc_index, source, collector)


def _add_record(item: Any, doc_index: int, source: str, collector: _Collector) -> None:
    """One JSON document object -> Document, or a skip explaining what is wrong with it."""
    result = document_from_record(item, doc_index, source)
    if isinstance(result, str):
        collector.skip(source, doc_index, result)
    else:
        collector.add(result)


def document_from_record(item: Any, doc_index: int, source: str) -> Document | str:
    """A JSON document object as a Document, or the reason it cannot be one.

    Shared by the file loaders and the live-update API, so a document means the same thing
    whichever way it arrives. A non-empty string ``doc_id`` names the document; otherwise its id
    is derived from its title and text.
    """
    if not isinstance(item, dict):
        return f"item is a JSON {_type_name(item)}, not an object"
    text_field = next(
        (name for name in TEXT_FIELDS if isinstance(item.get(name), str) and item[name].strip()),
        None,
    )
    if text_field is None:
        problems = [
            f"'{name}' is empty" if isinstance(item[name], str) else f"'{name}' is a {_type_name(item[name])}"
            for name in TEXT_FIELDS if name in item
        ]
        detail = "; ".join(problems) if problems else "no 'content', 'page_body' or 'text' field"
        return f"no text: {detail}"
    text = clean_text(item[text_field])
    if not text:
        return f"text is empty after cleaning ('{text_field}')"
    raw_title = item.get(TITLE_FIELD)
    title = _clean_title(raw_title if isinstance(raw_title, str) else "" if raw_title is None else str(raw_title))
    url_field = next((name for name in URL_FIELDS if name in item), None)
    raw_url = item.get(url_field) if url_field else None
    url = raw_url.strip() if isinstance(raw_url, str) else ""
    raw_id = item.get(DOC_ID_FIELD)
    doc_id = raw_id.strip() if isinstance(raw_id, str) else ""
    used = {text_field, TITLE_FIELD, url_field} | ({DOC_ID_FIELD} if doc_id else set())
    metadata = {key: value for key, value in item.items() if key not in used}
    return Document(
        doc_index=doc_index,
        title=title or _title_from_text(text),
        text=text,
        url=url,
        metadata=metadata,
        source=source,
        doc_id=doc_id,
    )


# --- Markdown / text --------------------------------------------------------------------------


def _load_text_file(path: Path, label: str, rel: str, collector: _Collector) -> None:
    """One .md/.txt file is one document; undecodable or empty content is a skip, like any
    other document (even when the file is the whole corpus)."""
    doc_index = collector.reserve()
    text = decode_bytes(_read_bytes(path, label, collector), label)
    if text is None:
        collector.skip(label, doc_index, "undecodable: binary content or unknown text encoding")
        return
    text = clean_text(text)
    if not text:
        collector.skip(label, doc_index, "text is empty after cleaning")
        return
    collector.add(Document(
        doc_index=doc_index,
        title=_markdown_title(text, anywhere=path.suffix.lower() != ".txt") or _clean_title(path.stem) or path.name,
        text=text,
        metadata={"path": rel},
        source=label,
    ))


def _markdown_title(text: str, *, anywhere: bool = True) -> str:
    """First level-1 ATX heading outside fenced code (a ``# comment`` in a code block is not one).

    Plain-text files only count a heading on their first non-blank line: a log or transcript
    quoting some Markdown deep inside would otherwise be titled after that quote.
    """
    in_fence = False
    for line in text.split("\n"):
        if not line.strip():
            continue
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            match = _ATX_H1_RE.match(line)
            if match:
                return _clean_title(match.group(1))
        if not anywhere:
            break
    return ""


def _clean_title(title: str) -> str:
    return " ".join(clean_text(title).split())


def _title_from_text(text: str) -> str:
    first_line = next((line for line in text.split("\n") if line.strip()), "")
    return " ".join(first_line.split())[:TITLE_FALLBACK_CHARS].rstrip()


# --- legacy chunks.db -------------------------------------------------------------------------


def _snapshot(data: bytes) -> Any:
    """The bytes the gate read, opened as a private read-only database (a context manager).

    SQLite never opens the agents' file (no lock, no ``-wal``/``-shm`` sidecar, no write), and
    what is indexed is exactly what was fingerprinted. A WAL flag in the header is switched to
    rollback journal in the copy: an in-memory database cannot be in WAL mode, and a snapshot has
    no ``-wal`` file anyway (un-checkpointed WAL content is not read, as with ``immutable=1``).
    """
    if data[_SQLITE_WAL_VERSION_BYTES] == b"\x02\x02" and data.startswith(_SQLITE_MAGIC):
        data = data[:18] + b"\x01\x01" + data[20:]
    if hasattr(sqlite3.Connection, "deserialize"):  # Python 3.11+
        return _memory_snapshot(data)
    return _file_snapshot(data)


@contextmanager
def _memory_snapshot(data: bytes) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        connection.execute("PRAGMA query_only = ON")
        yield connection
    finally:
        connection.close()


@contextmanager
def _file_snapshot(data: bytes) -> Iterator[sqlite3.Connection]:
    """Fallback without ``deserialize``: a copy in a private (0700) temporary directory."""
    with tempfile.TemporaryDirectory(prefix="ragmem-legacy-") as private:
        copy = Path(private) / "snapshot.db"
        copy.write_bytes(data)
        connection = sqlite3.connect(f"{copy.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            yield connection
        finally:
            connection.close()


def _read_legacy_rows(data: bytes, label: str) -> tuple[dict[Any, Any], list[tuple[Any, ...]]]:
    """(metadata settings, chunk rows in document order) of a legacy cache's bytes."""
    try:
        with _snapshot(data) as connection:
            connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
            return _query_legacy(connection, label)
    except sqlite3.DatabaseError as error:
        raise _FileProblem(f"{label}: not a readable SQLite database ({error})") from error


def _query_legacy(connection: sqlite3.Connection, label: str) -> tuple[dict[Any, Any], list[tuple[Any, ...]]]:
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "chunks" not in tables:
            raise _FileProblem(f"{label}: SQLite database has no 'chunks' table, not a legacy chunks cache")
        settings = {}
        if "metadata" in tables:
            settings = dict(connection.execute("SELECT key, value FROM metadata").fetchall())
        rows = connection.execute(
            "SELECT doc_index, chunk_index, title, content, url, start_char, end_char "
            "FROM chunks ORDER BY doc_index, chunk_index, id"
        ).fetchall()
    except sqlite3.DatabaseError as error:
        raise _FileProblem(f"{label}: cannot read legacy chunks table ({error})") from error
    return settings, rows


def _load_chunks_db(data: bytes, label: str, collector: _Collector) -> None:
    """Rebuild documents from the old tool's chunk cache so agents' existing paths keep working."""
    settings, rows = _read_legacy_rows(data, label)
    logger.info("%s: legacy chunks cache, %d chunks, settings %s", label, len(rows), settings)
    fallbacks = sum(_add_legacy_document(doc_index, doc_rows, label, collector)
                    for doc_index, doc_rows in _group_by_doc(rows))
    if fallbacks:
        logger.warning("%s: %d documents had inconsistent chunk offsets; rebuilt by overlap matching",
                       label, fallbacks)


def _add_legacy_document(doc_index: Any, doc_rows: list[tuple[Any, ...]], label: str,
                         collector: _Collector) -> bool:
    """Add one document rebuilt from its chunks; True when its offsets did not fit (overlap fallback)."""
    source = f"{label}[{doc_index}]"
    if not isinstance(doc_index, int):
        collector.skip(source, None, f"chunks have a non-integer doc_index {doc_index!r}")
        return False
    raw_title = next((r[2] for r in doc_rows if isinstance(r[2], str) and r[2].strip()), "")
    raw_url = next((r[4] for r in doc_rows if isinstance(r[4], str) and r[4].strip()), "")
    pieces = [(r[3] if isinstance(r[3], str) else "", r[5], r[6]) for r in doc_rows]
    full, used_offsets = _rebuild_text(pieces)
    text = clean_text(_strip_title_prefix(full, raw_title))
    if not text:
        collector.skip(source, doc_index, "text is empty after cleaning")
        return not used_offsets
    title = _clean_title(raw_title)
    collector.add(Document(
        doc_index=doc_index,
        title=title or _title_from_text(text),
        text=text,
        url=raw_url.strip(),
        metadata={"legacy_chunks": len(doc_rows)},
        source=source,
    ))
    return not used_offsets


def _group_by_doc(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, list[tuple[Any, ...]]]]:
    current: Any = object()
    group: list[tuple[Any, ...]] = []
    for row in rows:
        if row[0] != current and group:
            yield current, group
            group = []
        current = row[0]
        group.append(row)
    if group:
        yield current, group


def _strip_title_prefix(text: str, title: str) -> str:
    """The old tool indexed ``title + "\\n\\n" + body``; drop the title so the text is the body,
    giving the same doc_id as loading the original JSON."""
    if title and text.startswith(title):
        rest = text[len(title):]
        if not rest or rest[0].isspace():
            return rest
    return text


def _rebuild_text(pieces: list[tuple[str, Any, Any]]) -> tuple[str, bool]:
    """Full text from ``(content, start_char, end_char)`` chunks in chunk order.

    The old chunker stored ``text[start:end].strip()``, so each chunk sits at ``start`` plus a
    few stripped whitespace characters. We place it at the first shift that agrees with every
    character already placed by earlier (overlapping) chunks. Returns (text, offsets_used);
    when offsets do not fit the contents, falls back to overlap-detecting concatenation.
    """
    placed = _place_by_offsets(pieces)
    if placed is not None:
        return placed, True
    return _concat_with_overlap([content for content, _, _ in pieces]), False


def _place_by_offsets(pieces: list[tuple[str, Any, Any]]) -> str | None:
    """Place chunks at ``start + shift`` (0 <= shift <= slack) so all overlaps agree, or None.

    A chunk that overlaps nothing placed so far cannot tell its shift, so the first guess may be
    wrong; a later disagreement backtracks to it (depth-first search, bounded).
    """
    chunks = [(content, start, end) for content, start, end in pieces if content]
    if not chunks:
        return ""
    for content, start, end in chunks:
        if not isinstance(start, int) or not isinstance(end, int) or start < 0:
            return None
        if end - start < len(content):
            return None
    buffer: list[str | None] = [None] * max(end for _, _, end in chunks)
    written: list[list[int]] = [[] for _ in chunks]
    shifts = [0] * len(chunks)
    budget = 50 * len(chunks) + 100
    k, shift = 0, 0
    while k < len(chunks):
        content, start, end = chunks[k]
        slack = end - start - len(content)
        while shift <= slack:
            budget -= 1
            if budget < 0:
                return None
            position = start + shift
            known = buffer[position:position + len(content)]
            if all(old is None or old == new for old, new in zip(known, content)):
                break
            shift += 1
        if shift <= slack:
            fresh = [position + i for i, old in enumerate(known) if old is None]
            for index in fresh:
                buffer[index] = content[index - position]
            written[k], shifts[k] = fresh, shift
            k, shift = k + 1, 0
            continue
        k -= 1  # no shift fits: revisit the previous chunk's guess
        if k < 0:
            return None
        for index in written[k]:
            buffer[index] = None
        shift = shifts[k] + 1
    while buffer and buffer[-1] is None:
        buffer.pop()
    gap = 0
    for char in buffer:
        gap = gap + 1 if char is None else 0
        if gap > _MAX_GAP:
            return None
    # Unknown positions are whitespace the chunker stripped at chunk edges.
    return "".join("\n" if char is None else char for char in buffer)


def _concat_with_overlap(contents: list[str]) -> str:
    text = ""
    for content in contents:
        if not content:
            continue
        if not text:
            text = content
            continue
        if content in text[-(len(content) + _MAX_FALLBACK_OVERLAP):]:
            continue  # a chunk wholly inside the previous ones (the old tool's tail chunk)
        overlap = 0
        for size in range(min(len(content), len(text), _MAX_FALLBACK_OVERLAP), _MIN_FALLBACK_OVERLAP - 1, -1):
            if text.endswith(content[:size]):
                overlap = size
                break
        text += content[overlap:] if overlap else "\n" + content
    return text

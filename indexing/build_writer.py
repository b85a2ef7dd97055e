"""Writing one build: its parts into a staging directory, then one atomic publish.

The builder (builds and compaction) and the synthetic benchmark collection both write through
:func:`write_build`, so there is one writer of the format: file names from
:mod:`indexing.build_format`, the crash-safe protocol from :mod:`indexing.publish`, and the
manifest, the file that makes a build directory complete, written last by :meth:`BuildWriter.publish`.

Parts are written one at a time, as the caller produces them, so a long build keeps its
stage timings and does not hold every finished index in memory before the first is on disk.

A tiered build (:data:`indexing.build_format.TIERS`) publishes several times: after each
:meth:`BuildWriter.publish` but the last, :meth:`BuildWriter.next_tier` opens the next tier's
staging directory with hard links to the files just published, so a tier costs only its new
parts and every published tier stays an immutable, self-contained build directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from indexing import publish
from indexing.analyzer import Analyzer
from indexing.build_format import (BM25_DIR, FAISS_FILE, GRAPH_DIR, MANIFEST_FILE, REPORT_FILE, STORE_FILE,
                                   AnalyzerConfig, Bm25Config, Counts, Manifest, write_manifest)
from indexing.documents import Document, SkippedDocument
from indexing.lexical_index import LexicalIndex
from indexing.store import ChunkRow, write_store
from indexing.vector_index import VectorIndex

log = logging.getLogger("ragmem.indexing.build_writer")


class PartsWriter:
    """The index parts of a build (BM25, FAISS, chunk store) into one directory: the staging
    directory of a build, or one shard's directory in a sharded build (``build_format.shard_dir``,
    written by a shard task that holds no :class:`BuildWriter`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def lexical(self, index: LexicalIndex) -> None:
        index.save(self.directory / BM25_DIR)

    def dense(self, index: VectorIndex) -> None:
        index.save(self.directory / FAISS_FILE)

    def store(self, documents: Sequence[Document], chunk_counts: Sequence[int], rows: Sequence[ChunkRow],
              skipped: Sequence[SkippedDocument]) -> None:
        write_store(self.directory / STORE_FILE, documents, chunk_counts, rows, skipped)


class BuildWriter:
    """One build in its staging directory; nothing is visible to readers until :meth:`publish`."""

    def __init__(self, root: Path, build_id: str) -> None:
        self.root = root
        self.build_id = build_id
        self.staging = publish.staging_dir(root, build_id)
        self.published: Path | None = None

    def lexical(self, index: LexicalIndex) -> None:
        PartsWriter(self.staging).lexical(index)

    def dense(self, index: VectorIndex) -> None:
        PartsWriter(self.staging).dense(index)

    def store(self, documents: Sequence[Document], chunk_counts: Sequence[int], rows: Sequence[ChunkRow],
              skipped: Sequence[SkippedDocument]) -> None:
        PartsWriter(self.staging).store(documents, chunk_counts, rows, skipped)

    def graph(self, save: Callable[[Path], None]) -> None:
        """``save`` writes the graph memory into the directory it is given (graphmem owns its files)."""
        save(self.staging / GRAPH_DIR)

    def report(self, report: dict[str, Any]) -> None:
        (self.staging / REPORT_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=1))

    def publish(self, manifest: Manifest, keep_builds: int) -> Path:
        """Write the manifest, then move the build into place and point CURRENT at it (atomically)."""
        write_manifest(self.staging, manifest)
        self.published = publish.publish(self.root, self.staging, self.build_id, keep_builds)
        return self.published

    def next_tier(self) -> str:
        """Open the next tier's staging directory, holding the published tier's parts (not its
        manifest); returns the new build id. The published tier is never written again."""
        if self.published is None:
            raise RuntimeError("next_tier() before the first tier was published")
        self.build_id = publish.new_build_id()
        self.staging = publish.staging_dir(self.root, self.build_id)
        _link_tree(self.published, self.staging, skip=frozenset({MANIFEST_FILE}))
        return self.build_id

    @property
    def in_progress(self) -> bool:
        """A staging directory exists that was not published (a tier being written)."""
        return self.staging.exists()


@contextmanager
def write_build(root: Path) -> Iterator[BuildWriter]:
    """A new build of the collection at ``root``; the caller holds its build lock (:func:`publish.build_lock`).

    If the block raises, or ends without :meth:`BuildWriter.publish`, the staging directory is
    removed, and so is a collection directory that has never had a published build: the previous
    build stays current and nothing half-written is left behind.
    """
    writer = BuildWriter(root, publish.new_build_id())
    try:
        yield writer
    finally:
        if writer.in_progress:  # a tier left unpublished: the tiers before it (if any) stay current
            shutil.rmtree(writer.staging, ignore_errors=True)
            publish.discard_unpublished(root)


def _link_tree(source: Path, target: Path, skip: frozenset[str]) -> None:
    """Hard-link every file of ``source`` into ``target`` (copy where the file system cannot link)."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in skip:
            continue
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError as exc:
            log.debug("cannot hard-link %s (%s); copying it", path, exc)
            shutil.copy2(path, destination)


def manifest_sections(analyzer: Analyzer, lexical: LexicalIndex, dense: VectorIndex | None,
                      documents: Sequence[Document], rows: Sequence[ChunkRow], skipped: int,
                      embedded: int) -> dict[str, Any]:
    """The manifest sections a build's own parts describe (keyword arguments of :class:`Manifest`);
    ``dense`` is None in the BM25 tier."""
    return {"analyzer": AnalyzerConfig.from_dict(analyzer.describe()), "bm25": Bm25Config.from_dict(lexical.describe()),
            "faiss": None if dense is None else dense.info,
            "counts": Counts(documents=len(documents), chunks=len(rows), skipped=skipped, embedded=embedded,
                             tokens=int(sum(r.n_tokens for r in rows)))}

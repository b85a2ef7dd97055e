"""Read side of a published build: everything a query needs, opened once and shared.

A build directory may be one tier of a build (:data:`indexing.build_format.TIERS`): the BM25 tier
has no dense leg, and only the graph tier has the graph memory. ``Collection.legs`` says which
legs this one has and ``Collection.pending`` which a later tier will add.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

from graphmem.memory import GraphMemory, load_graph
from graphmem.retrieve import GraphQueryParams

from indexing import publish
from indexing.analyzer import Analyzer
from indexing.build_format import (BM25_DIR, FAISS_FILE, GRAPH_DIR, LEG_DENSE, LEG_GRAPH, STORE_FILE, Manifest,
                                   read_manifest)
from indexing.embedder import QueryEncoding, TextEmbedder, embedder_for_build
from indexing.lexical_index import LexicalIndex
from indexing.read_interfaces import ChunkStore, DenseLeg, LexicalLeg
from indexing.store import StoreReader
from indexing.vector_index import VectorIndex


class CollectionNotFound(LookupError):
    pass


@dataclass
class Collection:
    name: str
    build_dir: Path
    manifest: Manifest
    store: ChunkStore
    lexical: LexicalLeg
    dense: DenseLeg | None
    """None in a build's BM25 tier (its embeddings are still being computed)."""
    analyzer: Analyzer
    device: str | None = None
    _embedder: TextEmbedder | None = field(default=None, repr=False)
    graph_params: GraphQueryParams = field(default_factory=GraphQueryParams)
    _graph: GraphMemory | None = field(default=None, repr=False)
    _graph_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    live_seq: int = 0
    """Journal sequence number of live changes applied on top of the build (0: none)."""

    @property
    def build_id(self) -> str:
        """The build, plus ``+seq`` once live changes were applied to it."""
        return f"{self.build_dir.name}+{self.live_seq}" if self.live_seq else self.build_dir.name

    query_encoding: QueryEncoding | None = None
    """How this process encodes queries (serving processes pass one; None: the embedder's default)."""

    @property
    def embedder(self) -> TextEmbedder:
        """The model that embedded this build (queries must use the same one)."""
        if self._embedder is None:
            embedder = embedder_for_build(self.manifest.embedder, device=self.device)
            if self.query_encoding is not None:
                embedder.serve_queries(self.query_encoding)
            self._embedder = embedder
        return self._embedder

    @functools.cached_property
    def legs(self) -> tuple[str, ...]:
        """The legs a query can use now, in tier order (a graph the manifest names but the build
        directory lacks, as in a hand-assembled build, is not one of them). A build directory
        never changes once published, so this is worked out once, not on every query."""
        return tuple(leg for leg in self.manifest.ready_legs
                     if leg != LEG_GRAPH or (self.build_dir / GRAPH_DIR).is_dir())

    @property
    def pending(self) -> tuple[str, ...]:
        """Legs a later tier of this build will add (empty: the build is complete)."""
        return tuple(self.manifest.pending)

    @property
    def has_graph(self) -> bool:
        return LEG_GRAPH in self.legs

    @property
    def graph(self) -> GraphMemory | None:
        """The knowledge-graph memory, loaded on first use (builds made with graph=False have none)."""
        if self._graph is None and self.has_graph:
            with self._graph_lock:
                if self._graph is None:
                    self._graph = load_graph(self.build_dir / GRAPH_DIR)
        return self._graph


def open_build(name: str, build_dir: Path, device: str | None = None,
               query_encoding: QueryEncoding | None = None) -> Collection:
    manifest = read_manifest(build_dir)
    from indexing.sharded_collection import open_remote_build, open_sharded_parts

    remote = None if manifest.shards is not None else open_remote_build(build_dir, manifest)
    if manifest.shards is not None:  # one seam per leg over every shard (indexing.sharded_collection)
        store, lexical, dense = open_sharded_parts(build_dir, manifest)
    elif remote is not None:  # served by replicas elsewhere in a cluster (service.cluster)
        store, lexical, dense = remote
    else:
        store, lexical = StoreReader(build_dir / STORE_FILE), LexicalIndex.load(build_dir / BM25_DIR)
        dense = VectorIndex.load(build_dir / FAISS_FILE, manifest.faiss) if LEG_DENSE in manifest.ready_legs else None
    return Collection(
        name=name,
        build_dir=build_dir,
        manifest=manifest,
        store=store,
        lexical=lexical,
        dense=dense,
        analyzer=Analyzer.from_config(manifest.analyzer.to_dict()),
        device=device,
        query_encoding=query_encoding,
    )


def open_collection(data_dir: Path, name: str, device: str | None = None,
                    query_encoding: QueryEncoding | None = None) -> Collection:
    build_dir = publish.current_build_dir(data_dir, name)
    if build_dir is None:
        raise CollectionNotFound(f"no published collection named {name!r} under {data_dir}")
    return open_build(name, build_dir, device, query_encoding)

"""The persisted knowledge-graph memory of one collection.

Built once per collection from the chunks' texts, following two papers:

* LatentGraphMem: every chunk contributes at most 32 (head, relation, tail) triples, and
  every edge is also stored as a latent vector, so a question can be scored against edges
  and a top-k subgraph picked without walking. A collection build gives each triple the
  vector of the chunk it was extracted from (:data:`TRIPLE_VECTORS_CHUNK`): the chunks are
  embedded anyway, while embedding every "head relation tail" text cost about 2.5x the chunk
  embedding and linked questions worse (``make eval``). Without chunk vectors the triple
  texts are embedded (:data:`TRIPLE_VECTORS_TEXT`, also what format-1 graphs hold).
* HippoRAG 2: entity nodes and passage (chunk) nodes live in one graph — relation edges
  between entities, mention edges from an entity to the chunks that name it, synonym
  edges between entities whose names embed close together — and personalized PageRank
  over it (:mod:`graphmem.ppr`) ranks chunks.

Everything is kept as flat numpy arrays plus string lists, so the memory saves to an npz
and a json file (no pickle) and loads without re-running extraction. The networkx view
(:meth:`GraphMemory.graph`) is built lazily for inspection; the query path only needs
:meth:`GraphMemory.transition`, which is assembled directly from the arrays because a
networkx graph of millions of mention edges costs gigabytes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import faiss
import networkx
import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from graphmem.extraction import ExtractionLimits, Triple, extract, normalise_entity
from graphmem.ppr import Walk, row_normalise
from graphmem.similarity import random_pair_cosines, relative_cutoff

__all__ = [
    "ChunkText",
    "GraphLimits",
    "GraphMemory",
    "build_graph",
    "load_graph",
    "save_graph",
]

log = logging.getLogger("ragmem.graphmem.memory")

FORMAT_VERSION = 2
"""2 added ``GraphLimits.triple_vectors`` / ``synonym_min_chunks`` and the ``triple_owner`` array;
format-1 graphs (text-embedded triples, every entity embedded) still load."""
READABLE_FORMATS = (1, 2)
ARRAYS_FILE = "graph_arrays.npz"
STRINGS_FILE = "graph_strings.json"

ENCODE_BATCH = 512
"""Texts per ``encode`` call: big enough for an efficient model batch, small enough that
progress is reported and a slow encoder never holds tens of thousands of texts at once."""

EXACT_SYNONYM_MAX = 100_000
"""Up to this many entities the synonym search is exact (flat inner product, O(E²·dim));
beyond it an HNSW graph keeps the build near-linear at the cost of missing a few pairs."""

TRIPLE_INDEX_FILE = "triples.faiss"
TRIPLE_HNSW_THRESHOLD = 20_000
"""Up to this many distinct triple vectors (triples; chunks holding triples when the vectors are
the chunks') the question is scored against every one (exact, a few ms); above it an HNSW index,
persisted beside the arrays, keeps linking under a millisecond."""
TRIPLE_HNSW_M = 32
TRIPLE_HNSW_EF_SEARCH = 64

LARGE_WALK_EDGES = 2_000_000
"""Graphs with more stored transitions than this (about 50k chunks) run PageRank in float32 for a
fixed :data:`LARGE_WALK_STEPS` steps instead of to convergence; `make bench-graph` measures both."""
LARGE_WALK_STEPS = 3

_PROGRESS_EVERY = 0.01  # report extraction progress every ~1% of the chunks

TRIPLE_VECTORS_CHUNK = "chunk"
"""A triple's vector is the vector of the chunk it was first extracted from (``triple_owner``)."""
TRIPLE_VECTORS_TEXT = "text"
"""A triple's vector is the embedding of its "head relation tail" text (:meth:`GraphMemory.triple_text`)."""

MIN_SYNONYM_CHUNKS = 2
"""What collection builds set ``GraphLimits.synonym_min_chunks`` to. Entity vectors serve only the
synonym edges, and most entities (about 85% in the eval corpora) are named in one chunk: an edge
from one of them adds a path to that single chunk, which PageRank barely weighs (``make eval``
recall was unchanged without such edges), yet their names cost as much to embed as the rest."""


@dataclass(frozen=True)
class GraphLimits:
    """Size caps and synonym settings; they keep the graph linear in the corpus size."""

    max_triples_per_chunk: int = 32
    """LatentGraphMem's per-chunk cap."""
    max_mentions_per_chunk: int = 64
    max_triples: int = 500_000
    """Global edge capacity per collection; the most-supported triples are kept."""
    synonym_threshold: float = 0.75
    """How far from a typical unrelated pair towards identical two entity names must embed to be
    synonyms: cutoff = m + threshold * (1 - m), m = the collection's median cosine between random
    entity pairs. Embedding spaces differ in where unrelated text lands (about 0.1 for MiniLM,
    0.82 for multilingual-e5), so a raw cosine means different things in each; this does not."""
    synonym_neighbours: int = 5
    """Nearest other entities considered per entity (HippoRAG 2 style kNN)."""
    synonym_cutoff: float | None = None
    """The raw cosine the rule above resolved to for this collection (set by ``build_graph`` unless
    given; live updates reuse it so new entities link by the same standard)."""
    synonym_min_chunks: int = 1
    """Only entities mentioned in at least this many chunks get a name vector (the others keep a
    zero row) and synonym edges; collection builds use :data:`MIN_SYNONYM_CHUNKS`."""
    triple_vectors: str = TRIPLE_VECTORS_CHUNK
    """Where triple vectors come from: :data:`TRIPLE_VECTORS_CHUNK` when the caller gives the chunk
    vectors, else :data:`TRIPLE_VECTORS_TEXT`; ``build_graph`` records the one it used."""

    def cosine_cutoff(self) -> float:
        return self.synonym_threshold if self.synonym_cutoff is None else self.synonym_cutoff


@dataclass
class ChunkText:
    """One chunk to extract from; ``row`` is its chunk row in the collection's store."""

    row: int
    text: str
    title: str


@dataclass(eq=False)  # numpy fields make a generated __eq__ ambiguous; compare fields explicitly
class GraphMemory:
    """Entities, triples, their provenance and embeddings for one collection.

    Entity ids and triple ids are row indices into the aligned lists/arrays. Chunk rows
    refer to the collection's chunk store; ``n_chunks`` fixes the chunk node range.
    Treat an instance as immutable once built: the graph and transition caches assume it.
    """

    entity_keys: list[str]
    entity_names: list[str]
    entity_kinds: list[str]
    entity_chunks: list[np.ndarray]
    """Per entity: sorted, unique chunk rows mentioning it (int32)."""
    triple_head: np.ndarray
    triple_tail: np.ndarray
    triple_relation: list[str]
    triple_chunks: list[np.ndarray]
    """Per triple: sorted, unique chunk rows supporting it (int32)."""
    triple_spans: list[list[tuple[int, int, int]]]
    """Per triple: (chunk_row, start, end) evidence spans, offsets into that chunk's text."""
    entity_vectors: np.ndarray
    triple_vectors: np.ndarray
    """Per triple: its latent vector (see ``limits.triple_vectors``)."""
    synonyms: list[tuple[int, int, float]]
    """(i, j, cosine) with i < j, sorted."""
    n_chunks: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    limits: GraphLimits = field(default_factory=GraphLimits)
    _graph: networkx.Graph | None = field(default=None, init=False, repr=False)
    _transition: sp.csr_matrix | None = field(default=None, init=False, repr=False)
    _walk: Walk | None = field(default=None, init=False, repr=False)
    triple_index: faiss.Index | None = field(default=None, repr=False)
    """HNSW over the first ``triple_index.ntotal`` triple vectors for large graphs (None: exact scoring)."""
    triple_alive: np.ndarray | None = field(default=None, repr=False)
    """False for triples whose every supporting chunk was deleted (None: all alive). Live updates
    keep ids stable, so such triples (and entities without chunks) stay in the arrays, edgeless,
    and are skipped by linking, seeding and export until compaction drops them."""
    extra_triple_vectors: np.ndarray | None = field(default=None, repr=False)
    """Vectors of triples appended by live updates (ids from ``len(triple_vectors)`` on), kept apart
    so a write does not copy the base's hundreds of megabytes of triple vectors."""
    triple_owner: np.ndarray | None = field(default=None, repr=False)
    """Chunk vectors only: per triple (live-appended ones included), the chunk row whose vector it
    carries. Triples of one chunk share a vector, so linking scores each chunk once
    (:class:`_ChunkLinks`) and ``triple_index`` holds one vector per chunk. None: text vectors."""
    _links: "_ChunkLinks | None" = field(default=None, init=False, repr=False)
    _triple_ids: dict | None = field(default=None, init=False, repr=False)
    _ids_by_key: dict[str, int] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """Query-time data derived from this memory and kept with it (e.g. ``graphmem.retrieve``'s
    words per triple), so it is computed once per loaded collection rather than per question."""

    @property
    def n_entities(self) -> int:
        return len(self.entity_keys)

    @property
    def n_triples(self) -> int:
        return len(self.triple_relation)

    def entity_id(self, key: str) -> int | None:
        """Id of the entity with normalised name ``key`` (index built on first use)."""
        if self._ids_by_key is None:
            self._ids_by_key = {k: i for i, k in enumerate(self.entity_keys)}
        return self._ids_by_key.get(key)

    def triple_text(self, i: int) -> str:
        """The text a triple is embedded as: "head relation tail" with display names."""
        return f"{self.entity_names[self.triple_head[i]]} {self.triple_relation[i]} {self.entity_names[self.triple_tail[i]]}"

    def node_list(self) -> list[tuple[str, int]]:
        """All nodes in matrix order: entities ("e", id) first, then chunks ("c", row)."""
        return [("e", i) for i in range(self.n_entities)] + [("c", r) for r in range(self.n_chunks)]

    def graph(self) -> networkx.Graph:
        """Undirected entity + chunk graph (built on first use, then cached).

        Relation edges e–e weigh 1 per supporting chunk (all relations between the pair
        add up; attributes ``relations`` and ``triples`` list them). Mention edges e–c
        weigh 1 (``mention=True``). Synonym edges weigh the cosine (``synonym=True``); on a
        pair that also has a relation edge the cosine is added to that edge's weight.
        """
        with self._lock:
            if self._graph is None:
                self._graph = self._build_networkx()
            return self._graph

    def transition(self) -> sp.csr_matrix:
        """Row-stochastic transition matrix over :meth:`node_list`, cached.

        Equal to ``transition_matrix(self.graph(), self.node_list())`` but assembled from
        the arrays, so a service can run PPR without ever building the networkx graph.
        """
        if self._transition is not None:  # the query path: no lock once built
            return self._transition
        with self._lock:
            if self._transition is None:
                self._transition = row_normalise(self._adjacency())
            return self._transition

    def walk(self) -> Walk:
        """The transition matrix prepared for repeated personalized PageRank, cached."""
        if self._walk is not None:
            return self._walk
        transition = self.transition()
        with self._lock:
            if self._walk is None:
                self._walk = Walk(transition, single_precision=transition.nnz > LARGE_WALK_EDGES)
            return self._walk

    def top_triples(self, qvec: np.ndarray, k: int,
                    prefer: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(triple ids, cosines) of the k live triples closest to ``qvec``, best first (ties by id).

        With chunk vectors every triple of a chunk has that chunk's cosine: ``prefer`` (triple ids
        -> priorities, higher first) orders such ties before their ids do."""
        k = min(k, self.n_triples)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = np.ascontiguousarray(qvec, dtype=np.float32).reshape(1, -1)
        if self.triple_owner is not None:
            return self._chunk_links().top(query, k, self.triple_index, self.triple_alive, prefer)
        indexed = self.triple_index.ntotal if self.triple_index is not None else 0
        ids_parts, score_parts = [], []
        if indexed:
            fetch = min(indexed, k if self.triple_alive is None else 4 * k + 16)
            scores, ids = self.triple_index.search(query, fetch)
            keep = ids[0] >= 0
            ids_parts.append(ids[0][keep].astype(np.int64))
            score_parts.append(scores[0][keep])
        if indexed < self.n_triples:  # exact over the rest (all of them without an index)
            rest = self.triple_vectors[indexed:] @ query[0]
            if self.extra_triple_vectors is not None:
                rest = np.concatenate([rest, self.extra_triple_vectors @ query[0]])
            top = np.argpartition(-rest, min(k, rest.size) - 1)[:k] if rest.size > k else np.arange(rest.size)
            ids_parts.append(top.astype(np.int64) + indexed)
            score_parts.append(rest[top])
        ids, scores = np.concatenate(ids_parts), np.concatenate(score_parts).astype(np.float32)
        if self.triple_alive is not None:
            keep = self.triple_alive[ids]
            ids, scores = ids[keep], scores[keep]
        order = np.lexsort((ids, -scores))[:k]
        return ids[order], scores[order]

    def triple_id(self, head: int, relation: str, tail: int) -> int | None:
        """Id of the triple (head, relation, tail) (index built on first use)."""
        if self._triple_ids is None:
            self._triple_ids = {(int(h), r, int(t)): i for i, (h, r, t) in
                                enumerate(zip(self.triple_head.tolist(), self.triple_relation, self.triple_tail.tolist()))}
        return self._triple_ids.get((int(head), relation, int(tail)))

    def describe(self) -> dict:
        """Sizes, limits and build timings, for ingest reports and the API."""
        relation_pairs = _undirected_pairs(self.triple_head, self.triple_tail)
        return {
            "entities": self.n_entities if self.triple_alive is None else sum(1 for c in self.entity_chunks if len(c)),
            "triples": self.n_triples if self.triple_alive is None else int(self.triple_alive.sum()),
            "relation_edges": int(relation_pairs.shape[0]),
            "mention_edges": int(sum(len(c) for c in self.entity_chunks)),
            "synonym_edges": len(self.synonyms),
            "chunks": self.n_chunks,
            "dimension": int(self.entity_vectors.shape[1]) if self.entity_vectors.ndim == 2 else 0,
            "limits": asdict(self.limits),
            "triple_index": "hnsw" if self.triple_index is not None else "exact",
            "stage_seconds": dict(self.stage_seconds),
        }

    # ------------------------------------------------------------------ internals

    def _chunk_links(self) -> "_ChunkLinks":
        if self._links is None:
            with self._lock:
                if self._links is None:
                    self._links = _ChunkLinks.of(self.triple_owner, self.triple_vectors, self.extra_triple_vectors)
        return self._links

    def link_vectors(self) -> np.ndarray:
        """The distinct vectors a question is scored against (what ``triple_index`` indexes): the
        triple vectors, or with chunk vectors one per chunk holding triples."""
        return self.triple_vectors if self.triple_owner is None else self._chunk_links().vectors

    def _adjacency(self) -> sp.coo_matrix:
        """Symmetric weight matrix of :meth:`graph`, built with numpy only."""
        e = self.n_entities
        n = e + self.n_chunks
        support = np.fromiter((len(c) for c in self.triple_chunks), dtype=np.float64, count=self.n_triples)
        heads = self.triple_head.astype(np.int64)
        tails = self.triple_tail.astype(np.int64)
        keep = heads != tails
        heads, tails, support = heads[keep], tails[keep], support[keep]
        mention_entities = np.repeat(
            np.arange(e, dtype=np.int64), [len(c) for c in self.entity_chunks]
        ) if e else np.zeros(0, dtype=np.int64)
        mention_chunks = (
            np.concatenate(self.entity_chunks).astype(np.int64) + e if e else np.zeros(0, dtype=np.int64)
        )
        syn = np.asarray([(i, j) for i, j, _ in self.synonyms], dtype=np.int64).reshape(-1, 2)
        syn_w = np.asarray([w for _, _, w in self.synonyms], dtype=np.float64)
        src = np.concatenate([heads, mention_entities, syn[:, 0]])
        dst = np.concatenate([tails, mention_chunks, syn[:, 1]])
        weights = np.concatenate([support, np.ones(len(mention_entities)), syn_w])
        return sp.coo_matrix(
            (np.concatenate([weights, weights]), (np.concatenate([src, dst]), np.concatenate([dst, src]))),
            shape=(n, n),
        )

    def _build_networkx(self) -> networkx.Graph:
        g = networkx.Graph()
        # entities that lost every chunk (live deletions) are gone from the graph
        g.add_nodes_from(node for node in self.node_list() if node[0] == "c" or len(self.entity_chunks[node[1]]))
        for t in range(self.n_triples):
            h, tl = int(self.triple_head[t]), int(self.triple_tail[t])
            if h == tl or not len(self.triple_chunks[t]):
                continue
            u, v = ("e", h), ("e", tl)
            support = float(len(self.triple_chunks[t]))
            data = g.get_edge_data(u, v)
            if data is None:
                g.add_edge(u, v, weight=support, relations=[self.triple_relation[t]], triples=[t])
            else:
                data["weight"] += support
                data["relations"].append(self.triple_relation[t])
                data["triples"].append(t)
        for i, rows in enumerate(self.entity_chunks):
            g.add_edges_from(((("e", i), ("c", int(r))) for r in rows), weight=1.0, mention=True)
        for i, j, cosine in self.synonyms:
            u, v = ("e", i), ("e", j)
            data = g.get_edge_data(u, v)
            if data is None:
                g.add_edge(u, v, weight=float(cosine), synonym=True, cosine=float(cosine))
            else:
                data["weight"] += float(cosine)
                data["synonym"] = True
                data["cosine"] = float(cosine)
        return g


@dataclass
class _ChunkLinks:
    """Triples grouped by the chunk whose vector they carry (chunk vectors), so that a question is
    scored once per chunk rather than once per triple: about 20 times fewer products, and an HNSW
    index of distinct points (thousands of identical vectors would degrade its graph)."""

    vectors: np.ndarray
    """(groups, dim): one vector per chunk holding triples, in ascending chunk row."""
    offsets: np.ndarray
    members: np.ndarray
    """Triple ids of group g: ``members[offsets[g]:offsets[g + 1]]``, ascending."""

    @classmethod
    def of(cls, owner: np.ndarray, vectors: np.ndarray, extra: np.ndarray | None) -> "_ChunkLinks":
        """Groups of ``owner`` (chunk row per triple); vectors of base triples then ``extra`` ones."""
        members = np.argsort(np.asarray(owner, dtype=np.int64), kind="stable")
        _, starts = np.unique(np.asarray(owner, dtype=np.int64)[members], return_index=True)
        first = members[starts]
        base = vectors.shape[0]
        group_vectors = np.empty((first.size, vectors.shape[1]), dtype=np.float32)
        in_base = first < base
        group_vectors[in_base] = vectors[first[in_base]]
        if not in_base.all():
            group_vectors[~in_base] = extra[first[~in_base] - base]
        return cls(group_vectors, np.append(starts, members.size).astype(np.int64), members.astype(np.int64))

    @property
    def n_groups(self) -> int:
        return self.vectors.shape[0]

    def top(self, query: np.ndarray, k: int, index: faiss.Index | None, alive: np.ndarray | None,
            prefer: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(triple ids, cosines) of the k best live triples, best first, ties by ``prefer`` then id.

        Groups are fetched best first, doubling until they hold k live triples (all of them
        at once when none is dead, as every group holds at least one triple)."""
        fetch = min(k, self.n_groups)
        while True:
            groups, scores = self._top_groups(query, fetch, index)
            if not groups.size:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            sizes = self.offsets[groups + 1] - self.offsets[groups]
            ids = np.concatenate([self.members[self.offsets[g]:self.offsets[g + 1]] for g in groups])
            cos = np.repeat(scores, sizes)
            if alive is not None:
                keep = alive[ids]
                ids, cos = ids[keep], cos[keep]
            if ids.size >= k or fetch >= self.n_groups:
                priority = np.zeros(ids.size) if prefer is None else np.asarray(prefer(ids), dtype=np.float64)
                order = np.lexsort((ids, -priority, -cos))[:k]
                return ids[order], cos[order].astype(np.float32)
            fetch = min(2 * fetch, self.n_groups)

    def _top_groups(self, query: np.ndarray, fetch: int, index: faiss.Index | None) -> tuple[np.ndarray, np.ndarray]:
        """The ``fetch`` best groups and their cosines: HNSW over the first ``index.ntotal`` groups
        (the base build's), exact over the rest (groups of chunks added live)."""
        indexed = index.ntotal if index is not None else 0
        id_parts, score_parts = [], []
        if indexed:
            scores, ids = index.search(query, min(indexed, fetch))
            keep = ids[0] >= 0
            id_parts.append(ids[0][keep].astype(np.int64))
            score_parts.append(scores[0][keep])
        if indexed < self.n_groups:
            rest = self.vectors[indexed:] @ query[0]
            top = np.argpartition(-rest, fetch - 1)[:fetch] if rest.size > fetch else np.arange(rest.size)
            id_parts.append(top.astype(np.int64) + indexed)
            score_parts.append(rest[top])
        ids, scores = np.concatenate(id_parts), np.concatenate(score_parts)
        order = np.lexsort((ids, -scores))[:fetch]
        return ids[order], scores[order]


# ---------------------------------------------------------------------- building


class _ChunkRows:
    """The chunk rows an entity or triple was seen in.

    A chunk adds the same row many times in a row (one per mention or triple), so only a
    repeat of the last row is dropped here; :func:`np.unique` sorts and dedupes the rest.
    """

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[int] = []

    def add_row(self, row: int) -> None:
        if not self.rows or self.rows[-1] != row:
            self.rows.append(row)


class _EntityStats(_ChunkRows):
    """Accumulates one entity's surfaces, kinds and chunk rows while extracting."""

    __slots__ = ("surfaces", "kinds", "fallback_name")

    def __init__(self) -> None:
        super().__init__()
        self.surfaces: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.fallback_name = ""


class _TripleStats(_ChunkRows):
    __slots__ = ("spans",)

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[int, int, int]] = []


class _Merged:
    """Entities and triples of the chunks extracted so far, merged on their keys.

    Ids are handed out in first-seen order, which fixes the order of every array built.
    """

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self.entity_ids: dict[str, int] = {}
        self.entities: list[_EntityStats] = []
        self.triple_ids: dict[tuple[int, str, int], int] = {}
        self.triples: list[_TripleStats] = []
        self.n_chunks = 0

    def entity(self, key: str) -> tuple[int, _EntityStats]:
        eid = self.entity_ids.get(key)
        if eid is None:
            eid = self.entity_ids[key] = len(self.entities)
            self.entities.append(_EntityStats())
        return eid, self.entities[eid]

    def triple(self, ident: tuple[int, str, int]) -> _TripleStats:
        tid = self.triple_ids.get(ident)
        if tid is None:
            tid = self.triple_ids[ident] = len(self.triples)
            self.triples.append(_TripleStats())
        return self.triples[tid]

    def add_chunk(self, chunk: ChunkText) -> None:
        row = int(chunk.row)
        if row < 0:
            raise ValueError(f"chunk row must be non-negative, got {row}")
        self.n_chunks = max(self.n_chunks, row + 1)
        found = extract(chunk.text or "", chunk.title or None, self.limits)
        for m in found.mentions:
            _, stats = self.entity(m.key)
            stats.surfaces[m.surface] += 1
            stats.kinds[m.kind] += 1
            stats.add_row(row)
        self._add_title(chunk.title, row)
        for t in found.triples:
            self._add_triple(t, row)

    def _add_title(self, title: str, row: int) -> None:
        """Title-keyed corpora: the chunk is about its document's subject even when the
        title is not repeated in it, and title-headed triples point at that node."""
        title_key = normalise_entity(title) if title else ""
        if title_key:
            _, stats = self.entity(title_key)
            if not stats.fallback_name:
                stats.fallback_name = title.strip()
            stats.add_row(row)

    def _add_triple(self, t: Triple, row: int) -> None:
        head, head_stats = self.entity(t.head)
        tail, tail_stats = self.entity(t.tail)
        for key, stats in ((t.head, head_stats), (t.tail, tail_stats)):
            if not stats.surfaces and not stats.fallback_name:  # defensive: unseen key
                stats.fallback_name = key
            stats.add_row(row)
        tstats = self.triple((head, t.relation, tail))
        tstats.add_row(row)
        tstats.spans.append((row, int(t.start), int(t.end)))


@dataclass
class _TripleColumns:
    """The kept triples as the aligned arrays/lists a :class:`GraphMemory` stores."""

    head: np.ndarray
    tail: np.ndarray
    relation: list[str]
    chunks: list[np.ndarray]
    spans: list[list[tuple[int, int, int]]]


def build_graph(
    chunks: Sequence[ChunkText],
    encode: Callable[[list[str]], np.ndarray],
    limits: GraphLimits = GraphLimits(),
    progress: Callable[[str, float], None] | None = None,
    show_progress: bool = False,
    chunk_vectors: np.ndarray | None = None,
) -> GraphMemory:
    """Extract, merge, cap, embed and link the knowledge graph of a chunk collection.

    ``encode`` maps texts to L2-normalised float32 rows (the collection's embedder); it is
    called in batches of :data:`ENCODE_BATCH`. ``chunk_vectors`` (one row per chunk, aligned
    with ``chunks``) are the collection's own chunk embeddings: given, and unless
    ``limits.triple_vectors`` asks for text, each triple carries its chunk's vector and only
    entity names are encoded. ``progress(stage, fraction)`` is called now and then for each
    stage ("extract", "graph", "embed", "synonyms") so a long ingest can report where it is.
    Chunk rows must be non-negative; ``n_chunks`` becomes the largest row + 1 so chunk node
    ids equal chunk rows even when some rows are absent.
    """
    if chunk_vectors is not None and (np.ndim(chunk_vectors) != 2 or len(chunk_vectors) != len(chunks)):
        raise ValueError(f"chunk vectors of shape {np.shape(chunk_vectors)} for {len(chunks)} chunks")
    use_chunks = chunk_vectors is not None and limits.triple_vectors == TRIPLE_VECTORS_CHUNK
    limits = replace(limits, triple_vectors=TRIPLE_VECTORS_CHUNK if use_chunks else TRIPLE_VECTORS_TEXT)
    report = progress or (lambda stage, fraction: None)
    seconds: dict[str, float] = {}
    with _timed(seconds, "extract"):
        merged = _extract_all(chunks, limits, report, show_progress)
    report("extract", 1.0)
    with _timed(seconds, "graph"):
        entity_keys, entity_names, entity_kinds, entity_chunks = _entity_columns(merged)
        triples = _triple_columns(merged, limits.max_triples)
        n_chunks = merged.n_chunks
        del merged
    report("graph", 1.0)
    with _timed(seconds, "embed"):
        named = _named_entities(entity_chunks, limits.synonym_min_chunks)
        owner = _owner_rows(triples) if use_chunks else None
        texts = [[entity_names[i] for i in named]] + ([] if use_chunks else [_triple_texts(entity_names, triples)])
        encoded = _encode_all(encode, texts, report, show_progress)
        if use_chunks:
            triple_vectors = _chunk_rows_vectors(chunks, np.asarray(chunk_vectors), owner)
            encoded = [_with_dimension(encoded[0], triple_vectors.shape[1])]
        else:
            triple_vectors = encoded[1]
        entity_vectors = _scatter_rows(encoded[0], named, len(entity_keys))
    report("embed", 1.0)
    with _timed(seconds, "synonyms"):
        if limits.synonym_cutoff is None:  # a caller-given raw cutoff is kept as is
            limits = replace(limits, synonym_cutoff=synonym_cutoff(encoded[0], limits.synonym_threshold))
        synonyms = _among(named, _synonym_pairs(encoded[0], limits.synonym_neighbours, limits.synonym_cutoff))
    report("synonyms", 1.0)

    memory = GraphMemory(
        entity_keys=entity_keys,
        entity_names=entity_names,
        entity_kinds=entity_kinds,
        entity_chunks=entity_chunks,
        triple_head=triples.head,
        triple_tail=triples.tail,
        triple_relation=triples.relation,
        triple_chunks=triples.chunks,
        triple_spans=triples.spans,
        entity_vectors=entity_vectors,
        triple_vectors=triple_vectors,
        synonyms=synonyms,
        n_chunks=n_chunks,
        limits=limits,
        triple_owner=owner,
    )
    memory.triple_index = _timed_triple_index(memory.link_vectors(), seconds)
    memory.stage_seconds = {k: round(v, 4) for k, v in seconds.items()}
    log.info(
        "graph memory: %d chunks, %d entities, %d triples, %d synonym edges in %.1fs",
        n_chunks, memory.n_entities, memory.n_triples, len(synonyms), sum(seconds.values()),
    )
    return memory


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Record the wall time of a build stage, for ingest reports (``stage_seconds``)."""
    started = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - started


def _extract_all(
    chunks: Sequence[ChunkText],
    limits: GraphLimits,
    report: Callable[[str, float], None],
    show_progress: bool,
) -> _Merged:
    """Extract every chunk into one merged set, reporting progress every ~1% of the chunks."""
    merged = _Merged(
        ExtractionLimits(max_triples=limits.max_triples_per_chunk, max_mentions=limits.max_mentions_per_chunk)
    )
    total = len(chunks)
    step = max(1, int(total * _PROGRESS_EVERY))
    for done, chunk in enumerate(
        tqdm(chunks, desc="graph: extract", unit="chunk", disable=not show_progress), start=1
    ):
        merged.add_chunk(chunk)
        if done % step == 0:
            report("extract", done / total)
    return merged


def _entity_columns(merged: _Merged) -> tuple[list[str], list[str], list[str], list[np.ndarray]]:
    """Keys, display names, kinds and sorted chunk rows of the entities, in id order.

    An entity is named and typed by its most frequent surface and kind; one only ever seen
    as a document title falls back to the title as written.
    """
    entity_keys = list(merged.entity_ids)
    entity_names = [
        s.surfaces.most_common(1)[0][0] if s.surfaces else (s.fallback_name or k)
        for k, s in zip(entity_keys, merged.entities)
    ]
    entity_kinds = [s.kinds.most_common(1)[0][0] if s.kinds else "title" for s in merged.entities]
    entity_chunks = [np.unique(np.asarray(s.rows, dtype=np.int32)) for s in merged.entities]
    return entity_keys, entity_names, entity_kinds, entity_chunks


def _triple_columns(merged: _Merged, max_triples: int) -> _TripleColumns:
    """The triples within the global cap, in first-seen order."""
    idents = list(merged.triple_ids)
    triple_rows = [np.unique(np.asarray(t.rows, dtype=np.int32)) for t in merged.triples]
    order = _capped_order(triple_rows, max_triples)
    return _TripleColumns(
        head=np.asarray([idents[i][0] for i in order], dtype=np.int32),
        tail=np.asarray([idents[i][2] for i in order], dtype=np.int32),
        relation=[idents[i][1] for i in order],
        chunks=[triple_rows[i] for i in order],
        spans=[merged.triples[i].spans for i in order],
    )


def _capped_order(triple_rows: list[np.ndarray], max_triples: int) -> list[int]:
    """Ids of the triples kept under ``max_triples``, ascending.

    The most-supported triples are kept: they are the edges many chunks agree on. Python's
    sort is stable, so ties keep first-seen order.
    """
    order = list(range(len(triple_rows)))
    cap = max(0, int(max_triples))
    if len(order) > cap:
        kept = sorted(order, key=lambda i: -len(triple_rows[i]))[:cap]
        order = sorted(kept)
        log.info("graph memory: kept %d of %d triples (max_triples)", cap, len(triple_rows))
    return order


def _triple_texts(entity_names: list[str], triples: _TripleColumns) -> list[str]:
    """"head relation tail" with display names: what a triple is embedded as (see ``triple_text``)."""
    return [
        f"{entity_names[h]} {r} {entity_names[t]}" for h, r, t in zip(triples.head, triples.relation, triples.tail)
    ]


def _named_entities(entity_chunks: list[np.ndarray], min_chunks: int) -> np.ndarray:
    """Ids of the entities that get a name vector (``GraphLimits.synonym_min_chunks``), ascending."""
    counts = np.fromiter((len(c) for c in entity_chunks), dtype=np.int64, count=len(entity_chunks))
    return np.flatnonzero(counts >= max(1, int(min_chunks)))


def _owner_rows(triples: _TripleColumns) -> np.ndarray:
    """Per triple, the chunk it was first extracted from (its first evidence span's row)."""
    return np.fromiter((spans[0][0] for spans in triples.spans), dtype=np.int64, count=len(triples.spans))


def _chunk_rows_vectors(chunks: Sequence[ChunkText], chunk_vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The (re-normalised) vectors of the chunks with these rows, one per entry of ``rows``."""
    position = {int(c.row): i for i, c in enumerate(chunks)}
    picked = chunk_vectors[np.fromiter((position[int(r)] for r in rows), dtype=np.int64, count=len(rows))]
    return np.ascontiguousarray(_l2_normalise(picked.astype(np.float32)), dtype=np.float32)


def _with_dimension(vectors: np.ndarray, dim: int) -> np.ndarray:
    """``vectors`` checked against the chunk vectors' dimension (an empty result takes it on)."""
    if vectors.shape[0] == 0:
        return np.zeros((0, dim), dtype=np.float32)
    if vectors.shape[1] != dim:
        raise ValueError(f"encode returned dimension {vectors.shape[1]}, the chunk vectors have {dim}")
    return vectors


def _scatter_rows(vectors: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """An (n, dim) matrix with ``vectors`` at rows ``ids`` and zero rows elsewhere (never embedded:
    a zero row's cosine, 0, is below every synonym cutoff, which is at least 0.5)."""
    if ids.size == n:
        return vectors
    out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    out[ids] = vectors
    return out


def _among(ids: np.ndarray, pairs: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Pairs of positions in ``ids`` as pairs of ids (``ids`` ascend, so order and i < j hold)."""
    return [(int(ids[i]), int(ids[j]), c) for i, j, c in pairs]


def _timed_triple_index(vectors: np.ndarray, seconds: dict[str, float]) -> faiss.Index | None:
    """The HNSW triple index of a large graph; its build time is recorded only when one is built."""
    started = time.perf_counter()
    triple_index = _triple_hnsw(vectors)
    if triple_index is not None:
        seconds["triple_index"] = time.perf_counter() - started
    return triple_index


def _triple_hnsw(vectors: np.ndarray) -> faiss.Index | None:
    if vectors.shape[0] <= TRIPLE_HNSW_THRESHOLD:
        return None
    index = faiss.IndexHNSWFlat(vectors.shape[1], TRIPLE_HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.hnsw.efSearch = TRIPLE_HNSW_EF_SEARCH
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _encode_all(
    encode: Callable[[list[str]], np.ndarray],
    groups: list[list[str]],
    report: Callable[[str, float], None],
    show_progress: bool,
) -> list[np.ndarray]:
    """Embed each group of texts in batches; identical texts are embedded once.

    The dimension comes from ``encode([])`` when the encoder reports it, else from the
    first non-empty batch, else it is 0 (nothing was ever encoded).
    """
    dim: int | None = None
    try:
        probe = np.asarray(encode([]))
        if probe.ndim == 2 and probe.shape[0] == 0 and probe.shape[1] > 0:
            dim = int(probe.shape[1])
    except Exception:  # an encoder may refuse an empty batch; the first real batch tells
        log.debug("encode([]) failed; taking the dimension from the first batch", exc_info=True)

    uniques: list[list[str]] = []
    inverses: list[np.ndarray] = []
    for texts in groups:
        index: dict[str, int] = {}
        inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
        uniques.append(list(index))
        inverses.append(inverse)
    total = sum(len(u) for u in uniques)
    done = 0
    encoded: list[np.ndarray | None] = []
    with tqdm(total=total, desc="graph: embed", unit="text", disable=not show_progress) as bar:
        for texts in uniques:
            parts: list[np.ndarray] = []
            for start in range(0, len(texts), ENCODE_BATCH):
                batch = texts[start : start + ENCODE_BATCH]
                out = np.asarray(encode(batch), dtype=np.float32)
                if out.ndim != 2 or out.shape[0] != len(batch):
                    raise ValueError(f"encode returned shape {out.shape} for {len(batch)} texts")
                if dim is None:
                    dim = int(out.shape[1])
                elif out.shape[1] != dim:
                    raise ValueError(f"encode returned dimension {out.shape[1]}, expected {dim}")
                parts.append(_l2_normalise(out))
                done += len(batch)
                bar.update(len(batch))
                report("embed", done / total)
            encoded.append(np.concatenate(parts) if parts else None)
    dim = dim or 0
    result = []
    for vectors, inverse in zip(encoded, inverses):
        if vectors is None:
            result.append(np.zeros((0, dim), dtype=np.float32))
        else:
            result.append(np.ascontiguousarray(vectors[inverse], dtype=np.float32))
    return result


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Re-normalise defensively: inner product must equal cosine; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


SYNONYM_BASELINE_PAIRS = 4096
"""Random entity pairs whose median cosine places "unrelated" in this collection's space."""


def synonym_cutoff(vectors: np.ndarray, threshold: float, pairs: int = SYNONYM_BASELINE_PAIRS) -> float:
    """The raw cosine for ``GraphLimits.synonym_threshold`` in this space (seeded: builds repeat)."""
    cosines = random_pair_cosines(vectors, pairs)
    if cosines.size == 0:
        return float(threshold)
    return relative_cutoff(float(np.median(cosines)), threshold)


def _synonym_pairs(vectors: np.ndarray, neighbours: int, threshold: float) -> list[tuple[int, int, float]]:
    """kNN synonym edges (HippoRAG 2): each entity's ``neighbours`` nearest other entities
    with cosine >= ``threshold``, as deduplicated (i < j, cosine) pairs."""
    e = vectors.shape[0]
    if e < 2 or neighbours <= 0 or vectors.ndim != 2 or vectors.shape[1] == 0:
        return []
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = data.shape[1]
    if e <= EXACT_SYNONYM_MAX:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = max(64, 4 * neighbours)
    index.add(data)
    k = min(e, neighbours + 1)  # +1: an entity finds itself (or an identical twin) first
    lo_parts: list[np.ndarray] = []
    hi_parts: list[np.ndarray] = []
    score_parts: list[np.ndarray] = []
    block = 16_384
    for start in range(0, e, block):
        scores, ids = index.search(data[start : start + block], k)
        own = np.arange(start, start + ids.shape[0], dtype=np.int64)[:, None]
        valid = (ids >= 0) & (ids != own)
        # the first `neighbours` other entities of each row (results come best first)
        take = valid & (np.cumsum(valid, axis=1) <= neighbours) & (scores >= threshold)
        i = np.broadcast_to(own, ids.shape)[take]
        j = ids[take].astype(np.int64)
        lo_parts.append(np.minimum(i, j))
        hi_parts.append(np.maximum(i, j))
        score_parts.append(np.minimum(scores[take].astype(np.float64), 1.0))
    lo = np.concatenate(lo_parts)
    hi = np.concatenate(hi_parts)
    cos = np.concatenate(score_parts)
    if lo.size == 0:
        return []
    # dedupe (i, j) found from both ends, keeping the higher score
    order = np.lexsort((-cos, hi, lo))
    lo, hi, cos = lo[order], hi[order], cos[order]
    first = np.ones(lo.size, dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return [(int(a), int(b), float(c)) for a, b, c in zip(lo[first], hi[first], cos[first])]


def _undirected_pairs(heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    if len(heads) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.stack([np.minimum(heads, tails), np.maximum(heads, tails)], axis=1).astype(np.int64)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


# ---------------------------------------------------------------------- persistence


def _ragged_to_csr(parts: list[np.ndarray], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    if parts:
        offsets[1:] = np.cumsum([len(p) for p in parts])
        values = np.concatenate([np.asarray(p, dtype=dtype) for p in parts]) if offsets[-1] else np.zeros(0, dtype)
    else:
        values = np.zeros(0, dtype=dtype)
    return offsets, values.astype(dtype, copy=False)


def _csr_to_ragged(offsets: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write next to the target and rename, so a crash never leaves half a file behind."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_graph(memory: GraphMemory, directory: Path) -> None:
    """Persist ``memory`` as ``graph_arrays.npz`` (numbers) and ``graph_strings.json`` (text).

    Ragged per-entity / per-triple lists are stored CSR-style (offsets + values). No
    pickle: both files load with ``allow_pickle=False`` / plain json.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ec_offsets, ec_rows = _ragged_to_csr(memory.entity_chunks, np.int32)
    tc_offsets, tc_rows = _ragged_to_csr(memory.triple_chunks, np.int32)
    span_offsets = np.zeros(memory.n_triples + 1, dtype=np.int64)
    span_offsets[1:] = np.cumsum([len(s) for s in memory.triple_spans]) if memory.n_triples else []
    spans = np.asarray([s for spans in memory.triple_spans for s in spans], dtype=np.int64).reshape(-1, 3)
    arrays = {
        "entity_chunks_offsets": ec_offsets,
        "entity_chunks_rows": ec_rows,
        "triple_head": np.asarray(memory.triple_head, dtype=np.int32),
        "triple_tail": np.asarray(memory.triple_tail, dtype=np.int32),
        "triple_chunks_offsets": tc_offsets,
        "triple_chunks_rows": tc_rows,
        "triple_spans_offsets": span_offsets,
        "triple_spans": spans,
        "entity_vectors": np.ascontiguousarray(memory.entity_vectors, dtype=np.float32),
        "triple_vectors": np.ascontiguousarray(memory.triple_vectors, dtype=np.float32),
        "synonym_pairs": np.asarray([(i, j) for i, j, _ in memory.synonyms], dtype=np.int32).reshape(-1, 2),
        "synonym_scores": np.asarray([c for _, _, c in memory.synonyms], dtype=np.float64),
    }
    if memory.triple_owner is not None:
        arrays["triple_owner"] = np.asarray(memory.triple_owner, dtype=np.int64)

    def write_arrays(path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    strings = {
        "format_version": FORMAT_VERSION,
        "n_chunks": int(memory.n_chunks),
        "entity_keys": memory.entity_keys,
        "entity_names": memory.entity_names,
        "entity_kinds": memory.entity_kinds,
        "triple_relation": memory.triple_relation,
        "stage_seconds": memory.stage_seconds,
        "limits": asdict(memory.limits),
    }

    def write_strings(path: Path) -> None:
        # surrogatepass: text from arbitrary documents may hold lone surrogates.
        path.write_bytes(json.dumps(strings, ensure_ascii=False).encode("utf-8", "surrogatepass"))

    _write_atomic(directory / ARRAYS_FILE, write_arrays)
    _write_atomic(directory / STRINGS_FILE, write_strings)
    if memory.triple_index is not None:
        _write_atomic(directory / TRIPLE_INDEX_FILE, lambda path: faiss.write_index(memory.triple_index, str(path)))


def load_graph(directory: Path) -> GraphMemory:
    """Load a memory written by :func:`save_graph`, checking that the files agree."""
    directory = Path(directory)
    strings = json.loads((directory / STRINGS_FILE).read_bytes().decode("utf-8", "surrogatepass"))
    version = strings.get("format_version")
    if version not in READABLE_FORMATS:
        raise ValueError(f"unsupported graph memory format {version!r} in {directory}")
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
        a = {name: npz[name] for name in npz.files}
    n_entities = len(strings["entity_keys"])
    n_triples = len(strings["triple_relation"])
    if (
        len(a["entity_chunks_offsets"]) != n_entities + 1
        or len(a["triple_head"]) != n_triples
        or len(a["triple_chunks_offsets"]) != n_triples + 1
        or len(a["triple_spans_offsets"]) != n_triples + 1
        or a["entity_vectors"].shape[0] != n_entities
        or a["triple_vectors"].shape[0] != n_triples
        or ("triple_owner" in a and len(a["triple_owner"]) != n_triples)
    ):
        raise ValueError(f"graph memory files in {directory} are inconsistent")
    spans = a["triple_spans"]
    span_offsets = a["triple_spans_offsets"]
    triple_spans = [
        [(int(r), int(s), int(e)) for r, s, e in spans[span_offsets[i] : span_offsets[i + 1]].tolist()]
        for i in range(n_triples)
    ]
    limits = _loaded_limits(strings.get("limits", {}), version)
    if (limits.triple_vectors == TRIPLE_VECTORS_CHUNK) != ("triple_owner" in a):
        raise ValueError(f"graph memory files in {directory} are inconsistent (triple vectors of chunks "
                         "need the triple_owner array)")
    memory = GraphMemory(
        entity_keys=list(strings["entity_keys"]),
        entity_names=list(strings["entity_names"]),
        entity_kinds=list(strings["entity_kinds"]),
        entity_chunks=_csr_to_ragged(a["entity_chunks_offsets"], a["entity_chunks_rows"]),
        triple_head=a["triple_head"],
        triple_tail=a["triple_tail"],
        triple_relation=list(strings["triple_relation"]),
        triple_chunks=_csr_to_ragged(a["triple_chunks_offsets"], a["triple_chunks_rows"]),
        triple_spans=triple_spans,
        entity_vectors=a["entity_vectors"],
        triple_vectors=a["triple_vectors"],
        synonyms=[(int(i), int(j), float(c)) for (i, j), c in zip(a["synonym_pairs"].tolist(), a["synonym_scores"].tolist())],
        n_chunks=int(strings["n_chunks"]),
        stage_seconds={k: float(v) for k, v in strings.get("stage_seconds", {}).items()},
        limits=limits,
        triple_owner=a.get("triple_owner"),
    )
    if (directory / TRIPLE_INDEX_FILE).exists():
        memory.triple_index = faiss.read_index(str(directory / TRIPLE_INDEX_FILE))
        memory.triple_index.hnsw.efSearch = TRIPLE_HNSW_EF_SEARCH
    else:  # small, or written before the index existed (then a large graph builds it once now)
        memory.triple_index = _triple_hnsw(memory.link_vectors())
    return memory


def _loaded_limits(saved: dict, version: int) -> GraphLimits:
    """The saved limits; format 1 predates two fields: its triples embed their texts and every
    entity has a name vector."""
    if version == 1:
        saved = {**saved, "triple_vectors": TRIPLE_VECTORS_TEXT, "synonym_min_chunks": 1}
    return GraphLimits(**saved)

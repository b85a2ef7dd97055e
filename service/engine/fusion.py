"""Fusing the BM25 and dense legs into one score in [0, 1].

Default (mode ``hybrid``): each leg is standardised over this query's candidate pool (the union
of both legs' top candidates). BM25 goes through ``log1p`` first: its scores are sums of idf
weights with a heavy right tail, so without the log one very lexical hit dominates the z-scale
of every other candidate. The two z-scores are averaged with equal weights (``BM25_WEIGHT``) and the
mean z is squashed with the logistic function.

What the fused score means: ``score = 1 / (1 + exp(-z))`` where ``z`` is how many standard
deviations above this query's average candidate the chunk stands, averaged over the legs.
0.5 = an average candidate; 0.73 = one standard deviation above; 0.88 = two; 0.95 = three.
It ranks candidates *within one query*; it is not comparable across queries or collections.
Per-leg components are always returned beside it (``scores``: raw BM25, cosine, each leg's z
and the BM25 weight) so a caller can see why a chunk ranked where it did.

Why this rule (``make eval``, docs/EVAL.md): on HotpotQA and MuSiQue it beats both legs at
Recall@5 with equal weights (no per-dataset tuning), while RRF loses to dense on MuSiQue and
max-normalised weighting loses to dense there too. The same weights hold for every language:
the default embedder (multilingual-e5) reads Chinese and English alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

RRF_K = 60


@dataclass(frozen=True)
class LegScores:
    """Per-candidate raw scores of both legs (aligned with ``rows``)."""

    rows: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray
    graph: np.ndarray | None = None
    """PageRank mass of each candidate (graph modes only)."""


@dataclass(frozen=True)
class Fused:
    """Candidates best first with the raw and normalised leg scores, all aligned with ``rows``."""

    rows: np.ndarray
    score: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray
    bm25_norm: np.ndarray
    dense_norm: np.ndarray
    bm25_weight: float
    norm_name: str = "norm"
    """What ``*_norm`` holds: "z" for the default, "norm" ([0, 1] scaling) for the others."""
    graph: np.ndarray | None = None
    graph_norm: np.ndarray | None = None

    def components(self) -> dict[str, np.ndarray]:
        out = {"bm25": self.bm25, f"bm25_{self.norm_name}": self.bm25_norm, "dense": self.dense,
               f"dense_{self.norm_name}": self.dense_norm}
        if self.graph is not None:
            out.update({"graph": self.graph, f"graph_{self.norm_name}": self.graph_norm})
        return out


BM25_WEIGHT = 0.5
"""BM25's share of the hybrid z-score when every query term occurs in the collection: equal to the
dense leg's (see ``surface_weights``)."""


@dataclass(frozen=True)
class LegWeights:
    bm25: float
    """BM25's weight in the hybrid z-score (the dense leg has the rest)."""
    graph_share: float
    """The graph ranking's share of the turns in ``hybrid+graph`` (``interleave_with_graph``)."""


def surface_weights(term_coverage: float, bm25_base: float = BM25_WEIGHT, graph_base: float | None = None) -> LegWeights:
    """Weights of the two legs that read the query's surface terms, scaled by how many of them exist here.

    BM25 scores only terms the collection contains, and the graph seeds its walk from entities
    named in the question, so a query whose terms the collection does not contain (a question in
    another language than the documents, a misspelt name) gives both legs nothing to stand on:
    their z-scores are then rank noise. ``term_coverage`` (the share of the query's distinct
    analyzer terms found in the collection's vocabulary, 0-1) scales both weights linearly, and
    the dense leg, which reads meaning across languages, takes the rest. Nothing here is fitted to
    a dataset: 1 = today's weights for same-language questions, 0 = dense only.
    """
    coverage = min(1.0, max(0.0, float(term_coverage)))
    graph_base = GRAPH_SHARE if graph_base is None else graph_base
    return LegWeights(bm25=bm25_base * coverage, graph_share=graph_base * coverage)


SPREAD_FLOOR = 1e-6
"""Below this a space's spread is degenerate (every chunk the same text): it counts as this."""


def space_weights(term_coverage: float, spreads: Sequence[float]) -> tuple[float, ...]:
    """Weights of the embedding spaces inside the dense leg's score (``indexing.joint_embedder``).

    Two parts, one rule each:

    * *Equal say in standard-deviation units.* Each space's base weight is proportional to
      1 / its spread (the standard deviation of cosines between random chunk pairs of this
      collection, recorded by the build), the same standardisation the fusion applies to legs:
      multilingual-e5 packs unrelated text into a band about five times narrower than USE's, so
      equal raw weights would hand the ranking to USE.
    * *The cross-lingual spaces join as the query's terms go missing.* The second and later
      spaces keep ``1 - term_coverage`` of their base weight; the first space takes the rest. A
      question whose terms the collection contains is in the documents' language, where the first
      space reads best (within one language USE is 15-25 pt of Recall@5 below e5); a question in
      another language than the documents has coverage near 0 and gets both spaces at equal say.

    Neither part is fitted to a dataset; with one space (or none recorded) the weight is (1,).
    """
    if len(spreads) < 2:
        return (1.0,)
    inverse = [1.0 / max(float(spread), SPREAD_FLOOR) for spread in spreads]
    total = sum(inverse)
    missing = 1.0 - min(1.0, max(0.0, float(term_coverage)))
    others = [value / total * missing for value in inverse[1:]]
    return (1.0 - sum(others), *others)


def _standardise(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    spread = values.std()
    if spread <= 1e-12:
        return np.zeros_like(values)
    return (values - values.mean()) / spread


def _ordered(legs: LegScores, score: np.ndarray, bm25_norm: np.ndarray, dense_norm: np.ndarray,
             bm25_weight: float, norm_name: str, graph_norm: np.ndarray | None = None) -> Fused:
    order = np.lexsort((legs.rows, -score))  # best first, ties by row: deterministic
    graph = None if legs.graph is None or graph_norm is None else legs.graph[order]
    return Fused(legs.rows[order], score[order].astype(np.float32), legs.bm25[order], legs.dense[order],
                 bm25_norm[order].astype(np.float32), dense_norm[order].astype(np.float32), bm25_weight,
                 norm_name, graph, None if graph is None else graph_norm[order].astype(np.float32))


def _hybrid_z(legs: LegScores, bm25_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BM25 z, dense z, their weighted mean): the hybrid ranking, shared by ``hybrid`` and the turns
    of ``hybrid+graph`` so the two rank the hybrid side identically."""
    bm25_z = _standardise(np.log1p(np.maximum(legs.bm25, 0.0)))
    dense_z = _standardise(legs.dense)
    return bm25_z, dense_z, bm25_weight * bm25_z + (1.0 - bm25_weight) * dense_z


def zscore(legs: LegScores, bm25_weight: float) -> Fused:
    """The default: logistic of the weighted mean of per-pool z-scores (BM25 log-compressed)."""
    bm25_z, dense_z, z = _hybrid_z(legs, bm25_weight)
    score = 1.0 / (1.0 + np.exp(-z))
    return _ordered(legs, score, bm25_z, dense_z, bm25_weight, "z")


def max_normalised(legs: LegScores, bm25_weight: float) -> Fused:
    """BM25 / the pool's best BM25 and cosine clipped to [0, 1], weighted mean (ragmem's first rule)."""
    best = float(legs.bm25.max()) if legs.bm25.size else 0.0
    bm25_norm = legs.bm25 / best if best > 0 else np.zeros_like(legs.bm25)
    dense_norm = np.clip(legs.dense, 0.0, 1.0)
    score = bm25_weight * bm25_norm + (1.0 - bm25_weight) * dense_norm
    return _ordered(legs, score, bm25_norm, dense_norm, bm25_weight, "norm")


def rrf(legs: LegScores, bm25_weight: float = 0.5, k: int = RRF_K) -> Fused:
    """Reciprocal rank fusion (k=60), rescaled so a candidate ranked first by both legs scores 1.0."""
    n = len(legs.rows)
    bm25_rank = np.empty(n)
    bm25_rank[np.argsort(-legs.bm25, kind="stable")] = np.arange(n)
    dense_rank = np.empty(n)
    dense_rank[np.argsort(-legs.dense, kind="stable")] = np.arange(n)
    bm25_part, dense_part = 1.0 / (k + 1 + bm25_rank), 1.0 / (k + 1 + dense_rank)
    score = (bm25_part + dense_part) / (2.0 / (k + 1))
    return _ordered(legs, score, bm25_part * (k + 1), dense_part * (k + 1), 0.5, "norm")


def _graph_z(legs: LegScores) -> np.ndarray:
    """PageRank mass, log-compressed and standardised like BM25; chunks the walk never reached get
    the pool's floor. PageRank mass is even more heavy-tailed than BM25 (a few chunks next to the
    seeds hold most of it), hence the log."""
    mass = np.maximum(legs.graph, 0.0).astype(np.float64)
    floor = mass[mass > 0].min() if (mass > 0).any() else 1.0
    return _standardise(np.log(np.maximum(mass, floor)))


GRAPH_SHARE = 0.5
"""The graph ranking's share of the turns in ``hybrid+graph`` when every query term is found: equal
turns with the hybrid ranking (scaled by term coverage like every surface leg)."""


def _ranks(score: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """0-based rank of each candidate under ``score``, best first, ties by row (deterministic)."""
    ranks = np.empty(len(score), np.float64)
    ranks[np.lexsort((rows, -score))] = np.arange(len(score))
    return ranks


def interleave_with_graph(legs: LegScores, bm25_weight: float, graph_share: float = GRAPH_SHARE) -> Fused:
    """The default mode: the hybrid ranking and the graph ranking take turns, the hybrid first.

    Why turns and not a weighted sum of scores: the two rankings answer different questions. The
    hybrid puts first the chunks that match the question's words and meaning; the graph walk
    puts first the chunks the question's entities *lead to*, the second hop of a multi-hop
    question, which rarely match the question itself. Their scores are on no common scale, and a
    weighted sum lets whichever leg spreads its z-scores wider decide the whole top (measured: the
    earlier default, a z-mix with the graph at 0.8, lost 1.7 pt of Recall@5 to the graph alone on
    MuSiQue and 2.5 pt of Recall@1 to plain hybrid on CMRC; docs/EVAL.md).
    Taking turns gives each ranking its first choices and lets neither crowd the other out.

    Rule: a chunk's key is ``(rank + 0.5) / share`` in each ranking (the hybrid's share is
    ``1 - graph_share``), its best key decides, ties go to the hybrid. With equal shares that is
    h1, g1, h2, g2, ... skipping chunks already placed; ``graph_share`` scales with term coverage
    (``surface_weights``), so a question in another language than the documents gets the hybrid
    order. ``score`` = the best possible key / this chunk's key: 1.0 for the first choice, 1/3
    for a second choice, 1/5 for a third, ... (at equal shares), so it falls with rank.
    """
    bm25_z, dense_z, hybrid = _hybrid_z(legs, bm25_weight)
    graph_z = _graph_z(legs)
    share = min(max(float(graph_share), 0.0), 0.5)  # the hybrid always has at least half the turns
    hybrid_key = (_ranks(hybrid, legs.rows) + 0.5) / (1.0 - share)
    key = hybrid_key
    if share > 0.0:
        graph_key = (_ranks(graph_z, legs.rows) + 0.5) / share
        key = np.minimum(hybrid_key, graph_key)
    best_possible = 0.5 / (1.0 - share)
    score = best_possible / key
    order = np.lexsort((legs.rows, key < hybrid_key, key))  # best key, then the hybrid's picks, then row
    graph = legs.graph[order]
    return Fused(legs.rows[order], score[order].astype(np.float32), legs.bm25[order], legs.dense[order],
                 bm25_z[order].astype(np.float32), dense_z[order].astype(np.float32), bm25_weight, "z",
                 graph, graph_z[order].astype(np.float32))


FUSIONS = {"hybrid": zscore, "hybrid-maxnorm": max_normalised, "rrf": rrf}
"""Fusion rules by mode name; ``hybrid`` is the default the service and the eval report lead with."""

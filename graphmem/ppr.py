"""Personalized PageRank over the knowledge-graph memory (HippoRAG 2's retrieval walk).

HippoRAG 2 seeds a random walk on entity and passage nodes with the query's matches and
ranks passages by where the walk settles. ``networkx.pagerank`` computes the same thing,
but it rebuilds a sparse matrix from the graph's Python dicts on every call, which costs
far more than the walk itself on a 10^6-edge graph. Here the row-normalised transition
matrix is built once per collection (:func:`transition_matrix`) and each query only runs
the sparse power iteration (:func:`personalized_pagerank`): no Python loop over nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

import networkx
import numpy as np
import scipy.sparse as sp

__all__ = ["Walk", "personalized_pagerank", "row_normalise", "transition_matrix"]

log = logging.getLogger("ragmem.graphmem.ppr")


def row_normalise(weights: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Divide each row of a non-negative weight matrix by its sum; all-zero rows stay zero.

    Shared by :func:`transition_matrix` and the graph memory, which builds its weight
    matrix straight from arrays so that the service never needs the networkx graph.
    """
    matrix = sp.csr_matrix(weights, dtype=np.float64)
    matrix.sum_duplicates()
    if matrix.nnz and matrix.data.min() < 0:
        raise ValueError("edge weights must be non-negative")
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.zeros_like(sums)
    np.divide(1.0, sums, out=inverse, where=sums > 0)
    # Scale each stored value by its row's factor; cheaper than a diagonal product.
    matrix.data *= np.repeat(inverse, np.diff(matrix.indptr))
    matrix.eliminate_zeros()
    return matrix


def transition_matrix(graph: networkx.Graph, nodes: Sequence[Hashable]) -> sp.csr_matrix:
    """Row-stochastic transition matrix of ``graph`` in the order of ``nodes``.

    Row ``i`` holds the probabilities of stepping from ``nodes[i]`` to each node: its
    out-edge weights (attribute ``"weight"``, default 1.0) divided by their sum. An
    undirected edge can be walked both ways; parallel edges of a multigraph add up. Rows of
    nodes without (positive) out-weight are all zero: the walk treats them as dangling.
    ``nodes`` fixes the index space: nodes missing from the graph become isolated rows,
    and graph nodes (with their edges) not listed in ``nodes`` are left out.
    """
    index = {node: i for i, node in enumerate(nodes)}
    if len(index) != len(nodes):
        raise ValueError("nodes must not contain duplicates")
    n = len(nodes)
    rows: list[int] = []
    cols: list[int] = []
    weights: list[float] = []
    for u, v, w in graph.edges(data="weight", default=1.0):
        i = index.get(u)
        j = index.get(v)
        if i is None or j is None:
            continue
        w = 1.0 if w is None else float(w)
        rows.append(i)
        cols.append(j)
        weights.append(w)
        if not graph.is_directed() and i != j:  # a self-loop is one step, not two
            rows.append(j)
            cols.append(i)
            weights.append(w)
    adjacency = sp.coo_matrix(
        (np.asarray(weights, dtype=np.float64), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=(n, n),
    )
    return row_normalise(adjacency)


def personalized_pagerank(
    transition: "sp.csr_matrix | sp.csr_array | Walk",
    seeds: np.ndarray,
    damping: float = 0.5,
    tol: float = 1e-8,
    max_iter: int = 100,
    fixed_steps: int | None = None,
    wanted_from: int = 0,
) -> np.ndarray:
    """Stationary distribution of a walk that follows an edge with probability ``damping``
    and otherwise restarts at the seeds.

    Iterates ``p = (1-d)·s + d·(Pᵀ p) + d·(mass on dangling rows)·s`` from ``p = s``,
    where ``s`` is ``seeds`` normalised to sum 1 (all zeros mean uniform, i.e. plain
    PageRank). ``damping`` is networkx's ``alpha``; HippoRAG uses 0.5, which keeps most
    mass within a couple of hops of the seeds — what multi-hop QA needs. Convergence uses
    networkx's test (L1 change < n·tol); if ``max_iter`` is hit, a warning is logged and
    the last iterate is returned rather than failing a query. The result sums to 1.

    ``fixed_steps`` stops after that many steps without a warning: with damping 0.5 the mass
    still to move after k steps is at most 0.5^k, and large graphs use this to bound latency.
    With ``fixed_steps``, ``wanted_from`` > 0 says only nodes from that index on are wanted (the
    chunks, after the entities): the last step then computes only their rows — mass conserves,
    so the result is not renormalised — and earlier nodes are 0 in the result.
    """
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    walk = transition if isinstance(transition, Walk) else Walk(transition)
    s = _restart_distribution(walk, seeds)
    if walk.n == 0:
        return s
    if fixed_steps and wanted_from > 0:
        return _walk_to_tail(walk, s, damping, fixed_steps, wanted_from)
    return _power_iteration(walk, s, damping, tol, max_iter, fixed_steps)


def _restart_distribution(walk: Walk, seeds: np.ndarray) -> np.ndarray:
    """``seeds`` checked and normalised to sum 1, in the walk's precision; all zeros mean
    uniform (plain PageRank). An empty walk gets an empty float64 array: nothing to walk."""
    n = walk.n
    s = np.asarray(seeds, dtype=np.float64).ravel()
    if s.shape[0] != n:
        raise ValueError(f"seeds has {s.shape[0]} entries for {n} nodes")
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    if not np.all(np.isfinite(s)) or s.min() < 0:
        raise ValueError("seeds must be finite and non-negative")
    total = s.sum()
    s = s / total if total > 0 else np.full(n, 1.0 / n)
    return s.astype(walk.dtype)


def _restart_mass(walk: Walk, q: np.ndarray, damping: float) -> float:
    """Mass returning to the seeds: the restart share plus what dead ends would have kept."""
    return (1.0 - damping) + damping * q[walk.dangling].sum()


def _step(walk: Walk, p: np.ndarray, s: np.ndarray, damping: float, step: int) -> np.ndarray:
    """One walk step from ``p``; the first two read only the rows the walk has reached."""
    return damping * walk.spread(p, local=step < 2) + _restart_mass(walk, p, damping) * s


def _walk_to_tail(walk: Walk, s: np.ndarray, damping: float, fixed_steps: int, wanted_from: int) -> np.ndarray:
    """``fixed_steps`` steps whose last one computes only nodes ``wanted_from..n``.

    Skipping the entity rows of the last step saves most of its cost on a large graph; mass
    conserves, so the result needs no renormalising.
    """
    p = s
    for step in range(fixed_steps - 1):
        p = _step(walk, p, s, damping, step)
    out = np.zeros(walk.n, dtype=np.float64)
    out[wanted_from:] = (
        damping * (walk.backward_from(wanted_from) @ p) + _restart_mass(walk, p, damping) * s[wanted_from:]
    )
    return out


def _power_iteration(
    walk: Walk, s: np.ndarray, damping: float, tol: float, max_iter: int, fixed_steps: int | None
) -> np.ndarray:
    """Steps from ``s`` until the L1 change is below ``n·tol`` (networkx's test), or for
    ``fixed_steps`` steps; normalised to sum 1."""
    p = s
    for step in range(fixed_steps or max_iter):
        previous = p
        p = _step(walk, previous, s, damping, step)
        if np.abs(p - previous).sum() < walk.n * tol:
            break
    else:
        if fixed_steps:
            return (p / p.sum()).astype(np.float64)
        log.warning("personalized PageRank did not converge in %d iterations (tol=%g)", max_iter, tol)
    return p / p.sum()


class Walk:
    """A transition matrix prepared once for many :func:`personalized_pagerank` calls.

    ``single_precision`` stores Pᵀ as float32: a step on a multi-million-edge graph is bound by
    memory traffic, and PageRank ranks need nothing like float64's precision.
    """

    def __init__(self, transition: sp.csr_matrix | sp.csr_array, single_precision: bool = False) -> None:
        forward = sp.csr_matrix(transition, dtype=np.float64)
        if forward.shape[0] != forward.shape[1]:
            raise ValueError(f"transition must be square, got shape {forward.shape}")
        forward.sort_indices()
        self.indptr = forward.indptr.astype(np.int64)
        self.indices = forward.indices.astype(np.int64)
        self.data = forward.data
        self.n = forward.shape[0]
        self.edges = int(forward.nnz)
        self.dangling = np.asarray(forward.sum(axis=1)).ravel() <= 1e-12
        self.dtype = np.float32 if single_precision else np.float64
        self._backward: sp.csr_matrix | None = None
        self._forward: sp.csr_matrix | None = None
        self._tail: tuple[int, sp.csr_matrix] | None = None

    def spread(self, p: np.ndarray, local: bool = True) -> np.ndarray:
        """Pᵀ p. While ``p`` sits on a few nodes (the first steps from the seeds), only their rows
        are read; once it has spread, one whole-matrix product is cheaper (``local=False`` skips
        the check: a walk's support only grows)."""
        support = np.flatnonzero(p) if local else None
        if support is not None and support.size * 8 < self.n:
            touched = int((self.indptr[support + 1] - self.indptr[support]).sum())
            if touched * 4 < self.edges:
                if self._forward is None:
                    self._forward = _as_matrix(self).astype(self.dtype)
                return np.asarray(self._forward[support].T @ p[support], dtype=self.dtype)
        return self.backward() @ p

    def backward_from(self, first: int) -> sp.csr_matrix:
        """Rows ``first..n`` of Pᵀ (the mass arriving at those nodes), cached for one ``first``."""
        if self._tail is None or self._tail[0] != first:
            self._tail = (first, self.backward()[first:])
        return self._tail[1]

    def backward(self) -> sp.csr_matrix:
        """Pᵀ as CSR, so an exact power-iteration step is one sparse mat-vec (built on first use)."""
        if self._backward is None:
            self._backward = _as_matrix(self).T.tocsr().astype(self.dtype, copy=False)
        return self._backward


def _as_matrix(walk: Walk) -> sp.csr_matrix:
    return sp.csr_matrix((walk.data, walk.indices, walk.indptr), shape=(walk.n, walk.n))

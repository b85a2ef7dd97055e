"""Tests for graphmem.ppr: transition matrix and personalized PageRank vs networkx."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from graphmem.ppr import Walk, personalized_pagerank, row_normalise, transition_matrix


def random_graph(seed: int, n: int = 30, p: float = 0.12, directed: bool = False) -> nx.Graph:
    """Weighted random graph plus isolated nodes (and, when directed, a sink)."""
    rng = np.random.default_rng(seed)
    g = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    for u, v in g.edges():
        g.edges[u, v]["weight"] = float(rng.uniform(0.1, 3.0))
    g.add_nodes_from([n, n + 1])  # isolated: dangling rows
    if directed:
        g.add_edge(0, n + 2, weight=2.0)  # n+2 has in-edges but no out-edges
    return g


def nx_vector(g: nx.Graph, nodes: list, alpha: float, personalization: dict | None) -> np.ndarray:
    ranks = nx.pagerank(g, alpha=alpha, personalization=personalization, weight="weight", tol=1e-12, max_iter=1000)
    return np.array([ranks[v] for v in nodes])


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("damping", [0.5, 0.85])
def test_matches_networkx_personalized(seed: int, damping: float, directed: bool) -> None:
    g = random_graph(seed, directed=directed)
    nodes = list(g.nodes())
    rng = np.random.default_rng(100 + seed)
    seeds = np.zeros(len(nodes))
    chosen = rng.choice(len(nodes), size=3, replace=False)
    seeds[chosen] = rng.uniform(0.5, 2.0, size=3)
    expected = nx_vector(g, nodes, damping, {nodes[i]: seeds[i] for i in chosen})
    got = personalized_pagerank(transition_matrix(g, nodes), seeds, damping=damping, tol=1e-12, max_iter=1000)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.sum() == pytest.approx(1.0, abs=1e-12)


def test_default_tolerance_is_close_enough() -> None:
    g = random_graph(3)
    nodes = list(g.nodes())
    seeds = np.zeros(len(nodes))
    seeds[[0, 5]] = 1.0
    expected = nx_vector(g, nodes, 0.5, {nodes[0]: 1.0, nodes[5]: 1.0})
    np.testing.assert_allclose(personalized_pagerank(transition_matrix(g, nodes), seeds), expected, atol=1e-6)


@pytest.mark.parametrize("seeds_kind", ["uniform", "zeros"])
def test_uniform_or_zero_seeds_give_plain_pagerank(seeds_kind: str) -> None:
    g = random_graph(4)
    nodes = list(g.nodes())
    seeds = np.ones(len(nodes)) if seeds_kind == "uniform" else np.zeros(len(nodes))
    expected = nx_vector(g, nodes, 0.85, None)
    got = personalized_pagerank(transition_matrix(g, nodes), seeds, damping=0.85, tol=1e-12, max_iter=1000)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_result_is_a_probability_vector() -> None:
    g = random_graph(5, n=60)
    nodes = list(g.nodes())
    seeds = np.zeros(len(nodes))
    seeds[-1] = 1.0  # seed on an isolated node: all mass returns to it
    got = personalized_pagerank(transition_matrix(g, nodes), seeds)
    assert got.sum() == pytest.approx(1.0)
    assert got.min() >= 0
    assert got[-1] == pytest.approx(1.0)


def test_nearby_seed_gives_more_mass_than_far_seed() -> None:
    g = nx.path_graph(10)
    nodes = list(g.nodes())
    t = transition_matrix(g, nodes)
    near = np.zeros(10)
    near[4] = 1.0
    far = np.zeros(10)
    far[0] = 1.0
    assert personalized_pagerank(t, near)[6] > personalized_pagerank(t, far)[6]
    # and the mass decays with distance from the seed
    ranks = personalized_pagerank(t, far)
    assert all(ranks[i] > ranks[i + 1] for i in range(9))


def test_transition_matrix_rows() -> None:
    g = nx.Graph()
    g.add_edge("a", "b", weight=3.0)
    g.add_edge("a", "c")  # default weight 1
    g.add_node("d")
    t = transition_matrix(g, ["a", "b", "c", "d"])
    assert isinstance(t, sp.csr_matrix)
    dense = t.toarray()
    np.testing.assert_allclose(dense[0], [0, 0.75, 0.25, 0])
    np.testing.assert_allclose(dense[1], [1, 0, 0, 0])
    np.testing.assert_allclose(dense[2], [1, 0, 0, 0])
    np.testing.assert_allclose(dense[3], [0, 0, 0, 0])  # dangling
    # directed: rows are from-nodes only
    d = nx.DiGraph([("a", "b")])
    np.testing.assert_allclose(transition_matrix(d, ["a", "b"]).toarray(), [[0, 1], [0, 0]])


def test_transition_matrix_node_order_and_unknown_nodes() -> None:
    g = nx.Graph([("x", "y"), ("y", "z")])
    t = transition_matrix(g, ["z", "y", "missing"])  # "x" left out, "missing" isolated
    np.testing.assert_allclose(t.toarray(), [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        transition_matrix(g, ["x", "x"])


def test_multigraph_weights_add_up() -> None:
    g = nx.MultiGraph()
    g.add_edge(0, 1, weight=1.0)
    g.add_edge(0, 1, weight=2.0)
    g.add_edge(0, 2, weight=1.0)
    np.testing.assert_allclose(transition_matrix(g, [0, 1, 2]).toarray()[0], [0, 0.75, 0.25])


def test_row_normalise_rejects_negative_weights() -> None:
    with pytest.raises(ValueError):
        row_normalise(sp.csr_matrix(np.array([[0.0, -1.0], [1.0, 0.0]])))


def test_invalid_inputs() -> None:
    t = transition_matrix(nx.path_graph(3), [0, 1, 2])
    with pytest.raises(ValueError):
        personalized_pagerank(t, np.ones(4))
    with pytest.raises(ValueError):
        personalized_pagerank(t, np.array([1.0, -1.0, 0.0]))
    with pytest.raises(ValueError):
        personalized_pagerank(t, np.ones(3), damping=1.0)
    assert personalized_pagerank(sp.csr_matrix((0, 0)), np.zeros(0)).shape == (0,)


@pytest.mark.parametrize("single_precision", [False, True])
def test_fixed_steps_bound_the_error_by_the_mass_left_to_move(single_precision: bool) -> None:
    graph = nx.barabasi_albert_graph(300, 3, seed=4)
    nodes = list(graph.nodes)
    walk = Walk(transition_matrix(graph, nodes), single_precision=single_precision)
    seeds = np.zeros(len(nodes))
    seeds[[3, 50, 120]] = [0.5, 0.3, 0.2]
    exact = personalized_pagerank(walk, seeds, damping=0.5, tol=1e-14)
    previous = None
    for steps in (2, 4, 8):
        approx = personalized_pagerank(walk, seeds, damping=0.5, fixed_steps=steps)
        error = np.abs(approx - exact).sum()
        assert error <= 2 * 0.5 ** steps + 1e-5
        if previous is not None:
            assert error < previous
        previous = error
    assert abs(approx.sum() - 1) < 1e-6


def test_fixed_steps_for_wanted_nodes_only_equal_the_full_steps() -> None:
    graph = nx.barabasi_albert_graph(200, 2, seed=1)
    walk = Walk(transition_matrix(graph, list(graph.nodes)))
    seeds = np.zeros(200)
    seeds[[5, 9]] = 1.0
    full = personalized_pagerank(walk, seeds, damping=0.5, fixed_steps=3)
    tail = personalized_pagerank(walk, seeds, damping=0.5, fixed_steps=3, wanted_from=150)
    assert not tail[:150].any()
    # the walk conserves mass, so the full result needs no renormalising and the two agree
    np.testing.assert_allclose(tail[150:], full[150:], rtol=1e-9, atol=1e-15)
    assert tail[150:].any()

"""Matchings: every bipartite adapter against brute force over permutations, and the
general-graph blossom against brute force over edge subsets."""

from __future__ import annotations

import itertools
import pickle

import networkx as nx
import numpy as np
import pytest

from imle_solvers import MAPOracle
from imle_solvers.adapters import resolve_solver
from imle_solvers.adapters.matching import integer_costs
from imle_solvers.errors import InvalidInputError
from imle_solvers.problems import BipartiteMatching, GraphMatching

BIPARTITE_BACKENDS = ["scipy", "ortools", "networkx"]
SHAPES = [(1, 1), (3, 3), (2, 4), (4, 2), (4, 4)]


def brute_force_bipartite(theta: np.ndarray, perfect: bool) -> float:
    """Best total score over all (perfect on the smaller side, or any) matchings."""
    n_left, n_right = theta.shape
    best = -np.inf
    # each left vertex takes a distinct right vertex or none (None)
    for choice in itertools.product([None, *range(n_right)], repeat=n_left):
        taken = [j for j in choice if j is not None]
        if len(set(taken)) < len(taken) or (perfect and len(taken) < min(n_left, n_right)):
            continue
        best = max(best, sum(theta[i, j] for i, j in enumerate(choice) if j is not None))
    return best


def assert_is_matching(z: np.ndarray, perfect: bool) -> None:
    assert set(np.unique(z)) <= {0.0, 1.0}
    assert (z.sum(axis=0) <= 1).all() and (z.sum(axis=1) <= 1).all()
    if perfect:
        assert z.sum() == min(z.shape)


@pytest.mark.parametrize("backend", BIPARTITE_BACKENDS)
@pytest.mark.parametrize("perfect", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_bipartite_matches_brute_force(backend, perfect, shape, rng):
    problem = BipartiteMatching(*shape, perfect=perfect)
    solve = resolve_solver(problem.kind, backend).solve
    for _ in range(8):
        theta = rng.normal(size=shape)
        z = solve(theta, problem)
        assert_is_matching(z, perfect)
        assert (theta * z).sum() == pytest.approx(brute_force_bipartite(theta, perfect))
        if not perfect:
            assert (theta[z == 1] > 0).all(), "only pairs of positive score"


@pytest.mark.parametrize("perfect", [True, False])
def test_bipartite_backends_agree_through_the_oracle(perfect, rng):
    problem = BipartiteMatching(6, 9, perfect=perfect)
    theta = rng.normal(size=(10, 6, 9))
    states = [MAPOracle(problem, backend=b)(theta) for b in BIPARTITE_BACKENDS]
    for z in states[1:]:  # continuous random scores: the optimum is unique
        np.testing.assert_array_equal(z, states[0])


def test_ortools_is_exact_on_scores_of_very_different_sizes():
    # one huge score must not round the small ones that decide the rest to zero
    problem = BipartiteMatching(3, 3)
    theta = np.array([[1e6, 0.0, 0.0], [0.0, 3e-6, 1e-6], [0.0, 1e-6, 3e-6]])
    z = resolve_solver(problem.kind, "ortools").solve(theta, problem)
    np.testing.assert_array_equal(z, np.eye(3))


def test_integer_costs_keep_order_and_stay_in_range(rng):
    scores = rng.normal(size=(50, 50)) * 1e3
    costs = integer_costs(scores, 50)
    assert np.abs(costs).max() < 2**53 / 50**2
    assert (np.argsort(costs, axis=None, kind="stable") == np.argsort(scores, axis=None, kind="stable")).all()


def test_bipartite_auto_is_scipy_and_problem_is_plain_data():
    problem = BipartiteMatching(3, 4, perfect=False)
    assert resolve_solver(problem.kind).backend == "scipy"
    assert problem.shape == (3, 4) and problem.sense == "max"
    assert pickle.loads(pickle.dumps(problem)) == problem
    with pytest.raises(InvalidInputError, match="n_right"):
        BipartiteMatching(3, 0)


def brute_force_graph_matching(graph: nx.Graph, theta: np.ndarray) -> float:
    """Best total score over all edge subsets in which no two edges share a vertex."""
    edges = list(graph.edges)
    best = 0.0
    for size in range(1, len(edges) + 1):
        for subset in itertools.combinations(range(len(edges)), size):
            ends = [v for i in subset for v in edges[i]]
            if len(set(ends)) == len(ends):
                best = max(best, theta[list(subset)].sum())
    return best


def test_graph_matching_matches_brute_force(rng):
    for _ in range(20):
        graph = nx.gnp_random_graph(6, 0.5, seed=int(rng.integers(1 << 30)))
        problem = GraphMatching(graph)
        theta = rng.normal(size=graph.number_of_edges())
        z = resolve_solver(problem.kind, "networkx").solve(theta, problem)
        ends = [v for bit, edge in zip(z, graph.edges) if bit for v in edge]
        assert len(set(ends)) == len(ends), "no two chosen edges share a vertex"
        assert theta @ z == pytest.approx(brute_force_graph_matching(graph, theta))
        assert (theta[z == 1] > 0).all()


def test_graph_matching_through_the_oracle_keeps_order(rng):
    graph = nx.petersen_graph()
    problem = GraphMatching(graph)
    theta = rng.normal(size=(4, graph.number_of_edges()))
    z = MAPOracle(problem)(theta)
    for row in range(4):
        np.testing.assert_array_equal(z[row], resolve_solver(problem.kind, "networkx").solve(theta[row], problem))


def test_graph_matching_refuses_directed_graphs_and_self_loops():
    with pytest.raises(InvalidInputError, match="undirected"):
        GraphMatching(nx.DiGraph([(0, 1)]))
    with pytest.raises(InvalidInputError, match="self-loop"):
        GraphMatching(nx.Graph([(0, 1), (1, 1)]))

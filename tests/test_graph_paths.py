"""GraphShortestPath: both adapters against brute force over simple paths, the
negative-cost cases (DAG, no negative cycle, negative cycle and its policy), and errors."""

from __future__ import annotations

import pickle
import warnings

import networkx as nx
import numpy as np
import pytest

from imle_solvers import MAPOracle, SolverError
from imle_solvers.adapters import resolve_solver
from imle_solvers.adapters.graph_paths import path_structure
from imle_solvers.errors import InvalidInputError
from imle_solvers.problems import GraphShortestPath, NegativeCostWarning

BACKENDS = ["scipy", "networkx"]


def brute_force_cost(problem: GraphShortestPath, graph: nx.Graph, costs: np.ndarray) -> float:
    """Cheapest simple path from source to target (the true minimum without negative cycles)."""
    index = {edge: i for i, edge in enumerate(graph.edges)}
    if not graph.is_directed():
        index.update({(v, u): i for (u, v), i in list(index.items())})
    return min(
        sum(costs[index[step]] for step in zip(path[:-1], path[1:]))
        for path in nx.all_simple_paths(graph, problem.source, problem.target)
    )


def assert_is_path(graph: nx.Graph, z: np.ndarray, source, target) -> None:
    """``z`` marks the edges of one simple path from ``source`` to ``target``."""
    assert set(np.unique(z)) <= {0.0, 1.0}
    chosen = [edge for edge, bit in zip(graph.edges, z) if bit]
    walk = nx.DiGraph() if graph.is_directed() else nx.Graph()
    walk.add_edges_from(chosen)
    nodes = list(nx.shortest_path(walk, source, target))  # connected from source to target
    assert len(nodes) == len(chosen) + 1, "the chosen edges are a path and nothing else"


def solve(backend: str, theta: np.ndarray, problem: GraphShortestPath) -> np.ndarray:
    return resolve_solver(problem.kind, backend).solve(theta, problem)


def random_graph(rng: np.random.Generator, directed: bool, acyclic: bool = False) -> nx.Graph:
    n = 7
    while True:
        graph = nx.gnp_random_graph(n, 0.45, seed=int(rng.integers(1 << 30)), directed=directed)
        if acyclic:
            graph = nx.DiGraph([(u, v) for u, v in graph.edges if u < v])
            graph.add_nodes_from(range(n))
        if nx.has_path(graph, 0, n - 1):
            return graph


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("directed", [True, False])
def test_nonnegative_costs_match_brute_force(backend, directed, rng):
    for _ in range(15):
        graph = random_graph(rng, directed)
        problem = GraphShortestPath(graph, 0, 6)
        theta = rng.random(graph.number_of_edges())
        z = solve(backend, theta, problem)
        assert_is_path(graph, z, 0, 6)
        assert theta @ z == pytest.approx(brute_force_cost(problem, graph, theta))


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_costs_on_a_dag_are_exact(backend, rng):
    for _ in range(15):
        graph = random_graph(rng, directed=True, acyclic=True)
        problem = GraphShortestPath(graph, 0, 6)
        assert path_structure(problem).dag is not None
        theta = rng.normal(size=graph.number_of_edges())
        z = solve(backend, theta, problem)
        assert_is_path(graph, z, 0, 6)
        assert theta @ z == pytest.approx(brute_force_cost(problem, graph, theta))


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_costs_without_negative_cycles_are_exact(backend, rng):
    # reduced costs w(u, v) + h(u) - h(v) with w >= 0: every cycle costs >= 0, many arcs < 0
    cyclic = with_negative_arcs = 0
    while cyclic < 15:
        graph = random_graph(rng, directed=True)
        problem = GraphShortestPath(graph, 0, 6)
        if path_structure(problem).dag is not None:
            continue  # the DAG programme would solve it: Bellman-Ford is under test here
        cyclic += 1
        potential = rng.normal(scale=2.0, size=graph.number_of_nodes())
        theta = np.array([rng.random() + potential[u] - potential[v] for u, v in graph.edges])
        with_negative_arcs += (theta < 0).any()
        z = solve(backend, theta, problem)
        assert_is_path(graph, z, 0, 6)
        assert theta @ z == pytest.approx(brute_force_cost(problem, graph, theta))
    assert with_negative_arcs >= 10


def cycle_graph() -> nx.DiGraph:
    """0 -> 1 -> 3 with a cycle 1 -> 2 -> 1 on the way; a dead end 3 -> 4 -> 5 -> 4 after it."""
    return nx.DiGraph([(0, 1), (1, 2), (2, 1), (1, 3), (3, 4), (4, 5), (5, 4)])


def edge_costs(graph: nx.Graph, special: dict, default: float = 1.0) -> np.ndarray:
    """Costs in ``graph.edges`` order: ``special[edge]`` where given, else ``default``."""
    return np.array([special.get(edge, default) for edge in graph.edges])


def edge_mask(graph: nx.Graph, edges: list) -> np.ndarray:
    return np.array([float(edge in edges) for edge in graph.edges])


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_cycle_on_the_way_raises_unbounded(backend):
    problem = GraphShortestPath(cycle_graph(), 0, 3)
    theta = edge_costs(cycle_graph(), {(1, 2): -2.0})  # 1 -> 2 -> 1 costs -1
    with pytest.raises(SolverError) as error:
        solve(backend, theta, problem)
    assert error.value.status == "unbounded"
    assert "negative_cycles='raise'" in str(error.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_cycle_clamp_policy_warns_and_solves_clamped_costs(backend):
    problem = GraphShortestPath(cycle_graph(), 0, 3, negative_cycles="clamp")
    theta = edge_costs(cycle_graph(), {(1, 2): -2.0, (2, 1): 0.5, (1, 3): 3.0})
    with pytest.warns(NegativeCostWarning, match="clamped"):
        z = solve(backend, theta, problem)
    # clamped, 1 -> 2 -> 1 costs 0.5, so the detour is not taken: 0 -> 1 -> 3
    np.testing.assert_array_equal(z, edge_mask(cycle_graph(), [(0, 1), (1, 3)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_cycle_off_every_path_to_target_is_ignored(backend):
    # 4 -> 5 -> 4 is reachable from the source but cannot lead to the target 3
    problem = GraphShortestPath(cycle_graph(), 0, 3)
    theta = edge_costs(cycle_graph(), {(4, 5): -5.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = solve(backend, theta, problem)
    np.testing.assert_array_equal(z, edge_mask(cycle_graph(), [(0, 1), (1, 3)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_undirected_negative_edge_is_a_negative_cycle(backend):
    graph = nx.path_graph(4)  # 0 - 1 - 2 - 3
    graph.add_edge(5, 6)  # another component: its negative edge is off every path
    problem = GraphShortestPath(graph, 0, 3)
    np.testing.assert_array_equal(solve(backend, np.array([1.0, 1.0, 1.0, -4.0]), problem), [1, 1, 1, 0])
    with pytest.raises(SolverError) as error:
        solve(backend, np.array([1.0, -0.5, 1.0, 1.0]), problem)
    assert error.value.status == "unbounded"


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_cost_edges_are_edges(backend):
    graph = nx.DiGraph([(0, 1), (1, 2), (0, 2)])
    problem = GraphShortestPath(graph, 0, 2)
    z = solve(backend, edge_costs(graph, {(0, 2): 0.5}, default=0.0), problem)
    np.testing.assert_array_equal(z, edge_mask(graph, [(0, 1), (1, 2)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreachable_target_is_infeasible(backend):
    problem = GraphShortestPath(nx.DiGraph([(0, 1), (2, 1)]), 0, 2)
    with pytest.raises(SolverError) as error:
        solve(backend, np.ones(2), problem)
    assert error.value.status == "infeasible"


def test_oracle_names_the_unbounded_instance():
    problem = GraphShortestPath(cycle_graph(), 0, 3)
    theta = np.ones((5, 7))
    theta[3] = edge_costs(cycle_graph(), {(1, 2): -2.0})
    with pytest.raises(SolverError) as error:
        MAPOracle(problem, backend="scipy")(theta)
    assert error.value.index == 3
    assert error.value.status == "unbounded"
    assert "instance 3" in str(error.value)


def test_backends_agree_through_the_oracle(rng):
    graph = nx.DiGraph(nx.grid_2d_graph(5, 5))
    problem = GraphShortestPath(graph, (0, 0), (4, 4))
    theta = rng.random((8, graph.number_of_edges()))
    z_scipy = MAPOracle(problem, backend="scipy")(theta)
    z_networkx = MAPOracle(problem, backend="networkx")(theta)
    np.testing.assert_allclose((theta * z_scipy).sum(1), (theta * z_networkx).sum(1))


def test_node_labels_edge_order_and_auto_backend():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
    problem = GraphShortestPath(graph, "a", "c")
    assert resolve_solver(problem.kind).backend == "scipy"
    assert problem.shape == (3,)
    assert list(problem.graph.edges) == [(0, 1), (0, 2), (1, 2)]  # networkx's order: a->b, a->c, b->c
    np.testing.assert_array_equal(solve("scipy", np.array([1.0, 3.0, 1.0]), problem), [1, 0, 1])


def test_problem_is_plain_hashable_picklable_data():
    graph = cycle_graph()
    problem = GraphShortestPath(graph, 0, 3)
    same = GraphShortestPath(graph.copy(), 0, 3)
    assert problem == same and hash(problem) == hash(same)
    assert pickle.loads(pickle.dumps(problem)) == problem
    assert problem != GraphShortestPath(graph, 0, 4)
    assert repr(problem.graph) == "EdgeListGraph(directed, 6 nodes, 7 edges)"


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidInputError, match="target 9"):
        GraphShortestPath(cycle_graph(), 0, 9)
    with pytest.raises(InvalidInputError, match="negative_cycles"):
        GraphShortestPath(cycle_graph(), 0, 3, negative_cycles="shift")
    with pytest.raises(InvalidInputError, match="multigraph"):
        GraphShortestPath(nx.MultiDiGraph([(0, 1), (0, 1)]), 0, 1)

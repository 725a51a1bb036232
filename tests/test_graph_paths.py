"""GraphShortestPath: both adapters against brute force over simple paths, the
negative-cost cases (DAG, no negative cycle, negative cycle and its policy), errors,
and the batched scipy solver on mixed batches (its ties, its failing instance's index)."""

from __future__ import annotations

import pickle
import warnings

import networkx as nx
import numpy as np
import pytest

from imle_solvers import MAPOracle, SolverError
from imle_solvers.adapters import resolve_solver
from imle_solvers.adapters import _csgraph
from imle_solvers.adapters.graph_paths import batched_dijkstra_masks, path_structure, solve_graph_path_instance
from imle_solvers.errors import InvalidInputError
from imle_solvers.problems import EdgeListGraph, GraphShortestPath, NegativeCostWarning

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
    """One instance ``(n_edges,)`` through the backend's solver (as a batch of one if batched)."""
    solver = resolve_solver(problem.kind, backend)
    return solver.solve(theta[None], problem)[0] if solver.batched else solver.solve(theta, problem)


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
    assert problem.graph.edges.tolist() == [[0, 1], [0, 2], [1, 2]]  # networkx's order: a->b, a->c, b->c
    np.testing.assert_array_equal(solve("scipy", np.array([1.0, 3.0, 1.0]), problem), [1, 0, 1])


def test_problem_is_plain_hashable_picklable_data():
    graph = cycle_graph()
    problem = GraphShortestPath(graph, 0, 3)
    same = GraphShortestPath(graph.copy(), 0, 3)
    assert problem == same and hash(problem) == hash(same)
    assert pickle.loads(pickle.dumps(problem)) == problem
    assert problem != GraphShortestPath(graph, 0, 4)
    assert repr(problem.graph) == "EdgeListGraph(directed, 6 nodes, 7 edges)"


def test_edge_list_is_a_read_only_int64_array_that_survives_pickling():
    graph = EdgeListGraph.from_networkx(cycle_graph())
    assert graph.edges.dtype == np.int64 and graph.edges.shape == (7, 2)
    assert not graph.edges.flags.writeable
    assert [tuple(edge) for edge in graph.edges] == list(cycle_graph().edges)  # rows, in graph.edges order
    same = EdgeListGraph(nodes=graph.nodes, edges=list(cycle_graph().edges), directed=True)  # any pairs
    assert same == graph and hash(same) == hash(graph)
    assert EdgeListGraph(nodes=graph.nodes, edges=graph.edges[:-1], directed=True) != graph
    assert EdgeListGraph(nodes=graph.nodes, edges=graph.edges, directed=False) != graph
    unpickled = pickle.loads(pickle.dumps(graph))
    assert unpickled == graph and not unpickled.edges.flags.writeable
    np.testing.assert_array_equal(unpickled.edges, graph.edges)
    assert EdgeListGraph(nodes=(0, 1), edges=(), directed=True).edges.shape == (0, 2)
    with pytest.raises(InvalidInputError, match="pairs"):
        EdgeListGraph(nodes=(0, 1, 2), edges=[(0, 1, 2)], directed=True)


def test_structure_ignores_the_policy_and_builds_dag_levels_on_the_first_negative_cost():
    graph = nx.DiGraph([(0, 1), (1, 2), (0, 2), (2, 3), (7, 8)])  # a graph no other test uses
    problem = GraphShortestPath(graph, 0, 3)
    structure = path_structure(problem)
    assert path_structure(GraphShortestPath(graph, 0, 3, negative_cycles="clamp")) is structure
    solve_batch(np.ones((2, 5)), problem)
    assert "dag" not in vars(structure), "non-negative costs need no topological levels"
    solve_batch(-np.ones((2, 5)), problem)
    assert "dag" in vars(structure) and structure.dag is not None


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidInputError, match="target 9"):
        GraphShortestPath(cycle_graph(), 0, 9)
    with pytest.raises(InvalidInputError, match="negative_cycles"):
        GraphShortestPath(cycle_graph(), 0, 3, negative_cycles="shift")
    with pytest.raises(InvalidInputError, match="multigraph"):
        GraphShortestPath(nx.MultiDiGraph([(0, 1), (0, 1)]), 0, 1)


# The batched scipy solver: one Dijkstra for the instances with non-negative relevant
# costs, the per-instance methods for the others, in any mix.


def solve_batch(theta: np.ndarray, problem: GraphShortestPath) -> np.ndarray:
    return resolve_solver(problem.kind, "scipy").solve(theta, problem)


def mixed_batch(rng, graph: nx.Graph, problem: GraphShortestPath, size: int = 9) -> np.ndarray:
    """Rows of non-negative costs and rows with negative costs, interleaved: on a directed
    graph, reduced costs (no negative cycle) or, when the relevant arcs are acyclic, normal
    costs; on an undirected graph, normal costs (a negative relevant edge is a negative cycle)."""
    rows = []
    for i in range(size):
        if i % 3 == 0:
            rows.append(rng.random(graph.number_of_edges()))
        elif graph.is_directed() and path_structure(problem).dag is None:
            potential = rng.normal(scale=2.0, size=graph.number_of_nodes())
            rows.append(np.array([rng.random() + potential[u] - potential[v] for u, v in graph.edges]))
        else:
            rows.append(rng.normal(size=graph.number_of_edges()))
    return np.array(rows)


def test_scipy_backend_is_batched():
    assert resolve_solver(GraphShortestPath.kind, "scipy").batched


@pytest.mark.parametrize("directed", [True, False])
def test_batched_mixed_batches_match_brute_force_networkx_and_per_instance(directed, rng):
    negative_rows = 0
    for trial in range(12):
        graph = random_graph(rng, directed, acyclic=directed and trial % 2 == 0)
        # undirected: negative relevant edges are negative cycles, clamped
        problem = GraphShortestPath(graph, 0, 6, negative_cycles="raise" if directed else "clamp")
        structure = path_structure(problem)
        theta = mixed_batch(rng, graph, problem)
        negative = (theta[:, structure.edge_of_arc] < 0).any(axis=1)
        negative_rows += negative.sum()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            z = solve_batch(theta, problem)
        assert any(issubclass(w.category, NegativeCostWarning) for w in caught) == (not directed and negative.any())
        assert z.shape == theta.shape and z.dtype == theta.dtype
        for row, mask, clamped in zip(theta, z, negative & (not directed)):
            costs = np.maximum(row, 0.0) if clamped else row
            assert_is_path(graph, mask, 0, 6)
            assert costs @ mask == pytest.approx(brute_force_cost(problem, graph, costs))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NegativeCostWarning)
                assert costs @ mask == pytest.approx(costs @ solve("networkx", row, problem))
        for i in np.flatnonzero(negative):  # the per-instance route, unchanged
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NegativeCostWarning)
                np.testing.assert_array_equal(z[i], solve_graph_path_instance(theta[i], problem))
    assert negative_rows >= 30


@pytest.mark.parametrize("directed", [True, False])
def test_batched_nonnegative_matches_networkx_on_a_larger_graph(directed, rng):
    graph = nx.gnm_random_graph(80, 300, seed=3, directed=directed)
    source, target = 0, max(nx.descendants(graph, 0) if directed else nx.node_connected_component(graph, 0))
    problem = GraphShortestPath(graph, source, target)
    theta = rng.random((20, graph.number_of_edges()))
    z = solve_batch(theta, problem)
    for row, mask in zip(theta, z):
        assert_is_path(graph, mask, source, target)
        np.testing.assert_array_equal(mask, solve("networkx", row, problem))  # continuous costs: one path


@pytest.mark.parametrize("directed", [True, False])
def test_batched_ties_are_broken_as_for_the_instance_alone(directed, rng):
    # costs 0, 1, 2 on a grid: many cheapest paths per instance, zero-cost arcs and cycles
    grid = nx.grid_2d_graph(6, 6)
    graph = nx.DiGraph(grid) if directed else grid
    problem = GraphShortestPath(graph, (0, 0), (5, 5))
    structure = path_structure(problem)
    theta = rng.integers(0, 3, size=(40, graph.number_of_edges())).astype(float)
    z = solve_batch(theta, problem)
    for start, stop in [(0, 1), (5, 6), (3, 17), (20, 40)]:
        np.testing.assert_array_equal(solve_batch(theta[start:stop], problem), z[start:stop])
    for call_nodes in (1, 100, 10**6):  # 1, 2 and all 40 instances per Dijkstra call
        np.testing.assert_array_equal(batched_dijkstra_masks(structure, theta, call_nodes), z)
    for row, mask in zip(theta, z):
        np.testing.assert_array_equal(mask, solve_graph_path_instance(row, problem))  # as before batching
        assert_is_path(graph, mask, (0, 0), (5, 5))
        assert row @ mask == pytest.approx(row @ solve("networkx", row, problem))


def per_row_dag_mask(problem: GraphShortestPath, theta: np.ndarray) -> np.ndarray:
    """The per-instance DAG programme the batched one replaced, a node at a time: in
    topological order, each node takes the first relevant arc (in arc order) of least
    ``dist[tail] + cost``; its path read back by a Python walk."""
    structure = path_structure(problem)
    tails, heads = structure.tails.tolist(), structure.heads.tolist()
    arcs_into: dict[int, list[int]] = {}
    for arc, head in enumerate(heads):
        arcs_into.setdefault(head, []).append(arc)
    dist, arc_to = {structure.source: 0.0}, {}
    for node in nx.topological_sort(nx.DiGraph(zip(tails, heads))):
        for arc in arcs_into.get(node, []):
            candidate = dist[tails[arc]] + float(theta[structure.edge_of_arc[arc]])
            if node not in arc_to or candidate < dist[node]:
                dist[node], arc_to[node] = candidate, arc
    mask, node = np.zeros_like(theta), structure.target
    while node != structure.source:
        mask[structure.edge_of_arc[arc_to[node]]] = 1
        node = tails[arc_to[node]]
    return mask


def test_batched_dag_programme_matches_the_per_row_programme_and_brute_force(rng):
    # integer costs of both signs: many ties, which the batch must break as each row alone did
    graphs = [random_graph(rng, directed=True, acyclic=True) for _ in range(10)]
    grid_dag = nx.DiGraph([(u, v) for u, v in nx.DiGraph(nx.grid_2d_graph(4, 4)).edges if u < v])
    problems = [GraphShortestPath(graph, 0, 6) for graph in graphs] + [GraphShortestPath(grid_dag, (0, 0), (3, 3))]
    negative_rows = 0
    for graph, problem in zip([*graphs, grid_dag], problems):
        assert path_structure(problem).dag is not None
        theta = rng.integers(-2, 3, size=(16, graph.number_of_edges())).astype(float)
        theta[::5] = np.abs(theta[::5])  # non-negative rows (Dijkstra) in the mix
        negative_rows += (theta[:, path_structure(problem).edge_of_arc] < 0).any(axis=1).sum()
        z = solve_batch(theta, problem)
        for row, mask in zip(theta, z):
            assert_is_path(graph, mask, problem.source, problem.target)
            assert row @ mask == pytest.approx(brute_force_cost(problem, graph, row))
            np.testing.assert_array_equal(mask, solve_graph_path_instance(row, problem))
            if (row < 0).any():
                np.testing.assert_array_equal(mask, per_row_dag_mask(problem, row))
        np.testing.assert_array_equal(solve_batch(theta[3:9], problem), z[3:9])  # whatever else is in the batch
    assert negative_rows >= 100


def test_dag_rows_and_clamped_rows_are_walked_like_dijkstra_rows():
    # an instance of zero arcs (source == target) and float32 costs keep their shape and dtype
    graph = nx.DiGraph([(0, 1), (1, 2)])
    np.testing.assert_array_equal(solve_batch(-np.ones((3, 2), dtype=np.float32), GraphShortestPath(graph, 1, 1)), 0)
    z = solve_batch(np.array([[1.0, 1.0], [-1.0, 2.0]], dtype=np.float32), GraphShortestPath(graph, 0, 2))
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, [[1, 1], [1, 1]])


def batch_with(failures: dict[int, str]) -> np.ndarray:
    """Rows of cycle_graph() costs, 1 everywhere but for the failing rows: ``"cycle"``, a
    negative cycle on the way; ``"cut"``, an infinite cost cutting the target off;
    ``"cut-negative"``, the same in a row for Bellman-Ford (a negative arc, no negative cycle)."""
    special = {"cycle": {(1, 2): -2.0}, "cut": {(1, 3): np.inf}, "cut-negative": {(1, 3): np.inf, (2, 1): -0.5}}
    theta = np.ones((8, 7))
    for i, failure in failures.items():
        theta[i] = edge_costs(cycle_graph(), special[failure])
    return theta


@pytest.mark.parametrize(
    ("failures", "index", "status"),
    [
        ({4: "cut"}, 4, "infeasible"),
        ({5: "cycle"}, 5, "unbounded"),
        ({2: "cut", 5: "cycle"}, 2, "infeasible"),
        ({6: "cut", 3: "cycle"}, 3, "unbounded"),
        ({7: "cut", 5: "cut"}, 5, "infeasible"),
        ({3: "cut-negative", 5: "cycle"}, 3, "infeasible"),
        ({6: "cut-negative", 2: "cycle"}, 2, "unbounded"),
        ({4: "cut-negative", 6: "cut"}, 4, "infeasible"),
        ({6: "cut-negative", 1: "cut"}, 1, "infeasible"),
    ],
)
@pytest.mark.parametrize("call_nodes", [6, 12, 4096])  # 1, 2, all instances per Dijkstra call
def test_batched_error_names_the_first_failing_instance(failures, index, status, call_nodes, monkeypatch):
    monkeypatch.setattr(_csgraph, "DIJKSTRA_CALL_NODES", call_nodes)
    problem = GraphShortestPath(cycle_graph(), 0, 3)
    with pytest.raises(SolverError) as error:
        solve_batch(batch_with(failures), problem)
    assert (error.value.index, error.value.status) == (index, status)


def test_batched_unreachable_target_fails_at_the_first_instance():
    problem = GraphShortestPath(nx.DiGraph([(0, 1), (2, 1)]), 0, 2)
    with pytest.raises(SolverError) as error:
        solve_batch(np.ones((4, 2)), problem)
    assert (error.value.index, error.value.status) == (0, "infeasible")


def test_oracle_adds_the_chunk_offset_to_the_batched_index():
    problem = GraphShortestPath(cycle_graph(), 0, 3)
    theta = np.ones((10, 7))
    theta[7] = edge_costs(cycle_graph(), {(1, 2): -2.0})
    oracle = MAPOracle(problem, backend="scipy", n_jobs=2, parallel_backend="threading", chunk_size=3)
    with oracle, pytest.raises(SolverError) as error:
        oracle(theta)
    assert (error.value.index, error.value.status) == (7, "unbounded")
    assert "instance 7" in str(error.value)

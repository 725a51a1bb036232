"""Per-instance data of the shortest-path problems: each instance's own ``source``, ``target``
and ``closed`` cells (grid) or edges (graph).

Every backend is checked against the instance solved alone as a problem with those fixed
endpoints: on the grid, a reference Dijkstra on a networkx graph without the closed cells
(and, on maps full of ties, the Bellman-Ford solver's documented rule); on a graph, a
``GraphShortestPath`` with that source and target on the graph without the closed edges.
Also: unreachable targets fail with the row's index, the negative-cost policies look at
open cells only, and ``check_instance_data`` names the bad batch index. The solvers are
called directly (``resolve_solver(kind, backend).solve(theta, problem, data=...)``)."""

from __future__ import annotations

import functools
import heapq
import warnings

import networkx as nx
import numpy as np
import pytest

from imle_solvers.adapters import resolve_solver
from imle_solvers.adapters.graph_paths import solve_graph_path_instance
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.problems import GraphShortestPath, GridShortestPath, NegativeCostWarning

GRID = GridShortestPath.kind
GRAPH = GraphShortestPath.kind
# the Bellman-Ford solver's tie-breaking order of a cell's neighbours u, as u - v
ORDER = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
# (framework, jit) pairs the array-native grid solver runs in
NATIVE = [("numpy", False), ("torch", False), ("jax", False), ("jax", True)]
# the batch size and grid of most tests: JAX compiles once per shape
N, ROWS, COLS = 24, 6, 7


# -- helpers: frameworks --------------------------------------------------------------------


def to_framework(values: np.ndarray, framework: str):
    if framework == "torch":
        return pytest.importorskip("torch").from_numpy(np.ascontiguousarray(values))
    if framework == "jax":
        return pytest.importorskip("jax.numpy").asarray(values)
    return values


@functools.cache
def jitted(problem: GridShortestPath):
    """The ``bellman-ford`` solver of ``problem`` under ``jax.jit`` (one per problem: a
    fresh function would compile on every call)."""
    solve = resolve_solver(GRID, "bellman-ford").solve
    return pytest.importorskip("jax").jit(lambda theta, data: solve(theta, problem, data=data))


def bellman_ford(theta: np.ndarray, problem: GridShortestPath, data: dict, framework: str, jit: bool = False):
    """The grid's ``bellman-ford`` solver in ``framework`` (JAX in float64, optionally under
    ``jax.jit``) on numpy ``theta`` and ``data``; numpy out."""
    solve = resolve_solver(GRID, "bellman-ford").solve

    def call(theta, data):
        return solve(theta, problem, data=data)

    def run():
        values = {name: to_framework(value, framework) for name, value in data.items()}
        return np.asarray((jitted(problem) if jit else call)(to_framework(theta, framework), values))

    if framework != "jax":
        return run()
    with pytest.importorskip("jax").enable_x64(True):
        return run()


def solve_without_data(kind: str, backend: str, theta: np.ndarray, problem) -> np.ndarray:
    """A backend on the batch as called without data (``solve(theta, problem)``)."""
    solver = resolve_solver(kind, backend)
    return solver.solve(theta, problem) if solver.batched else np.stack([solver.solve(t, problem) for t in theta])


def solve_grid(backend: str, theta: np.ndarray, problem: GridShortestPath, data: dict) -> np.ndarray:
    """A host backend on the batch; networkx (per instance) one row at a time."""
    solver = resolve_solver(GRID, backend)
    if solver.batched:
        return solver.solve(theta, problem, data=data)
    return np.stack([solver.solve(t, problem, data={k: v[i] for k, v in data.items()}) for i, t in enumerate(theta)])


# -- helpers: grids -------------------------------------------------------------------------


def moves(neighbourhood: int) -> tuple[tuple[int, int], ...]:
    return ORDER[:neighbourhood]


def neighbours(cell: tuple[int, int], shape: tuple[int, int], neighbourhood: int):
    for dr, dc in moves(neighbourhood):
        r, c = cell[0] + dr, cell[1] + dc
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            yield r, c


def reference_cost(costs: np.ndarray, source, target, closed: np.ndarray, neighbourhood: int) -> float | None:
    """The cheapest path's cost (both ends counted) by networkx's Dijkstra on the grid graph
    without the closed cells; None if the target cannot be reached."""
    graph = nx.DiGraph()
    open_cells = [tuple(map(int, cell)) for cell in np.argwhere(~closed)]
    graph.add_nodes_from(open_cells)
    for u in open_cells:
        arcs = [(u, v, {"w": float(costs[v])}) for v in neighbours(u, costs.shape, neighbourhood) if not closed[v]]
        graph.add_edges_from(arcs)
    try:
        return float(costs[tuple(source)]) + nx.dijkstra_path_length(graph, tuple(source), tuple(target), weight="w")
    except nx.NetworkXNoPath:
        return None


def assert_grid_path(mask: np.ndarray, source, target, closed: np.ndarray, neighbourhood: int) -> None:
    """``mask`` holds ``source`` and ``target``, no closed cell, and its cells are connected by moves."""
    assert set(np.unique(mask)) <= {0.0, 1.0}
    cells = {tuple(map(int, cell)) for cell in np.argwhere(mask == 1)}
    assert tuple(source) in cells and tuple(target) in cells
    assert not closed[mask == 1].any(), "the path enters a closed cell"
    seen, stack = {tuple(source)}, [tuple(source)]
    while stack:
        for v in neighbours(stack.pop(), mask.shape, neighbourhood):
            if v in cells and v not in seen:
                seen.add(v)
                stack.append(v)
    assert seen == cells, "the path's cells are not connected"


def random_grid_batch(rng: np.random.Generator, n: int, rows: int, cols: int, density: float = 0.25):
    """Costs ``(n, rows, cols)`` and data: random sources and targets, and closed cells
    (never a source or a target)."""
    costs = rng.uniform(0.0, 10.0, size=(n, rows, cols))
    source = np.stack([rng.integers(0, rows, n), rng.integers(0, cols, n)], axis=1)
    target = np.stack([rng.integers(0, rows, n), rng.integers(0, cols, n)], axis=1)
    closed = rng.random((n, rows, cols)) < density
    closed[np.arange(n), source[:, 0], source[:, 1]] = False
    closed[np.arange(n), target[:, 0], target[:, 1]] = False
    return costs, {"source": source, "target": target, "closed": closed}


def rows_of(data: dict, keep) -> dict:
    return {name: value[keep] for name, value in data.items()}


def feasible_batch(rng, n: int, rows: int, cols: int, neighbourhood: int):
    """A random batch of ``n`` instances whose targets can be reached (a row whose closed cells
    cut its target off has them all opened: JAX compiles once per batch size), with their
    reference costs ``(n,)``."""
    costs, data = random_grid_batch(rng, n, rows, cols)
    expected = [reference_cost(c, s, t, x, neighbourhood) for c, s, t, x in zip(costs, *data.values())]
    cut = np.array([cost is None for cost in expected])
    assert cut.sum() <= n // 2
    data["closed"][cut] = False
    for i in np.flatnonzero(cut):
        expected[i] = reference_cost(costs[i], data["source"][i], data["target"][i], data["closed"][i], neighbourhood)
    return costs, data, np.array(expected)


def cut_off(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source, target and a closed mask that walls the target (the bottom-right cell) in."""
    closed = np.zeros((rows, cols), dtype=bool)
    closed[-2, -2:] = closed[-2:, -2] = True
    return np.array([0, 0]), np.array([rows - 1, cols - 1]), closed


# -- the grid: fields and checks ------------------------------------------------------------


def test_grid_declares_its_fields():
    fields = GridShortestPath(5, 7).instance_fields
    assert {name: (field.shape, field.kind) for name, field in fields.items()} == {
        "source": ((2,), "int"),
        "target": ((2,), "int"),
        "closed": ((5, 7), "bool"),
    }


def closing(cell: tuple[int, int], first: int) -> np.ndarray:
    """``(4, 5, 5)`` closed masks that close ``cell`` in rows ``first`` and after."""
    closed = np.zeros((4, 5, 5), dtype=bool)
    closed[first:, cell[0], cell[1]] = True
    return closed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": [[0, 0], [1, 1], [2, 2], [7, 2]]}, r"source: batch index 3 is \(7, 2\), outside the 5x5 grid"),
        ({"target": [[4, 4], [0, -1], [9, 9], [0, 0]]}, r"target: batch index 1 is \(0, -1\), outside the 5x5 grid"),
        ({"closed": closing((0, 0), 2)}, r"closed: batch index 2 closes its source cell \(0, 0\)"),
        ({"closed": closing((4, 4), 1)}, r"closed: batch index 1 closes its target cell \(4, 4\)"),
        (
            {"source": [[1, 2]] * 4, "target": [[3, 3]] * 4, "closed": closing((3, 3), 3)},
            r"closed: batch index 3 closes its target cell \(3, 3\)",
        ),
    ],
)
def test_grid_check_instance_data_names_the_first_bad_batch_index(data, message):
    problem = GridShortestPath(5, 5)
    with pytest.raises(InvalidInputError, match=message):
        problem.check_instance_data({name: np.asarray(value) for name, value in data.items()})


def test_grid_check_instance_data_accepts_valid_data(rng):
    problem = GridShortestPath(ROWS, COLS)
    _, data = random_grid_batch(rng, N, ROWS, COLS)
    problem.check_instance_data(data)
    problem.check_instance_data({"closed": np.zeros((3, ROWS, COLS), dtype=bool)})


# -- the grid: every backend against the reference ------------------------------------------


@pytest.mark.parametrize("backend", ["scipy", "networkx"])
@pytest.mark.parametrize(("rows", "cols", "neighbourhood"), [(6, 7, 8), (7, 5, 4), (1, 9, 8)])
def test_grid_host_backends_match_the_reference(backend, rows, cols, neighbourhood, rng):
    problem = GridShortestPath(rows, cols, neighbourhood)
    costs, data, expected = feasible_batch(rng, N, rows, cols, neighbourhood)
    z = solve_grid(backend, costs, problem, data)
    assert z.shape == costs.shape and z.dtype == costs.dtype
    np.testing.assert_allclose(problem.path_cost(costs, z), expected, rtol=1e-12)
    for mask, source, target, closed in zip(z, *data.values()):
        assert_grid_path(mask, source, target, closed, neighbourhood)


@pytest.mark.parametrize(("framework", "jit"), NATIVE)
@pytest.mark.parametrize(("rows", "cols", "neighbourhood"), [(6, 7, 8), (7, 5, 4)])
def test_grid_bellman_ford_matches_the_reference_and_scipy(framework, jit, rows, cols, neighbourhood, rng):
    problem = GridShortestPath(rows, cols, neighbourhood)
    costs, data, expected = feasible_batch(rng, N, rows, cols, neighbourhood)
    z = bellman_ford(costs, problem, data, framework, jit)
    np.testing.assert_allclose(problem.path_cost(costs, z), expected, rtol=1e-12)
    # continuous costs: one cheapest path, the same in every backend
    np.testing.assert_array_equal(z, solve_grid("scipy", costs, problem, data))
    for mask, source, target, closed in zip(z, *data.values()):
        assert_grid_path(mask, source, target, closed, neighbourhood)


@pytest.mark.parametrize("fields", [("source",), ("target",), ("closed",), ("source", "target")])
def test_grid_some_fields_only_the_others_default(fields, rng):
    """A missing field is the problem's own: the top-left source, the bottom-right target,
    nothing closed."""
    problem = GridShortestPath(ROWS, COLS)
    costs, data = random_grid_batch(rng, N, ROWS, COLS, density=0.15)
    full = {
        "source": np.zeros((N, 2), dtype=np.int64),
        "target": np.tile([ROWS - 1, COLS - 1], (N, 1)),
        "closed": np.zeros((N, ROWS, COLS), dtype=bool),
    }
    full.update({name: data[name] for name in fields})
    full["closed"][:, 0, 0] = full["closed"][:, -1, -1] = False  # the defaults' cells stay open
    for c, source, target, closed in zip(costs, *full.values()):
        if reference_cost(c, source, target, closed, 8) is None:
            closed[:] = False  # (a view: the row of data["closed"] too)
    data = {name: full[name] for name in fields}
    expected = solve_grid("scipy", costs, problem, full)
    for backend in ("scipy", "networkx"):
        np.testing.assert_array_equal(solve_grid(backend, costs, problem, data), expected)
    for framework in ("numpy", "torch", "jax"):
        np.testing.assert_array_equal(bellman_ford(costs, problem, data, framework), expected)


def test_grid_default_data_is_the_problem_without_data(rng):
    problem = GridShortestPath(ROWS, COLS)
    costs = rng.integers(0, 3, size=(N, ROWS, COLS)).astype(float)  # ties: the same paths, not just costs
    defaults = {
        "source": np.zeros((N, 2), dtype=np.int64),
        "target": np.tile([ROWS - 1, COLS - 1], (N, 1)),
        "closed": np.zeros((N, ROWS, COLS), dtype=bool),
    }
    for backend in ("scipy", "networkx"):
        without = solve_without_data(GRID, backend, costs, problem)
        np.testing.assert_array_equal(solve_grid(backend, costs, problem, defaults), without)
    without = resolve_solver(GRID, "bellman-ford").solve(costs, problem)
    for framework, jit in NATIVE:
        np.testing.assert_array_equal(bellman_ford(costs, problem, defaults, framework, jit), without)


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_grid_bellman_ford_takes_any_integer_dtype_and_float32(framework, rng):
    """Data as int32/uint8 (JAX without x64 makes every int int32); costs in float32."""
    problem = GridShortestPath(ROWS, COLS)
    costs, data, _ = feasible_batch(rng, N, ROWS, COLS, 8)
    costs = costs.astype(np.float32)
    data = {
        "source": data["source"].astype(np.int32),
        "target": data["target"].astype(np.uint8),
        "closed": data["closed"],
    }
    solve = resolve_solver(GRID, "bellman-ford").solve
    z = solve(to_framework(costs, framework), problem, data={k: to_framework(v, framework) for k, v in data.items()})
    assert str(z.dtype).endswith("float32")
    expected = problem.path_cost(costs.astype(np.float64), solve_grid("scipy", costs, problem, data))
    np.testing.assert_allclose(problem.path_cost(costs.astype(np.float64), np.asarray(z)), expected, rtol=1e-5)


def test_grid_bellman_ford_under_jax_vmap(rng):
    jax = pytest.importorskip("jax")
    problem = GridShortestPath(ROWS, COLS)
    costs, data, _ = feasible_batch(rng, N, ROWS, COLS, 8)
    solve = resolve_solver(GRID, "bellman-ford").solve
    with jax.enable_x64(True):
        grouped = {k: jax.numpy.asarray(v.reshape(3, N // 3, *v.shape[1:])) for k, v in data.items()}
        grouped_costs = jax.numpy.asarray(costs.reshape(3, N // 3, ROWS, COLS))
        z = jax.vmap(lambda t, d: solve(t, problem, data=d))(grouped_costs, grouped)
    np.testing.assert_array_equal(np.asarray(z).reshape(costs.shape), solve_grid("scipy", costs, problem, data))


# -- the grid: ties -------------------------------------------------------------------------


def lexicographic_dijkstra(costs: np.ndarray, source, closed: np.ndarray, neighbourhood: int):
    """For every open cell: the optimal cost from ``source`` (both ends counted) and the fewest
    moves among optimal paths (Dijkstra on ``(cost, moves)``, exact for integer costs);
    ``(inf, 0)`` where not reached."""
    source = tuple(map(int, source))
    best = {source: (float(costs[source]), 0)}
    heap, done = [(float(costs[source]), 0, source)], set()
    while heap:
        d, hops, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v in neighbours(u, costs.shape, neighbourhood):
            if not closed[v] and v not in done:
                candidate = (d + float(costs[v]), hops + 1)
                if candidate < best.get(v, (np.inf, 0)):
                    best[v] = candidate
                    heapq.heappush(heap, (*candidate, v))
    dist, hops = np.full(costs.shape, np.inf), np.zeros(costs.shape, dtype=int)
    for cell, (d, h) in best.items():
        dist[cell], hops[cell] = d, h
    return dist, hops


def rule_path(costs: np.ndarray, source, target, closed: np.ndarray, neighbourhood: int) -> np.ndarray:
    """The documented rule's mask: from the target back, each cell's predecessor is, among its
    neighbours of least distance, the one of fewest moves, then the first in ORDER."""
    dist, hops = lexicographic_dijkstra(costs, source, closed, neighbourhood)
    mask, cell = np.zeros(costs.shape), tuple(map(int, target))
    mask[cell] = 1
    while cell != tuple(map(int, source)):
        candidates = list(neighbours(cell, costs.shape, neighbourhood))
        least = min(dist[u] for u in candidates)
        cell = min((u for u in candidates if dist[u] == least), key=lambda u: hops[u])  # min keeps the first
        assert mask[cell] == 0, "the rule's predecessors form a cycle"
        mask[cell] = 1
    return mask


@pytest.mark.parametrize(("framework", "jit"), NATIVE)
@pytest.mark.parametrize("neighbourhood", [8, 4])
def test_grid_ties_follow_the_documented_rule(framework, jit, neighbourhood):
    rng = np.random.default_rng(neighbourhood)
    problem = GridShortestPath(ROWS, COLS, neighbourhood)
    _, data = random_grid_batch(rng, N, ROWS, COLS, density=0.2)
    costs = rng.choice([0.0, 1.0, 2.0], p=[0.5, 0.3, 0.2], size=(N, ROWS, COLS))
    costs[:4] = 1.0  # all-equal maps
    for c, source, target, closed in zip(costs, *data.values()):
        if not np.isfinite(lexicographic_dijkstra(c, source, closed, neighbourhood)[0][tuple(target)]):
            closed[:] = False  # cut off: opened
    z = bellman_ford(costs, problem, data, framework, jit)
    for i, (c, source, target, closed) in enumerate(zip(costs, *data.values())):
        np.testing.assert_array_equal(z[i], rule_path(c, source, target, closed, neighbourhood), err_msg=f"map {i}")
    optimal = problem.path_cost(costs, z)
    for backend in ("scipy", "networkx"):  # their own tie-breaking, the same cost
        np.testing.assert_array_equal(problem.path_cost(costs, solve_grid(backend, costs, problem, data)), optimal)


def test_grid_source_equal_to_target_is_a_path_of_one_cell(rng):
    problem = GridShortestPath(ROWS, COLS)
    costs = rng.uniform(0, 1, size=(N, ROWS, COLS))
    cells = np.stack([rng.integers(0, ROWS, N), rng.integers(0, COLS, N)], axis=1)
    data = {"source": cells, "target": cells.copy()}
    expected = np.zeros_like(costs)
    expected[np.arange(N), cells[:, 0], cells[:, 1]] = 1
    for backend in ("scipy", "networkx"):
        np.testing.assert_array_equal(solve_grid(backend, costs, problem, data), expected)
    for framework, jit in NATIVE:
        np.testing.assert_array_equal(bellman_ford(costs, problem, data, framework, jit), expected)


# -- the grid: failures and the negative-cost policy ----------------------------------------


def batch_with_cut_off_rows(rng, cut: list[int], rows: int = ROWS, cols: int = COLS, n: int = N):
    costs = rng.uniform(0, 10, size=(n, rows, cols))
    data = {
        "source": np.zeros((n, 2), dtype=np.int64),
        "target": np.tile([rows - 1, cols - 1], (n, 1)),
        "closed": np.zeros((n, rows, cols), dtype=bool),
    }
    for i in cut:
        data["source"][i], data["target"][i], data["closed"][i] = cut_off(rows, cols)
    return costs, data


@pytest.mark.parametrize("backend", ["scipy", "networkx"])
def test_grid_unreachable_target_is_infeasible_host(backend, rng):
    problem = GridShortestPath(ROWS, COLS)
    costs, data = batch_with_cut_off_rows(rng, cut=[3, 6])
    solver = resolve_solver(GRID, backend)
    if solver.batched:
        with pytest.raises(SolverError, match=r"target cell \(5, 6\) cannot be reached") as caught:
            solver.solve(costs, problem, data=data)
        assert (caught.value.index, caught.value.status) == (3, "infeasible")
    else:
        with pytest.raises(SolverError, match="cannot be reached") as caught:
            solver.solve(costs[3], problem, data={k: v[3] for k, v in data.items()})
        assert caught.value.status == "infeasible"


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_grid_unreachable_target_is_infeasible_bellman_ford(framework, rng):
    problem = GridShortestPath(ROWS, COLS)
    costs, data = batch_with_cut_off_rows(rng, cut=[3, 6])
    with pytest.raises(SolverError, match=r"instance 3 \(grid-shortest-path, backend 'bellman-ford'\)") as caught:
        bellman_ford(costs, problem, data, framework)
    assert (caught.value.index, caught.value.status) == (3, "infeasible")


def test_grid_unreachable_target_under_jit_raises_when_run_and_the_check_is_on_the_device(rng):
    jax = pytest.importorskip("jax")
    problem = GridShortestPath(ROWS, COLS)
    solve = resolve_solver(GRID, "bellman-ford").solve
    costs, data = batch_with_cut_off_rows(rng, cut=[3, 6])
    solve_jitted = jax.jit(lambda t, d: solve(t, problem, data=d))
    as_jax = {k: jax.numpy.asarray(v) for k, v in data.items()}
    with pytest.raises(Exception, match=r"instance 3 \(grid-shortest-path"):
        solve_jitted(jax.numpy.asarray(costs), as_jax).block_until_ready()
    fine = rows_of(data, [0, 1, 2, 4])
    z = solve_jitted(jax.numpy.asarray(costs[[0, 1, 2, 4]]), {k: jax.numpy.asarray(v) for k, v in fine.items()})
    np.testing.assert_array_equal(z, solve_grid("scipy", costs[[0, 1, 2, 4]], problem, fine))
    closed = str(jax.make_jaxpr(solve_jitted)(jax.numpy.asarray(costs), as_jax))
    assert "pure_callback" not in closed and "debug_callback" in closed  # called only when a check fails
    ends = {k: v for k, v in as_jax.items() if k != "closed"}
    assert "callback" not in str(jax.make_jaxpr(solve_jitted)(jax.numpy.asarray(costs), ends))  # nothing can be cut off


def negative_in(costs: np.ndarray, closed: np.ndarray, cells: list[tuple[int, int, int]]) -> np.ndarray:
    costs = costs.copy()
    for cell in cells:
        costs[cell] = -2.5
    return costs


def every_backend(costs: np.ndarray, problem: GridShortestPath, data: dict) -> list[np.ndarray]:
    return [solve_grid("scipy", costs, problem, data), solve_grid("networkx", costs, problem, data)] + [
        bellman_ford(costs, problem, data, framework) for framework in ("numpy", "torch", "jax")
    ]


def test_grid_negative_costs_in_closed_cells_are_ignored(rng):
    costs, data = batch_with_cut_off_rows(rng, cut=[])
    data["closed"][2, 1, 1] = data["closed"][5, 3, 2] = True
    costs = negative_in(costs, data["closed"], [(2, 1, 1), (5, 3, 2)])
    for policy in ("raise", "clamp"):
        problem = GridShortestPath(ROWS, COLS, negative_costs=policy)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither warns nor raises
            results = every_backend(costs, problem, data)
        for z in results:
            np.testing.assert_array_equal(z, results[0])
            assert not z[data["closed"]].any()


def test_grid_negative_costs_in_open_cells_follow_the_policy(rng):
    costs, data = batch_with_cut_off_rows(rng, cut=[])
    data["closed"][1, 2, 2] = True
    costs = negative_in(costs, data["closed"], [(1, 2, 2), (4, 2, 3), (6, 0, 1)])
    raising = GridShortestPath(ROWS, COLS, negative_costs="raise")
    for backend in ("scipy", "bellman-ford"):
        with pytest.raises(SolverError) as caught:
            resolve_solver(GRID, backend).solve(costs, raising, data=data)
        assert (caught.value.index, caught.value.status) == (4, "negative-costs")
    clamping = GridShortestPath(ROWS, COLS)
    with pytest.warns(NegativeCostWarning):
        expected = solve_grid("scipy", costs, clamping, data)
    np.testing.assert_array_equal(expected, solve_grid("scipy", np.maximum(costs, 0), clamping, data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeCostWarning)
        for z in every_backend(costs, clamping, data):
            np.testing.assert_array_equal(z, expected)


# -- the graph: fields, labels and checks ---------------------------------------------------


def test_graph_declares_its_fields_and_maps_labels_to_positions():
    graph = nx.DiGraph(nx.grid_2d_graph(3, 4))
    problem = GraphShortestPath(graph, (0, 0), (2, 3))
    fields = problem.instance_fields
    assert {name: (field.shape, field.kind) for name, field in fields.items()} == {
        "source": ((), "int"),
        "target": ((), "int"),
        "closed": ((graph.number_of_edges(),), "bool"),
    }
    labels = [(2, 3), (0, 0), (1, 2)]
    positions = problem.node_positions(labels)
    assert positions.dtype == np.int64 and positions.tolist() == [list(graph.nodes).index(label) for label in labels]
    assert problem.node_positions([]).shape == (0,)
    with pytest.raises(InvalidInputError, match=r"node \(5, 5\) is not a node"):
        problem.node_positions([(0, 0), (5, 5)])
    with pytest.raises(InvalidInputError, match="is not a node"):
        problem.node_positions([[0, 0]])  # unhashable


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": [0, 3, 12, 1]}, "source: batch index 2 is 12, not a node position"),
        ({"target": [0, -1, 2, 40]}, "target: batch index 1 is -1, not a node position"),
        ({"source": [1, 2, 3, 4], "target": [5, 6, 7, 99]}, "target: batch index 3 is 99"),
    ],
)
def test_graph_check_instance_data_names_the_first_bad_batch_index(data, message):
    problem = GraphShortestPath(nx.DiGraph(nx.grid_2d_graph(3, 4)), (0, 0), (2, 3))
    with pytest.raises(InvalidInputError, match=message):
        problem.check_instance_data({name: np.asarray(value) for name, value in data.items()})
    closed = np.ones((12, problem.graph.n_edges), dtype=bool)
    problem.check_instance_data({"source": np.arange(12), "target": np.arange(12)[::-1], "closed": closed})


# -- the graph: against the reduced problem -------------------------------------------------


def random_graph(rng: np.random.Generator, directed: bool, acyclic: bool = False) -> nx.Graph:
    graph = nx.gnp_random_graph(9, 0.4, seed=int(rng.integers(1 << 30)), directed=directed)
    if acyclic:
        graph = nx.DiGraph([(u, v) for u, v in graph.edges if u < v])
        graph.add_nodes_from(range(9))
    return graph


def reduced_problem(problem: GraphShortestPath, source: int, target: int, closed: np.ndarray) -> GraphShortestPath:
    """The instance as a problem of its own: its source and target on the graph without its
    closed edges (same node order, the other edges in the same order)."""
    graph = (nx.DiGraph if problem.graph.directed else nx.Graph)()
    graph.add_nodes_from(problem.graph.nodes)
    nodes = problem.graph.nodes
    graph.add_edges_from((nodes[u], nodes[v]) for (u, v), shut in zip(problem.graph.edges, closed) if not shut)
    reduced = GraphShortestPath(graph, nodes[source], nodes[target], negative_cycles=problem.negative_cycles)
    # theta[~closed] must be the reduced problem's theta: the open edges, in the same order
    np.testing.assert_array_equal(reduced.graph.edges, problem.graph.edges[~closed])
    return reduced


def solve_reduced(problem: GraphShortestPath, theta: np.ndarray, source: int, target: int, closed: np.ndarray):
    """The instance solved alone as its reduced problem (scipy's per-instance route), as a
    mask over all of ``problem``'s edges; the SolverError's status if it fails."""
    try:
        z = solve_graph_path_instance(theta[~closed], reduced_problem(problem, source, target, closed))
    except SolverError as error:
        return error.status
    full = np.zeros_like(theta)
    full[~closed] = z
    return full


def graph_costs(rng, graph: nx.Graph, n: int, kind: str) -> np.ndarray:
    """``(n, n_edges)`` costs: ``"positive"``; ``"normal"`` (negative ones too); ``"reduced"``:
    ``w(u, v) + h(u) - h(v)`` with ``w >= 0``, negative arcs but no negative cycle; ``"mixed"``:
    rows of positive and normal costs; ``"ties"``: integers 0, 1, 2."""
    m = graph.number_of_edges()
    if kind == "positive":
        return rng.random((n, m))
    if kind == "normal":
        return rng.normal(size=(n, m))
    if kind == "ties":
        return rng.integers(0, 3, size=(n, m)).astype(float)
    if kind == "mixed":
        return np.where(np.arange(n)[:, None] % 2 == 0, rng.random((n, m)), rng.normal(size=(n, m)))
    potential = rng.normal(scale=2.0, size=(n, graph.number_of_nodes()))
    return np.stack([[rng.random() + h[u] - h[v] for u, v in graph.edges] for h in potential])


def random_graph_data(rng, problem: GraphShortestPath, n: int, density: float = 0.2) -> dict:
    n_nodes = problem.graph.n_nodes
    return {
        "source": rng.integers(0, n_nodes, n),
        "target": rng.integers(0, n_nodes, n),
        "closed": rng.random((n, problem.graph.n_edges)) < density,
    }


def solve_graph(backend: str, theta: np.ndarray, problem: GraphShortestPath, data: dict) -> np.ndarray:
    solver = resolve_solver(GRAPH, backend)
    if solver.batched:
        return solver.solve(theta, problem, data=data)
    return np.stack([solver.solve(t, problem, data={k: v[i] for k, v in data.items()}) for i, t in enumerate(theta)])


GRAPH_CASES = [  # (directed, acyclic, costs, negative-cycle policy)
    (True, False, "positive", "raise"),
    (False, False, "positive", "raise"),
    (True, True, "normal", "raise"),  # the DAG programme
    (True, False, "reduced", "raise"),  # Bellman-Ford
    (False, False, "mixed", "clamp"),  # an undirected negative edge is a negative cycle: clamped
]


@pytest.mark.parametrize("backend", ["scipy", "networkx"])
@pytest.mark.parametrize(("directed", "acyclic", "costs", "policy"), GRAPH_CASES)
def test_graph_backends_match_the_reduced_problem(backend, directed, acyclic, costs, policy, rng):
    solved = 0
    for _ in range(10):
        graph = random_graph(rng, directed, acyclic)
        problem = GraphShortestPath(graph, 0, 8, negative_cycles=policy)
        theta = graph_costs(rng, graph, 16, costs)
        data = random_graph_data(rng, problem, 16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NegativeCostWarning)
            expected = [solve_reduced(problem, t, s, g, c) for t, s, g, c in zip(theta, *data.values())]
            keep = [not isinstance(e, str) for e in expected]
            z = solve_graph(backend, theta[keep], problem, rows_of(data, keep))
        solved += len(z)
        assert z.shape == theta[keep].shape and z.dtype == theta.dtype
        expected = np.array([e for e in expected if not isinstance(e, str)]).reshape(z.shape)
        if policy == "clamp" and backend == "networkx":  # clamped costs tie at 0: compare costs
            clamped = np.maximum(theta[keep], 0.0)
            np.testing.assert_allclose((clamped * z).sum(1), (clamped * expected).sum(1), atol=1e-12)
        else:  # continuous costs: one cheapest path
            np.testing.assert_array_equal(z, expected)
    assert solved >= 40


@pytest.mark.parametrize("directed", [True, False])
def test_graph_ties_are_broken_as_the_reduced_problem_and_as_alone(directed, rng):
    grid = nx.grid_2d_graph(6, 6)
    graph = nx.DiGraph(grid) if directed else grid
    problem = GraphShortestPath(graph, (0, 0), (5, 5))
    theta = graph_costs(rng, graph, 40, "ties")
    data = random_graph_data(rng, problem, 40, density=0.15)
    expected = [solve_reduced(problem, t, s, g, c) for t, s, g, c in zip(theta, *data.values())]
    keep = np.array([not isinstance(e, str) for e in expected])
    theta, data = theta[keep], rows_of(data, keep)
    expected = np.array([e for e in expected if not isinstance(e, str)])
    z = solve_graph("scipy", theta, problem, data)
    np.testing.assert_array_equal(z, expected)
    for start, stop in [(0, 1), (5, 6), (3, 17)]:  # whatever else is in the batch
        part = solve_graph("scipy", theta[start:stop], problem, rows_of(data, slice(start, stop)))
        np.testing.assert_array_equal(part, z[start:stop])
    np.testing.assert_allclose((theta * solve_graph("networkx", theta, problem, data)).sum(1), (theta * z).sum(1))


def test_graph_negative_rows_share_data_groups_and_dijkstra_rows_any_data(rng):
    """Rows with negative costs are grouped by their data (one structure, the DAG programme
    for the group at once); rows with the same data in any order give the same paths."""
    graph = random_graph(rng, directed=True, acyclic=True)
    problem = GraphShortestPath(graph, 0, 8)
    base = random_graph_data(rng, problem, 4)
    pick = rng.integers(0, 4, 24)
    data = {name: value[pick] for name, value in base.items()}
    theta = graph_costs(rng, graph, 24, "mixed")
    expected = [solve_reduced(problem, t, s, g, c) for t, s, g, c in zip(theta, *data.values())]
    keep = np.array([not isinstance(e, str) for e in expected])
    z = solve_graph("scipy", theta[keep], problem, rows_of(data, keep))
    np.testing.assert_array_equal(z, np.array([e for e in expected if not isinstance(e, str)]).reshape(z.shape))
    order = rng.permutation(int(keep.sum()))
    shuffled = solve_graph("scipy", theta[keep][order], problem, {k: v[keep][order] for k, v in data.items()})
    np.testing.assert_array_equal(shuffled, z[order])


@pytest.mark.parametrize("backend", ["scipy", "networkx"])
def test_graph_default_data_is_the_problem_without_data(backend, rng):
    graph = nx.DiGraph(nx.grid_2d_graph(5, 5))
    problem = GraphShortestPath(graph, (0, 0), (4, 4))
    theta = graph_costs(rng, graph, 12, "ties")
    source, target = problem.node_positions([(0, 0), (4, 4)])
    closed = np.zeros((12, problem.graph.n_edges), dtype=bool)
    defaults = {"source": np.full(12, source), "target": np.full(12, target), "closed": closed}
    without = solve_without_data(GRAPH, backend, theta, problem)
    np.testing.assert_array_equal(solve_graph(backend, theta, problem, defaults), without)
    only_closed = {"closed": defaults["closed"]}
    np.testing.assert_array_equal(solve_graph(backend, theta, problem, only_closed), without)


def cycle_graph() -> nx.DiGraph:
    """0 -> 1 -> 3 with a cycle 1 -> 2 -> 1 on the way; a dead end 3 -> 4 -> 5 -> 4 after it."""
    return nx.DiGraph([(0, 1), (1, 2), (2, 1), (1, 3), (3, 4), (4, 5), (5, 4)])


def failing_batch(failures: dict[int, str]) -> tuple[np.ndarray, dict]:
    """Rows of cycle_graph() from 0 to 3, costs 1; failing rows: ``"cut"`` closes 1 -> 3;
    ``"cycle"``: 1 -> 2 -> 1 costs -1; ``"cut-cycle"``: both; ``"backwards"``: from 3 to 0."""
    edges = list(cycle_graph().edges)
    theta = np.ones((8, 7))
    data = {"source": np.zeros(8, dtype=np.int64), "target": np.full(8, 3), "closed": np.zeros((8, 7), dtype=bool)}
    for i, failure in failures.items():
        if "cut" in failure:
            data["closed"][i, edges.index((1, 3))] = True
        if "cycle" in failure:
            theta[i, edges.index((1, 2))] = -2.0
        if failure == "backwards":
            data["source"][i], data["target"][i] = 3, 0
    return theta, data


@pytest.mark.parametrize(
    ("failures", "index", "status"),
    [
        ({4: "cut"}, 4, "infeasible"),
        ({5: "cycle"}, 5, "unbounded"),
        ({2: "cut", 5: "cycle"}, 2, "infeasible"),
        ({6: "cut", 3: "cycle"}, 3, "unbounded"),
        ({3: "cut-cycle", 5: "cycle"}, 3, "infeasible"),  # cut off: the negative cycle no longer leads anywhere
        ({1: "backwards", 0: "cycle"}, 0, "unbounded"),
        ({1: "backwards", 6: "cycle"}, 1, "infeasible"),
    ],
)
def test_graph_failures_name_the_first_failing_row(failures, index, status):
    problem = GraphShortestPath(cycle_graph(), 0, 3)
    theta, data = failing_batch(failures)
    with pytest.raises(SolverError) as caught:
        solve_graph("scipy", theta, problem, data)
    assert (caught.value.index, caught.value.status) == (index, status)
    solver = resolve_solver(GRAPH, "networkx")
    with pytest.raises(SolverError) as caught:
        solver.solve(theta[index], problem, data={k: v[index] for k, v in data.items()})
    assert caught.value.status == status


def test_graph_closing_a_negative_cycle_makes_the_instance_bounded():
    problem = GraphShortestPath(cycle_graph(), 0, 3)
    theta, data = failing_batch({2: "cycle", 5: "cycle"})
    data["closed"][5, list(cycle_graph().edges).index((2, 1))] = True
    with pytest.raises(SolverError) as caught:
        solve_graph("scipy", theta, problem, data)
    assert caught.value.index == 2
    z = solve_graph("scipy", theta[3:], problem, rows_of(data, slice(3, None)))
    edges = list(cycle_graph().edges)
    path = np.zeros(7)
    path[[edges.index((0, 1)), edges.index((1, 3))]] = 1
    np.testing.assert_array_equal(z, np.tile(path, (5, 1)))  # row 5 too: 1 -> 2 leads nowhere now

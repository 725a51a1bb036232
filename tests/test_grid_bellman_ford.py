"""The array-native Bellman-Ford grid solver: it agrees with scipy's Dijkstra in numpy,
torch and JAX (eager, jit, vmap), follows its documented tie-breaking rule on maps full
of ties (checked against an independent lexicographic Dijkstra), applies the
negative-cost policy, keeps dtype/device/shape, and is what the oracle picks under jit."""

from __future__ import annotations

import heapq
import warnings

import numpy as np
import pytest

from imle_solvers import GridShortestPath, MAPOracle
from imle_solvers.adapters.grid_bellman_ford import shortest_path_tree, solve_grid_bellman_ford
from imle_solvers.errors import SolverError
from imle_solvers.problems import NegativeCostWarning

FRAMEWORKS = ["numpy", "torch", "jax"]
GRID_5x6 = GridShortestPath(5, 6)
# (rows, cols, neighbourhood); JAX compiles each shape, so it runs a subset
SHAPES = [(1, 1, 8), (1, 9, 8), (9, 1, 4), (6, 11, 8), (6, 11, 4), (16, 16, 8), (16, 16, 4)]
JAX_SHAPES = [(1, 1, 8), (1, 9, 4), (6, 11, 8), (6, 11, 4)]
# The documented tie-breaking order of a cell's neighbours u, as u - v = (d_row, d_col): up,
# down, left, right, up-left, up-right, down-left, down-right (4 neighbours: the first four).
ORDER = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


# -- helpers --------------------------------------------------------------------------------


def to_framework(values: np.ndarray, framework: str):
    """``values`` as an array of ``framework`` (same dtype; JAX keeps float64 only under x64)."""
    if framework == "torch":
        torch = pytest.importorskip("torch")
        return torch.from_numpy(values)
    if framework == "jax":
        jnp = pytest.importorskip("jax.numpy")
        return jnp.asarray(values)
    return values


def solve_in(framework: str, theta: np.ndarray, problem: GridShortestPath) -> np.ndarray:
    """Solve the numpy batch ``theta`` in ``framework`` (float64 JAX under x64); numpy out."""
    if framework == "jax":
        jax = pytest.importorskip("jax")
        with jax.enable_x64(True):
            return np.asarray(solve_grid_bellman_ford(to_framework(theta, "jax"), problem))
    return np.asarray(solve_grid_bellman_ford(to_framework(theta, framework), problem))


def scipy_masks(theta: np.ndarray, problem: GridShortestPath) -> np.ndarray:
    return MAPOracle(problem, backend="scipy")(theta)


def random_maps(rng: np.random.Generator, n: int, rows: int, cols: int) -> np.ndarray:
    return rng.uniform(0.0, 10.0, size=(n, rows, cols))


def moves(neighbourhood: int) -> tuple[tuple[int, int], ...]:
    return ORDER[:neighbourhood]


def lexicographic_dijkstra(costs: np.ndarray, neighbourhood: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference on one map ``(rows, cols)``: for every cell, the optimal cost
    (both endpoints counted) and the fewest moves among optimal paths, by Dijkstra on
    ``(cost, moves)`` weights compared lexicographically (exact for integer costs)."""
    rows, cols = costs.shape
    best = {(0, 0): (float(costs[0, 0]), 0)}
    heap = [(float(costs[0, 0]), 0, (0, 0))]
    done = set()
    while heap:
        d, hops, (r, c) = heapq.heappop(heap)
        if (r, c) in done:
            continue
        done.add((r, c))
        for dr, dc in moves(neighbourhood):
            v = (r + dr, c + dc)
            if 0 <= v[0] < rows and 0 <= v[1] < cols and v not in done:
                candidate = (d + float(costs[v]), hops + 1)
                if candidate < best.get(v, (np.inf, 0)):
                    best[v] = candidate
                    heapq.heappush(heap, (*candidate, v))
    dist = np.array([[best[(r, c)][0] for c in range(cols)] for r in range(rows)])
    hops = np.array([[best[(r, c)][1] for c in range(cols)] for r in range(rows)])
    return dist, hops


def rule_predecessors(dist: np.ndarray, hops: np.ndarray, neighbourhood: int) -> np.ndarray:
    """The documented rule, from reference distances and move counts: among the neighbours
    of least distance, the fewest moves, then the first in ORDER. Flat ``(cells,)``."""
    rows, cols = dist.shape
    pred = np.zeros(rows * cols, dtype=np.int64)
    for r in range(rows):
        for c in range(cols):
            if (r, c) == (0, 0):
                continue
            inside = [(r + dr, c + dc) for dr, dc in moves(neighbourhood)]
            inside = [u for u in inside if 0 <= u[0] < rows and 0 <= u[1] < cols]
            least = min(dist[u] for u in inside)
            u = min((u for u in inside if dist[u] == least), key=lambda u: hops[u])  # min keeps the first
            pred[r * cols + c] = u[0] * cols + u[1]
    return pred


def walk(pred: np.ndarray, rows: int, cols: int, neighbourhood: int) -> list[tuple[int, int]]:
    """The cells from the target back to the source along flat ``pred``; each step checked
    to be a move of the neighbourhood."""
    cell, path = rows * cols - 1, [rows * cols - 1]
    while cell != 0:
        assert len(path) <= rows * cols, "predecessors form a cycle"
        previous = int(pred[cell])
        step = (previous // cols - cell // cols, previous % cols - cell % cols)
        assert step in moves(neighbourhood), f"{cell} -> {previous} is not a move"
        cell = previous
        path.append(cell)
    return [divmod(cell, cols) for cell in path]


def tie_maps(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Maps full of ties: costs in {0, 1, 2}, mostly zeros, and all-equal maps (all 0 too)."""
    sparse = rng.choice([0.0, 1.0, 2.0], p=[0.6, 0.2, 0.2], size=(6, rows, cols))
    dense = rng.choice([0.0, 1.0, 2.0], size=(6, rows, cols))
    equal = np.stack([np.full((rows, cols), value) for value in (0.0, 1.0, 2.0)])
    return np.concatenate([sparse, dense, equal])


# -- agreement with scipy -------------------------------------------------------------------


@pytest.mark.parametrize(
    "framework, rows, cols, neighbourhood",
    [(framework, *shape) for framework in FRAMEWORKS for shape in (JAX_SHAPES if framework == "jax" else SHAPES)],
)
def test_matches_scipy_on_random_maps(framework, rows, cols, neighbourhood, rng):
    problem = GridShortestPath(rows, cols, neighbourhood)
    theta = random_maps(rng, 50, rows, cols)
    np.testing.assert_array_equal(solve_in(framework, theta, problem), scipy_masks(theta, problem))


def test_jax_jit_and_vmap_match_scipy(rng):
    jax = pytest.importorskip("jax")
    problem = GridShortestPath(6, 11, 8)
    thetas = random_maps(rng, 3 * 20, 6, 11).reshape(3, 20, 6, 11)
    expected = np.stack([scipy_masks(theta, problem) for theta in thetas])
    with jax.enable_x64(True):
        jitted = jax.jit(lambda t: solve_grid_bellman_ford(t, problem))(jax.numpy.asarray(thetas[0]))
        mapped = jax.vmap(lambda t: solve_grid_bellman_ford(t, problem))(jax.numpy.asarray(thetas))
    np.testing.assert_array_equal(np.asarray(jitted), expected[0])
    np.testing.assert_array_equal(np.asarray(mapped), expected)


# -- ties: the documented rule --------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("neighbourhood", [8, 4])
def test_ties_follow_the_documented_rule(framework, neighbourhood):
    rows, cols = 7, 9
    problem = GridShortestPath(rows, cols, neighbourhood)
    costs = tie_maps(np.random.default_rng(neighbourhood), rows, cols)
    # float32 in torch and JAX: integer sums stay exact
    values = costs if framework == "numpy" else costs.astype(np.float32)
    tree = shortest_path_tree
    if framework == "jax":  # compiled once rather than op by op
        tree = pytest.importorskip("jax").jit(shortest_path_tree, static_argnames="neighbourhood")
    pred = np.asarray(tree(to_framework(values, framework), neighbourhood=neighbourhood)[2])
    masks = solve_in(framework, values, problem)
    optimal_costs = problem.path_cost(costs, scipy_masks(costs, problem))
    for i, grid in enumerate(costs):
        dist, hops = lexicographic_dijkstra(grid, neighbourhood)
        assert dist[-1, -1] == optimal_costs[i]
        expected_pred = rule_predecessors(dist, hops, neighbourhood)
        np.testing.assert_array_equal(pred[i], expected_pred, err_msg=f"map {i}")
        path = walk(pred[i], rows, cols, neighbourhood)  # connected, source to target, no cycle
        expected_mask = np.zeros((rows, cols))
        expected_mask[tuple(np.array(path).T)] = 1
        np.testing.assert_array_equal(masks[i], expected_mask, err_msg=f"map {i}")
        assert problem.path_cost(grid, masks[i]) == optimal_costs[i]
        assert masks[i].sum() == hops[-1, -1] + 1  # the fewest cells among optimal paths


# -- negative costs -------------------------------------------------------------------------


def negative_batch(rng: np.random.Generator) -> np.ndarray:
    theta = random_maps(rng, 8, 5, 6)
    theta[3, 2, 2] = -1.5
    theta[6, 0, 4] = -0.25
    return theta


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_clamp_warns_and_solves_the_clamped_map(framework, rng):
    problem = GridShortestPath(5, 6, negative_costs="clamp")
    theta = negative_batch(rng)
    with pytest.warns(NegativeCostWarning, match="clamped to 0"):
        z = solve_in(framework, theta, problem)
    np.testing.assert_array_equal(z, scipy_masks(np.maximum(theta, 0.0), problem))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_raise_names_the_first_bad_instance(framework, rng):
    problem = GridShortestPath(5, 6, negative_costs="raise")
    with pytest.raises(SolverError, match="instance 3") as caught:
        solve_in(framework, negative_batch(rng), problem)
    assert caught.value.index == 3
    assert caught.value.status == "negative-costs"
    assert "-1.5" in str(caught.value)


def test_under_jit_raise_surfaces_naming_the_instance_and_clamp_is_silent(rng):
    jax = pytest.importorskip("jax")
    theta = negative_batch(rng)
    raising = jax.jit(lambda t: solve_grid_bellman_ford(t, GridShortestPath(5, 6, negative_costs="raise")))
    np.testing.assert_array_equal(raising(np.maximum(theta, 0.0)), scipy_masks(np.maximum(theta, 0.0), GRID_5x6))
    with pytest.raises(Exception, match=r"instance 3 \(grid-shortest-path"):
        raising(theta).block_until_ready()
    clamping = jax.jit(lambda t: solve_grid_bellman_ford(t, GRID_5x6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clamping under jit does not warn (no host callback)
        z = clamping(theta)
    np.testing.assert_array_equal(z, scipy_masks(np.maximum(theta, 0.0), GRID_5x6))



def test_jaxpr_has_no_host_round_trip():
    jax = pytest.importorskip("jax")
    theta = jax.numpy.ones((4, 5, 6))
    clamp = str(jax.make_jaxpr(jax.jit(lambda t: solve_grid_bellman_ford(t, GRID_5x6)))(theta))
    assert "callback" not in clamp  # no pure_callback, and no debug_callback either
    raising = GridShortestPath(5, 6, negative_costs="raise")
    checked = str(jax.make_jaxpr(jax.jit(lambda t: solve_grid_bellman_ford(t, raising)))(theta))
    assert "pure_callback" not in checked
    assert "debug_callback" in checked  # the check itself, which raises only on negative costs


# -- dtype, device, shape -------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keeps_dtype_device_and_shape(framework, dtype, rng):
    problem = GridShortestPath(4, 7)
    theta_np = random_maps(rng, 5, 4, 7).astype(dtype)
    if framework == "jax":
        jax = pytest.importorskip("jax")
        with jax.enable_x64(dtype == "float64"):
            for n in (5, 0):
                theta = jax.numpy.asarray(theta_np[:n])
                z = solve_grid_bellman_ford(theta, problem)
                assert (z.dtype, z.shape, z.devices()) == (theta.dtype, theta.shape, theta.devices())
                assert str(z.dtype) == dtype
        return
    for n in (5, 0):
        theta = to_framework(theta_np[:n], framework)
        z = solve_grid_bellman_ford(theta, problem)
        assert type(z) is type(theta)
        assert (z.dtype, tuple(z.shape)) == (theta.dtype, (n, 4, 7))
        if framework == "torch":
            assert z.device == theta.device
        assert set(np.unique(np.asarray(z))) <= {0.0, 1.0}


def test_torch_cuda_stays_on_the_device(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    problem = GridShortestPath(6, 11)
    theta = random_maps(rng, 20, 6, 11)
    z = solve_grid_bellman_ford(torch.from_numpy(theta).cuda(), problem)
    assert z.device.type == "cuda" and z.dtype == torch.float64
    np.testing.assert_array_equal(z.cpu().numpy(), scipy_masks(theta, problem))


# -- the oracle's choice --------------------------------------------------------------------


def test_auto_oracle_picks_bellman_ford_under_jit_and_scipy_on_the_host(rng):
    oracle = MAPOracle(GridShortestPath(5, 6))
    theta = random_maps(rng, 4, 5, 6)
    assert oracle.solver_for(theta).backend == "scipy"
    torch = pytest.importorskip("torch")
    assert oracle.solver_for(torch.from_numpy(theta)).backend == "scipy"
    jax = pytest.importorskip("jax")
    chosen = []

    def solve(t):
        chosen.append(oracle.solver_for(t).backend)
        return oracle(t, validate=False)

    z = jax.jit(solve)(jax.numpy.asarray(theta, dtype=jax.numpy.float32))
    assert chosen == ["bellman-ford"]
    np.testing.assert_array_equal(z, scipy_masks(theta.astype(np.float32), oracle.problem))


@pytest.mark.parametrize("neighbourhood", [8, 4])
def test_torch_accelerator_min_pool_equals_the_shifted_slices(neighbourhood, rng):
    """On accelerators torch takes neighbour minima by max-pooling; checked here on the CPU."""
    torch = pytest.importorskip("torch")
    from imle_solvers.adapters.grid_bellman_ford import _min_pool_torch, _neighbour_min_shifts

    dist = random_maps(rng, 6, 5, 7)
    dist[:, 2:, 3:] = np.inf  # cells not reached yet
    dist[0] = np.inf
    for values in (torch.from_numpy(dist), torch.from_numpy(dist.astype(np.float32))):
        torch.testing.assert_close(
            _min_pool_torch(values, neighbourhood), _neighbour_min_shifts(values, neighbourhood), rtol=0, atol=0
        )
    expected = np.full_like(dist, np.inf)  # by brute force
    for dr, dc in ((0, 0), *moves(neighbourhood)):
        padded = np.pad(dist, ((0, 0), (1, 1), (1, 1)), constant_values=np.inf)
        expected = np.minimum(expected, padded[:, 1 + dr : 1 + dr + 5, 1 + dc : 1 + dc + 7])
    np.testing.assert_array_equal(_neighbour_min_shifts(dist, neighbourhood), expected)

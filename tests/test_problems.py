"""MAP solvers of the built-in problems against brute force, and input checks."""

from __future__ import annotations

import itertools
import warnings

import networkx as nx
import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.adapters import resolve_solver
from imle_solvers.errors import InvalidInputError, SolverError, UnknownBackendError


def brute_force_ksubset(theta: np.ndarray, k: int) -> float:
    return max(theta[list(c)].sum() for c in itertools.combinations(range(len(theta)), k))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ksubset_matches_brute_force(rng, backend):
    problem = ims.KSubset(n=8, k=3)
    theta = rng.normal(size=(20, 8))
    z = ims.MAPOracle(problem, backend=backend)(theta)
    assert z.shape == theta.shape and z.dtype == theta.dtype
    np.testing.assert_array_equal(z.sum(axis=1), 3)
    for row, mask in zip(theta, z):
        assert (row * mask).sum() == pytest.approx(brute_force_ksubset(row, 3))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ksubset_ties_give_exactly_k_lowest_indices_first(backend):
    theta = np.array([[1.0, 2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    z = ims.MAPOracle(ims.KSubset(5, 2), backend=backend)(theta)
    np.testing.assert_array_equal(z, [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0]])


def test_ksubset_on_torch_tensor_keeps_dtype_and_device():
    torch = pytest.importorskip("torch")
    theta = torch.randn(4, 6, dtype=torch.float64)[:, ::2]  # non-contiguous
    z = ims.MAPOracle(ims.KSubset(3, 1))(theta)
    assert isinstance(z, torch.Tensor) and z.dtype == torch.float64
    assert torch.equal(z.argmax(dim=1), theta.argmax(dim=1))


def grid_graph(rows: int, cols: int, neighbourhood: int) -> nx.Graph:
    graph = nx.grid_2d_graph(rows, cols)
    if neighbourhood == 8:
        graph.add_edges_from(((r, c), (r + 1, c + dc)) for r in range(rows - 1) for c in range(cols) for dc in (-1, 1)
                             if 0 <= c + dc < cols)
    return graph


def brute_force_grid(costs: np.ndarray, neighbourhood: int) -> float:
    rows, cols = costs.shape
    paths = nx.all_simple_paths(grid_graph(rows, cols, neighbourhood), (0, 0), (rows - 1, cols - 1))
    return min(sum(costs[cell] for cell in path) for path in paths)


def is_path(mask: np.ndarray, neighbourhood: int) -> bool:
    """The cells of ``mask`` hold a simple path from the top-left to the bottom-right cell."""
    rows, cols = mask.shape
    cells = [tuple(c) for c in np.argwhere(mask == 1)]
    graph = grid_graph(rows, cols, neighbourhood).subgraph(cells)
    ends = {(0, 0), (rows - 1, cols - 1)}
    degrees = dict(graph.degree())
    return ends <= set(cells) and nx.has_path(graph, *ends) and all(degrees[c] == 1 for c in ends)


@pytest.mark.parametrize("neighbourhood", [4, 8])
@pytest.mark.parametrize("backend", ["scipy", "networkx"])
def test_grid_path_matches_brute_force(rng, neighbourhood, backend):
    problem = ims.GridShortestPath(3, 4, neighbourhood=neighbourhood)
    costs = rng.uniform(0.1, 5.0, size=(6, 3, 4))
    z = ims.MAPOracle(problem, backend=backend)(costs)
    for cost, mask in zip(costs, z):
        assert is_path(mask, neighbourhood)
        assert (cost * mask).sum() == pytest.approx(brute_force_grid(cost, neighbourhood))


def test_grid_scipy_agrees_with_networkx_on_random_grids(rng):
    problem = ims.GridShortestPath(12, 12)
    costs = rng.choice([0.8, 1.2, 5.3, 7.7, 9.2], size=(15, 12, 12)) + rng.uniform(0, 1e-3, size=(15, 12, 12))
    fast = ims.MAPOracle(problem, backend="scipy")(costs)
    reference = ims.MAPOracle(problem, backend="networkx")(costs)
    np.testing.assert_allclose(problem.path_cost(costs, fast), problem.path_cost(costs, reference))
    assert all(is_path(mask, 8) for mask in fast)


def test_grid_one_by_one_is_the_single_cell():
    z = ims.MAPOracle(ims.GridShortestPath(1, 1))(np.array([[[3.0]]]))
    np.testing.assert_array_equal(z, [[[1.0]]])


def test_negative_costs_clamped_with_a_warning(rng):
    problem = ims.GridShortestPath(3, 3)
    costs = rng.uniform(0.5, 2.0, size=(2, 3, 3))
    costs[1, 1, 1] = -4.0
    with pytest.warns(ims.NegativeCostWarning, match="negative grid costs were clamped to 0"):
        z = ims.MAPOracle(problem)(costs)
    clamped = np.maximum(costs[1], 0)
    assert (clamped * z[1]).sum() == pytest.approx(brute_force_grid(clamped, 8))


def test_negative_costs_raise_names_the_instance(rng):
    problem = ims.GridShortestPath(3, 3, negative_costs="raise")
    costs = rng.uniform(0.5, 2.0, size=(4, 3, 3))
    costs[2, 0, 1] = -1.0
    with pytest.raises(SolverError, match="instance 2") as info:
        ims.MAPOracle(problem)(costs)
    assert info.value.index == 2 and info.value.status == "negative-costs"


def test_nonnegative_costs_give_no_warning(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ims.MAPOracle(ims.GridShortestPath(4, 4))(rng.uniform(0, 1, size=(3, 4, 4)))


@pytest.mark.parametrize(
    "problem, theta, message",
    [
        (ims.KSubset(5, 2), np.zeros((3, 4)), r"expected shape \(B, 5\), got \(3, 4\)"),
        (ims.KSubset(5, 2), np.zeros(5), r"expected shape \(B, 5\), got \(5,\)"),
        (ims.GridShortestPath(2, 3), np.zeros((1, 3, 2)), r"expected shape \(B, 2, 3\)"),
    ],
)
def test_wrong_shape_is_rejected(problem, theta, message):
    with pytest.raises(InvalidInputError, match=message):
        ims.MAPOracle(problem)(theta)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_name_the_batch_index(bad):
    theta = np.zeros((5, 4))
    theta[3, 1] = bad
    with pytest.raises(InvalidInputError, match=f"batch index 3 holds a non-finite value \\({bad}\\)"):
        ims.MAPOracle(ims.KSubset(4, 2))(theta)


@pytest.mark.parametrize("k", [0, 6, -1, 2.5])
def test_k_out_of_range(k):
    with pytest.raises(InvalidInputError, match="k must be in 1..n=5"):
        ims.KSubset(5, k)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"rows": 0, "cols": 3}, "rows"), ({"rows": 2, "cols": 3, "neighbourhood": 6}, "neighbourhood"),
     ({"rows": 2, "cols": 3, "negative_costs": "shift"}, "negative_costs")],
)
def test_grid_parameters_are_checked(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        ims.GridShortestPath(**kwargs)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(UnknownBackendError, match=r"known backends: \['scipy', 'bellman-ford', 'networkx'\]"):
        ims.MAPOracle(ims.GridShortestPath(3, 3), backend="gurobi")


def test_unknown_kind_is_rejected():
    with pytest.raises(UnknownBackendError, match="no solver is registered for problem kind 'nope'"):
        resolve_solver("nope")


def test_problems_are_picklable_values():
    import pickle

    for problem in (ims.KSubset(10, 3), ims.GridShortestPath(4, 5, neighbourhood=4)):
        assert pickle.loads(pickle.dumps(problem)) == problem
        assert "(" in repr(problem)

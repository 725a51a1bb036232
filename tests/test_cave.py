"""The CaVE loss (imle_solvers.losses.cone_aligned_cosine and the bindings' CaVELoss), its cone
projection (imle_solvers.cone) and the tight constraints it needs (imle_solvers.tight): against
PyEPO's own coneAlignedCosine with the same inputs, the projection against its KKT conditions
and a brute force over the generators' subsets, the extraction against brute force on a small
knapsack and a 3x3 grid shortest path, the three frameworks against each other, and the errors."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import imle_solvers as ims
from imle_solvers.cone import hybrid_targets, project_onto_cone
from imle_solvers.data import knapsack_problem, shortest_path_problem
from imle_solvers.errors import InvalidInputError
from imle_solvers.losses import CaVE

from test_losses import _frameworks, _tf_loss, _torch_loss
from test_pool_losses import _pyepo_model

# a knapsack of 5 items: two resources (<=) and "at least one item" (>=, in <= orientation -1s)
WEIGHTS = np.array([[3.0, 1.0, 4.0, 1.0, 5.0], [2.0, 6.0, 1.0, 3.0, 2.0]])
CAPACITY = np.array([8.0, 7.0])


def small_knapsack() -> ims.ILP:
    rows = sp.csr_array(np.vstack([WEIGHTS, np.ones(5)]))
    return ims.ILP((ims.Variable("x", (5,)),), rows, [-np.inf, -np.inf, 1.0], [*CAPACITY, np.inf], ("x",), "max")


def _rows(a: np.ndarray) -> list[tuple[float, ...]]:
    """The rows of ``a`` ``(R, ...)`` as a sorted list of tuples: two sets of normals compare equal."""
    return sorted(tuple(np.round(row.ravel(), 9)) for row in a)


# --- the tight constraints against brute force --------------------------------------------

def test_knapsack_tight_constraints_are_the_active_ones():
    problem = small_knapsack()
    eye = np.eye(5)
    feasible = 0
    for bits in itertools.product([0.0, 1.0], repeat=5):
        x = np.array(bits)
        if (WEIGHTS @ x > CAPACITY).any() or x.sum() < 1:
            continue
        feasible += 1
        expected = [w for w, cap in zip(WEIGHTS, CAPACITY) if w @ x == cap]
        expected += [-np.ones(5)] if x.sum() == 1 else []
        expected += [-eye[j] for j in range(5) if x[j] == 0] + [eye[j] for j in range(5) if x[j] == 1]
        assert _rows(ims.tight_constraints(problem, x)) == _rows(np.array(expected)), bits
    assert feasible > 10


def _grid_paths(rows: int, cols: int) -> tuple[nx.DiGraph, list[list[int]]]:
    graph = nx.DiGraph([(i * cols + j, i * cols + j + 1) for i in range(rows) for j in range(cols - 1)]
                       + [(i * cols + j, (i + 1) * cols + j) for i in range(rows - 1) for j in range(cols)])
    return graph, list(nx.all_simple_paths(graph, 0, rows * cols - 1))


def test_grid_path_tight_constraints_are_the_active_ones():
    problem = shortest_path_problem((3, 3))
    graph, paths = _grid_paths(3, 3)
    arcs = [tuple(int(v) for v in arc) for arc in problem.graph.edges]
    assert sorted(arcs) == sorted(graph.edges)
    eye = np.eye(len(arcs))
    for path in paths:
        on = set(itertools.pairwise(path))
        z = np.array([1.0 if arc in on else 0.0 for arc in arcs])
        expected = []
        for node in graph.nodes:  # conservation: an equality, so both orientations bind
            row = np.array([(arc[0] == node) - (arc[1] == node) for arc in arcs], dtype=float)
            expected += [row, -row]
        expected += [eye[i] if z[i] else -eye[i] for i in range(len(arcs))]
        assert _rows(ims.tight_constraints(problem, z)) == _rows(np.array(expected))
    assert len(paths) == 6


def test_batch_pads_and_takes_each_instances_data():
    problem = knapsack_problem(WEIGHTS / 100, capacity=CAPACITY / 100)  # rows in hundredths: WEIGHTS, CAPACITY
    z = np.array([[1.0, 0, 1, 0, 0], [1.0, 0, 1, 0, 0]])
    # instance 1's capacity makes the first row tight (7 = 3 + 4)
    caps = np.array([CAPACITY / 100, [0.07, 0.07]])
    batch = ims.batch_tight_constraints(problem, z, capacity=caps)
    counts = [(np.abs(rows).sum(axis=1) > 0).sum() for rows in batch]
    assert batch.shape == (2, max(counts), 5) and counts == [5, 6]
    assert _rows(batch[1][:6]) == _rows(np.vstack([ims.tight_constraints(problem, z[0], capacity=caps[0]),
                                                   WEIGHTS[:1]]))
    closed = np.zeros((1, 12), bool)
    sp3 = shortest_path_problem((3, 3))
    path = ims.MAPOracle(sp3)(np.ones((1, 12)))
    closed[0, np.flatnonzero(path[0] == 0)[0]] = True  # a closed arc's bounds bind both ways
    rows = ims.batch_tight_constraints(sp3, path, closed=closed)[0]
    assert len(rows) == len(ims.tight_constraints(sp3, path[0])) + 1


def test_extraction_errors_name_what_is_missing():
    with pytest.raises(InvalidInputError, match="GridShortestPath has no linear description"):
        ims.tight_constraints(ims.GridShortestPath(3, 3), np.eye(3))
    undirected = ims.GraphShortestPath(nx.path_graph(3), 0, 2)
    with pytest.raises(InvalidInputError, match="undirected.*directed graph"):
        ims.tight_constraints(undirected, np.ones(2))
    two = ims.ILP((ims.Variable("x", (2,)), ims.Variable("slack", (1,), "continuous")), sp.csr_array([[1.0, 1.0, 1.0]]),
                  [1.0], [1.0], ("x",))
    with pytest.raises(InvalidInputError, match=r"beyond theta's \(slack\): give the full solution x \(3,\)"):
        ims.tight_constraints(two, np.array([1.0, 0.0]))
    # the slack's bound at 0 has no entry on theta's: dropped
    assert _rows(ims.tight_constraints(two, np.array([1.0, 0.0, 0.0]))) == _rows(
        np.array([[1.0, 1.0], [-1.0, -1.0], [0.0, -1.0], [1.0, 0.0]]))
    with pytest.raises(InvalidInputError, match="batch index 1: tight_constraints: the solution is not feasible"):
        ims.batch_tight_constraints(small_knapsack(), np.array([[1.0, 0, 0, 0, 0], [1.0, 1, 1, 1, 1]]))
    with pytest.raises(InvalidInputError, match="not a path"):
        ims.tight_constraints(shortest_path_problem((3, 3)), np.zeros(12))


# --- the projection ---------------------------------------------------------------------

def _brute_projection(s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The closest point to ``s`` among the projections onto each subset's span whose
    coefficients are >= 0 (the projection lies on one face of the cone)."""
    best, best_distance = np.zeros_like(s), np.linalg.norm(s)
    for size in range(1, len(a) + 1):
        for subset in itertools.combinations(range(len(a)), size):
            g = a[list(subset)]
            lam = np.linalg.lstsq(g.T, s, rcond=None)[0]
            if (lam >= -1e-12).all() and np.linalg.norm(lam @ g - s) < best_distance - 1e-12:
                best, best_distance = lam @ g, np.linalg.norm(lam @ g - s)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_projection_is_the_closest_point_of_the_cone(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(5, 4))
    s = rng.normal(size=4)
    rows = np.vstack([a, np.zeros((2, 4))])  # padding rows generate nothing
    p = project_onto_cone(s, rows)
    np.testing.assert_allclose(p, _brute_projection(s, a), atol=1e-9)
    # KKT: the residual makes no acute angle with a generator, and is orthogonal to p
    assert (a @ (s - p)).max() < 1e-9 and abs(p @ (s - p)) < 1e-9
    np.testing.assert_array_equal(project_onto_cone(s, np.zeros((3, 4))), np.zeros(4))


def test_hybrid_targets_are_the_blend():
    s = np.array([[3.0, 4.0]])
    rows = np.array([[[2.0, 0.0], [0.0, -5.0], [0.0, 0.0]]])
    np.testing.assert_allclose(hybrid_targets(s, rows, 0.2), [[0.8 * 0.6 + 0.2 * 0.5, 0.8 * 0.8 - 0.2 * 0.5]])


# --- the loss ---------------------------------------------------------------------------

def _instances(problem, seed=0, batch=4):
    rng = np.random.default_rng(seed)
    n = problem.shape[0]
    c = rng.uniform(0.5, 2.0, size=(batch, n))
    w = ims.MAPOracle(problem)(c)
    return rng.normal(size=(batch, n)), c, ims.batch_tight_constraints(problem, w)


def _pyepo_cave(problem, c_hat, tight, **options):
    torch = pytest.importorskip("torch")
    pytest.importorskip("pyepo")
    pytest.importorskip("clarabel")
    import pyepo.func

    # the loss asks its model only for the sense
    loss_fn = pyepo.func.coneAlignedCosine(_pyepo_model(np.zeros((1, c_hat.shape[1])), problem.sign == -1),
                                           reduction="none", **options)
    t = torch.tensor(c_hat, requires_grad=True)
    values = loss_fn(t, torch.tensor(tight))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy()


def _ours(problem, c_hat, tight, **options):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import CaVELoss

    t = torch.tensor(c_hat, requires_grad=True)
    values = CaVELoss(problem, reduction="none", **options)(t, torch.tensor(tight))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("problem", [
    pytest.param(shortest_path_problem((3, 3)), id="grid-path-min"),
    pytest.param(knapsack_problem(WEIGHTS / 100, capacity=CAPACITY / 100), id="knapsack-max"),
])
@pytest.mark.parametrize("hybrid", [False, True])
def test_matches_pyepo(problem, hybrid):
    c_hat, _, tight = _instances(problem)
    # PyEPO's projection converged (max_iter 200: CaVE-E) or its Hybrid branch (solve_ratio 0)
    theirs = _pyepo_cave(problem, c_hat, tight, **({"solve_ratio": 0.0} if hybrid else {"max_iter": 200}))
    ours = _ours(problem, c_hat, tight, **({"solve_ratio": 0.0} if hybrid else {}))
    np.testing.assert_allclose(ours[0], theirs[0], atol=2e-6)
    np.testing.assert_allclose(ours[1], theirs[1], atol=2e-6)
    assert np.abs(ours[1]).max() > 1e-4 and ours[0].max() > 1e-4  # not a trivial agreement


@pytest.mark.parametrize("problem", [
    pytest.param(shortest_path_problem((3, 3)), id="grid-path-min"),
    pytest.param(knapsack_problem(WEIGHTS / 100, capacity=CAPACITY / 100), id="knapsack-max"),
])
def test_truncated_projection_matches_pyepos_default_cave_plus(problem):
    """max_iter=3 is PyEPO's default (CaVE+): the same three interior-point iterations, so the
    same targets; and a target short of the exact projection, so a different loss."""
    c_hat, _, tight = _instances(problem)
    theirs = _pyepo_cave(problem, c_hat, tight)  # PyEPO's defaults: max_iter=3
    ours = _ours(problem, c_hat, tight, max_iter=3)
    np.testing.assert_allclose(ours[0], theirs[0], atol=2e-6)
    np.testing.assert_allclose(ours[1], theirs[1], atol=2e-6)
    exact = _ours(problem, c_hat, tight)
    assert np.abs(exact[0] - ours[0]).max() > 1e-4


def test_truncated_projection_converges_to_the_exact_one():
    pytest.importorskip("clarabel")
    from imle_solvers.cone import project_truncated

    problem = shortest_path_problem((3, 3))
    c_hat, _, tight = _instances(problem, seed=2)
    for x, rows in zip(c_hat, tight):
        np.testing.assert_allclose(project_truncated(-x, rows, 200), project_onto_cone(-x, rows), atol=1e-6)


@pytest.mark.parametrize("max_iter", [0, -1, 2.5, True, "3"])
def test_bad_max_iter_is_refused(max_iter):
    with pytest.raises(InvalidInputError, match="max_iter must be None"):
        CaVE(max_iter=max_iter)


def test_zero_in_the_cone_and_the_cosine_otherwise():
    problem = shortest_path_problem((3, 3))
    c_hat, c, tight = _instances(problem, seed=1)
    # the true costs make the true path optimal: -c lies in the cone, the loss is 0
    values, grads = _ours(problem, c, tight)
    np.testing.assert_allclose(values, 0.0, atol=1e-9)
    np.testing.assert_allclose(grads, 0.0, atol=1e-9)
    values, _ = _ours(problem, c_hat, tight)
    p = np.array([project_onto_cone(-x, rows) for x, rows in zip(c_hat, tight)])
    cos = np.sum(-c_hat * p, axis=1) / np.linalg.norm(c_hat, axis=1) / np.linalg.norm(p, axis=1)
    np.testing.assert_allclose(values, 1 - cos, atol=1e-12)


def test_frameworks_agree():
    _frameworks()
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import CaVELoss

    problem = knapsack_problem(WEIGHTS / 100, capacity=CAPACITY / 100)
    c_hat, _, tight = _instances(problem, seed=2)
    c_hat, tight = c_hat.astype(np.float32), tight.astype(np.float32)
    results = [f("CaVELoss", problem, c_hat, tight, {}) for f in (_torch_loss, _tf_loss)]
    loss_fn = CaVELoss(problem, reduction="sum")
    results.append(jax.jit(jax.value_and_grad(loss_fn))(jnp.asarray(c_hat), jnp.asarray(tight)))
    for value, grad in results[1:]:
        np.testing.assert_allclose(float(value), results[0][0], rtol=1e-5)
        np.testing.assert_allclose(np.asarray(grad), results[0][1], atol=1e-6)
    assert np.abs(results[0][1]).max() > 1e-3
    # Keras compiled (a tf.function, as model.fit runs it) and from its config
    import tensorflow as tf

    from imle_solvers.tensorflow import CaVELoss as KerasCaVELoss

    keras_loss = KerasCaVELoss.from_config(KerasCaVELoss(problem, reduction="sum", seed=3).get_config())
    assert keras_loss.seed == 3
    np.testing.assert_allclose(float(tf.function(keras_loss)(tight, c_hat)), results[0][0], rtol=1e-5)
    truncated = KerasCaVELoss.from_config(KerasCaVELoss(problem, max_iter=3).get_config())
    assert truncated.max_iter == 3 and truncated.step.definition.max_iter == 3


def test_loss_errors_name_what_is_missing():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import CaVELoss

    problem = shortest_path_problem((3, 3))
    c_hat, _, tight = _instances(problem)
    loss_fn = CaVELoss(problem)
    with pytest.raises(InvalidInputError, match="CaVELoss: tight_ctrs is missing"):
        loss_fn(torch.tensor(c_hat), None)
    tight[2] = 0.0
    with pytest.raises(InvalidInputError, match="tight_ctrs at batch index 2 holds no tight constraint"):
        loss_fn(torch.tensor(c_hat), torch.tensor(tight))
    with pytest.raises(InvalidInputError, match=r"tight_ctrs must be \(B, R, \*shape\) with shape \(12,\)"):
        loss_fn(torch.tensor(c_hat), torch.tensor(tight[:, :, :5]))
    with pytest.raises(InvalidInputError, match=r"solve_ratio must be a number in \[0, 1\]"):
        CaVELoss(problem, solve_ratio=1.5)

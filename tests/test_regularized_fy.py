"""The regularized (Frank-Wolfe) Fenchel-Young loss (imle_solvers.losses.regularized_fenchel_young
and the bindings' RegularizedFenchelYoungLoss): against PyEPO's regularizedFrankWolfeFenchelYoung
with the same inputs, against the exact Euclidean projection onto the states' hull, the three
frameworks against each other, and the failure policy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.frank_wolfe import regularized_map
from imle_solvers.losses import regularized_fenchel_young

from flaky import FlakyArgmax  # tests/flaky.py
from test_losses import _frameworks, _tf_loss, _torch_loss, dag_paths, ksubset_states, small_dag
from test_pg_loss import _solve
from test_pool_losses import _pyepo_model


def _pyepo_rfy(states, minimize_, theta, y_true, lambd):
    """PyEPO's regularizedFrankWolfeFenchelYoung per instance and its gradient."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("pyepo")
    import pyepo.func

    loss_fn = pyepo.func.regularizedFrankWolfeFenchelYoung(_pyepo_model(states, minimize_), lambd=lambd,
                                                           reduction="none")
    t = torch.tensor(theta, requires_grad=True)
    values = loss_fn(t, torch.tensor(y_true))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy()


def _projection(point, states):
    """The Euclidean projection of ``point`` ``(n,)`` onto conv(``states`` ``(P, n)``), by
    scipy over the hull's weights."""
    p = len(states)
    result = minimize(lambda a: 0.5 * np.sum((a @ states - point) ** 2), np.full(p, 1 / p),
                      jac=lambda a: states @ (a @ states - point), bounds=[(0, 1)] * p,
                      constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1}], method="SLSQP",
                      options={"ftol": 1e-14, "maxiter": 1000})
    mu = result.x @ states
    # optimality certificate of the projection: no state makes an acute angle with point - mu
    assert np.max((states - mu) @ (point - mu)) < 1e-6
    return mu


@pytest.mark.parametrize("lambd", [0.5, 2.0])
@pytest.mark.parametrize("problem, states", [
    pytest.param(ims.KSubset(6, 2), ksubset_states(6, 2), id="k-subset-max"),
    pytest.param(small_dag(), dag_paths(small_dag()), id="dag-min"),
])
def test_matches_pyepo(lambd, problem, states):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import RegularizedFenchelYoungLoss

    rng = np.random.default_rng(0)
    theta = rng.normal(size=(6, states.shape[1]))
    y_true = states[rng.integers(len(states), size=6)]
    theirs_value, theirs_grad = _pyepo_rfy(states, problem.sign == -1, theta, y_true, lambd)
    loss_fn = RegularizedFenchelYoungLoss(problem, lambd=lambd, reduction="none")
    t = torch.tensor(theta, requires_grad=True)
    values = loss_fn(t, torch.tensor(y_true))
    values.sum().backward()
    # the same away-step iterations to the same tolerance: agreement to rounding
    np.testing.assert_allclose(values.detach().numpy(), theirs_value, atol=1e-9)
    np.testing.assert_allclose(t.grad.numpy(), theirs_grad, atol=1e-9)
    assert (values.detach().numpy() > 0).all() and np.abs(theirs_grad).max() > 0


@pytest.mark.parametrize("lambd", [0.3, 1.0, 3.0])
def test_is_the_projection_onto_the_hull(lambd):
    # a k-subset of 4 items: the regularized solution projects s / lambda onto the hull of its 6 states
    problem, states = ims.KSubset(4, 2), ksubset_states(4, 2)
    rng = np.random.default_rng(1)
    s = rng.normal(size=(5, 4)) * 2
    y_true = states[rng.integers(6, size=5)]
    mu = np.stack([_projection(row / lambd, states) for row in s])
    expected = np.sum(s * (mu - y_true), axis=1) - lambd / 2 * np.sum(mu**2, axis=1) + lambd / 2 * np.sum(y_true**2, 1)
    result = regularized_fenchel_young(s, y_true, _solve(problem), sign=1, lambd=lambd, tol=1e-12)
    np.testing.assert_allclose(result.solution, mu, atol=1e-6)
    np.testing.assert_allclose(result.gradient, mu - y_true, atol=1e-6)
    np.testing.assert_allclose(result.value, expected, atol=1e-8)
    # interior and face solutions both occur: not every mu is a state
    assert np.abs(mu - np.round(mu)).max() > 0.05
    # min problem over costs w = -s: the same solution, gradient mirrored
    as_min = regularized_fenchel_young(-s, y_true, lambda w: _solve(problem)(-w), sign=-1, lambd=lambd, tol=1e-12)
    np.testing.assert_allclose(as_min.value, result.value, atol=1e-10)
    np.testing.assert_allclose(as_min.gradient, -result.gradient, atol=1e-10)


def test_active_set_decomposes_the_solution():
    problem, states = ims.KSubset(5, 2), ksubset_states(5, 2)
    s = np.random.default_rng(2).normal(size=(4, 5))
    active = regularized_map(s, _solve(problem), lambd=1.0, tol=1e-12)
    np.testing.assert_allclose(active.weights.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.einsum("bw,bwn->bn", active.weights, active.vertices), active.solution, atol=1e-9)
    held = active.weights > 0
    assert all(any(np.allclose(v, st) for st in states) for v in active.vertices[held])


def test_a_non_finite_row_is_nan_and_leaves_the_others():
    # a traced call's check poisons such a row: the batched loop must not spread it
    problem = ims.KSubset(5, 2)
    s = np.random.default_rng(3).normal(size=(3, 5))
    bad = s.copy()
    bad[1, 2] = np.inf
    clean = regularized_map(s[[0, 2]], _solve(problem), lambd=1.0, tol=1e-9)
    with np.errstate(invalid="ignore"):
        active = regularized_map(bad, _solve(problem), lambd=1.0, tol=1e-9)
    assert np.isnan(active.solution[1]).all()
    np.testing.assert_allclose(active.solution[[0, 2]], clean.solution, atol=1e-12)


def test_settings_are_checked():
    pytest.importorskip("torch")
    from imle_solvers.torch import RegularizedFenchelYoungLoss

    with pytest.raises(InvalidInputError, match="lambd must be a number > 0"):
        RegularizedFenchelYoungLoss(ims.KSubset(4, 2), lambd=0.0)
    with pytest.raises(InvalidInputError, match="max_iter must be an integer >= 1"):
        RegularizedFenchelYoungLoss(ims.KSubset(4, 2), max_iter=0)
    with pytest.raises(InvalidInputError, match="tol must be a number >= 0"):
        RegularizedFenchelYoungLoss(ims.KSubset(4, 2), tol=-1.0)


@pytest.mark.parametrize("problem, data", [
    pytest.param(ims.KSubset(6, 2), {"k": np.array([1, 2, 3])}, id="k-subset"),
    pytest.param(small_dag(), {}, id="dag"),
])
def test_frameworks_agree(problem, data):
    _frameworks()
    rng = np.random.default_rng(4)
    n = problem.shape[0]
    theta = rng.normal(size=(3, n)).astype(np.float32)
    y_true = MAP = np.asarray(_solve(problem, data, 3)(rng.normal(size=(3, n))), dtype=np.float32)
    options = {"lambd": 0.7, "tol": 1e-5}
    results = [f("RegularizedFenchelYoungLoss", problem, theta, MAP, data, **options)
               for f in (_torch_loss, _tf_loss)]
    for value, grad in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad, results[0][1], atol=1e-5)
    expected = regularized_fenchel_young(theta.astype(np.float64), y_true, _solve(problem, data, 3), sign=problem.sign,
                                         **options)
    np.testing.assert_allclose(results[0][0], expected.value.sum(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(results[0][1], expected.gradient, atol=1e-4)
    assert np.abs(expected.gradient).max() > 0


def test_keras_inside_tf_function_equals_eager_and_keras_config():
    """The loop runs in one host call of the framework, so a traced Keras call (compiled
    fit) computes the same loss and gradient as an eager one."""
    _frameworks()
    import tensorflow as tf

    from imle_solvers import tensorflow as keras_binding

    problem = ims.KSubset(5, 2)
    theta = tf.constant(np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32))
    y_true = ksubset_states(5, 2)[:2].astype(np.float32)
    loss_fn = keras_binding.RegularizedFenchelYoungLoss(problem)

    def value_and_gradient(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss_fn(y_true, x)
        return value, tape.gradient(value, x)

    eager = value_and_gradient(theta)
    traced = tf.function(value_and_gradient)(theta)
    np.testing.assert_allclose(traced[0].numpy(), eager[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(traced[1].numpy(), eager[1].numpy(), atol=1e-6)
    assert np.abs(eager[1].numpy()).max() > 0
    loss = keras_binding.RegularizedFenchelYoungLoss(problem, lambd=0.5, max_iter=30, tol=1e-4)
    restored = keras_binding.RegularizedFenchelYoungLoss.from_config(loss.get_config())
    assert restored.get_config() == loss.get_config() and (restored.lambd, restored.max_iter) == (0.5, 30)


# --- the failure policy, as the other losses' ---------------------------------------------

# instance 1's scores are past the solver's limit: its first solve fails
FLAKY_THETA = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 200.0, 0.0], [3.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 2.0]])
BENIGN_THETA = np.where(np.arange(4)[:, None] == 1, [[0.0, 0.0, 2.0, 0.0]], FLAKY_THETA)
Y_TRUE = np.eye(4)[[1, 0, 1, 2]]


def _torch_rfy(theta, **options):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import RegularizedFenchelYoungLoss

    loss_fn = RegularizedFenchelYoungLoss(FlakyArgmax(4), lambd=1.0, max_iter=200, backend="numpy",
                                          reduction="none", **options)
    t = torch.tensor(theta, requires_grad=True)
    values = loss_fn(t, torch.tensor(Y_TRUE))
    values.sum().backward()
    return values.detach().numpy(), t.grad.numpy(), loss_fn.failures


def test_raise_names_the_instance():
    with pytest.raises(SolverError, match=r"^instance 1 \(test-flaky-argmax") as caught:
        _torch_rfy(FLAKY_THETA)
    assert caught.value.index == 1 and caught.value.status == "infeasible"


def test_skip_zeroes_the_failed_instance_and_keeps_the_others():
    values, grad, failures = _torch_rfy(FLAKY_THETA, on_failure="skip")
    assert values[1] == 0 and not grad[1].any()
    assert failures.get("infeasible", 0) >= 1
    ok_values, ok_grad, ok_failures = _torch_rfy(BENIGN_THETA)
    assert not ok_failures and np.abs(ok_grad[[0, 2, 3]]).max() > 0
    np.testing.assert_allclose(values[[0, 2, 3]], ok_values[[0, 2, 3]], atol=1e-12)
    np.testing.assert_allclose(grad[[0, 2, 3]], ok_grad[[0, 2, 3]], atol=1e-12)


# --- the optimizer as a layer (PyEPO's regularizedFrankWolfeOpt) --------------------------


def _pyepo_rfwo(states, minimize_, theta, cotangent, lambd):
    """PyEPO's regularizedFrankWolfeOpt: the regularized solutions and ``cotangent``'s pullback."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("pyepo")
    import pyepo.func

    layer = pyepo.func.regularizedFrankWolfeOpt(_pyepo_model(states, minimize_), lambd=lambd)
    t = torch.tensor(theta, requires_grad=True)
    mu = layer(t)
    (mu * torch.tensor(cotangent)).sum().backward()
    return mu.detach().numpy(), t.grad.numpy()


def _layer(problem, theta, cotangent, lambd, **data):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import RegularizedFrankWolfe

    t = torch.tensor(theta, requires_grad=True)
    mu = RegularizedFrankWolfe(problem, lambd=lambd)(t, **data)
    (mu * torch.tensor(cotangent)).sum().backward()
    return mu.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("problem, states", [
    pytest.param(ims.KSubset(6, 2), ksubset_states(6, 2), id="k-subset-max"),
    pytest.param(small_dag(), dag_paths(small_dag()), id="dag-min"),
])
def test_layer_matches_pyepo(problem, states):
    rng = np.random.default_rng(6)
    theta, cotangent = rng.normal(size=(6, states.shape[1])), rng.normal(size=(6, states.shape[1]))
    theirs_mu, theirs_grad = _pyepo_rfwo(states, problem.sign == -1, theta, cotangent, 0.7)
    mu, grad = _layer(problem, theta, cotangent, 0.7)
    np.testing.assert_allclose(mu, theirs_mu, atol=1e-9)
    np.testing.assert_allclose(grad, theirs_grad, atol=1e-9)
    assert np.abs(grad).max() > 0


def test_layer_is_the_projection_and_its_derivative():
    # k-subset of 4: forward the projection of s / lambda onto the hull; backward the
    # derivative of that projection (central differences, the face being stable nearby).
    # The solutions lie on simplex faces (an edge, a triangle), where the active vertices
    # span the face; inside the octahedron itself the active set may span less (as PyEPO's).
    problem, states = ims.KSubset(4, 2), ksubset_states(4, 2)
    lambd = 0.8
    s = np.array([[0.9, 0.8, 0.1, -0.5], [2.0, -1.0, 0.5, 0.4], [1.5, 0.9, -0.2, 0.3]])
    cotangent = np.random.default_rng(7).normal(size=s.shape)
    mu, grad = _layer(problem, s, cotangent, lambd)
    np.testing.assert_allclose(mu, np.stack([_projection(row / lambd, states) for row in s]), atol=1e-6)
    h = 1e-5
    numeric = np.zeros_like(s)
    for i in range(s.shape[1]):
        step = np.zeros_like(s)
        step[:, i] = h
        up = np.stack([_projection(row / lambd, states) for row in s + step])
        down = np.stack([_projection(row / lambd, states) for row in s - step])
        numeric[:, i] = np.sum(cotangent * (up - down), axis=1) / (2 * h)
    np.testing.assert_allclose(grad, numeric, atol=1e-4)

"""The JAX RegularizedFenchelYoungLoss (its Frank-Wolfe solve in one host callback): the
torch loss's values and gradients on the same inputs, under jax.jit and jax.vmap, the
failure policy, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError

from flaky import FlakyArgmax  # tests/flaky.py
from test_losses import _jax_loss, _torch_loss, small_dag
from test_pg_loss import _solve
from test_regularized_fy import BENIGN_THETA, FLAKY_THETA, Y_TRUE, _torch_rfy

jax = pytest.importorskip("jax")
jnp = jax.numpy
pytest.importorskip("torch")

from imle_solvers.jax import RegularizedFenchelYoungLoss

OPTIONS = {"lambd": 0.7, "tol": 1e-5}
CASES = [
    pytest.param(ims.KSubset(6, 2), {"k": np.array([1, 2, 3])}, id="k-subset-max"),
    pytest.param(small_dag(), {}, id="dag-min"),
]


def _inputs(problem, data, seed=4):
    rng = np.random.default_rng(seed)
    n = problem.shape[0]
    theta = rng.normal(size=(3, n)).astype(np.float32)
    y_true = np.asarray(_solve(problem, data, 3)(rng.normal(size=(3, n))), dtype=np.float32)
    return theta, y_true


@pytest.mark.parametrize("problem, data", CASES)
def test_equals_the_torch_loss_eager_and_jitted(problem, data):
    theta, y_true = _inputs(problem, data)
    value, grad = _torch_loss("RegularizedFenchelYoungLoss", problem, theta, y_true, data, **OPTIONS)
    eager = _jax_loss("RegularizedFenchelYoungLoss", problem, theta, y_true, data, **OPTIONS)
    loss_fn = RegularizedFenchelYoungLoss(problem, reduction="sum", **OPTIONS)
    jitted = jax.jit(jax.value_and_grad(lambda t, y, d: loss_fn(t, y, **d)))(
        jnp.asarray(theta), jnp.asarray(y_true), {k: jnp.asarray(v) for k, v in data.items()})
    for ours_value, ours_grad in (eager, jitted):
        np.testing.assert_allclose(float(ours_value), value, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(ours_grad), grad, atol=1e-6)
    assert np.abs(grad).max() > 0


def test_vmap_is_each_call_on_its_own():
    problem, data = ims.KSubset(6, 2), {"k": np.array([1, 2, 3])}
    thetas, ys = zip(*(_inputs(problem, data, seed) for seed in (1, 2)))
    loss_fn = RegularizedFenchelYoungLoss(problem, reduction="none", **OPTIONS)
    mapped = jax.vmap(jax.grad(lambda t, y: loss_fn(t, y, **data).sum()))(jnp.asarray(thetas), jnp.asarray(ys))
    for theta, y, grad in zip(thetas, ys, mapped):
        np.testing.assert_allclose(np.asarray(grad), _torch_loss("RegularizedFenchelYoungLoss", problem, theta, y,
                                                                  data, **OPTIONS)[1], atol=1e-6)


def _jax_rfy(theta, **options):
    loss_fn = RegularizedFenchelYoungLoss(FlakyArgmax(4), lambd=1.0, max_iter=200, backend="numpy",
                                          reduction="none", **options)
    values, pullback = jax.vjp(lambda t: loss_fn(t, jnp.asarray(Y_TRUE)), jnp.asarray(theta))
    return np.asarray(values), np.asarray(pullback(jnp.ones_like(values))[0]), loss_fn.oracle.failures


def test_failure_policy_as_torch():
    with pytest.raises(SolverError, match=r"^instance 1 \(test-flaky-argmax"):
        _jax_rfy(FLAKY_THETA)
    for theta in (FLAKY_THETA, BENIGN_THETA):
        values, grad, _ = _jax_rfy(theta, on_failure="skip")
        theirs_values, theirs_grad, _ = _torch_rfy(theta, on_failure="skip")
        np.testing.assert_allclose(values, theirs_values, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, theirs_grad, atol=1e-6)
    values, grad, failures = _jax_rfy(FLAKY_THETA, on_failure="skip")
    assert values[1] == 0 and not grad[1].any() and failures.get("infeasible", 0) >= 1


def test_refuses_what_cannot_work():
    problem = ims.KSubset(5, 2)
    theta, y_true = jnp.ones((2, 5)), jnp.asarray(np.eye(5)[:2] + np.eye(5)[[1, 2]])
    loss_fn = RegularizedFenchelYoungLoss(problem)
    # forward mode: the gradient is the loss's own, reverse mode only
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(lambda t: loss_fn(t, y_true), (theta,), (theta,))
    with pytest.raises(InvalidInputError, match="lambd must be a number > 0"):
        RegularizedFenchelYoungLoss(problem, lambd=0.0)
    with pytest.raises(InvalidInputError, match="y_true must have the prediction's shape"):
        loss_fn(theta, y_true[:, :4])

"""Soft and sparse argmax (imle_solvers.regularized_argmax) and their bindings: sparsemax
against an independent Euclidean projection (scipy SLSQP), the Jacobians against finite
differences, the Fenchel-Young losses against their formulas, the three frameworks against
each other, and regularized Frank-Wolfe on the one-hot argmax problem against sparsemax."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import imle_solvers as ims
from imle_solvers.frank_wolfe import regularized_map
from imle_solvers.oracle import MAPOracle
from imle_solvers.regularized_argmax import (
    soft_argmax,
    soft_argmax_loss,
    soft_argmax_vjp,
    sparse_argmax,
    sparse_argmax_loss,
    sparse_argmax_vjp,
)


def _simplex_projection(point: np.ndarray) -> np.ndarray:
    """argmin_{p in simplex} ||p - point||^2 by scipy's SLSQP, checked by its KKT conditions."""
    n = len(point)
    result = minimize(lambda p: 0.5 * np.sum((p - point) ** 2), np.full(n, 1 / n), jac=lambda p: p - point,
                      bounds=[(0, None)] * n, constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
                      method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
    p = np.clip(result.x, 0, None)
    # KKT: point - p is a constant tau on the support and <= tau off it
    support = p > 1e-7
    tau = np.mean((point - p)[support])
    assert np.allclose((point - p)[support], tau, atol=1e-6) and np.all(point[~support] <= tau + 1e-6)
    return p


def _scores(seed: int, shape=(5, 7)) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2.0, size=shape)


def test_sparsemax_is_the_euclidean_projection():
    theta = _scores(0)
    p = sparse_argmax(theta)
    expected = np.stack([_simplex_projection(row) for row in theta])
    assert np.allclose(p, expected, atol=1e-6)
    assert np.allclose(p.sum(axis=1), 1) and np.all(p >= 0)
    assert np.any(p == 0)  # sparse, for these scores


def test_sparsemax_of_one_dominant_score_is_one_hot_and_of_equal_scores_uniform():
    assert np.array_equal(sparse_argmax(np.array([[3.0, 0.0, 1.0]])), [[1.0, 0.0, 0.0]])
    assert np.allclose(sparse_argmax(np.full((1, 4), 0.3)), 0.25)


def test_softmax_closed_form():
    theta = _scores(1)
    expected = np.exp(theta) / np.exp(theta).sum(axis=1, keepdims=True)
    assert np.allclose(soft_argmax(theta), expected)


def _numeric_vjp(f, theta: np.ndarray, g: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(theta)
    for index in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[index] = h
        grad[index] = np.sum(g * (f(theta + step) - f(theta - step))) / (2 * h)
    return grad


@pytest.mark.parametrize("forward, vjp", [(soft_argmax, soft_argmax_vjp), (sparse_argmax, sparse_argmax_vjp)],
                         ids=["softmax", "sparsemax"])
def test_jacobians_against_finite_differences(forward, vjp):
    theta, g = _scores(2), _scores(3)
    assert np.allclose(vjp(forward(theta), g), _numeric_vjp(forward, theta, g), atol=1e-6)


def _targets(seed: int, shape=(5, 7)) -> np.ndarray:
    """One-hot rows and distributions with zeros."""
    rng = np.random.default_rng(seed)
    y = np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    y[::2] = rng.dirichlet(np.ones(shape[1]), size=len(y[::2])) * (rng.random((len(y[::2]), shape[1])) < 0.7)
    y[::2] /= np.maximum(y[::2].sum(axis=1, keepdims=True), 1e-12)
    y[::2][y[::2].sum(axis=1) == 0, 0] = 1
    return y


def test_softmax_loss_is_the_cross_entropy_plus_the_targets_entropy():
    theta, y = _scores(4), _targets(5)
    log_p = theta - np.log(np.exp(theta).sum(axis=1, keepdims=True))
    plogp = np.where(y > 0, y * np.log(np.where(y > 0, y, 1)), 0).sum(axis=1)
    result = soft_argmax_loss(theta, y)
    assert np.allclose(result.value, -(y * log_p).sum(axis=1) + plogp)  # the KL divergence to softmax(theta)
    assert np.allclose(result.gradient, np.exp(log_p) - y)


@pytest.mark.parametrize("compute", [soft_argmax_loss, sparse_argmax_loss], ids=["softmax", "sparsemax"])
def test_loss_gradients_against_finite_differences_and_zero_at_the_prediction(compute):
    theta, y = _scores(6), _targets(7)
    result = compute(theta, y)
    numeric = _numeric_vjp(lambda t: compute(t, y).value, theta, np.ones(len(theta)))
    assert np.allclose(result.gradient, numeric, atol=1e-5)
    assert np.all(result.value >= -1e-12)
    assert np.allclose(compute(theta, result.solution).value, 0, atol=1e-12)


def test_sparsemax_loss_matches_martins_and_astudillo_for_one_hot_targets():
    theta = _scores(8)
    labels = np.random.default_rng(9).integers(0, 7, len(theta))
    y = np.eye(7)[labels]
    p = sparse_argmax(theta)
    value = sparse_argmax_loss(theta, y).value
    # L(z, k) = -z_k + 1/2 sum_{j in S} (z_j^2 - tau^2) + 1/2
    tau = (theta - p)[np.arange(len(theta)), p.argmax(axis=1)]
    support = p > 0
    squares = np.where(support, theta**2 - tau[:, None] ** 2, 0).sum(axis=1)
    expected = -theta[np.arange(len(theta)), labels] + 0.5 * squares + 0.5
    assert np.allclose(value, expected)


def test_regularized_frank_wolfe_on_one_hot_argmax_is_sparsemax():
    problem = ims.KSubset(7, 1)
    oracle = MAPOracle(problem)
    theta = _scores(10)
    for lambd in (0.5, 2.0):
        active = regularized_map(theta, oracle, lambd=lambd, tol=1e-12)
        assert np.allclose(active.solution, sparse_argmax(theta / lambd), atol=1e-6)


def _torch_results(theta, y, g):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import SoftArgmaxLoss, SparseArgmaxLoss, soft_argmax, sparse_argmax

    out = {}
    for name, forward, loss in (("soft", soft_argmax, SoftArgmaxLoss), ("sparse", sparse_argmax, SparseArgmaxLoss)):
        t = torch.tensor(theta, requires_grad=True)
        p = forward(t)
        (p * torch.tensor(g)).sum().backward()
        u = torch.tensor(theta, requires_grad=True)
        values = loss(reduction="none")(u, y)
        values.sum().backward()
        out[name] = (p.detach().numpy(), t.grad.numpy(), values.detach().numpy(), u.grad.numpy())
    return out


def _jax_results(theta, y, g):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import SoftArgmaxLoss, SparseArgmaxLoss, soft_argmax, sparse_argmax

    out = {}
    for name, forward, loss in (("soft", soft_argmax, SoftArgmaxLoss), ("sparse", sparse_argmax, SparseArgmaxLoss)):
        t = jnp.asarray(theta, dtype=jnp.float32)  # JAX's default precision
        p, vjp = jax.vjp(jax.jit(forward), t)
        values, loss_vjp = jax.vjp(lambda x, loss=loss: loss(reduction="none")(x, y), t)
        grad = vjp(jnp.asarray(g, dtype=jnp.float32))[0]
        loss_grad = loss_vjp(jnp.ones(len(theta), dtype=jnp.float32))[0]
        out[name] = (np.asarray(p), np.asarray(grad), np.asarray(values), np.asarray(loss_grad))
    return out


def _tf_results(theta, y, g):
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import SoftArgmax, SoftArgmaxLoss, SparseArgmax, SparseArgmaxLoss

    out = {}
    for name, layer, loss in (("soft", SoftArgmax(dtype="float64"), SoftArgmaxLoss),
                              ("sparse", SparseArgmax(dtype="float64"), SparseArgmaxLoss)):
        t = tf.constant(theta)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(t)
            p = tf.function(layer)(t)
            weighted = tf.reduce_sum(p * g)
            values = loss(reduction=None)(y, t)
            total = tf.reduce_sum(values)
        out[name] = (p.numpy(), tape.gradient(weighted, t).numpy(), values.numpy(), tape.gradient(total, t).numpy())
    return out


@pytest.mark.parametrize("results, atol", [(_torch_results, 1e-12), (_jax_results, 1e-5), (_tf_results, 1e-12)],
                         ids=["torch", "jax", "keras"])
def test_bindings_agree_with_the_core(results, atol):
    theta, y, g = _scores(11), _targets(12), _scores(13)
    out = results(theta, y, g)
    for name, forward, vjp, loss in (("soft", soft_argmax, soft_argmax_vjp, soft_argmax_loss),
                                     ("sparse", sparse_argmax, sparse_argmax_vjp, sparse_argmax_loss)):
        p, grad, values, loss_grad = out[name]
        expected = loss(theta, y)
        assert np.allclose(p, forward(theta), atol=atol)
        assert np.allclose(grad, vjp(forward(theta), g), atol=atol)
        assert np.allclose(values, expected.value, atol=atol)
        assert np.allclose(loss_grad, expected.gradient, atol=atol)


def test_reductions():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import SparseArgmaxLoss

    theta, y = torch.tensor(_scores(14)), _targets(15)
    values = sparse_argmax_loss(theta.numpy(), y).value
    assert np.isclose(float(SparseArgmaxLoss()(theta, y)), values.mean())
    assert np.isclose(float(SparseArgmaxLoss(reduction="sum")(theta, y)), values.sum())
    with pytest.raises(ims.InvalidInputError, match="reduction"):
        SparseArgmaxLoss(reduction="max")


def test_jax_maps_and_losses_vmap():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import SparseArgmaxLoss
    from imle_solvers.jax import sparse_argmax as jax_sparse_argmax

    x = np.random.default_rng(16).normal(size=(3, 4, 5))
    weights = np.arange(5.0)
    grads = jax.vmap(jax.grad(lambda t: jnp.sum(jax_sparse_argmax(t) * weights)))(jnp.asarray(x))
    expected = sparse_argmax_vjp(sparse_argmax(x), np.broadcast_to(weights, x.shape))
    np.testing.assert_allclose(np.asarray(grads), expected, atol=1e-6)
    y = np.eye(5)[[0, 1, 2, 3]]
    values = jax.vmap(lambda t: SparseArgmaxLoss(reduction="sum")(t, y))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(values), sparse_argmax_loss(x, np.broadcast_to(y, x.shape)).value.sum(axis=1),
                               rtol=1e-5)

"""An empty batch and narrow float dtypes through every binding: the answers, not a
framework's reshape or conversion error (issue: a hostile trial's B=0, bfloat16)."""

from __future__ import annotations

import numpy as np
import pytest

import imle_solvers as ims

FRAMEWORKS = ["torch", "jax", "tensorflow"]


def value_and_grad(framework: str, problem: ims.Problem, theta: np.ndarray, dtype: str = "float32", **options):
    """``((z, its dtype's name), d sum(z * w) / d theta)`` of one training call of the
    binding's layer (I-MLE without noise, so that dtypes do not change the draw), as numpy
    float32 (``w`` a fixed weight)."""
    weights = np.linspace(-1.0, 1.0, int(np.prod(theta.shape[1:]))).reshape(theta.shape[1:])
    estimator = ims.IMLE(None, lambda_=10.0)
    if framework == "torch":
        torch = pytest.importorskip("torch")
        t = torch.as_tensor(theta).to(getattr(torch, dtype)).requires_grad_()
        z = ims.torch.IMLELayer(problem, estimator, seed=0, **options)(t)
        (z * torch.as_tensor(weights).to(z.dtype)).sum().backward()
        return (z.detach().float().numpy(), str(z.dtype).removeprefix("torch.")), t.grad.float().numpy()
    if framework == "jax":
        jax = pytest.importorskip("jax")
        f = ims.jax.imle(problem, estimator, **options)
        t = jax.numpy.asarray(theta, dtype=dtype)

        def loss(t):
            z = f(t, jax.random.key(0))
            return (z * weights.astype(z.dtype)).sum(), z

        (_, z), grad = jax.value_and_grad(loss, has_aux=True)(t)
        return (np.asarray(z, np.float32), str(z.dtype)), np.asarray(grad, np.float32)
    tf = pytest.importorskip("tensorflow")
    layer = ims.tensorflow.IMLELayer(problem, estimator, seed=0, **options)
    t = tf.constant(theta, dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(t)
        z = layer(t)
        total = tf.reduce_sum(z * tf.constant(weights, z.dtype))
    return (np.asarray(tf.cast(z, tf.float32)), z.dtype.name), np.asarray(tf.cast(tape.gradient(total, t), tf.float32))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("problem", [ims.KSubset(10, 3), ims.GridShortestPath(3, 3)], ids=["ksubset", "grid"])
def test_an_empty_batch_gives_empty_states_and_gradients(framework, problem):
    (z, _), grad = value_and_grad(framework, problem, np.zeros((0, *problem.shape)))
    assert z.shape == (0, *problem.shape)
    assert grad.shape == (0, *problem.shape)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_narrow_floats_reach_a_host_solver_widened_and_come_back_in_their_dtype(framework, dtype):
    # a host solver (scipy's Dijkstra) takes no bfloat16: the scores are widened exactly
    problem = ims.GridShortestPath(3, 3)
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.5, 4.0, size=(4, 3, 3)).astype(np.float32)
    (z, z_dtype), grad = value_and_grad(framework, problem, theta, dtype, backend="scipy")
    (z32, _), grad32 = value_and_grad(framework, problem, _rounded(theta, framework, dtype), "float32", backend="scipy")
    assert z_dtype == dtype
    # the same states as float32 scores of the same (rounded) values: widening is exact
    np.testing.assert_array_equal(z, z32)
    # the gradient is a difference of two states over lambda (its target rounds in the
    # narrow dtype, so it need not equal float32's)
    steps = grad * 10.0
    assert np.all(np.isclose(steps, np.round(steps), atol=1e-2)) and np.all(np.abs(np.round(steps)) <= 1)
    assert grad32.shape == grad.shape


def _rounded(theta: np.ndarray, framework: str, dtype: str) -> np.ndarray:
    """``theta`` rounded to ``dtype`` and back to float32, in ``framework``."""
    if framework == "torch":
        import torch

        return torch.as_tensor(theta).to(getattr(torch, dtype)).float().numpy()
    import jax.numpy as jnp

    return np.asarray(jnp.asarray(theta, dtype=dtype).astype(jnp.float32))


def test_bfloat16_scores_into_an_ilp_layer_are_solved():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ortools")
    # choose at most 2 of 4 items: the two largest scores
    problem = ims.ILP.from_dict({
        "sets": {"items": 4},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"name": "at_most_two", "expr": "sum(i in items) x[i] <= 2"}],
        "objective": {"sense": "max", "theta": "x"},
    })
    layer = ims.torch.IMLELayer(problem, ims.IMLE(None), seed=0).eval()
    theta = torch.tensor([[0.5, 3.0, -1.0, 2.0]], dtype=torch.bfloat16)
    z = layer(theta)
    assert z.dtype == torch.bfloat16
    np.testing.assert_array_equal(z.float().numpy(), [[0.0, 1.0, 0.0, 1.0]])


@pytest.mark.parametrize("backend", ["ortools", "scip", "highs"])
def test_an_empty_batch_of_an_ilp_gives_empty_states(backend):
    pytest.importorskip({"ortools": "ortools", "scip": "pyscipopt", "highs": "scipy"}[backend])
    problem = ims.ILP.from_dict({
        "sets": {"items": 3},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"name": "one", "expr": "sum(i in items) x[i] <= 1"}],
        "objective": {"sense": "max", "theta": "x"},
    })
    assert ims.MAPOracle(problem, backend=backend)(np.zeros((0, 3))).shape == (0, 3)

"""The pushforward (imle_solvers.pushforward) and its bindings: value and gradient against
the closed form on a two-item argmax, a linear post-processing against the perturbed
optimizer's Jacobian-vector product (the same draws), a non-differentiable indicator, the
three frameworks on the same numpy noise, and the settings' errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flaky import FlakyArgmax  # tests/flaky.py

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.failures import Status

torch = pytest.importorskip("torch")

from imle_solvers.torch import Pushforward


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _value_and_grad(layer: Pushforward, theta: np.ndarray, cotangent: np.ndarray | None = None, **data):
    t = torch.tensor(theta, requires_grad=True)
    value = layer(t, **data)
    value.backward(torch.ones_like(value) if cotangent is None else torch.tensor(cotangent))
    return value.detach().numpy(), t.grad.numpy()


def test_first_item_probability_and_gradient_match_the_closed_form() -> None:
    # KSubset(2, 1), g(y) = y_0: E g = P(theta_0 + s Z_0 > theta_1 + s Z_1) = Phi(d / (s sqrt 2)),
    # d = theta_0 - theta_1; its gradient is (+1, -1) phi(d / (s sqrt 2)) / (s sqrt 2)
    sigma, m = 0.8, 20_000
    theta = np.array([[0.3, -0.1], [-0.5, 0.4], [0.0, 0.0]])
    layer = Pushforward(ims.KSubset(2, 1), lambda y: y[..., 0], sigma=sigma, samples=m, seed=0)
    value, grad = _value_and_grad(layer, theta)
    scale = sigma * math.sqrt(2.0)
    d = (theta[:, 0] - theta[:, 1]) / scale
    p = _normal_cdf(d)
    density = np.exp(-d * d / 2) / math.sqrt(2 * math.pi) / scale
    assert value.shape == (3,)
    # 4 Monte-Carlo standard errors: a Bernoulli mean, and y_0 Z_i / sigma, whose
    # second moment is at most E[Z_i^2] / sigma^2 = 1 / sigma^2
    assert np.all(np.abs(value - p) < 4 * np.sqrt(p * (1 - p) / m))
    expected = np.stack([density, -density], axis=1)
    assert np.all(np.abs(grad - expected) < 4 / (sigma * math.sqrt(m)))


def _perturbed_optimizer_vjp(problem, theta, cotangent, sigma, m, seed, variance_reduction):
    from imle_solvers.torch import imle

    estimator = ims.PerturbedOptimizer(ims.Normal(), noise_temperature=sigma, marginal_samples=m,
                                       variance_reduction=variance_reduction)
    layer = imle(problem, estimator, seed=seed)
    t = torch.tensor(theta, requires_grad=True)
    layer(t).backward(torch.tensor(cotangent))
    return t.grad.numpy()


@pytest.mark.parametrize("problem", [ims.KSubset(5, 2), ims.GridShortestPath(3, 3)], ids=["max", "min"])
def test_linear_post_processing_is_the_perturbed_optimizers_vjp(problem) -> None:
    # g(y) = <a, y>: E g = <a, y_sigma(theta)>, so the pushforward's VJP of v is the perturbed
    # optimizer's of v a; without its baseline, on the same draws, the two sums are the same
    rng = np.random.default_rng(1)
    shape, sigma, m = problem.shape, 0.5, 400
    theta = rng.uniform(3.0, 5.0, size=(2, *shape))  # positive costs, whatever the noise
    a = rng.normal(size=shape)
    v = rng.normal(size=(2,))
    axes = tuple(range(-len(shape), 0))
    layer = Pushforward(problem, lambda y: (y * torch.as_tensor(a)).sum(dim=axes), sigma=sigma, samples=m, seed=3)
    _, grad = _value_and_grad(layer, theta, v)
    cotangent = v.reshape(-1, *(1,) * len(shape)) * a
    plain = _perturbed_optimizer_vjp(problem, theta, cotangent, sigma, m, 3, variance_reduction=False)
    np.testing.assert_allclose(grad, plain, rtol=1e-10, atol=1e-12)
    # with the leave-one-out baseline it is another unbiased estimate of the same gradient;
    # its difference from the plain one, mean_m (g_m - mean g) ... , is a mean of M terms of
    # size at most 2 |<v a, y>|_max |Z| / sigma
    baseline = _perturbed_optimizer_vjp(problem, theta, cotangent, sigma, m, 3, variance_reduction=True)
    bound = 2 * np.abs(cotangent).reshape(2, -1).sum(axis=1).max() / sigma
    assert not np.allclose(baseline, plain)
    assert np.all(np.abs(baseline - plain) < 4 * bound / math.sqrt(m))


def test_an_indicator_gets_a_gradient() -> None:
    # g(y) = 1[y = {0, 1}] has zero derivative almost everywhere; its expectation, the
    # probability of choosing items 0 and 1, still rises with theta_0 and falls with theta_3
    chosen = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    layer = Pushforward(ims.KSubset(4, 2), lambda y: (y == chosen).all(dim=-1).to(y.dtype), sigma=1.0,
                        samples=4000, seed=5)
    value, grad = _value_and_grad(layer, np.array([[0.5, 0.3, 0.2, -0.4]]))
    assert 0 < value[0] < 1
    standard_error = 1 / math.sqrt(4000)  # |g Z_i / sigma| has second moment at most 1
    assert grad[0, 0] > 4 * standard_error and grad[0, 1] > 4 * standard_error
    assert grad[0, 3] < -4 * standard_error


def test_array_valued_post_processing_and_batch_shape() -> None:
    # g(y) = y itself: the pushforward is the perturbed optimizer, (B, n), and its VJP with v
    # the plain perturbed optimizer's
    problem, theta = ims.KSubset(4, 2), np.random.default_rng(2).normal(size=(3, 4))
    v = np.random.default_rng(3).normal(size=(3, 4))
    value, grad = _value_and_grad(Pushforward(problem, lambda y: y, sigma=0.7, samples=50, seed=9), theta, v)
    assert value.shape == (3, 4)
    np.testing.assert_allclose(value.sum(axis=1), 2.0)
    plain = _perturbed_optimizer_vjp(problem, theta, v, 0.7, 50, 9, variance_reduction=False)
    np.testing.assert_allclose(grad, plain, rtol=1e-10, atol=1e-12)


def _torch_run(problem, g, theta, v, seed):
    layer = Pushforward(problem, lambda y: torch.as_tensor(g(y.numpy(), np)), sigma=0.6, samples=30, seed=seed, noise_source="numpy")
    return _value_and_grad(layer, theta, v)


def _jax_run(problem, g, theta, v, key):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import Pushforward as JaxPushforward

    f = JaxPushforward(problem, lambda y: g(y, jnp), sigma=0.6, samples=30, noise_source="numpy")
    value, vjp = jax.vjp(jax.jit(lambda t: f(t, key)), jnp.asarray(theta, dtype=jnp.float32))  # g traced in jit
    return np.asarray(value), np.asarray(vjp(jnp.asarray(v, dtype=jnp.float32))[0])


def _keras_run(problem, g, theta, v, seed):
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import Pushforward as KerasPushforward

    layer = KerasPushforward(problem, lambda y: g(y, tf.experimental.numpy), sigma=0.6, samples=30, seed=seed,
                             noise_source="numpy")
    t = tf.constant(theta, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(t)
        value = layer(t)
    return value.numpy(), tape.gradient(value, t, output_gradients=tf.constant(v, dtype=tf.float32)).numpy()


def test_three_frameworks_agree_on_the_same_numpy_noise() -> None:
    jax = pytest.importorskip("jax")
    from imle_solvers.jax import numpy_seed

    key = jax.random.key(4)
    seed = numpy_seed(key)
    problem = ims.KSubset(5, 2)
    theta = np.random.default_rng(6).normal(size=(3, 5)).astype(np.float32)
    v = np.random.default_rng(7).normal(size=(3, 2)).astype(np.float32)

    def g(y, xp):  # array-valued and not differentiable: (first item chosen, number of the first three chosen)
        return xp.stack([y[..., 0], xp.sum(y[..., :3], axis=-1)], axis=-1)

    torch_value, torch_grad = _torch_run(problem, g, theta, v, seed)
    for value, grad in (_jax_run(problem, g, theta, v, key), _keras_run(problem, g, theta, v, seed)):
        np.testing.assert_allclose(value, torch_value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, torch_grad, rtol=1e-4, atol=1e-5)
    assert np.abs(torch_grad).max() > 0


def test_failure_policy_zeroes_the_failed_instance() -> None:
    # FlakyArgmax fails an instance whose largest perturbed score passes 5: instance 1's
    # always does; under "skip" its value and gradient are 0, the others' those of a clean run
    theta = np.array([[0.3, 0.1, -0.2], [9.0, 0.0, 0.0], [-0.1, 0.4, 0.0]])
    v = np.array([[1.0, -2.0], [1.0, 1.0], [0.5, 1.0]])

    def g(y):  # first item chosen, and a count: array-valued
        return torch.stack([y[..., 0], y[..., :2].sum(dim=-1)], dim=-1)

    def run(problem, theta, **options):
        layer = Pushforward(problem, g, sigma=0.3, samples=200, seed=2, backend="numpy", noise_source="numpy",
                            **options)
        t = torch.tensor(theta, requires_grad=True)
        out = layer(t)
        value, status = out if isinstance(out, tuple) else (out, None)
        value.backward(torch.tensor(v))
        return value.detach().numpy(), t.grad.numpy(), status

    value, grad, status = run(FlakyArgmax(3, fail_above=5.0), theta, on_failure="skip")
    assert status.tolist() == [int(Status.OK), int(Status.FAILED), int(Status.OK)]
    assert not value[1].any() and not grad[1].any()
    clean_value, clean_grad, _ = run(FlakyArgmax(3), theta)
    np.testing.assert_allclose(value[[0, 2]], clean_value[[0, 2]])
    np.testing.assert_allclose(grad[[0, 2]], clean_grad[[0, 2]])
    assert np.abs(grad[[0, 2]]).sum() > 0
    with pytest.raises(SolverError, match="instance 1"):
        run(FlakyArgmax(3, fail_above=5.0), theta)


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_bad_sigma_is_refused(sigma) -> None:
    with pytest.raises(InvalidInputError, match="Pushforward: sigma"):
        Pushforward(ims.KSubset(3, 1), lambda y: y, sigma=sigma)


@pytest.mark.parametrize("samples", [0, -2, 1.5, True, 2**21])
def test_bad_samples_are_refused(samples) -> None:
    with pytest.raises(InvalidInputError, match="Pushforward"):
        Pushforward(ims.KSubset(3, 1), lambda y: y, samples=samples)


def test_bad_post_processing_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="g must be a function"):
        Pushforward(ims.KSubset(3, 1), "y[0]")
    layer = Pushforward(ims.KSubset(3, 1), lambda y: y.sum(), samples=4, seed=0)  # drops the leading axes
    with pytest.raises(InvalidInputError, match="same leading axes"):
        layer(torch.zeros(2, 3))

"""The estimators' gradients against their formulas, with the noise held fixed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.adapters.topk import topk_mask
from imle_solvers.errors import InvalidInputError

from fixed_noise import FixedNoise, topk  # tests/fixed_noise.py


def grid_solver(problem):
    return ims.MAPOracle(problem)


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_imle_gradient_max_problem(rng, scale, alpha):
    theta, g = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    eps = rng.gumbel(size=(5, 1, 1, 8))
    lam, tau, tau_target = 3.0, 0.7, 0.4
    estimator = ims.IMLE(FixedNoise(eps), noise_temperature=tau, target_noise_temperature=tau_target,
                         lambda_=lam, alpha=alpha, scale_by_lambda=scale)
    z, residuals = estimator.sample(theta, topk(3), sign=1, rng=rng)
    grad, state = estimator.gradient(residuals, g, topk(3))

    expected_z = topk_mask(theta + tau * eps[:, 0, 0], 3)
    z_target = topk_mask(alpha * theta - lam * g + tau_target * eps[:, 0, 0], 3)
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_allclose(grad, (expected_z - z_target) / (lam if scale else 1.0))
    assert state is None


@pytest.mark.filterwarnings("ignore::imle_solvers.NegativeCostWarning")
@pytest.mark.parametrize("scale", [True, False])
def test_imle_gradient_min_problem_takes_costs_as_costs(rng, scale):
    problem = ims.GridShortestPath(4, 4)
    solve = grid_solver(problem)
    costs, g = rng.uniform(1, 3, size=(3, 4, 4)), rng.normal(size=(3, 4, 4))
    eps = rng.uniform(0, 0.5, size=(3, 1, 1, 4, 4))
    lam = 2.0
    estimator = ims.IMLE(FixedNoise(eps), lambda_=lam, scale_by_lambda=scale)
    z, residuals = estimator.sample(costs, solve, sign=-1, rng=rng)
    grad, _ = estimator.gradient(residuals, g, solve)

    # a cost problem: perturb by -eps, target costs + lambda * g, gradient (z' - z)
    expected_z = solve(costs - eps[:, 0, 0])
    z_target = solve(costs + lam * g - eps[:, 0, 0])
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_allclose(grad, (z_target - expected_z) / (lam if scale else 1.0))


def test_imle_several_samples_average_per_sample_gradients(rng):
    samples, lam = 4, 5.0
    theta = rng.normal(size=(2, 6))
    eps = rng.gumbel(size=(2, samples, 1, 6))
    g = rng.normal(size=(2, samples, 6))
    estimator = ims.IMLE(FixedNoise(eps), lambda_=lam, samples=samples)
    z, residuals = estimator.sample(theta, topk(2), sign=1, rng=rng)
    assert z.shape == (2, samples, 6)
    grad, _ = estimator.gradient(residuals, g, topk(2))

    per_sample = [
        (topk_mask(theta + eps[:, s, 0], 2) - topk_mask(theta - lam * g[:, s] + eps[:, s, 0], 2)) / lam
        for s in range(samples)
    ]
    np.testing.assert_allclose(grad, np.mean(per_sample, axis=0))


def test_imle_marginal_samples_average_states_before_the_difference(rng):
    marginal, lam = 5, 2.0
    theta, g = rng.normal(size=(3, 7)), rng.normal(size=(3, 7))
    eps = rng.gumbel(size=(3, 1, marginal, 7))
    estimator = ims.IMLE(FixedNoise(eps), lambda_=lam, marginal_samples=marginal)
    z, residuals = estimator.sample(theta, topk(3), sign=1, rng=rng)
    grad, _ = estimator.gradient(residuals, g, topk(3))

    mean_z = np.mean([topk_mask(theta + eps[:, 0, m], 3) for m in range(marginal)], axis=0)
    mean_target = np.mean([topk_mask(theta - lam * g + eps[:, 0, m], 3) for m in range(marginal)], axis=0)
    np.testing.assert_allclose(z, mean_z)
    np.testing.assert_allclose(z.sum(axis=1), 3.0)
    np.testing.assert_allclose(grad, (mean_z - mean_target) / lam)


def test_no_noise_is_plain_map(rng):
    theta = rng.normal(size=(4, 5))
    z, residuals = ims.IMLE().sample(theta, topk(2), sign=1, rng=rng)
    np.testing.assert_array_equal(z, topk_mask(theta, 2))
    assert residuals.noise is None


@pytest.mark.parametrize("estimator", [ims.IMLE(lambda_=2.0, samples=3), ims.AIMLE(samples=3), ims.STE(samples=3)])
def test_no_noise_with_several_samples_repeats_the_map_state(rng, estimator):
    theta, g = rng.normal(size=(4, 5)), rng.normal(size=(4, 3, 5))
    z, residuals = estimator.sample(theta, topk(2), sign=1, rng=rng)
    assert z.shape == (4, 3, 5)
    np.testing.assert_array_equal(z, np.repeat(topk_mask(theta, 2)[:, None], 3, axis=1))
    grad, _ = estimator.gradient(residuals, g, topk(2), estimator.initial_state())
    # samples share theta and its MAP state, so the gradient is the mean of the per-sample ones
    one = replace(estimator, samples=1)
    _, one_residuals = one.sample(theta, topk(2), sign=1, rng=rng)
    per_sample = [one.gradient(one_residuals, g[:, s], topk(2), one.initial_state())[0] for s in range(3)]
    np.testing.assert_allclose(grad, np.mean(per_sample, axis=0))


def test_ste_passes_the_gradient_through_with_the_problem_sign(rng):
    theta, g = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    for sign in (1, -1):
        _, residuals = ims.STE().sample(theta, topk(2), sign=sign, rng=rng)
        grad, _ = ims.STE().gradient(residuals, g, topk(2))
        np.testing.assert_allclose(grad, sign * g)


def test_upstream_gradient_shape_is_checked(rng):
    theta = rng.normal(size=(3, 5))
    _, residuals = ims.IMLE().sample(theta, topk(2), sign=1, rng=rng)
    with pytest.raises(InvalidInputError, match=r"dL/dz: expected shape \(3, 5\), got \(3, 4\)"):
        ims.IMLE().gradient(residuals, np.zeros((3, 4)), topk(2))


@pytest.mark.parametrize("kwargs", [{"samples": 0}, {"marginal_samples": 0}, {"lambda_": 0.0}, {"samples": 1.5}])
def test_imle_parameters_are_checked(kwargs):
    with pytest.raises(InvalidInputError):
        ims.IMLE(**kwargs)


def test_estimators_are_readable_values():
    estimator = ims.IMLE(ims.SumOfGamma(k=10), lambda_=10.0)
    assert "SumOfGamma(k=10" in repr(estimator) and "lambda_=10.0" in repr(estimator)
    assert estimator == ims.IMLE(ims.SumOfGamma(k=10), lambda_=10.0)


# --- I-MLE's two-sided difference ---------------------------------------------------------

@pytest.mark.parametrize("scale_by_lambda", [True, False])
def test_two_sided_imle_is_the_central_difference(scale_by_lambda):
    """(MAP(theta + lambda g + eps) - MAP(theta - lambda g + eps)) / (2 lambda), the forward
    state unused; without scale_by_lambda the difference over 2."""
    from imle_solvers.adapters.topk import topk_mask

    rng = np.random.default_rng(4)
    theta, g = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    noise = rng.gumbel(size=(5, 1, 1, 6))
    solve = lambda x: topk_mask(x, 2)  # noqa: E731 - the max problem's oracle
    imle = ims.IMLE(ims.Gumbel(), lambda_=0.7, two_sided=True, scale_by_lambda=scale_by_lambda)
    z, residuals = imle.sample_with(theta, noise, solve, sign=1)
    grad, _ = imle.gradient(residuals, g, solve)
    eps = noise[:, 0, 0]
    difference = solve(theta + 0.7 * g + eps) - solve(theta - 0.7 * g + eps)
    np.testing.assert_allclose(grad, difference / (1.4 if scale_by_lambda else 2.0), rtol=1e-12)
    np.testing.assert_array_equal(z, solve(theta + eps))
    assert np.abs(grad).sum() > 0


def test_two_sided_imle_on_a_min_problem_flips_the_sign_on_exit():
    """A min problem over costs c is the max problem over -c: the gradient with respect to c
    is minus the max problem's central difference."""
    from imle_solvers.adapters.topk import topk_mask

    rng = np.random.default_rng(5)
    c, g = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    noise = rng.gumbel(size=(4, 1, 1, 5))
    solve_max = lambda x: topk_mask(x, 2)  # noqa: E731
    imle = ims.IMLE(ims.Gumbel(), lambda_=0.5, two_sided=True)
    _, residuals = imle.sample_with(c, noise, lambda x: solve_max(-x), sign=-1)
    grad, _ = imle.gradient(residuals, g, lambda x: solve_max(-x))
    eps = noise[:, 0, 0]
    expected = -(solve_max(-c + 0.5 * g + eps) - solve_max(-c - 0.5 * g + eps)) / 1.0
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["two_sided", "scale_by_lambda"])
def test_imle_flags_must_be_booleans(name):
    with pytest.raises(InvalidInputError, match=f"{name} must be True or False"):
        ims.IMLE(ims.Gumbel(), **{name: "yes"})


def test_two_sided_imle_runs_in_every_framework_with_one_oracle_call_for_both_targets():
    """The option is the core's: torch, JAX (jit) and Keras each give a finite, non-zero
    gradient (their noise draws differ), and both targets go to the oracle in one call of
    2B rows."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    tf = pytest.importorskip("tensorflow")
    problem, imle = ims.KSubset(6, 2), ims.IMLE(ims.Gumbel(), lambda_=3.0, two_sided=True)
    theta = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    upstream = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    t = torch.tensor(theta, requires_grad=True)
    ims.torch.IMLELayer(problem, imle, seed=0, noise_source="numpy")(t).backward(torch.tensor(upstream))
    f = ims.jax.imle(problem, imle, noise_source="numpy")
    _, pullback = jax.vjp(jax.jit(lambda x: f(x, jax.random.key(0))), jax.numpy.asarray(theta))
    jax_grad = np.asarray(pullback(jax.numpy.asarray(upstream))[0])
    layer, x = ims.tensorflow.IMLELayer(problem, imle, seed=0, noise_source="numpy"), tf.constant(theta)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(layer(x, training=True) * upstream)
    keras_grad = tape.gradient(value, x).numpy()
    assert np.abs(t.grad.numpy()).sum() > 0
    calls = []
    solve = ims.MAPOracle(problem)
    imle.gradient(imle.sample_with(theta, np.zeros((3, 1, 1, 6), np.float32), lambda s: calls.append(len(s))
                                   or solve(s), sign=1)[1], upstream, lambda s: calls.append(len(s)) or solve(s))
    assert calls == [3, 6]  # the forward's 3 rows, then both targets' 6 rows in one call
    for grad in (jax_grad, keras_grad):  # the frameworks draw their own numpy noise from the seed
        assert grad.shape == theta.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0

"""The ranking problem (InferOpt's ``ranking`` oracle): its MAP state against brute force
over all permutations, in every framework, and the estimators and losses on it against
their formulas."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.losses import fenchel_young

from fixed_noise import FixedNoise  # tests/fixed_noise.py


def _brute_force_best(theta: np.ndarray) -> float:
    """max over the permutations r of (1..n) of <theta, r>."""
    n = len(theta)
    return max(float(theta @ np.array(r, dtype=float)) for r in itertools.permutations(range(1, n + 1)))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_map_against_brute_force(n):
    rng = np.random.default_rng(n)
    theta = rng.normal(size=(6, n))
    theta[0] = np.round(theta[0])  # ties
    theta[1] = 0.5  # all tied
    z = ims.MAPOracle(ims.Ranking(n))(theta)
    for row, ranks in zip(theta, z, strict=True):
        assert sorted(ranks) == list(range(1, n + 1))
        assert np.isclose(row @ ranks, _brute_force_best(row))


def test_ties_take_ranks_in_index_order_and_the_highest_score_rank_n():
    z = ims.MAPOracle(ims.Ranking(5))(np.array([[0.3, -1.0, 2.0, 0.3, 0.3]]))
    np.testing.assert_array_equal(z, [[2, 1, 5, 3, 4]])


def _in_frameworks(theta):
    yield np.asarray(theta)
    torch = pytest.importorskip("torch")
    yield torch.tensor(theta)
    jax = pytest.importorskip("jax")
    yield jax.numpy.asarray(theta)
    tf = pytest.importorskip("tensorflow")
    yield tf.constant(theta)


def test_every_framework_ranks_alike_on_its_own_arrays():
    theta = np.random.default_rng(0).normal(size=(4, 9)).round(1)
    oracle = ims.MAPOracle(ims.Ranking(9))
    expected = oracle(theta)
    for x in _in_frameworks(theta):
        z = oracle(x)
        assert type(z) is type(x)
        np.testing.assert_array_equal(np.asarray(z), expected)


def test_imle_estimator_formula():
    rng = np.random.default_rng(1)
    theta, g = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    eps = rng.gumbel(size=(3, 1, 1, 5))
    lam, tau = 2.0, 0.5
    solve = ims.MAPOracle(ims.Ranking(5))
    estimator = ims.IMLE(FixedNoise(eps), noise_temperature=tau, lambda_=lam)
    z, residuals = estimator.sample(theta, solve, sign=1, rng=rng)
    grad, _ = estimator.gradient(residuals, g, solve)
    expected_z = solve(theta + tau * eps[:, 0, 0])
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_allclose(grad, (expected_z - solve(theta - lam * g + tau * eps[:, 0, 0])) / lam)


def test_torch_imle_layer_gives_the_formulas_gradient():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import imle

    lam = 3.0
    rng = np.random.default_rng(2)
    theta_np, g = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    layer = imle(ims.Ranking(6), ims.IMLE(noise=None, lambda_=lam))
    theta = torch.tensor(theta_np, requires_grad=True)
    z = layer(theta)
    z.backward(torch.tensor(g))
    solve = ims.MAPOracle(ims.Ranking(6))
    np.testing.assert_array_equal(z.detach().numpy(), solve(theta_np))
    np.testing.assert_allclose(theta.grad.numpy(), (solve(theta_np) - solve(theta_np - lam * g)) / lam)


def test_jax_imle_function_under_jit_gives_the_formulas_gradient():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from imle_solvers.jax import imle

    lam = 3.0
    rng = np.random.default_rng(3)
    theta_np, g = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    f = imle(ims.Ranking(6), ims.IMLE(noise=None, lambda_=lam))
    key = jax.random.PRNGKey(0)
    grad = jax.jit(jax.grad(lambda t: jnp.sum(f(t, key) * g)))(jnp.asarray(theta_np))
    solve = ims.MAPOracle(ims.Ranking(6))
    np.testing.assert_allclose(np.asarray(grad), (solve(theta_np) - solve(theta_np - lam * g)) / lam, rtol=1e-6)


def test_keras_imle_layer_in_a_tf_function_gives_the_formulas_gradient():
    tf = pytest.importorskip("tensorflow")
    from imle_solvers.tensorflow import IMLELayer

    lam = 3.0
    rng = np.random.default_rng(6)
    theta_np, g = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    layer = IMLELayer(ims.Ranking(6), ims.IMLE(noise=None, lambda_=lam), seed=0)

    @tf.function
    def gradient(theta):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = tf.reduce_sum(layer(theta, training=True) * g)
        return tape.gradient(loss, theta)

    solve = ims.MAPOracle(ims.Ranking(6))
    np.testing.assert_allclose(gradient(tf.constant(theta_np)).numpy(),
                               (solve(theta_np) - solve(theta_np - lam * g)) / lam, rtol=1e-6)


def test_perturbed_fenchel_young_formula():
    rng = np.random.default_rng(4)
    theta, noise = rng.normal(size=(3, 5)), rng.normal(size=(3, 4, 5))
    solve = ims.MAPOracle(ims.Ranking(5))
    y_true = solve(rng.normal(size=(3, 5)))
    sigma = 0.7
    result = fenchel_young(theta, y_true, noise, solve, sign=1, sigma=sigma)
    states = solve((theta[:, None] + sigma * noise).reshape(-1, 5)).reshape(3, 4, 5)
    np.testing.assert_allclose(result.gradient, states.mean(axis=1) - y_true)
    np.testing.assert_allclose(result.value, np.mean(np.sum(states * (theta[:, None] + sigma * noise), axis=2), axis=1)
                               - np.sum(theta * y_true, axis=1))


def test_torch_fenchel_young_loss_runs_its_solves_on_rankings():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss

    rng = np.random.default_rng(5)
    solve = ims.MAPOracle(ims.Ranking(5))
    y_true = torch.tensor(solve(rng.normal(size=(3, 5))))
    theta = torch.tensor(rng.normal(size=(3, 5)), requires_grad=True)
    loss = FenchelYoungLoss(ims.Ranking(5), sigma=1e-9, samples=1, reduction="sum")
    loss(theta, y_true).backward()
    # at a vanishing sigma the perturbed state is the MAP state
    np.testing.assert_allclose(theta.grad.numpy(), solve(theta.detach().numpy()) - y_true.numpy())


def test_spo_plus_against_brute_force():
    from imle_solvers.losses import spo_plus

    rng = np.random.default_rng(7)
    n = 4
    perms = np.array(list(itertools.permutations(range(1, n + 1))), dtype=float)
    theta_hat, theta = rng.normal(size=(5, n)), rng.normal(size=(5, n))
    result = spo_plus(theta_hat, theta, ims.MAPOracle(ims.Ranking(n)), sign=1)
    # a max problem: max_w <2 theta_hat - theta, w> - 2 <theta_hat, w*(theta)> + z*(theta)
    w_star = perms[np.argmax(theta @ perms.T, axis=1)]
    expected = (np.max((2 * theta_hat - theta) @ perms.T, axis=1) - 2 * np.sum(theta_hat * w_star, axis=1)
                + np.max(theta @ perms.T, axis=1))
    np.testing.assert_allclose(result.value, expected)
    w_tilde = perms[np.argmax((2 * theta_hat - theta) @ perms.T, axis=1)]
    np.testing.assert_allclose(result.gradient, 2 * (w_tilde - w_star))


def test_problem_checks_n_and_serialises():
    from imle_solvers import serialization

    with pytest.raises(ims.InvalidInputError, match="Ranking: n"):
        ims.Ranking(0)
    assert serialization.from_config(serialization.to_config(ims.Ranking(4))) == ims.Ranking(4)

"""Blackbox differentiation, the negative identity and perturbed optimizers against their
formulas and exact expectations; the Normal noise's moments in every source.

Statistical checks compare a Monte Carlo estimate with an exact value within ``Z_BOUND``
standard errors, the standard error estimated from the same draws (per entry; seeds
are fixed, so the tests are deterministic; at 5 standard errors a correct estimator
fails one entry's check with probability below 1e-6)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate, special, stats

import imle_solvers as ims
from imle_solvers.adapters.topk import topk_mask
from imle_solvers.errors import InvalidInputError

from fixed_noise import FixedNoise, topk  # tests/fixed_noise.py
from imle_solvers.serialization import from_config, to_config

Z_BOUND = 5.0
DRAWS = 1_000_000


def brute_force_bottom_k(k):
    """A min problem by enumeration: the k-subset of least total cost, ``(N, n) -> (N, n)``."""

    def solve(costs):
        n = costs.shape[-1]
        subsets = np.array([[i in chosen for i in range(n)] for chosen in itertools.combinations(range(n), k)], float)
        best = np.argmin(costs @ subsets.T, axis=1)
        return subsets[best]

    return solve


def assert_within_standard_errors(estimate, exact, standard_error, what):
    z_scores = np.abs(estimate - exact) / standard_error
    assert np.all(z_scores < Z_BOUND), f"{what}: |estimate - exact| / SE = {z_scores} (bound {Z_BOUND})"


# --- Normal noise --------------------------------------------------------------------


def test_normal_moments_numpy():
    draws = ims.Normal().sample(np.random.default_rng(0), (DRAWS,))
    assert draws.shape == (DRAWS,) and draws.dtype == np.float64
    # mean, variance, third and fourth moments of N(0, 1): 0, 1, 0, 3; their estimates'
    # standard errors from the moments of order 2, 4, 6, 8 (1, 3, 15, 105)
    n = DRAWS
    assert_within_standard_errors(draws.mean(), 0.0, np.sqrt(1 / n), "mean")
    assert_within_standard_errors(np.mean(draws**2), 1.0, np.sqrt((3 - 1) / n), "second moment")
    assert_within_standard_errors(np.mean(draws**3), 0.0, np.sqrt(15 / n), "third moment")
    assert_within_standard_errors(np.mean(draws**4), 3.0, np.sqrt((105 - 9) / n), "fourth moment")
    assert stats.kstest(draws[:200_000], "norm").pvalue > 1e-3


def test_normal_draws_repeat_with_the_same_generator_state():
    a = ims.Normal().sample(np.random.default_rng(7), (4, 3))
    b = ims.Normal().sample(np.random.default_rng(7), (4, 3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 3)


def native_sources():
    def torch_source():
        torch = pytest.importorskip("torch")
        torch.manual_seed(0)
        return ims.noise.TorchSource(None, torch.float32, "cpu")

    def jax_source():
        jax = pytest.importorskip("jax")
        return ims.noise.JaxSource(jax.random.key(0), jax.numpy.float32)

    def tensorflow_source():
        tf = pytest.importorskip("tensorflow")
        counter = [0]

        def next_seed():
            counter[0] += 1
            return tf.constant([counter[0], 0], dtype=tf.int32)

        return ims.noise.TensorFlowSource(next_seed, tf.float32)

    return [
        pytest.param(torch_source, id="torch"),
        pytest.param(jax_source, id="jax"),
        pytest.param(tensorflow_source, id="tensorflow"),
    ]


@pytest.mark.parametrize("make_source", native_sources())
def test_normal_moments_in_every_source(make_source):
    draws = ims.Normal().sample(make_source(), (500, 400))
    assert tuple(draws.shape) == (500, 400)
    assert "float32" in str(draws.dtype)
    x = np.asarray(draws, dtype=np.float64).ravel()
    n = x.size
    assert np.all(np.isfinite(x))
    assert_within_standard_errors(x.mean(), 0.0, np.sqrt(1 / n), "mean")
    assert_within_standard_errors(np.mean(x**2), 1.0, np.sqrt(2 / n), "second moment")
    assert_within_standard_errors(np.mean(x**4), 3.0, np.sqrt(96 / n), "fourth moment")
    assert stats.kstest(x[:100_000], "norm").pvalue > 1e-3


# --- Blackbox differentiation ----------------------------------------------------------


@pytest.mark.parametrize("lam", [0.5, 3.0, 20.0])
def test_blackbox_equals_imle_without_noise_exactly(rng, lam):
    theta, g = rng.normal(size=(6, 9)), rng.normal(size=(6, 9))
    results = []
    for estimator in (ims.BlackboxDifferentiation(lambda_=lam), ims.IMLE(noise=None, lambda_=lam)):
        z, residuals = estimator.sample(theta, topk(4), sign=1, rng=rng)
        grad, state = estimator.gradient(residuals, g, topk(4))
        results.append((z, grad))
        assert state is None
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert np.abs(results[0][1]).sum() > 0


@pytest.mark.filterwarnings("ignore::imle_solvers.NegativeCostWarning")
def test_blackbox_equals_imle_with_the_same_noise_on_a_min_problem(rng):
    solve = ims.MAPOracle(ims.GridShortestPath(4, 4))
    costs, g = rng.uniform(1, 3, size=(3, 4, 4)), rng.normal(size=(3, 2, 4, 4))
    noise = FixedNoise(rng.uniform(0, 0.5, size=(3, 2, 1, 4, 4)))
    grads = []
    for estimator in (ims.BlackboxDifferentiation(noise, lambda_=4.0, samples=2), ims.IMLE(noise, lambda_=4.0, samples=2)):
        _, residuals = estimator.sample(costs, solve, sign=-1, rng=rng)
        grads.append(estimator.gradient(residuals, g, solve)[0])
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("lam", [1.0, 7.5])
def test_blackbox_min_problem_is_vlastelicas_formula_by_brute_force(rng, lam):
    """Costs w of a min problem: forward y(w), backward -(y(w) - y(w + lambda g)) / lambda."""
    solve = brute_force_bottom_k(2)
    costs, g = rng.uniform(0, 2, size=(20, 5)), rng.normal(size=(20, 5))
    estimator = ims.BlackboxDifferentiation(lambda_=lam)
    z, residuals = estimator.sample(costs, solve, sign=-1, rng=rng)
    grad, _ = estimator.gradient(residuals, g, solve)
    np.testing.assert_array_equal(z, solve(costs))
    np.testing.assert_allclose(grad, -(solve(costs) - solve(costs + lam * g)) / lam, rtol=1e-12, atol=1e-12)
    assert np.abs(grad).sum() > 0


@pytest.mark.parametrize("kwargs", [{"lambda_": 0.0}, {"lambda_": -1.0}, {"lambda_": float("inf")}, {"samples": 0}])
def test_blackbox_settings_are_checked(kwargs):
    with pytest.raises(InvalidInputError):
        ims.BlackboxDifferentiation(**kwargs)


# --- Negative identity -----------------------------------------------------------------


@pytest.mark.parametrize("noise", [None, ims.Gumbel()])
def test_negative_identity_passes_g_for_max_and_minus_g_for_min(rng, noise):
    theta, g = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    estimator = ims.NegativeIdentity(noise)
    for sign, solve in ((1, topk(2)), (-1, brute_force_bottom_k(2))):
        z, residuals = estimator.sample(theta, solve, sign=sign, rng=np.random.default_rng(1))
        grad, state = estimator.gradient(residuals, g, solve)
        np.testing.assert_array_equal(grad, g if sign == 1 else -g)
        assert state is None
        # the same as STE in this library's sign convention
        _, ste_residuals = ims.STE(noise).sample(theta, solve, sign=sign, rng=np.random.default_rng(1))
        np.testing.assert_array_equal(grad, ims.STE(noise).gradient(ste_residuals, g, solve)[0])
    if noise is None:
        np.testing.assert_array_equal(z, brute_force_bottom_k(2)(theta))


def test_negative_identity_averages_samples(rng):
    theta, g = rng.normal(size=(4, 6)), rng.normal(size=(4, 3, 6))
    estimator = ims.NegativeIdentity(samples=3)
    _, residuals = estimator.sample(theta, brute_force_bottom_k(2), sign=-1, rng=rng)
    grad, _ = estimator.gradient(residuals, g, brute_force_bottom_k(2))
    np.testing.assert_allclose(grad, -g.mean(axis=1))


# --- Perturbed optimizers: formulas with the draw held fixed ---------------------------


@pytest.mark.parametrize("variance_reduction", [False, True])
@pytest.mark.parametrize("multiplicative", [False, True])
@pytest.mark.parametrize("noise", [ims.Normal(), ims.Gumbel()])
@pytest.mark.parametrize("sign", [1, -1])
def test_perturbed_optimizer_formula(rng, noise, multiplicative, sign, variance_reduction):
    samples, m, sigma = 2, 7, 0.6
    theta = rng.normal(size=(3, 5))
    g = rng.normal(size=(3, samples, 5))
    solve = topk(2) if sign == 1 else brute_force_bottom_k(2)
    estimator = ims.PerturbedOptimizer(noise, noise_temperature=sigma, samples=samples, marginal_samples=m,
                                       multiplicative=multiplicative, variance_reduction=variance_reduction)
    z, residuals = estimator.sample(theta, solve, sign=sign, rng=rng)
    eps = residuals.noise
    assert eps.shape == (3, samples, m, 5)
    assert z.shape == (3, samples, 5)
    assert residuals.states.shape == (3, samples, m, 5)

    scores = sign * theta[:, None, None, :]
    perturbed = scores * np.exp(sigma * eps - sigma**2 / 2) if multiplicative else scores + sigma * eps
    states = topk_mask(perturbed, 2)  # the max problem's states; MAP_min(w) = MAP_max(-w)
    np.testing.assert_array_equal(residuals.states, states)
    np.testing.assert_allclose(z, states.mean(axis=2))
    np.testing.assert_array_equal(residuals.z, z)

    grad, state = estimator.gradient(residuals, g, solve)
    score = eps if isinstance(noise, ims.Normal) else 1 - np.exp(-eps)
    inner = np.einsum("bsmn,bsn->bsm", states, g)
    if variance_reduction:  # each draw's weight less the mean of the other m - 1 draws' weights
        others = (inner.sum(axis=2, keepdims=True) - inner) / (m - 1)
        inner = inner - others
    expected = np.mean(inner[..., None] * score, axis=2) / sigma
    if multiplicative:
        expected = expected / (sign * theta[:, None, :])
    np.testing.assert_allclose(grad, sign * expected.mean(axis=1), rtol=1e-12, atol=1e-12)
    assert state is None


def test_perturbed_optimizer_one_sample_output_has_no_sample_axis(rng):
    theta = rng.normal(size=(4, 6))
    estimator = ims.PerturbedOptimizer(marginal_samples=3)
    z, residuals = estimator.sample(theta, topk(2), sign=1, rng=rng)
    assert z.shape == (4, 6) and residuals.states.shape == (4, 1, 3, 6) and residuals.z.shape == (4, 1, 6)
    np.testing.assert_allclose(z.sum(axis=1), 2.0)
    grad, _ = estimator.gradient(residuals, rng.normal(size=(4, 6)), topk(2))
    assert grad.shape == (4, 6)


def test_perturbed_optimizer_needs_its_own_residuals(rng):
    theta = rng.normal(size=(2, 5))
    _, residuals = ims.STE().sample(theta, topk(2), sign=1, rng=rng)
    with pytest.raises(InvalidInputError, match="PerturbedResiduals"):
        ims.PerturbedOptimizer().gradient(residuals, rng.normal(size=(2, 5)), topk(2))


def test_variance_reduction_changes_nothing_with_one_draw(rng):
    theta, g = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    grads = []
    for variance_reduction in (False, True):
        estimator = ims.PerturbedOptimizer(variance_reduction=variance_reduction)
        _, residuals = estimator.sample(theta, topk(2), sign=1, rng=np.random.default_rng(3))
        grads.append(estimator.gradient(residuals, g, topk(2))[0])
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("noise", [ims.Normal(), ims.Gumbel()])
def test_variance_reduction_keeps_the_mean_and_lowers_the_spread(noise):
    # A gradient g with a large component common to every state (<y, g> = 2 * 10 for every
    # top-2 state) inflates the plain estimate's variance; the baseline removes it.
    theta = np.array([1.0, 0.5, 0.0, -0.5, -1.0])
    g = np.array([10.5, 9.0, 10.0, 11.0, 10.0])
    estimates = {}
    for variance_reduction in (False, True):
        estimator = ims.PerturbedOptimizer(noise, marginal_samples=8, variance_reduction=variance_reduction)
        theta_b = np.broadcast_to(theta, (4000, 5)).copy()
        _, residuals = estimator.sample(theta_b, topk(2), sign=1, rng=np.random.default_rng(11))
        estimates[variance_reduction] = estimator.gradient(residuals, np.broadcast_to(g, (4000, 5)), topk(2))[0]
    plain, reduced = estimates[False], estimates[True]
    se = np.sqrt(plain.var(axis=0) / len(plain) + reduced.var(axis=0) / len(reduced))
    assert np.all(np.abs(plain.mean(axis=0) - reduced.mean(axis=0)) < 4 * se)
    assert np.all(reduced.std(axis=0) < 0.5 * plain.std(axis=0))


def test_multiplicative_gives_zero_gradient_where_theta_is_zero(rng):
    theta = rng.uniform(0.5, 2, size=(2, 5))
    theta[:, 1] = 0.0
    estimator = ims.PerturbedOptimizer(multiplicative=True, marginal_samples=5)
    _, residuals = estimator.sample(theta, topk(2), sign=1, rng=rng)
    grad, _ = estimator.gradient(residuals, rng.normal(size=(2, 5)), topk(2))
    assert np.all(np.isfinite(grad)) and np.all(grad[:, 1] == 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"noise": None},
        {"noise": ims.SumOfGamma(k=2)},
        {"noise_temperature": 0.0},
        {"noise_temperature": -1.0},
        {"marginal_samples": 0},
        {"samples": 0},
        {"multiplicative": "yes"},
        {"variance_reduction": 1},
    ],
)
def test_perturbed_optimizer_settings_are_checked(kwargs):
    with pytest.raises(InvalidInputError):
        ims.PerturbedOptimizer(**kwargs)


# --- Perturbed optimizers: exact expectations ---------------------------------------------


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def monte_carlo(estimator, theta, g, solve, sign=1, seed=0):
    """The forward mean and gradient of one instance, with the standard errors of each
    entry (from the spread of the per-draw terms)."""
    z, residuals = estimator.sample(theta[None], solve, sign=sign, rng=np.random.default_rng(seed))
    grad, _ = estimator.gradient(residuals, g[None], solve)
    states, eps = residuals.states[0, 0], residuals.noise[0, 0]  # (M, n)
    m, sigma = states.shape[0], estimator.noise_temperature
    score = eps if isinstance(estimator.noise, ims.Normal) else 1 - np.exp(-eps)
    terms = (states @ (sign * g))[:, None] * score / sigma  # the max problem's per-draw gradients
    if estimator.multiplicative:
        terms = terms / (sign * theta)
    z_se = states.std(axis=0, ddof=1) / np.sqrt(m)
    grad_se = terms.std(axis=0, ddof=1) / np.sqrt(m)
    return z[0], grad[0], z_se, grad_se


M_LARGE = 400_000


def test_gumbel_perturbed_argmax_is_softmax():
    """E[one_hot(argmax(theta + sigma G))] = softmax(theta / sigma), Jacobian (diag(p) - p p^T) / sigma."""
    theta, g, sigma = np.array([0.3, -0.5, 1.0, 0.1, -1.2]), np.array([1.0, -2.0, 0.5, 0.3, 1.5]), 0.7
    estimator = ims.PerturbedOptimizer(ims.Gumbel(), noise_temperature=sigma, marginal_samples=M_LARGE)
    z, grad, z_se, grad_se = monte_carlo(estimator, theta, g, topk(1))
    p = softmax(theta / sigma)
    jacobian = (np.diag(p) - np.outer(p, p)) / sigma
    assert_within_standard_errors(z, p, z_se, "forward mean")
    assert_within_standard_errors(grad, jacobian @ g, grad_se, "gradient")


def test_gumbel_perturbed_argmin_of_costs_is_softmax_of_minus_costs():
    costs, g, sigma = np.array([1.3, 0.5, 2.0, 0.9]), np.array([0.4, -1.0, 2.0, 0.3]), 0.5
    estimator = ims.PerturbedOptimizer(ims.Gumbel(), noise_temperature=sigma, marginal_samples=M_LARGE)
    z, grad, z_se, grad_se = monte_carlo(estimator, costs, g, brute_force_bottom_k(1), sign=-1)
    p = softmax(-costs / sigma)
    jacobian = (np.diag(p) - np.outer(p, p)) / sigma  # d p / d(-costs)
    assert_within_standard_errors(z, p, z_se, "forward mean")
    assert_within_standard_errors(grad, -(jacobian @ g), grad_se, "gradient")


def test_multiplicative_gumbel_argmax_is_softmax_of_log_scores():
    """argmax(theta e^{sigma G - c}) = argmax(log theta + sigma G) for theta > 0: the mean is
    softmax(log theta / sigma), its Jacobian that of the additive case times 1/theta."""
    theta, g, sigma = np.array([0.5, 1.5, 1.0, 2.5]), np.array([1.0, -0.5, 0.8, -1.2]), 0.8
    estimator = ims.PerturbedOptimizer(ims.Gumbel(), noise_temperature=sigma, marginal_samples=M_LARGE,
                                       multiplicative=True)
    z, grad, z_se, grad_se = monte_carlo(estimator, theta, g, topk(1))
    p = softmax(np.log(theta) / sigma)
    jacobian = (np.diag(p) - np.outer(p, p)) / sigma
    assert_within_standard_errors(z, p, z_se, "forward mean")
    assert_within_standard_errors(grad, (jacobian @ g) / theta, grad_se, "gradient")


def normal_top_k_marginals(theta, sigma, k):
    """Exact P(i among the k largest of theta + sigma Z), Z standard normal, by integrating
    over item i's own draw x the probability that fewer than k others exceed it."""
    n = len(theta)
    marginals = np.empty(n)
    for i in range(n):
        others = np.delete(theta, i)

        def integrand(x, i=i, others=others):
            q = special.ndtr((others - theta[i]) / sigma - x)  # P(other j beats i | Z_i = x)
            # P(at most k - 1 of the others beat i): the Poisson-binomial CDF by recursion
            counts = np.zeros(k)
            counts[0] = 1.0
            for qj in q:
                counts[1:] = counts[1:] * (1 - qj) + counts[:-1] * qj
                counts[0] *= 1 - qj
            return stats.norm.pdf(x) * counts.sum()

        marginals[i] = integrate.quad(integrand, -12, 12, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    return marginals


def normal_top_k_jacobian(theta, sigma, k, h=1e-4):
    columns = [
        (normal_top_k_marginals(theta + h * e, sigma, k) - normal_top_k_marginals(theta - h * e, sigma, k)) / (2 * h)
        for e in np.eye(len(theta))
    ]
    return np.stack(columns, axis=1)


def test_exact_normal_top_k_marginals_sum_to_k():
    theta = np.array([0.2, -0.4, 0.9, 0.0])
    np.testing.assert_allclose(normal_top_k_marginals(theta, 0.8, 2).sum(), 2.0, atol=1e-9)
    # sigma -> 0: the plain top-2
    np.testing.assert_allclose(normal_top_k_marginals(theta, 1e-3, 2), [1, 0, 1, 0], atol=1e-9)


@pytest.mark.parametrize("multiplicative", [False, True])
def test_normal_perturbed_top_2_of_4_matches_the_exact_expectation(multiplicative):
    theta, g, sigma = np.array([0.6, 1.1, 0.4, 1.5]), np.array([0.7, -1.3, 0.2, 0.9]), 0.5
    estimator = ims.PerturbedOptimizer(ims.Normal(), noise_temperature=sigma, marginal_samples=M_LARGE,
                                       multiplicative=multiplicative)
    z, grad, z_se, grad_se = monte_carlo(estimator, theta, g, topk(2), seed=3)
    if multiplicative:  # top-k of theta e^{sigma Z - c}: the additive problem over log theta
        p = normal_top_k_marginals(np.log(theta), sigma, 2)
        expected_grad = normal_top_k_jacobian(np.log(theta), sigma, 2) @ g / theta
    else:
        p = normal_top_k_marginals(theta, sigma, 2)
        expected_grad = normal_top_k_jacobian(theta, sigma, 2) @ g
    np.testing.assert_allclose(z.sum(), 2.0)
    assert_within_standard_errors(z, p, z_se, "forward mean")
    assert_within_standard_errors(grad, expected_grad, grad_se, "gradient")
    # the estimate is not trivially loose: the standard errors are small
    assert grad_se.max() < 0.02 and z_se.max() < 1e-3


# --- serialization ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        ims.Normal(),
        ims.BlackboxDifferentiation(lambda_=3.0),
        ims.BlackboxDifferentiation(ims.Gumbel(), lambda_=2.0, samples=2),
        ims.NegativeIdentity(),
        ims.NegativeIdentity(ims.Normal(), noise_temperature=0.5),
        ims.PerturbedOptimizer(),
        ims.PerturbedOptimizer(ims.Gumbel(), noise_temperature=0.3, samples=2, marginal_samples=8, multiplicative=True),
    ],
)
def test_new_classes_round_trip_through_config(value):
    assert from_config(to_config(value)) == value

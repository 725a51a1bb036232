"""Noise distributions: moments and limits, the exactness of the Sum-of-Gamma quantile
table against closed forms and the exact CDF, and the table sampler against the exact one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError
from imle_solvers.noise.quantile_table import KNOTS, sum_of_gamma_cdf, sum_of_gamma_table

EULER_GAMMA = 0.5772156649
DRAWS = 1_000_000


def harmonic(s: int, power: int = 1) -> float:
    return float(np.sum(1.0 / np.arange(1, s + 1) ** power))


def exact_moments(k: float, s: int) -> tuple[float, float, float, float]:
    """Mean and variance of one entry, and the standard errors of their estimates from
    ``DRAWS`` draws (from the cumulants a (j-1)! sum_i i^-j of sum_i G_i / i)."""
    a = 1.0 / k
    mean, variance = a * harmonic(s) - np.log(s) / k, a * harmonic(s, 2)
    fourth_cumulant = 6 * a * harmonic(s, 4)
    return mean, variance, np.sqrt(variance / DRAWS), np.sqrt((fourth_cumulant + 2 * variance**2) / DRAWS)


def sum_of_k_draws(k: int, iterations: int, n: int, method: str = "table", seed: int = 0) -> np.ndarray:
    noise = ims.SumOfGamma(k=k, nb_iterations=iterations, method=method)
    return noise.sample(np.random.default_rng(seed), (n, k)).sum(axis=1)


@pytest.mark.parametrize("method", ["table", "exact"])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_sum_of_gamma_sum_of_k_draws_has_mean_h_s_minus_log_s(k, method):
    total = sum_of_k_draws(k, iterations=10, n=200_000, method=method)
    expected = harmonic(10) - np.log(10)  # 0.626
    assert expected == pytest.approx(0.626, abs=1e-3)
    assert total.mean() == pytest.approx(expected, abs=0.015)


@pytest.mark.parametrize("method", ["table", "exact"])
def test_sum_of_gamma_approaches_gumbel_as_iterations_grow(method):
    draws = {s: sum_of_k_draws(2, s, 40_000, method) for s in (2, 10, 300)}
    distances = [stats.kstest(draws[s], "gumbel_r").statistic for s in (2, 10, 300)]
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.012
    assert draws[300].mean() == pytest.approx(EULER_GAMMA, abs=0.02)


def test_gumbel_moments():
    draws = ims.Gumbel().sample(np.random.default_rng(1), (200_000,))
    assert draws.mean() == pytest.approx(EULER_GAMMA, abs=0.01)
    assert draws.var() == pytest.approx(np.pi**2 / 6, rel=0.02)


@pytest.mark.parametrize("noise", [ims.Gumbel(), ims.SumOfGamma(k=3), ims.SumOfGamma(k=3, method="exact")])
def test_draws_repeat_with_the_same_generator_state(noise):
    a = noise.sample(np.random.default_rng(7), (4, 3))
    b = noise.sample(np.random.default_rng(7), (4, 3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 3) and a.dtype == np.float64


def test_the_exact_method_is_the_reference_draw():
    """``method="exact"`` on numpy draws the very numbers of the reference formula."""
    k, s = 4.0, 10
    drawn = ims.SumOfGamma(k=k, method="exact").sample(np.random.default_rng(3), (6, 5))
    rng = np.random.default_rng(3)
    scale = (k / np.arange(1, s + 1)).reshape(-1, 1, 1)
    reference = (rng.gamma(shape=1 / k, scale=scale, size=(s, 6, 5)).sum(axis=0) - np.log(s)) / k
    np.testing.assert_array_equal(drawn, reference)


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": -2}, {"k": 3, "nb_iterations": 0}, {"k": 3, "method": "fast"}])
def test_sum_of_gamma_parameters_are_checked(kwargs):
    with pytest.raises(InvalidInputError):
        ims.SumOfGamma(**kwargs)


# --- the quantile table ---------------------------------------------------------------


@pytest.mark.parametrize("terms", [1, 3, 10])
def test_the_exact_cdf_of_exponential_terms_is_the_max_of_exponentials(terms):
    """k = 1: sum_i E_i / i has the law of the largest of s exponentials, CDF (1 - e^-x)^s."""
    x = np.array([1e-4, 0.01, 0.3, 1.0, 2.5, 7.0, 20.0])
    cdf, density = sum_of_gamma_cdf(x, 1.0, terms)
    np.testing.assert_allclose(cdf, (1 - np.exp(-x)) ** terms, atol=1e-10)
    np.testing.assert_allclose(density, terms * (1 - np.exp(-x)) ** (terms - 1) * np.exp(-x), atol=1e-9)


@pytest.mark.parametrize("k", [0.5, 3.0, 10.0, 50.0])
def test_the_exact_cdf_of_one_term_is_the_gamma_cdf(k):
    x = np.array([1e-6, 1e-3, 0.1, 1.0, 4.0, 15.0])
    cdf, _ = sum_of_gamma_cdf(x, k, 1)
    np.testing.assert_allclose(cdf, special.gammainc(1 / k, x), atol=1e-10)


def test_the_exact_cdf_of_many_terms_agrees_with_summing_them():
    """s = 40 goes through the log-gamma route for the terms beyond the first 16."""
    x = np.array([0.2, 0.6, 1.5, 4.0])
    cdf, _ = sum_of_gamma_cdf(x, 2.0, 40)
    rng = np.random.default_rng(0)
    draws = (rng.gamma(0.5, 1 / np.arange(1, 41)[:, None], size=(40, 400_000))).sum(axis=0)
    empirical = (draws[:, None] <= x).mean(axis=0)
    np.testing.assert_allclose(cdf, empirical, atol=4 * np.sqrt(0.25 / 400_000))


@pytest.mark.parametrize("k, terms", [(1.0, 10), (3.0, 10), (10.0, 10), (15.0, 10), (5.0, 1), (2.0, 40)])
def test_the_table_sampler_is_within_its_kolmogorov_bound(k, terms):
    """The sampler's CDF is piecewise linear between the tabulated quantiles: it equals the
    exact CDF at the knots, and its distance to it inside the cells stays below 1/KNOTS
    (the construction's bound) and below 1e-4."""
    table = sum_of_gamma_table(k, terms)
    s_values = table.values + np.log(terms) / k  # back to S = sum_i G_i / i
    knots_cdf, _ = sum_of_gamma_cdf(s_values[1:], k, terms)
    np.testing.assert_allclose(knots_cdf, np.arange(1, KNOTS) / KNOTS, atol=1e-8)
    within = np.array([0.25, 0.5, 0.75])
    x = (s_values[1:-1, None] + within * table.steps[1:-1, None]).ravel()
    table_cdf = ((np.arange(1, KNOTS - 1)[:, None] + within) / KNOTS).ravel()
    exact_cdf, _ = sum_of_gamma_cdf(x, k, terms)
    distance = np.abs(exact_cdf - table_cdf).max()
    assert distance < min(1 / KNOTS, 1e-4)


@pytest.mark.parametrize("k", [1.0, 3.0, 10.0, 15.0])
def test_table_draws_have_the_exact_mean_and_variance(k):
    draws = ims.SumOfGamma(k=k).sample(np.random.default_rng(11), (DRAWS,))
    mean, variance, mean_se, variance_se = exact_moments(k, 10)
    assert abs(draws.mean() - mean) < 3 * mean_se
    assert abs(draws.var() - variance) < 3 * variance_se


@pytest.mark.parametrize("k", [3.0, 10.0])
def test_table_draws_against_exact_draws_two_sample_kolmogorov_smirnov(k):
    """10^6 draws of each. Two samples of one law have a KS distance of about 1.2e-3 at this
    size, so the bound is the 0.1% critical value (1.95 sqrt(2/n) = 2.8e-3), not 1e-3."""
    table = ims.SumOfGamma(k=k).sample(np.random.default_rng(5), (DRAWS,))
    exact = ims.SumOfGamma(k=k, method="exact").sample(np.random.default_rng(6), (DRAWS,))
    assert stats.ks_2samp(table, exact).statistic < 1.949 * np.sqrt(2 / DRAWS)


def test_the_table_is_built_once_per_parameters():
    assert sum_of_gamma_table(7.0, 10) is sum_of_gamma_table(7.0, 10)
    low, high = sum_of_gamma_table(7.0, 10).values[[0, -1]]
    assert low == pytest.approx(-np.log(10) / 7) and high > 2

"""Noise distributions: moments and limits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError

EULER_GAMMA = 0.5772156649


def sum_of_k_draws(k: int, iterations: int, n: int, seed: int = 0) -> np.ndarray:
    noise = ims.SumOfGamma(k=k, nb_iterations=iterations)
    return noise.sample(np.random.default_rng(seed), (n, k)).sum(axis=1)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_sum_of_gamma_sum_of_k_draws_has_mean_h_s_minus_log_s(k):
    total = sum_of_k_draws(k, iterations=10, n=200_000)
    expected = sum(1 / i for i in range(1, 11)) - np.log(10)  # 0.626
    assert expected == pytest.approx(0.626, abs=1e-3)
    assert total.mean() == pytest.approx(expected, abs=0.015)


def test_sum_of_gamma_approaches_gumbel_as_iterations_grow():
    draws = {s: sum_of_k_draws(2, s, 40_000) for s in (2, 10, 300)}
    distances = [stats.kstest(draws[s], "gumbel_r").statistic for s in (2, 10, 300)]
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.012
    assert draws[300].mean() == pytest.approx(EULER_GAMMA, abs=0.02)


def test_gumbel_moments():
    draws = ims.Gumbel().sample(np.random.default_rng(1), (200_000,))
    assert draws.mean() == pytest.approx(EULER_GAMMA, abs=0.01)
    assert draws.var() == pytest.approx(np.pi**2 / 6, rel=0.02)


@pytest.mark.parametrize("noise", [ims.Gumbel(), ims.SumOfGamma(k=3)])
def test_draws_repeat_with_the_same_generator_state(noise):
    a = noise.sample(np.random.default_rng(7), (4, 3))
    b = noise.sample(np.random.default_rng(7), (4, 3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 3) and a.dtype == np.float64


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": -2}, {"k": 3, "nb_iterations": 0}])
def test_sum_of_gamma_parameters_are_checked(kwargs):
    with pytest.raises(InvalidInputError):
        ims.SumOfGamma(**kwargs)

"""Adaptive I-MLE: lambda and beta against hand-computed values, and its state."""

from __future__ import annotations

import math

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.adapters.topk import topk_mask

THETA = np.array([[3.0, 4.0, 0.0, 0.0, 0.0]])  # |theta| = 5
GRAD_Z = np.array([[2.0, 0.0, 0.0, 0.0, -2.0]])  # |g| = sqrt(8)
BETA = 2 * math.sqrt(8) / 5  # makes lambda = beta * 5 / sqrt(8) = 2


def top2(theta):
    return topk_mask(theta, 2)


def run(estimator, theta=THETA, grad_z=GRAD_Z, state=None):
    _, residuals = estimator.sample(theta, top2, sign=1, rng=np.random.default_rng(0))
    return estimator.gradient(residuals, grad_z, top2, state)


def test_lambda_is_beta_times_norm_ratio_per_instance():
    theta = np.array([[3.0, 4.0], [1.0, 0.0]])
    g = np.array([[[0.0, 2.0]], [[0.0, 0.0]]])
    np.testing.assert_allclose(ims.AIMLE().lambdas(theta, g, beta=0.5), [[0.5 * 5 / 2], [0.0]])


def test_gradient_uses_the_adaptive_lambda():
    # z = top2(3, 4, 0, 0, 0) = {0, 1}; target theta - 2 g = (-1, 4, 0, 0, 4) -> {1, 4}
    grad, state = run(ims.AIMLE(initial_beta=BETA))
    np.testing.assert_allclose(grad, [[0.5, 0.0, 0.0, 0.0, -0.5]])
    assert state.nnz_average == 2 and state.steps == 1
    assert state.beta == pytest.approx(BETA - 1e-3)  # 2 non-zeros > target 1: beta down


def test_symmetric_gradient_is_the_central_difference():
    # theta + 2 g = (7, 4, 0, 0, -4) -> {0, 1}; theta - 2 g -> {1, 4}; divided by 2 lambda = 4
    grad, _ = run(ims.AIMLE(initial_beta=BETA, symmetric=True))
    np.testing.assert_allclose(grad, [[0.25, 0.0, 0.0, 0.0, -0.25]])


def test_zero_upstream_gradient_gives_zero_lambda_and_zero_gradient():
    grad, state = run(ims.AIMLE(), grad_z=np.zeros_like(GRAD_Z))
    np.testing.assert_array_equal(grad, 0.0)
    assert state.nnz_average == 0 and state.beta == pytest.approx(1.0 + 1e-3)  # below target: beta up


def test_beta_follows_the_running_average_of_nonzero_counts():
    estimator = ims.AIMLE(initial_beta=1.0, beta_step=0.01, target_nonzeros=1.0, decay=0.9)
    state = estimator.update(estimator.initial_state(), 3.0)
    expected_average, expected_beta = 3.0, 0.99
    assert (state.nnz_average, state.beta) == pytest.approx((expected_average, expected_beta))
    for _ in range(12):
        state = estimator.update(state, 0.0)
        expected_average *= 0.9
        expected_beta += 0.01 if expected_average < 1.0 else -0.01
        assert (state.nnz_average, state.beta) == pytest.approx((expected_average, expected_beta))
    assert expected_average < 1.0  # the loop crossed the target, so beta went both ways


def test_beta_never_goes_below_zero():
    estimator = ims.AIMLE(initial_beta=0.0005, beta_step=1e-3)
    assert estimator.update(estimator.initial_state(), 10.0).beta == 0.0


def test_state_round_trips_through_state_dict():
    _, state = run(ims.AIMLE(initial_beta=BETA))
    restored = ims.AdaptiveState.from_state_dict(state.state_dict())
    assert restored == state
    assert run(ims.AIMLE(), state=restored)[1] == run(ims.AIMLE(), state=state)[1]

"""The paper's toy problem, checked against exact expectations by enumeration.

top-5 of 10 under the exponential family p(z; theta) ~ exp(<z, theta>) over the 252
5-subsets; loss ||z - b||^2. The expected loss and its exact gradient are sums over
all 252 states.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import imle_solvers as ims

N, K = 10, 5
STATES = np.array([[1.0 if i in c else 0.0 for i in range(N)] for c in itertools.combinations(range(N), K)])
TARGET = np.array([1.0, 1, 1, 1, 1, 0, 0, 0, 0, 0])


def exact_expected_loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
    logits = STATES @ theta
    p = np.exp(logits - logits.max())
    p /= p.sum()
    loss = ((STATES - TARGET) ** 2).sum(axis=1)
    mean_z = p @ STATES
    return float(p @ loss), (p * loss) @ (STATES - mean_z)  # Cov(L, z) = d E[L] / d theta


def imle_gradient(theta: np.ndarray, estimator: ims.IMLE, draws: int, rng: np.random.Generator) -> np.ndarray:
    """I-MLE gradient averaged over ``draws`` independent perturbations."""
    oracle = ims.MAPOracle(ims.KSubset(N, K))
    batch = np.broadcast_to(theta, (draws, N)).copy()
    z, residuals = estimator.sample(batch, oracle, sign=1, rng=rng)
    grad, _ = estimator.gradient(residuals, 2 * (z - TARGET), oracle)
    return grad.mean(axis=0)


def test_enumeration_is_complete():
    assert STATES.shape == (252, 10) and len({tuple(s) for s in STATES}) == 252


def test_exact_gradient_matches_finite_differences(rng):
    theta = rng.normal(size=N)
    _, grad = exact_expected_loss_and_gradient(theta)
    step = 1e-6
    numeric = [
        (exact_expected_loss_and_gradient(theta + step * e)[0] - exact_expected_loss_and_gradient(theta - step * e)[0])
        / (2 * step)
        for e in np.eye(N)
    ]
    np.testing.assert_allclose(grad, numeric, atol=1e-6)


@pytest.mark.parametrize("lambda_", [1.0, 5.0])
def test_imle_average_gradient_points_the_way_of_the_exact_gradient(rng, lambda_):
    estimator = ims.IMLE(ims.SumOfGamma(k=K), lambda_=lambda_)
    for _ in range(3):
        theta = rng.normal(size=N)
        _, exact = exact_expected_loss_and_gradient(theta)
        estimate = imle_gradient(theta, estimator, draws=4000, rng=rng)
        cosine = estimate @ exact / (np.linalg.norm(estimate) * np.linalg.norm(exact))
        assert cosine > 0.5


def test_imle_descent_lowers_the_exact_expected_loss(rng):
    estimator = ims.IMLE(ims.SumOfGamma(k=K), lambda_=2.0)
    theta = rng.normal(size=N)
    initial, _ = exact_expected_loss_and_gradient(theta)
    for _ in range(60):
        theta = theta - 0.5 * imle_gradient(theta, estimator, draws=16, rng=rng)
    final, _ = exact_expected_loss_and_gradient(theta)
    assert final < 0.6 * initial

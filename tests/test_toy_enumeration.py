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


# --- perturbed optimizers and the Fenchel-Young loss on the same toy problem ---------------
#
# With Gumbel noise, the top-5 of theta + sigma G is the first five draws of a Plackett-Luce
# ranking with weights exp(theta / sigma): its marginals are a sum over the 30,240 ordered
# 5-tuples, exactly.

ORDERED = np.array(list(itertools.permutations(range(N), K)))  # (30240, 5)


def gumbel_top_k_marginals(theta: np.ndarray, sigma: float) -> np.ndarray:
    """``E[top_k(theta + sigma G)]`` ``(N,)`` by enumerating Plackett-Luce's first K picks."""
    weights = np.exp((theta - theta.max()) / sigma)
    picked = weights[ORDERED]  # (T, K)
    left = weights.sum() - np.concatenate([np.zeros((len(ORDERED), 1)), np.cumsum(picked, axis=1)[:, :-1]], axis=1)
    probability = np.prod(picked / left, axis=1)
    marginals = np.zeros(N)
    np.add.at(marginals, ORDERED.ravel(), np.repeat(probability, K))
    return marginals


def exact_vjp(theta: np.ndarray, sigma: float, g: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """``d <E[top_k(theta + sigma G)], g> / d theta`` by central differences of the exact marginals."""
    return np.array([
        (gumbel_top_k_marginals(theta + step * e, sigma) - gumbel_top_k_marginals(theta - step * e, sigma)) @ g
        / (2 * step)
        for e in np.eye(N)
    ])


def test_plackett_luce_enumeration_is_a_distribution(rng):
    theta = rng.normal(size=N)
    marginals = gumbel_top_k_marginals(theta, 0.8)
    assert np.isclose(marginals.sum(), K) and np.all((marginals > 0) & (marginals < 1))
    # against a plain Monte Carlo count of perturbed top-k states
    draws = theta + 0.8 * rng.gumbel(size=(200_000, N))
    counted = (np.argsort(-draws, axis=1)[:, :K][..., None] == np.arange(N)).any(axis=1).mean(axis=0)
    np.testing.assert_allclose(counted, marginals, atol=5e-3)


def independent_estimates(theta: np.ndarray, estimate, repeats: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over ``repeats`` independent estimates (rows of one batch)."""
    values = estimate(np.broadcast_to(theta, (repeats, N)).copy())
    return values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(repeats)


@pytest.mark.parametrize("variance_reduction", [True, False])
def test_perturbed_optimizer_matches_the_exact_marginals_and_their_jacobian(rng, variance_reduction):
    theta, g, sigma = rng.normal(size=N), rng.normal(size=N), 0.8
    estimator = ims.PerturbedOptimizer(ims.Gumbel(), noise_temperature=sigma, marginal_samples=5_000,
                                       variance_reduction=variance_reduction)
    oracle = ims.MAPOracle(ims.KSubset(N, K))

    def forward_and_gradient(batch: np.ndarray) -> np.ndarray:
        z, residuals = estimator.sample(batch, oracle, sign=1, rng=rng)
        grad, _ = estimator.gradient(residuals, np.broadcast_to(g, batch.shape), oracle)
        return np.concatenate([z, grad], axis=1)

    mean, se = independent_estimates(theta, forward_and_gradient)
    expected = np.concatenate([gumbel_top_k_marginals(theta, sigma), exact_vjp(theta, sigma, g)])
    assert np.all(np.abs(mean - expected) < 5 * se + 1e-9), (mean - expected) / se


def test_fenchel_young_gradient_is_the_exact_marginals_minus_the_target_in_expectation(rng):
    from imle_solvers.losses import fenchel_young

    theta, sigma = rng.normal(size=N), 0.8
    oracle = ims.MAPOracle(ims.KSubset(N, K))

    def gradient(batch: np.ndarray) -> np.ndarray:
        noise = rng.gumbel(size=(len(batch), 2_000, N))
        return fenchel_young(batch, np.broadcast_to(TARGET, batch.shape), noise, oracle, sign=1, sigma=sigma).gradient

    mean, se = independent_estimates(theta, gradient)
    expected = gumbel_top_k_marginals(theta, sigma) - TARGET
    assert np.all(np.abs(mean - expected) < 5 * se + 1e-9), (mean - expected) / se


def test_fenchel_young_descent_moves_the_exact_marginals_to_the_target(rng):
    from imle_solvers.losses import fenchel_young

    theta, sigma = rng.normal(size=N), 1.0
    oracle = ims.MAPOracle(ims.KSubset(N, K))
    start = np.abs(gumbel_top_k_marginals(theta, sigma) - TARGET).sum()
    for _ in range(50):
        noise = rng.gumbel(size=(1, 16, N))
        theta = theta - 0.5 * fenchel_young(theta[None], TARGET[None], noise, oracle, sign=1, sigma=sigma).gradient[0]
    assert np.abs(gumbel_top_k_marginals(theta, sigma) - TARGET).sum() < 0.3 * start

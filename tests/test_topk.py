"""The linear-time top-k in every framework: exactly k ones, ties to the lower index,
checked against a stable sort on integer-valued scores full of ties."""

from __future__ import annotations

import numpy as np
import pytest

from imle_solvers.adapters.topk import first_k_mask, topk_mask

# (n, k): k = 1, k = n - 1 (the boundary at the last entry), k = n (all), long rows
SIZES = [(10, 3), (7, 1), (12, 11), (5, 5), (1000, 10), (300, 150)]


def stable_sort_reference(theta: np.ndarray, k: int) -> np.ndarray:
    """The k largest of each row by a stable descending sort: ties go to the lower index."""
    order = np.argsort(-theta, axis=-1, kind="stable")[..., :k]
    mask = np.zeros_like(theta)
    np.put_along_axis(mask, order, 1.0, axis=-1)
    return mask


def tied_scores(n: int, rows: int = 64, seed: int = 0) -> np.ndarray:
    """float32 rows of small integers, so nearly every row ties at its k-th value, plus
    constant rows and one continuous row."""
    rng = np.random.default_rng(seed)
    theta = rng.integers(0, 4, size=(rows, n)).astype(np.float32)
    theta[0] = 0.0
    theta[1] = 7.0
    theta[2] = rng.normal(size=n)
    return theta


def to_torch(x):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(x)


def run_jax(x, k, jit=False):
    jax = pytest.importorskip("jax")
    f = jax.jit(topk_mask, static_argnums=1) if jit else topk_mask
    return np.asarray(f(jax.numpy.asarray(x), k))


def run_tf(x, k, function=False):
    tf = pytest.importorskip("tensorflow")
    f = tf.function(topk_mask) if function else topk_mask
    return f(tf.constant(x), k).numpy()


RUNNERS = {
    "numpy": lambda x, k: topk_mask(x, k),
    "torch": lambda x, k: topk_mask(to_torch(x), k).numpy(),
    "jax": run_jax,
    "jax.jit": lambda x, k: run_jax(x, k, jit=True),
    "tensorflow": run_tf,
    "tf.function": lambda x, k: run_tf(x, k, function=True),
}


@pytest.mark.parametrize("framework", list(RUNNERS))
@pytest.mark.parametrize("n, k", SIZES)
def test_heavy_ties_go_to_the_lower_index(framework, n, k):
    theta = tied_scores(n)
    z = RUNNERS[framework](theta, k)
    np.testing.assert_array_equal(z, stable_sort_reference(theta, k))
    np.testing.assert_array_equal(z.sum(axis=1), k)
    assert z.dtype == np.float32


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax", "tensorflow"])
def test_continuous_scores_and_leading_axes(framework, rng):
    theta = rng.normal(size=(3, 4, 50)).astype(np.float32)
    z = RUNNERS[framework](theta, 6)
    assert z.shape == theta.shape
    np.testing.assert_array_equal(z, stable_sort_reference(theta, 6))


def test_the_branch_free_rule_is_the_stable_sort_on_every_row():
    """What accelerators run on every row (no branch): everything above the k-th value, then
    the first tied entries."""
    theta = tied_scores(40, rows=200, seed=3)
    for k in (1, 9, 39):
        kth = -np.sort(-theta, axis=1)[:, k - 1 : k]
        np.testing.assert_array_equal(first_k_mask(theta, kth, k), stable_sort_reference(theta, k))


def test_torch_keeps_dtype_and_non_contiguous_input():
    torch = pytest.importorskip("torch")
    theta = torch.tensor(tied_scores(20), dtype=torch.float64).t().contiguous().t()[:, ::2]
    assert not theta.is_contiguous()
    z = topk_mask(theta, 4)
    assert z.dtype == torch.float64
    np.testing.assert_array_equal(z.numpy(), stable_sort_reference(theta.numpy(), 4))


def test_jax_vmap_of_the_tie_branch():
    jax = pytest.importorskip("jax")
    theta = tied_scores(30).reshape(4, 16, 30)
    z = jax.vmap(lambda t: topk_mask(t, 5))(jax.numpy.asarray(theta))
    np.testing.assert_array_equal(np.asarray(z), stable_sort_reference(theta, 5))

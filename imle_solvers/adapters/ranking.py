"""Ranking MAP: each item's rank in increasing order of score, the inverse of the stable
sorting permutation, in the array's own framework and device, inside
``jax.jit``/``tf.function`` too. The inverse is a scatter where the framework has one
(numpy, torch, JAX: one sort per row rather than two, about half the time) and a second
argsort in TensorFlow."""

from __future__ import annotations

from .._array import Array, array_namespace, framework_of
from ..problems.ranking import Ranking
from .registry import register_solver


def _order(x: Array) -> Array:
    """The stable ascending sorting permutation of each row of ``x`` ``(N, n)``."""
    if framework_of(x) == "tensorflow":
        import tensorflow as tf

        return tf.argsort(x, axis=-1, stable=True)
    return array_namespace(x).argsort(x, axis=-1, stable=True)


def _inverse(order: Array) -> Array:
    """The inverse of each row's permutation ``order`` ``(N, n)``: ``inverse[i, order[i, j]] = j``."""
    framework = framework_of(order)
    n = order.shape[-1]
    if framework == "numpy":
        import numpy as np

        inverse = np.empty_like(order)
        np.put_along_axis(inverse, order, np.arange(n)[None, :], axis=-1)
        return inverse
    if framework == "torch":
        import torch

        positions = torch.arange(n, device=order.device).expand_as(order)
        return torch.empty_like(order).scatter_(-1, order, positions)
    if framework == "jax":
        import jax.numpy as jnp

        rows = jnp.arange(order.shape[0])[:, None]
        return jnp.zeros_like(order).at[rows, order].set(jnp.arange(n)[None, :])
    return _order(order)  # a permutation has no ties: its argsort is its inverse


def ranks(theta: Array) -> Array:
    """The rank ``1..n`` of each entry of each row of ``theta`` ``(N, n)``, ties in index
    order, in ``theta``'s dtype: ``(N, n) -> (N, n)``."""
    xp = array_namespace(theta)
    return xp.astype(_inverse(_order(theta)), theta.dtype) + 1


@register_solver(Ranking.kind, "numpy", array_native=("numpy", "torch", "jax", "tensorflow"), priority=10)
def solve_ranking(theta: Array, problem: Ranking) -> Array:
    """Batched ranks in ``theta``'s own framework and device: ``(N, n) -> (N, n)``."""
    return ranks(theta)

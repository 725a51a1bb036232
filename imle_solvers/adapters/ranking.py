"""Ranking MAP: each item's rank in increasing order of score, by a stable argsort of the
stable argsort (the inverse permutation of the sorting permutation), in the array's own
framework and device, inside ``jax.jit``/``tf.function`` too."""

from __future__ import annotations

from .._array import Array, array_namespace, framework_of
from ..problems.ranking import Ranking
from .registry import register_solver


def _order(x: Array) -> Array:
    """The stable ascending sorting permutation of each row of ``x`` ``(N, n)``."""
    framework = framework_of(x)
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.argsort(x, axis=-1, stable=True)
    return array_namespace(x).argsort(x, axis=-1, stable=True)


def ranks(theta: Array) -> Array:
    """The rank ``1..n`` of each entry of each row of ``theta`` ``(N, n)``, ties in index
    order, in ``theta``'s dtype: ``(N, n) -> (N, n)``."""
    xp = array_namespace(theta)
    # argsort of a permutation inverts it; the permutation has no ties, so stability is moot there
    return xp.astype(_order(_order(theta)), theta.dtype) + 1


@register_solver(Ranking.kind, "numpy", array_native=("numpy", "torch", "jax", "tensorflow"), priority=10)
def solve_ranking(theta: Array, problem: Ranking) -> Array:
    """Batched ranks in ``theta``'s own framework and device: ``(N, n) -> (N, n)``."""
    return ranks(theta)

"""k-subset MAP: the k largest scores, exactly k, ties to the lower index, in linear time.

Each framework finds the k-th largest value with its own selection routine
(``numpy.partition``, ``torch.topk``, ``jax.lax.top_k``, ``tf.math.top_k``), on the
array's own device and inside ``jax.jit``/``tf.function``. The mask is then everything
at or above that value, unless the value is tied across the boundary (the k-th and
(k+1)-th largest are equal): such rows take everything strictly above it and then the
first tied entries in index order (:func:`first_k_mask`). Ties at the boundary are rare
with continuous noise, so the exact rule costs a scan only where it is needed (a branch
per call where branching is free: numpy, torch on the CPU, ``lax.cond``, ``tf.cond``;
every row on accelerators, where a branch would synchronise the device).
"""

from __future__ import annotations

from .._array import Array, array_namespace, framework_of, is_numpy_array
from ..problems import KSubset
from .registry import register_solver


def first_k_mask(theta: Array, kth: Array, k: int) -> Array:
    """The exact k-subset mask of rows ``theta`` ``(N, n)`` whose k-th largest value is ``kth``
    ``(N, 1)``: every entry above ``kth``, then the first entries equal to it in index order."""
    xp = array_namespace(theta)
    above = theta > kth
    tied = theta == kth
    room = k - xp.sum(xp.astype(above, xp.int32), axis=-1, keepdims=True)
    first_tied = tied & (xp.cumulative_sum(xp.astype(tied, xp.int32), axis=-1) <= room)
    return xp.astype(above | first_tied, theta.dtype)


def _topk_numpy(x: Array, k: int) -> Array:
    import numpy as np

    n = x.shape[-1]
    ordered = np.partition(x, (n - k - 1, n - k), axis=-1)
    kth, next_largest = ordered[:, n - k : n - k + 1], ordered[:, n - k - 1 : n - k]
    mask = (x >= kth).astype(x.dtype)
    tied = np.flatnonzero(kth[:, 0] == next_largest[:, 0])
    if tied.size:
        mask[tied] = first_k_mask(x[tied], kth[tied], k)
    return mask


def _topk_torch(x: Array, k: int) -> Array:
    import torch

    if x.device.type != "cpu":  # branch-free: no device synchronisation
        return first_k_mask(x, torch.topk(x, k, dim=-1).values[:, -1:], k)
    values, indices = torch.topk(x, k + 1, dim=-1)
    mask = torch.zeros_like(x).scatter_(1, indices[:, :k], 1.0)
    tied = values[:, k - 1] == values[:, k]
    if tied.any():
        rows = torch.nonzero(tied).reshape(-1)
        mask[rows] = first_k_mask(x[rows], values[rows, k - 1 : k], k)
    return mask


def _topk_jax(x: Array, k: int) -> Array:
    import jax
    import jax.numpy as jnp

    # The barrier keeps XLA's fast top-k: sliced right away, XLA rewrites top-k as a full sort.
    values = jax.lax.optimization_barrier(jax.lax.top_k(x, k + 1)[0])
    kth = values[:, k - 1 : k]
    tied = jnp.any(values[:, k - 1] == values[:, k])
    return jax.lax.cond(tied, first_k_mask, lambda x, kth, k: (x >= kth).astype(x.dtype), x, kth, k)


def _topk_tensorflow(x: Array, k: int) -> Array:
    import tensorflow as tf

    values = tf.math.top_k(x, k + 1).values
    kth = values[:, k - 1 : k]
    tied = tf.reduce_any(values[:, k - 1] == values[:, k])
    return tf.cond(tied, lambda: first_k_mask(x, kth, k), lambda: tf.cast(x >= kth, x.dtype))


_KERNELS = {"numpy": _topk_numpy, "torch": _topk_torch, "jax": _topk_jax, "tensorflow": _topk_tensorflow}


def topk_mask(theta: Array, k: int) -> Array:
    """0/1 mask of the k largest entries along the last axis, in ``theta``'s framework,
    dtype and device: exactly k ones per row, ties to the lower index.

    Args:
        theta: ``(..., n)`` finite scores.
        k: how many to choose, ``1 <= k <= n``.
    """
    xp = array_namespace(theta)
    n = theta.shape[-1]
    if k >= n:
        return xp.ones_like(theta)
    if theta.ndim == 2:
        return _KERNELS[framework_of(theta)](theta, k)
    return xp.reshape(_KERNELS[framework_of(theta)](xp.reshape(theta, (-1, n)), k), theta.shape)


@register_solver(KSubset.kind, "numpy", array_native=("numpy", "torch", "jax", "tensorflow"), priority=10)
def solve_ksubset(theta: Array, problem: KSubset) -> Array:
    """Batched top-k in ``theta``'s own framework and device: ``(N, n) -> (N, n)``."""
    return topk_mask(theta, problem.k)


@register_solver(KSubset.kind, "torch", array_native=True, priority=5, requires=("torch",), extra="torch")
def solve_ksubset_torch(theta: Array, problem: KSubset) -> Array:
    """Batched top-k in torch (numpy input is converted there and back)."""
    if not is_numpy_array(theta):
        return topk_mask(theta, problem.k)
    import torch

    return topk_mask(torch.from_numpy(theta), problem.k).numpy()

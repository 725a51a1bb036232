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

Per-instance data (:attr:`KSubset.instance_fields`) stay on the same path. A ``mask``
sets the unselectable scores to ``-inf``, below every finite score, and the same kernel
runs (one elementwise pass more). A per-row ``k`` is dynamic (a traced value under
``jax.jit``), which a static top-k size cannot take: each row is sorted (numpy and torch
on the CPU, where reading the largest k is free, select only that many), its own k-th
largest value gathered, and :func:`first_k_mask` applied to every row, branch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral
from typing import Any

from .._array import Array, array_namespace, framework_of, is_numpy_array, reshape
from ..problems import KSubset
from .registry import register_solver


def first_k_mask(theta: Array, kth: Array, k: int | Array) -> Array:
    """The exact k-subset mask of rows ``theta`` ``(N, n)`` whose k-th largest value is ``kth``
    ``(N, 1)``: every entry above ``kth``, then the first entries equal to it in index order.
    ``k`` is one int for all rows, or an int32 ``(N, 1)`` array of each row's own k."""
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

    if not x.is_cpu:  # branch-free off the CPU: no device synchronisation
        return first_k_mask(x, torch.topk(x, k, dim=-1).values[:, -1:], k)
    values, indices = torch.topk(x, k + 1, dim=-1)
    mask = torch.zeros_like(x).scatter_(1, indices.narrow(1, 0, k), 1.0)  # narrow: no index parsing
    if _boundary_tied(values, k):
        rows = torch.nonzero(values[:, k - 1] == values[:, k]).reshape(-1)
        mask[rows] = first_k_mask(x[rows], values[rows, k - 1 : k], k)
    return mask


def _boundary_tied(values: Array, k: int) -> bool:
    """Whether some row of a CPU tensor's descending top-(k+1) ``values`` ``(N, k + 1)`` has
    its k-th and (k+1)-th largest equal. Read through numpy where it can view the dtype: a
    tiny step's comparison then costs a third of torch's dispatch of the same three ops."""
    import numpy as np
    import torch

    if values.dtype in (torch.float32, torch.float64):
        host = (values.detach() if values.requires_grad else values).numpy()
        return bool(np.count_nonzero(host[:, k - 1] == host[:, k]))  # a C call; ndarray.any is two Python frames
    return bool(torch.any(values[:, k - 1] == values[:, k]))


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


def _exclude(theta: Array, mask: Array, framework: str) -> Array:
    """``theta`` (of ``framework``) with the entries where ``mask`` (bool, same shape) is False
    set to ``-inf``: below every finite score, so no selection picks them while a row has k
    selectable items."""
    if framework == "torch":
        return _exclude_torch(theta, mask)
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.where(mask, theta, tf.constant(-math.inf, theta.dtype))
    return array_namespace(theta).where(mask, theta, -math.inf)  # a Python scalar keeps the dtype


# Below this many entries a CPU ``where`` costs less than the four ops of the vectorised
# path: one dispatch against four (7 against 25 us at 800 entries; even at about 6,000).
_SCALAR_WHERE_MAX = 4096


def _exclude_torch(theta: Array, mask: Array) -> Array:
    import torch

    if not theta.is_cpu or theta.numel() <= _SCALAR_WHERE_MAX:
        return torch.where(mask, theta, -math.inf)  # one fused kernel
    # torch's CPU ``where`` and ``masked_fill`` run a scalar loop that branches on every
    # entry; arithmetic on the mask's bytes vectorises (about 2.5x faster, random masks):
    # ceiling = +inf where selectable, -inf elsewhere, and min(theta, +inf) is theta exactly.
    ceiling = mask.view(torch.uint8).to(theta.dtype).sub_(0.5).mul_(math.inf)
    return torch.minimum(theta, ceiling, out=ceiling)


def _kth_numpy(x: Array, k: Array) -> Array:
    import numpy as np

    if not k.size:
        return x[:, :1]
    # Partitioning at every distinct position places each row's own k-th largest.
    positions = x.shape[-1] - k.astype(np.intp)
    ordered = np.partition(x, np.unique(positions), axis=-1)
    return np.take_along_axis(ordered, positions[:, None], axis=-1)


def _kth_torch(x: Array, k: Array) -> Array:
    import torch

    # On the CPU reading the largest k is free, and top-k of that size beats a full sort;
    # elsewhere it would synchronise the device, so every row is sorted (top-k of size n).
    width = int(k.max()) if x.is_cpu and x.shape[0] else x.shape[-1]
    values = torch.topk(x, width, dim=-1).values  # descending
    return values.gather(1, k.long()[:, None] - 1)


def _kth_jax(x: Array, k: Array) -> Array:
    import jax.numpy as jnp

    return jnp.take_along_axis(jnp.sort(x, axis=-1), x.shape[-1] - k[:, None], axis=-1)


def _kth_tensorflow(x: Array, k: Array) -> Array:
    import tensorflow as tf

    return tf.gather(tf.sort(x, axis=-1), x.shape[-1] - k[:, None], batch_dims=1)


# Each row's own k-th largest value, ``(N, n), (N,) int32 -> (N, 1)``.
_KTH = {"numpy": _kth_numpy, "torch": _kth_torch, "jax": _kth_jax, "tensorflow": _kth_tensorflow}


def _topk_per_row(x: Array, k: Array, framework: str) -> Array:
    """The exact mask of the ``k[i]`` largest of each row ``x[i]`` (of ``framework``):
    ``(N, n), (N,) -> (N, n)``."""
    xp = array_namespace(x)
    k = xp.astype(k, xp.int32)  # any integer dtype (int32 in JAX without x64); int32 as in first_k_mask
    return first_k_mask(x, _KTH[framework](x, k), xp.reshape(k, (-1, 1)))


def topk_mask(theta: Array, k: int | Array, mask: Array | None = None) -> Array:
    """0/1 mask of the k largest entries along the last axis, in ``theta``'s framework,
    dtype and device: exactly k ones per row, ties to the lower index.

    Args:
        theta: ``(..., n)`` finite floating-point scores.
        k: how many to choose, ``1 <= k <= n``: one int, or an integer array ``(...)`` (theta's
            leading shape, same framework) of each row's own k.
        mask: optional bool ``(..., n)``, True where an entry may be chosen; the k are then
            the largest selectable entries, never a masked one. Each row must keep at least
            its k selectable entries (:meth:`KSubset.check_instance_data`).
    """
    xp = array_namespace(theta)
    n = theta.shape[-1]
    if mask is None and isinstance(k, (int, Integral)):  # the plain path, as before (int first: fast)
        if k >= n:
            return xp.ones_like(theta)
        if theta.ndim == 2:
            return _KERNELS[framework_of(theta)](theta, k)
        return reshape(_KERNELS[framework_of(theta)](reshape(theta, (-1, n)), k), theta.shape)
    rows = theta if theta.ndim == 2 else xp.reshape(theta, (-1, n))
    framework = framework_of(theta)
    if mask is not None:
        mask = mask if mask.ndim == 2 else xp.reshape(mask, (-1, n))
        rows = _exclude(rows, mask, framework)
    if not isinstance(k, Integral):
        z = _topk_per_row(rows, xp.reshape(k, (-1,)), framework)
    elif k >= n:  # every entry; the rows' checks guarantee the mask is all True
        z = xp.astype(mask, theta.dtype)
    else:
        z = _KERNELS[framework](rows, int(k))
    return z if theta.ndim == 2 else xp.reshape(z, theta.shape)


def _solve(theta: Array, problem: KSubset, data: Mapping[str, Any] | None) -> Array:
    """The k-subset mask, with the instances' ``mask`` and ``k`` where ``data`` gives them."""
    if not data:
        return topk_mask(theta, problem.k)
    return topk_mask(theta, data.get("k", problem.k), mask=data.get("mask"))


@register_solver(KSubset.kind, "numpy", array_native=("numpy", "torch", "jax", "tensorflow"), priority=10)
def solve_ksubset(theta: Array, problem: KSubset, data: Mapping[str, Any] | None = None) -> Array:
    """Batched top-k in ``theta``'s own framework and device: ``(N, n) -> (N, n)``; ``data``
    may hold ``mask`` ``(N, n)`` bool and ``k`` ``(N,)`` int in the same framework."""
    return _solve(theta, problem, data)


@register_solver(KSubset.kind, "torch", array_native=True, priority=5, requires=("torch",), extra="torch")
def solve_ksubset_torch(theta: Array, problem: KSubset, data: Mapping[str, Any] | None = None) -> Array:
    """Batched top-k in torch (numpy input and data are converted there and back)."""
    if not is_numpy_array(theta):
        return _solve(theta, problem, data)
    import torch

    data = {name: torch.as_tensor(value) for name, value in data.items()} if data else None
    return _solve(torch.from_numpy(theta), problem, data).numpy()

"""k-subset MAP: the k largest scores, exactly k, ties to the lower index.

Written against the array API, so the same code runs in numpy and in torch on
the tensor's own device (no host round trip for a GPU top-k).
"""

from __future__ import annotations

from .._array import Array, array_namespace, is_numpy_array
from ..problems import KSubset
from .registry import register_solver


def topk_mask(theta: Array, k: int) -> Array:
    """0/1 mask of the k largest entries along the last axis, in ``theta``'s dtype.

    Ties go to the lower index (a stable descending sort), so every row has exactly k ones.
    """
    xp = array_namespace(theta)
    order = xp.argsort(theta, axis=-1, descending=True, stable=True)
    rank = xp.argsort(order, axis=-1, stable=True)
    return xp.astype(rank < k, theta.dtype)


@register_solver(KSubset.kind, "numpy", array_native=True, priority=10)
def solve_ksubset(theta: Array, problem: KSubset) -> Array:
    """Batched top-k in ``theta``'s own namespace and device: ``(N, n) -> (N, n)``."""
    return topk_mask(theta, problem.k)


@register_solver(KSubset.kind, "torch", array_native=True, priority=5, requires=("torch",), extra="torch")
def solve_ksubset_torch(theta: Array, problem: KSubset) -> Array:
    """Batched top-k in torch (numpy input is converted there and back)."""
    if not is_numpy_array(theta):
        return topk_mask(theta, problem.k)
    import torch

    return topk_mask(torch.from_numpy(theta), problem.k).numpy()

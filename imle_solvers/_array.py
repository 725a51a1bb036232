"""Array-namespace helpers: the estimator math runs on numpy arrays and on torch
tensors alike (the array API), so a tensor stays on its device when its solver can
run there."""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_array, to_device

Array = Any  # an array-API array: numpy.ndarray or torch.Tensor

__all__ = ["Array", "array_namespace", "device", "to_numpy", "from_numpy", "is_numpy_array"]


def to_numpy(x: Array) -> np.ndarray:
    """A host numpy view (or copy) of any array-API array."""
    if is_numpy_array(x):
        return x
    return np.asarray(to_device(x, "cpu"))


def from_numpy(values: np.ndarray, like: Array) -> Array:
    """``values`` as an array of ``like``'s namespace, dtype and device."""
    if is_numpy_array(like):
        return np.asarray(values, dtype=like.dtype)
    xp = array_namespace(like)
    return xp.asarray(np.ascontiguousarray(values), dtype=like.dtype, device=device(like))

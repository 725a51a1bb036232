"""Array-namespace helpers: the estimator math runs on numpy arrays, torch tensors,
JAX arrays and TensorFlow tensors alike (the array API, with a small TensorFlow
namespace of our own), so an array stays in its framework and on its device when its
solver can run there."""

from __future__ import annotations

import sys
from typing import Any, Literal

import numpy as np
from array_api_compat import array_namespace as _array_api_namespace
from array_api_compat import device as _array_api_device
from array_api_compat import is_jax_array, is_numpy_array, is_torch_array, to_device

Array = Any  # numpy.ndarray, torch.Tensor, jax.Array or tf.Tensor
Framework = Literal["numpy", "torch", "jax", "tensorflow"]

__all__ = [
    "Array",
    "Framework",
    "array_namespace",
    "device",
    "framework_of",
    "is_traced",
    "stays_in_framework",
    "state_float",
    "to_numpy",
    "from_numpy",
    "is_numpy_array",
]


def _tensorflow() -> Any:
    """The tensorflow module if it was imported, else None (never imports it)."""
    return sys.modules.get("tensorflow")


def is_tensorflow_array(x: Array) -> bool:
    tf = _tensorflow()
    return tf is not None and isinstance(x, (tf.Tensor, tf.Variable))


# Per array type: its framework and namespace. Looking them up costs a dict access where
# array_api_compat's checks cost microseconds, which add up on a training step's hot path.
_FRAMEWORKS: dict[type, Framework] = {}
_NAMESPACES: dict[type, Any] = {}


def framework_of(x: Array) -> Framework:
    """Which framework ``x`` belongs to."""
    kind = type(x)
    if kind not in _FRAMEWORKS:
        _FRAMEWORKS[kind] = _framework_of(x)
    return _FRAMEWORKS[kind]


def _framework_of(x: Array) -> Framework:
    if is_numpy_array(x) or isinstance(x, np.generic):
        return "numpy"
    if is_torch_array(x):
        return "torch"
    if is_jax_array(x):
        return "jax"
    if is_tensorflow_array(x):
        return "tensorflow"
    raise TypeError(f"expected a numpy, torch, JAX or TensorFlow array, got {type(x).__name__}")


def array_namespace(*arrays: Array) -> Any:
    """The array-API namespace of ``arrays`` (TensorFlow's is :mod:`imle_solvers._tf_namespace`)."""
    if len(arrays) == 1 and type(arrays[0]) in _NAMESPACES:
        return _NAMESPACES[type(arrays[0])]
    if any(is_tensorflow_array(x) for x in arrays):
        from . import _tf_namespace

        namespace = _tf_namespace
    else:
        namespace = _array_api_namespace(*arrays)
    if len(arrays) == 1:
        _NAMESPACES[type(arrays[0])] = namespace
    return namespace


def device(x: Array) -> Any:
    """The device ``x`` lives on, as its framework names it."""
    if is_tensorflow_array(x):
        return x.device
    return _array_api_device(x)


def is_traced(x: Array) -> bool:
    """Whether ``x`` is a placeholder being traced (``jax.jit``, ``tf.function``), not a value."""
    framework = framework_of(x)
    if framework == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    if framework == "tensorflow":
        return _tensorflow().is_symbolic_tensor(x)
    return False


def stays_in_framework(x: Array) -> bool:
    """Whether a solver should take ``x`` where it is rather than copy it to the host: ``x``
    is traced, or lives on an accelerator (a GPU), where a host round trip is what costs."""
    if is_traced(x):
        return True
    framework = framework_of(x)
    if framework == "torch":
        return x.device.type != "cpu"
    if framework == "jax":
        return any(d.platform != "cpu" for d in x.devices())
    if framework == "tensorflow":
        return "GPU" in x.device.upper()
    return False


def state_float(xp: Any) -> Any:
    """The dtype of estimator state in namespace ``xp``: float64, except in JAX without x64
    (where float64 silently becomes float32, so ask for the default float)."""
    if xp.__name__.startswith("jax"):
        return xp.asarray(0.0).dtype
    return xp.float64


def to_numpy(x: Array) -> np.ndarray:
    """A host numpy view (or copy) of any array."""
    if is_numpy_array(x):
        return x
    if is_torch_array(x):
        return np.asarray(to_device(x, "cpu"))
    return np.asarray(x)  # JAX and TensorFlow arrays convert themselves


def from_numpy(values: np.ndarray, like: Array) -> Array:
    """``values`` as an array of ``like``'s framework, dtype and device."""
    if is_numpy_array(like):
        return np.asarray(values, dtype=like.dtype)
    xp = array_namespace(like)
    return xp.asarray(np.ascontiguousarray(values), dtype=like.dtype, device=device(like))

"""Array helpers over the framework homes (:mod:`imle_solvers.frameworks`): the estimator
math runs on numpy arrays, torch tensors, JAX arrays and TensorFlow tensors alike (the
array API, with a small TensorFlow namespace of our own), so an array stays in its
framework and on its device when its solver can run there. Each helper asks the array's
framework; none tests which framework it is."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from array_api_compat import array_namespace as _array_api_namespace
from array_api_compat import is_numpy_array

from .frameworks import Array, Framework, framework_of as framework

FrameworkName = Literal["numpy", "torch", "jax", "tensorflow"]

__all__ = [
    "Array",
    "Framework",
    "FrameworkName",
    "array_namespace",
    "device",
    "framework",
    "framework_of",
    "from_numpy",
    "is_numpy_array",
    "is_traced",
    "state_float",
    "stays_in_framework",
    "to_numpy",
]


def framework_of(x: Array) -> FrameworkName:
    """The name of ``x``'s framework."""
    return framework(x).name  # type: ignore[return-value]


_NAMESPACES: dict[type, Any] = {}  # per array type: a dict access on the estimators' hot path


def array_namespace(*arrays: Array) -> Any:
    """The array-API namespace of ``arrays`` (TensorFlow's is
    :mod:`imle_solvers.frameworks.tensorflow_namespace`)."""
    if len(arrays) != 1 and len({type(x) for x in arrays}) != 1:
        return _array_api_namespace(*arrays)  # mixed types: its error names them
    kind = type(arrays[0])
    namespace = _NAMESPACES.get(kind)
    if namespace is None:
        namespace = _NAMESPACES[kind] = framework(arrays[0]).namespace(arrays[0])
    return namespace


def reshape(x: Array, shape: tuple[int, ...]) -> Array:
    """``x`` reshaped to ``shape``, by the array's own ``reshape`` where it has one (on the
    step's hot path a namespace's wrapper costs several times the reshape itself)."""
    method = getattr(x, "reshape", None)
    return method(shape) if method is not None else array_namespace(x).reshape(x, shape)


def total(x: Array) -> Array:
    """The sum of all entries of ``x``, a 0-d array, by the array's own ``sum`` where it has
    one (array-api-compat's torch wrapper costs a tiny step's check several times the sum)."""
    method = getattr(x, "sum", None)
    return method() if method is not None else array_namespace(x).sum(x)


def device(x: Array) -> Any:
    """The device ``x`` lives on, as its framework names it."""
    return framework(x).device(x)


def is_traced(x: Array) -> bool:
    """Whether ``x`` is a placeholder being traced (``jax.jit``, ``tf.function``), not a value."""
    return framework(x).is_traced(x)


def stays_in_framework(x: Array) -> bool:
    """Whether a solver should take ``x`` where it is rather than copy it to the host: ``x``
    is traced, or lives on an accelerator (a GPU), where a host round trip is what costs."""
    home = framework(x)
    return home.is_traced(x) or home.on_accelerator(x)


def state_float(xp: Any) -> Any:
    """The dtype of estimator state in namespace ``xp``: float64, except in JAX without x64
    (where float64 silently becomes float32, so ask for the default float)."""
    if xp.__name__.startswith("jax"):
        return xp.asarray(0.0).dtype
    return xp.float64


def to_numpy(x: Array) -> np.ndarray:
    """A host numpy view (or copy) of any array; floats that numpy has no type for
    (bfloat16, float8) come as float32, which holds each of their values exactly."""
    if is_numpy_array(x):
        return exact_host_floats(x)
    try:
        home = framework(x)
    except TypeError:  # Python numbers and lists
        return np.asarray(x)
    if any(name in str(x.dtype) for name in NUMPY_LACKS):
        xp = array_namespace(x)
        x = xp.astype(x, xp.float32)  # torch's bfloat16 has no numpy counterpart at all
    return exact_host_floats(home.to_numpy(x))


# Float dtypes of the frameworks that numpy has no type of its own for (JAX and TensorFlow
# hand them over as ml_dtypes' numpy extension types, torch not at all); float32 holds
# every value of each exactly (the same exponent range or less, fewer mantissa bits).
NUMPY_LACKS = ("bfloat16",)


def exact_host_floats(values: np.ndarray) -> np.ndarray:
    """``values``, or float32 where their dtype is an extension float (ml_dtypes' bfloat16,
    float8: kind ``"V"``) that solvers and numpy's own routines do not take."""
    if values.dtype.kind == "V" and values.dtype.names is None:
        return values.astype(np.float32)
    return values


def from_numpy(values: np.ndarray, like: Array) -> Array:
    """``values`` as an array of ``like``'s framework, dtype and device."""
    if is_numpy_array(like):
        return np.asarray(values, dtype=like.dtype)
    xp = array_namespace(like)
    return xp.asarray(np.ascontiguousarray(values), dtype=like.dtype, device=device(like))

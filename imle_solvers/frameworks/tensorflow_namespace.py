"""The part of the array API that the estimators, noise and top-k use, in TensorFlow ops.

TensorFlow has no array-API namespace, so this module is one: the framework-free code
runs on ``tf.Tensor`` unchanged, eagerly and inside ``tf.function``. Shapes may hold
``None`` (an unknown batch size while tracing); :func:`reshape` and
:func:`broadcast_to` read such dimensions from the tensor at run time.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

float16, float32, float64 = tf.float16, tf.float32, tf.float64
int8, int32, int64, bool = tf.int8, tf.int32, tf.int64, tf.bool  # noqa: A001  (array-API names)

isfinite = tf.math.is_finite
sqrt, log, log1p, exp, floor = tf.sqrt, tf.math.log, tf.math.log1p, tf.exp, tf.floor
maximum, minimum = tf.maximum, tf.minimum
ones_like, zeros_like = tf.ones_like, tf.zeros_like
repeat = tf.repeat
matmul = tf.linalg.matmul


def permute_dims(x: tf.Tensor, axes: Sequence[int]) -> tf.Tensor:
    return tf.transpose(x, list(axes))


def finfo(dtype: Any) -> np.finfo:
    return np.finfo(dtype.as_numpy_dtype)


def asarray(x: Any, dtype: Any = None, device: Any = None, copy: Any = None) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    return x if dtype is None or x.dtype == dtype else tf.cast(x, dtype)


def arange(start: int, stop: int | None = None, step: int = 1, *, dtype: Any = None, device: Any = None) -> tf.Tensor:
    """Integers as int64 (the array API's default integer, as numpy's and torch's)."""
    return tf.range(start, stop, step, dtype=tf.int64 if dtype is None else dtype)


def astype(x: tf.Tensor, dtype: Any, copy: Any = None) -> tf.Tensor:
    return tf.cast(x, dtype)


def _dims(shape: Sequence[int | None], like: tf.Tensor) -> list[Any]:
    """``shape`` with each unknown (None) dimension read from ``like`` at run time."""
    if builtins.all(d is not None for d in shape):
        return list(shape)
    dynamic = tf.shape(like)
    return [dynamic[i] if d is None else d for i, d in enumerate(shape)]


def reshape(x: tf.Tensor, shape: Sequence[int | None], copy: Any = None) -> tf.Tensor:
    return tf.reshape(x, [-1 if d is None else d for d in shape])


def broadcast_to(x: tf.Tensor, shape: Sequence[int | None]) -> tf.Tensor:
    return tf.broadcast_to(x, _dims(shape, x))


def where(condition: tf.Tensor, x1: Any, x2: Any) -> tf.Tensor:
    return tf.where(condition, x1, x2)


def mean(x: tf.Tensor, axis: Any = None, keepdims: bool = False) -> tf.Tensor:
    return tf.reduce_mean(x, axis=axis, keepdims=keepdims)


def sum(x: tf.Tensor, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> tf.Tensor:  # noqa: A001
    return tf.reduce_sum(x if dtype is None else tf.cast(x, dtype), axis=axis, keepdims=keepdims)


def max(x: tf.Tensor, axis: Any = None, keepdims: bool = False) -> tf.Tensor:  # noqa: A001
    return tf.reduce_max(x, axis=axis, keepdims=keepdims)


def zeros(shape: Sequence[Any], dtype: Any = None, device: Any = None) -> tf.Tensor:
    return tf.zeros(shape, dtype=dtype or tf.float32)


def all(x: tf.Tensor, axis: Any = None, keepdims: bool = False) -> tf.Tensor:  # noqa: A001
    return tf.reduce_all(x, axis=axis, keepdims=keepdims)


def any(x: tf.Tensor, axis: Any = None, keepdims: bool = False) -> tf.Tensor:  # noqa: A001
    return tf.reduce_any(x, axis=axis, keepdims=keepdims)


def cumulative_sum(x: tf.Tensor, axis: int = -1, dtype: Any = None) -> tf.Tensor:
    return tf.cumsum(x if dtype is None else tf.cast(x, dtype), axis=axis)


def take(x: tf.Tensor, indices: tf.Tensor, axis: int | None = None) -> tf.Tensor:
    return tf.gather(x, indices, axis=0 if axis is None else axis)


def clip(x: tf.Tensor, min: Any = None, max: Any = None) -> tf.Tensor:  # noqa: A002
    if min is not None:
        x = tf.maximum(x, tf.cast(min, x.dtype))
    if max is not None:
        x = tf.minimum(x, tf.cast(max, x.dtype))
    return x


def concat(arrays: Sequence[tf.Tensor], axis: int | None = 0) -> tf.Tensor:
    return tf.concat(list(arrays), axis=axis)


def stack(arrays: Sequence[tf.Tensor], axis: int = 0) -> tf.Tensor:
    return tf.stack(list(arrays), axis=axis)


def argmax(x: tf.Tensor, axis: int | None = None) -> tf.Tensor:
    return tf.argmax(tf.reshape(x, [-1]) if axis is None else x, axis=0 if axis is None else axis)


def sort(x: tf.Tensor, axis: int = -1, descending: bool = False, stable: bool = True) -> tf.Tensor:
    return tf.sort(x, axis=axis, direction="DESCENDING" if descending else "ASCENDING")

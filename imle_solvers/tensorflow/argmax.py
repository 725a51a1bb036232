"""Soft and sparse argmax (:mod:`imle_solvers.regularized_argmax`) in TensorFlow and Keras:
the maps as functions and Keras layers (softmax by ``tf.nn.softmax`` and TensorFlow's own
gradient, sparsemax by its exact Jacobian in a ``tf.custom_gradient``), their
Fenchel-Young losses as Keras losses; eager, in ``tf.function`` and in ``model.fit``."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from .. import regularized_argmax as core
from ..frameworks.tensorflow import check_keras_backend

__all__ = ["SoftArgmax", "SoftArgmaxLoss", "SparseArgmax", "SparseArgmaxLoss", "soft_argmax", "sparse_argmax"]


def soft_argmax(theta: Any) -> tf.Tensor:
    """``softmax(theta)`` along the last axis, ``(..., n) -> (..., n)`` (``tf.nn.softmax``)."""
    return core.soft_argmax(tf.convert_to_tensor(theta))


def sparse_argmax(theta: Any) -> tf.Tensor:
    """``sparsemax(theta)`` along the last axis, ``(..., n) -> (..., n)``: the Euclidean
    projection onto the simplex, differentiable by its exact Jacobian."""

    @tf.custom_gradient
    def project(scores: tf.Tensor) -> tuple[tf.Tensor, Any]:
        p = core.sparse_argmax(scores)
        return p, lambda cotangent: core.sparse_argmax_vjp(p, cotangent)

    return project(tf.convert_to_tensor(theta))


@keras.saving.register_keras_serializable(package="imle_solvers")
class SoftArgmax(keras.layers.Layer):
    """:func:`soft_argmax` as a Keras layer: ``(..., n) -> (..., n)``."""

    def call(self, theta: tf.Tensor) -> tf.Tensor:
        return soft_argmax(theta)


@keras.saving.register_keras_serializable(package="imle_solvers")
class SparseArgmax(keras.layers.Layer):
    """:func:`sparse_argmax` as a Keras layer: ``(..., n) -> (..., n)``."""

    def call(self, theta: tf.Tensor) -> tf.Tensor:
        return sparse_argmax(theta)


class _ArgmaxLoss(keras.losses.Loss):
    """A Fenchel-Young loss of the simplex as a Keras ``Loss``: ``call(y_true, y_pred)`` gives
    the ``(B,)`` per-instance values (Keras reduces them; by default the batch mean),
    differentiable with respect to ``y_pred`` by the closed-form gradient ``y_hat - y_true``."""

    compute: Any

    def __init__(self, **kwargs: Any) -> None:
        check_keras_backend(type(self).__name__)
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(**kwargs)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)

        @tf.custom_gradient
        def values(prediction: tf.Tensor) -> tuple[tf.Tensor, Any]:
            result = type(self).compute(prediction, y_true)
            return result.value, lambda grad_out: grad_out[..., None] * result.gradient

        return values(y_pred)


@keras.saving.register_keras_serializable(package="imle_solvers")
class SoftArgmaxLoss(_ArgmaxLoss):
    """The Fenchel-Young loss of softmax (:func:`imle_solvers.regularized_argmax.soft_argmax_loss`;
    the cross-entropy for one-hot targets) as a Keras loss: ``y_true`` ``(B, n)`` points of
    the simplex, ``y_pred`` ``(B, n)`` scores; gradient ``softmax(y_pred) - y_true``."""

    compute = staticmethod(core.soft_argmax_loss)


@keras.saving.register_keras_serializable(package="imle_solvers")
class SparseArgmaxLoss(_ArgmaxLoss):
    """The sparsemax loss (:func:`imle_solvers.regularized_argmax.sparse_argmax_loss`) as a
    Keras loss: ``y_true``, ``y_pred`` as :class:`SoftArgmaxLoss`'s; gradient
    ``sparsemax(y_pred) - y_true``."""

    compute = staticmethod(core.sparse_argmax_loss)

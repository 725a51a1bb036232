"""Soft and sparse argmax (:mod:`imle_solvers.regularized_argmax`) in JAX: the maps as
functions (softmax by ``jax.nn.softmax`` and JAX's own autodiff, sparsemax by its exact
Jacobian in a ``jax.custom_vjp``) and their Fenchel-Young losses, reduced over the batch;
all of them jit, vmap and differentiate as JAX functions do."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from .. import regularized_argmax as core
from ..losses import check_reduction, reduce

__all__ = ["SoftArgmaxLoss", "SparseArgmaxLoss", "soft_argmax", "sparse_argmax"]


def soft_argmax(theta: jax.Array) -> jax.Array:
    """``softmax(theta)`` along the last axis, ``(..., n) -> (..., n)`` (``jax.nn.softmax``)."""
    return core.soft_argmax(jnp.asarray(theta))


@jax.custom_vjp
def _sparse_argmax(theta: jax.Array) -> jax.Array:
    return core.sparse_argmax(theta)


def _sparse_forward(theta: jax.Array) -> tuple[jax.Array, jax.Array]:
    p = core.sparse_argmax(theta)
    return p, p


def _sparse_backward(p: jax.Array, cotangent: jax.Array) -> tuple[jax.Array]:
    return (core.sparse_argmax_vjp(p, cotangent),)


_sparse_argmax.defvjp(_sparse_forward, _sparse_backward)


def sparse_argmax(theta: jax.Array) -> jax.Array:
    """``sparsemax(theta)`` along the last axis, ``(..., n) -> (..., n)``: the Euclidean
    projection onto the simplex, differentiable by its exact Jacobian."""
    return _sparse_argmax(jnp.asarray(theta))


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _loss_values(compute: Any, theta: jax.Array, y_true: jax.Array) -> jax.Array:
    return compute(theta, y_true).value


def _loss_forward(compute: Any, theta: jax.Array, y_true: jax.Array) -> tuple[jax.Array, tuple]:
    result = compute(theta, y_true)
    return result.value, (result.gradient, y_true)


def _loss_backward(compute: Any, saved: tuple, grad_out: jax.Array) -> tuple[jax.Array, jax.Array]:
    gradient, y_true = saved
    return grad_out[..., None] * gradient, jnp.zeros_like(y_true)  # y_true carries no gradient


_loss_values.defvjp(_loss_forward, _loss_backward)


class _ArgmaxLoss:
    compute: Any

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = check_reduction(type(self).__name__, reduction)

    def __call__(self, theta: Any, y_true: Any) -> jax.Array:
        """``theta`` ``(B, n)`` scores, ``y_true`` ``(B, n)`` points of the simplex; reduced over the batch."""
        theta = jnp.asarray(theta)
        values = _loss_values(type(self).compute, theta, jnp.asarray(y_true, dtype=theta.dtype))
        return reduce(values, self.reduction)


class SoftArgmaxLoss(_ArgmaxLoss):
    """The Fenchel-Young loss of softmax (:func:`imle_solvers.regularized_argmax.soft_argmax_loss`;
    the cross-entropy for one-hot targets) as a JAX function: ``loss_fn(theta, y_true)``,
    gradient ``softmax(theta) - y_true``; ``reduction`` ``"mean"``, ``"sum"`` or ``"none"``."""

    compute = staticmethod(core.soft_argmax_loss)


class SparseArgmaxLoss(_ArgmaxLoss):
    """The sparsemax loss (:func:`imle_solvers.regularized_argmax.sparse_argmax_loss`) as a
    JAX function: ``loss_fn(theta, y_true)``, gradient ``sparsemax(theta) - y_true``."""

    compute = staticmethod(core.sparse_argmax_loss)

r"""Soft and sparse argmax: the regularized predictions over the one-hot argmax polytope
(the probability simplex), in closed form, with their exact Jacobians and Fenchel-Young
losses (InferOpt's ``soft_argmax`` and ``sparse_argmax``; Martins and Astudillo, 2016;
Blondel, Martins and Niculae, 2020).

For scores ``theta`` ``(..., n)`` and a regularizer ``Omega`` on the simplex ``Delta``,

$$
\hat y_\Omega(\theta) = \arg\max_{p \in \Delta} \langle \theta, p\rangle - \Omega(p), \qquad
\ell_\Omega(\theta, y) = \Omega^*(\theta) + \Omega(y) - \langle \theta, y\rangle, \qquad
\nabla_\theta \ell_\Omega = \hat y_\Omega(\theta) - y.
$$

- Negative entropy ``Omega(p) = sum_i p_i log p_i``: ``y_hat = softmax(theta)``,
  ``Omega* = logsumexp``; the loss is the cross-entropy for a one-hot ``y`` (and its
  KL divergence to ``softmax(theta)`` for a distribution ``y``). Jacobian
  ``diag(p) - p p^T``.
- Half squared norm ``Omega(p) = 1/2 ||p||^2``: ``y_hat = sparsemax(theta)``, the
  Euclidean projection of ``theta`` onto the simplex, ``max(theta - tau, 0)`` with the
  threshold ``tau`` found from the sorted scores; ``Omega*(theta) = <theta, p> -
  1/2 ||p||^2``; the loss is Martins and Astudillo's sparsemax loss for a one-hot ``y``.
  Jacobian ``diag(s) - s s^T / |S|``, ``s`` the indicator of the support ``S = {p > 0}``
  (almost everywhere; on the support's boundary, this one-sided choice).

Both losses are >= 0 and 0 exactly when ``y = y_hat(theta)``. The maps act on the last
axis. Written once on array-API arrays; softmax uses each framework's own kernel
(``torch.softmax``, ``jax.nn.softmax``, ``tf.nn.softmax``) so that the bindings'
autodiff of it is the framework's exact one. No MAP oracle is called: the one-hot argmax
problem is ``KSubset(n, 1)``, whose regularized Frank-Wolfe solution with the quadratic
regularizer is the same sparsemax (:mod:`imle_solvers.frank_wolfe`).
"""

from __future__ import annotations

from ._array import Array, array_namespace, framework_of
from .losses import LossValue

__all__ = [
    "soft_argmax",
    "soft_argmax_loss",
    "soft_argmax_vjp",
    "sparse_argmax",
    "sparse_argmax_loss",
    "sparse_argmax_vjp",
]


def soft_argmax(theta: Array) -> Array:
    """``softmax(theta)`` along the last axis, ``(..., n) -> (..., n)``, by the framework's own kernel."""
    framework = framework_of(theta)
    if framework == "torch":
        import torch

        return torch.softmax(theta, dim=-1)
    if framework == "jax":
        import jax

        return jax.nn.softmax(theta, axis=-1)
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.nn.softmax(theta, axis=-1)
    xp = array_namespace(theta)
    shifted = xp.exp(theta - xp.max(theta, axis=-1, keepdims=True))
    return shifted / xp.sum(shifted, axis=-1, keepdims=True)


def soft_argmax_vjp(p: Array, cotangent: Array) -> Array:
    """``cotangent`` ``(..., n)`` times the Jacobian of softmax at the point whose softmax is
    ``p`` ``(..., n)``: ``p * (g - <g, p>)``, ``(..., n)``."""
    xp = array_namespace(p)
    return p * (cotangent - xp.sum(cotangent * p, axis=-1, keepdims=True))


def _logsumexp(theta: Array) -> Array:
    xp = array_namespace(theta)
    top = xp.max(theta, axis=-1, keepdims=True)
    return xp.log(xp.sum(xp.exp(theta - top), axis=-1)) + top[..., 0]


def sparse_argmax(theta: Array) -> Array:
    """``sparsemax(theta)``: the Euclidean projection of each row onto the probability
    simplex, ``(..., n) -> (..., n)``, ``max(theta - tau, 0)``.

    ``tau``: with ``z`` the row sorted in decreasing order, ``k*`` the largest ``k`` with
    ``1 + k z_k > sum_{j <= k} z_j`` (the support's size), ``tau = (sum_{j <= k*} z_j - 1) / k*``.
    """
    xp = array_namespace(theta)
    z = xp.sort(theta, axis=-1, descending=True)
    cumulative = xp.cumulative_sum(z, axis=-1)
    k = xp.cumulative_sum(xp.ones_like(z), axis=-1)  # 1..n in the scores' dtype
    # the support is a prefix of the sorted row: tau from its sum and size, no gather
    in_support = xp.astype(1 + k * z > cumulative, theta.dtype)
    size = xp.sum(in_support, axis=-1, keepdims=True)
    tau = (xp.sum(z * in_support, axis=-1, keepdims=True) - 1) / size
    return xp.clip(theta - tau, min=0.0)


def sparse_argmax_vjp(p: Array, cotangent: Array) -> Array:
    """``cotangent`` ``(..., n)`` times the Jacobian of sparsemax at the point whose sparsemax
    is ``p`` ``(..., n)``: ``s * (g - <g, s> / |S|)``, ``s`` the support's indicator ``p > 0``."""
    xp = array_namespace(p)
    support = xp.astype(p > 0, cotangent.dtype)
    mean = xp.sum(cotangent * support, axis=-1, keepdims=True) / xp.sum(support, axis=-1, keepdims=True)
    return support * (cotangent - mean)


def _entropy_term(y: Array) -> Array:
    """``sum_i y_i log y_i`` along the last axis, ``0 log 0 = 0``."""
    xp = array_namespace(y)
    positive = y > 0
    return xp.sum(xp.where(positive, y * xp.log(xp.where(positive, y, xp.ones_like(y))), xp.zeros_like(y)), axis=-1)


def _checked_pair(owner: str, theta: Array, y_true: Array) -> Array:
    from .errors import InvalidInputError

    if tuple(y_true.shape) != tuple(theta.shape):
        raise InvalidInputError(f"{owner}: y_true must have the prediction's shape {tuple(theta.shape)}, "
                                f"got {tuple(y_true.shape)}")
    return array_namespace(theta).astype(y_true, theta.dtype)


def soft_argmax_loss(theta: Array, y_true: Array) -> LossValue:
    """The Fenchel-Young loss of the negative entropy per row, its gradient and the solution.

    Args:
        theta: ``(B, n)`` scores (or ``(..., n)``: every leading axis is a batch axis).
        y_true: ``(B, n)`` points of the simplex (one-hot labels, or distributions).

    Returns:
        A :class:`~imle_solvers.losses.LossValue`: the value ``(B,)``,
        ``logsumexp(theta) + sum y log y - <theta, y>`` (the cross-entropy for a one-hot
        ``y``); the gradient ``softmax(theta) - y`` ``(B, n)``; the solution ``softmax(theta)``.
    """
    xp = array_namespace(theta)
    y_true = _checked_pair("SoftArgmaxLoss", theta, y_true)
    p = soft_argmax(theta)
    value = _logsumexp(theta) + _entropy_term(y_true) - xp.sum(theta * y_true, axis=-1)
    return LossValue(value, p - y_true, p)


def sparse_argmax_loss(theta: Array, y_true: Array) -> LossValue:
    """The Fenchel-Young loss of the half squared norm per row (the sparsemax loss), its
    gradient and the solution.

    Args:
        theta: ``(B, n)`` scores (or ``(..., n)``: every leading axis is a batch axis).
        y_true: ``(B, n)`` points of the simplex (one-hot labels, or distributions).

    Returns:
        A :class:`~imle_solvers.losses.LossValue`: the value ``(B,)``, with ``p`` the
        sparsemax of ``theta``, ``<theta, p> - 1/2 ||p||^2 + 1/2 ||y||^2 - <theta, y>``;
        the gradient ``p - y`` ``(B, n)``; the solution ``p``.
    """
    xp = array_namespace(theta)
    y_true = _checked_pair("SparseArgmaxLoss", theta, y_true)
    p = sparse_argmax(theta)
    value = xp.sum(theta * (p - y_true) + (y_true * y_true - p * p) / 2, axis=-1)
    return LossValue(value, p - y_true, p)

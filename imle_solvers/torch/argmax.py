"""Soft and sparse argmax (:mod:`imle_solvers.regularized_argmax`) in torch: the maps as
functions and modules, differentiable (softmax by torch's own autograd, sparsemax by its
exact Jacobian), and their Fenchel-Young losses as modules reduced over the batch."""

from __future__ import annotations

from typing import Any

import torch

from .. import regularized_argmax as core
from ..losses import check_reduction, reduce
from .losses import _LossFunction

__all__ = ["SoftArgmax", "SoftArgmaxLoss", "SparseArgmax", "SparseArgmaxLoss", "soft_argmax", "sparse_argmax"]


def soft_argmax(theta: torch.Tensor) -> torch.Tensor:
    """``softmax(theta)`` along the last axis, ``(..., n) -> (..., n)`` (``torch.softmax``)."""
    return core.soft_argmax(theta)


class _SparseArgmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor) -> torch.Tensor:
        p = core.sparse_argmax(theta.detach())
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
        (p,) = ctx.saved_tensors
        return core.sparse_argmax_vjp(p, grad_out)


def sparse_argmax(theta: torch.Tensor) -> torch.Tensor:
    """``sparsemax(theta)`` along the last axis, ``(..., n) -> (..., n)``: the Euclidean
    projection onto the simplex, differentiable by its exact Jacobian."""
    return _SparseArgmax.apply(theta)


class SoftArgmax(torch.nn.Module):
    """:func:`soft_argmax` as a module: ``(..., n) -> (..., n)``."""

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return soft_argmax(theta)


class SparseArgmax(torch.nn.Module):
    """:func:`sparse_argmax` as a module: ``(..., n) -> (..., n)``."""

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return sparse_argmax(theta)


class _ArgmaxLoss(torch.nn.Module):
    compute: Any

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(type(self).__name__, reduction)

    def forward(self, theta: torch.Tensor, y_true: Any) -> torch.Tensor:
        """``theta`` ``(B, n)`` scores, ``y_true`` ``(B, n)`` points of the simplex; reduced over the batch."""
        y = torch.as_tensor(y_true, dtype=theta.dtype, device=theta.device)
        values = _LossFunction.apply(theta, lambda p: type(self).compute(p, y))
        return reduce(values, self.reduction)


class SoftArgmaxLoss(_ArgmaxLoss):
    """The Fenchel-Young loss of softmax (:func:`imle_solvers.regularized_argmax.soft_argmax_loss`;
    the cross-entropy for one-hot targets): ``loss_fn(theta, y_true)``, gradient
    ``softmax(theta) - y_true``; ``reduction`` ``"mean"``, ``"sum"`` or ``"none"``."""

    compute = staticmethod(core.soft_argmax_loss)


class SparseArgmaxLoss(_ArgmaxLoss):
    """The sparsemax loss (:func:`imle_solvers.regularized_argmax.sparse_argmax_loss`):
    ``loss_fn(theta, y_true)``, gradient ``sparsemax(theta) - y_true``; ``reduction`` as
    :class:`SoftArgmaxLoss`'s."""

    compute = staticmethod(core.sparse_argmax_loss)

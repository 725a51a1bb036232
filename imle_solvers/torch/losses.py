"""The torch losses: a loss definition (:mod:`imle_solvers.losses`) over the step, as an
``nn.Module`` reduced over the batch, differentiable through a ``torch.autograd.Function``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import loss_settings as settings
from ..frameworks.torch import NoiseGenerators
from ..losses import CMAP, NCE, ListwiseLTR, LossDefinition, PairwiseLTR, PointwiseLTR, check_reduction, reduce
from ..options import NoiseOptions, OracleOptions, take_options
from ..problems import Problem
from ..step import LossStep, StepHolder

__all__ = [
    "CaVELoss", "CMAPLoss", "FenchelYoungLoss", "ListwiseLTRLoss", "NCELoss", "PairwiseLTRLoss", "PGLoss",
    "PointwiseLTRLoss", "RegularizedFenchelYoungLoss", "SPOPlusLoss", "StructuredSVMLoss",
]


class _LossFunction(torch.autograd.Function):
    """Per-instance loss values ``(B,)`` forward, ``grad_out * gradient`` backward; the
    loss's values and gradient come at once from ``compute``."""

    @staticmethod
    def forward(ctx: Any, prediction: torch.Tensor, compute: Callable[[torch.Tensor], Any]) -> torch.Tensor:
        result = compute(prediction.detach())
        ctx.save_for_backward(result.gradient)
        return result.value

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (gradient,) = ctx.saved_tensors
        return grad_out.reshape(-1, *(1,) * (gradient.ndim - 1)) * gradient, None


class _Loss(settings.LossSettings, StepHolder, torch.nn.Module):
    """A loss over the step (:class:`~imle_solvers.step.LossStep`), reduced over the batch;
    its constructor is a settings class's (:mod:`imle_solvers.loss_settings`)."""

    def build_loss(self, problem: Problem, definition: LossDefinition, reduction: str, validate_args: bool,
                   oracle_options: OracleOptions | None, noise_options: NoiseOptions | None, options: dict) -> None:
        super().__init__()
        owner = type(self).__name__
        oracle, noise, _ = take_options(owner, options, oracle_options, noise_options)
        self.problem = problem
        self.reduction = check_reduction(owner, reduction)
        self.step = LossStep(oracle.oracle(problem), definition, validate_args)
        self.noise = NoiseGenerators(noise)

    def _loss(self, prediction: torch.Tensor, targets: dict[str, Any], data: dict[str, Any]) -> torch.Tensor:
        detached = prediction.detach()
        plan, targets, data, poison = self.step.prepare_loss(detached, targets, data)
        perturbation = self.step.definition.perturbation
        noise = None if perturbation is None else perturbation.draw(detached, self.noise.source(prediction))
        values = _LossFunction.apply(prediction, lambda p: self.step.values(plan, p, targets, noise, data, poison))
        return reduce(values, self.reduction)

    def get_extra_state(self) -> dict:
        return {"noise": self.noise.state_dict()}

    def set_extra_state(self, extra: dict) -> None:
        self.noise.load_state_dict(extra.get("noise", {}))


class FenchelYoungLoss(settings.FenchelYoungSettings, _Loss):
    """The perturbed Fenchel-Young loss (:class:`imle_solvers.losses.FenchelYoung`, whose
    docstring lists the arguments) of ``problem``: ``loss_fn(theta, y_true, **data)``,
    ``theta`` and ``y_true`` ``(B, *problem.shape)``, reduced over the batch; its noise
    generators are part of ``state_dict()``."""

    def forward(self, theta: torch.Tensor, y_true: Any, **data: Any) -> torch.Tensor:
        return self._loss(theta, {"y_true": y_true}, data)


class SPOPlusLoss(settings.SPOPlusSettings, _Loss):
    """SPO+ (:class:`imle_solvers.losses.SPOPlus`) of ``problem``: ``loss_fn(c_hat, c,
    w_true=None, z_true=None, **data)``, ``c_hat`` the predicted costs (scores for a max
    problem) and ``c`` the true ones, ``(B, *problem.shape)``, reduced over the batch."""

    def forward(self, c_hat: torch.Tensor, c: Any, w_true: Any = None, z_true: Any = None, **data: Any) -> torch.Tensor:
        return self._loss(c_hat, {"c": c, "w_true": w_true, "z_true": z_true}, data)


class StructuredSVMLoss(settings.StructuredSVMSettings, _Loss):
    """The structured SVM loss (:class:`imle_solvers.losses.StructuredSVM`, whose docstring
    lists the arguments) of ``problem``: ``loss_fn(theta, y_true, delta_weight=None,
    delta_constant=None, **data)``, ``theta`` the scores (costs for a min problem) and
    ``y_true`` the target structures, ``(B, *problem.shape)``; ``delta_weight``
    ``(B, *problem.shape)`` and ``delta_constant`` ``(B,)`` a loss linear in the state (else
    the Hamming loss; ``base_loss="zero_one"``: the 0-1 loss, a KSubset only); reduced over the batch."""

    def forward(self, theta: torch.Tensor, y_true: Any, delta_weight: Any = None, delta_constant: Any = None,
                **data: Any) -> torch.Tensor:
        return self._loss(theta, {"y_true": y_true, "delta_weight": delta_weight, "delta_constant": delta_constant}, data)


class PGLoss(settings.PGSettings, _Loss):
    """The perturbation-gradient losses (:class:`imle_solvers.losses.PerturbationGradient`,
    whose docstring lists the arguments; PyEPO's ``perturbationGradient``) of ``problem``:
    ``loss_fn(c_hat, c, **data)``, ``c_hat`` the predicted costs (scores for a max problem)
    and ``c`` the true ones, ``(B, *problem.shape)``, reduced over the batch;
    ``variant="backward"`` (PGB) or ``"central"`` (PGC), ``sigma`` the width."""

    def forward(self, c_hat: torch.Tensor, c: Any, **data: Any) -> torch.Tensor:
        return self._loss(c_hat, {"c": c}, data)


class RegularizedFenchelYoungLoss(settings.RegularizedFenchelYoungSettings, _Loss):
    """The Fenchel-Young loss of the quadratic regularizer by regularized Frank-Wolfe
    (:class:`imle_solvers.losses.RegularizedFenchelYoung`, whose docstring lists the
    arguments; PyEPO's ``regularizedFrankWolfeFenchelYoung``) of ``problem``:
    ``loss_fn(theta, y_true, **data)``, ``theta`` the predicted scores (costs for a min
    problem) and ``y_true`` the observed structures, ``(B, *problem.shape)``, reduced over the batch."""

    def forward(self, theta: torch.Tensor, y_true: Any, **data: Any) -> torch.Tensor:
        return self._loss(theta, {"y_true": y_true}, data)


class CaVELoss(settings.CaVESettings, _Loss):
    """Cone-aligned vector estimation (:class:`imle_solvers.losses.CaVE`, whose docstring
    lists the arguments; PyEPO's ``coneAlignedCosine``) of ``problem``: ``loss_fn(c_hat,
    tight_ctrs)``, ``c_hat`` the predicted costs (scores for a max problem)
    ``(B, *problem.shape)`` and ``tight_ctrs`` ``(B, R, *problem.shape)`` the normals of the
    constraints binding at each instance's true solution
    (:func:`imle_solvers.batch_tight_constraints`), reduced over the batch."""

    def forward(self, c_hat: torch.Tensor, tight_ctrs: Any) -> torch.Tensor:
        return self._loss(c_hat, {"tight_ctrs": tight_ctrs}, {})


class _PoolLoss(settings.PoolLossSettings, _Loss):
    """A loss over a pool of feasible states (:class:`imle_solvers.losses.PoolLoss`, whose
    docstring lists the arguments): ``loss_fn(c_hat, target)``, ``c_hat`` the predicted
    costs (scores for a max problem) ``(B, *problem.shape)``, reduced over the batch; the
    pool (``loss_fn.pool``) grows before each call by its rule."""

    def forward(self, c_hat: torch.Tensor, target: Any) -> torch.Tensor:
        return self._loss(c_hat, {self.definition_type.targets[0]: target}, {})


class NCELoss(_PoolLoss):
    """NCE (:class:`imle_solvers.losses.NCE`): ``loss_fn(c_hat, w_true)``, ``w_true`` the true solutions."""

    definition_type = NCE


class CMAPLoss(_PoolLoss):
    """Contrastive MAP (:class:`imle_solvers.losses.CMAP`): ``loss_fn(c_hat, w_true)``."""

    definition_type = CMAP


class PointwiseLTRLoss(_PoolLoss):
    """Pointwise learning to rank (:class:`imle_solvers.losses.PointwiseLTR`): ``loss_fn(c_hat, c)``, ``c`` the true costs."""

    definition_type = PointwiseLTR


class PairwiseLTRLoss(_PoolLoss):
    """Pairwise learning to rank (:class:`imle_solvers.losses.PairwiseLTR`): ``loss_fn(c_hat, c)``."""

    definition_type = PairwiseLTR


class ListwiseLTRLoss(_PoolLoss):
    """Listwise learning to rank (:class:`imle_solvers.losses.ListwiseLTR`): ``loss_fn(c_hat, c)``."""

    definition_type = ListwiseLTR

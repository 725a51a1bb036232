"""The regularized Frank-Wolfe optimizer (:mod:`imle_solvers.regularized`) as a torch layer:
PyEPO's ``regularizedFrankWolfeOpt``, InferOpt's ``RegularizedFrankWolfe``."""

from __future__ import annotations

from typing import Any

import torch

from .. import regularized as core
from ..options import OracleOptions, take_options
from ..problems import Problem
from ..step import Plan, Step, StepHolder

__all__ = ["RegularizedFrankWolfe"]


class _RegularizedMap(torch.autograd.Function):
    """Forward the regularized solution, backward from its active set (:mod:`imle_solvers.regularized`)."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, settings: core.FrankWolfeSettings, plan: Plan, data: dict,
                poison: Any) -> torch.Tensor:
        solution, vertices, weights = core.forward(plan, settings, theta.detach(), data, poison)
        ctx.saved = (settings, plan, vertices, weights, poison)
        return solution

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple:
        settings, plan, vertices, weights, poison = ctx.saved
        return core.backward(plan, settings, vertices, weights, grad_out, poison), None, None, None, None


class RegularizedFrankWolfe(StepHolder, torch.nn.Module):
    """The regularized solution ``y_lambda`` of ``problem`` as a layer:
    ``layer(theta, **data)`` ``(B, *problem.shape)`` -> ``(B, *problem.shape)``, the point of
    the states' hull maximising ``<sign theta, mu> - lambd/2 ||mu||^2`` (``theta`` scores, or
    costs for a min problem), differentiable (the Jacobian ``P / lambd`` on its optimal face,
    PyEPO's). Pair it with a task loss (e.g. the squared distance to the true solution).

    Args:
        problem: the problem whose MAP oracle is the linear-minimisation oracle.
        lambd, max_iter, tol: as :class:`imle_solvers.losses.RegularizedFenchelYoung`'s.
        validate_args: check ``theta`` and the data (shapes, finite values), and give NaN
            gradient rows where the upstream gradient is not finite.
        oracle_options, **options: :class:`~imle_solvers.MAPOracle`'s (``backend``,
            ``n_jobs``, ...); a failed solve raises (no failure policy: ``on_failure``
            other than ``"raise"`` is refused).
    """

    def __init__(self, problem: Problem, lambd: float = 1.0, max_iter: int = 10000, tol: float = 1e-6, *,
                 validate_args: bool = True, oracle_options: OracleOptions | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = core.FrankWolfeSettings(lambd, max_iter, tol)
        oracle, _, _ = take_options(core.OWNER, options, oracle_options, noise=())
        self.problem, self.lambd, self.max_iter, self.tol = problem, self.settings.lambd, max_iter, self.settings.tol
        self.step = Step(core.check_no_failure_policy(oracle.oracle(problem)), validate_args)

    def forward(self, theta: torch.Tensor, **data: Any) -> torch.Tensor:
        """The regularized solutions ``(B, *shape)`` of ``theta`` ``(B, *shape)``; ``data``: the
        instances' own data by field name (``problem.instance_fields``), carrying no gradient."""
        plan, data, poison = self.step.prepare(theta.detach(), data)
        return _RegularizedMap.apply(theta, self.settings, plan, data, poison)

    def extra_repr(self) -> str:
        return f"problem={self.problem!r}, lambd={self.lambd}, max_iter={self.max_iter}, tol={self.tol}"

"""The regularized Frank-Wolfe optimizer as a torch layer (PyEPO's ``regularizedFrankWolfeOpt``,
InferOpt's ``RegularizedFrankWolfe``): forward the regularized solution
(:func:`imle_solvers.frank_wolfe.regularized_map`, on the host through the problem's
:class:`~imle_solvers.MAPOracle`), backward the projector onto its optimal face's affine
hull (:func:`imle_solvers.frank_wolfe.regularized_map_vjp`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from ..frank_wolfe import ActiveSet, regularized_map, regularized_map_vjp
from ..losses import RegularizedFenchelYoung
from ..oracle import MAPOracle
from ..problems import Problem

__all__ = ["RegularizedFrankWolfe"]


class _RegularizedMap(torch.autograd.Function):
    """Forward ``y_lambda(sign theta)``, backward ``sign P grad_out / lambd`` from the active
    set kept on the host."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, layer: RegularizedFrankWolfe, data: dict[str, Any]) -> torch.Tensor:
        sign = layer.problem.sign
        s = sign * theta.detach().cpu().numpy().astype(np.float64)
        oracle = layer.oracle

        def solve(x: np.ndarray) -> np.ndarray:
            # the max problem's oracle: a min problem's minimises -x
            return np.asarray(oracle(sign * x, **data) if data else oracle(sign * x), dtype=np.float64)

        active = regularized_map(s, solve, lambd=layer.lambd, max_iter=layer.max_iter, tol=layer.tol)
        ctx.active, ctx.sign, ctx.lambd = active, sign, layer.lambd
        return torch.as_tensor(active.solution, dtype=theta.dtype, device=theta.device)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        active: ActiveSet = ctx.active
        g = grad_out.detach().cpu().numpy().astype(np.float64)
        grad = ctx.sign * regularized_map_vjp(active, g, ctx.lambd)
        return torch.as_tensor(grad, dtype=grad_out.dtype, device=grad_out.device), None, None


class RegularizedFrankWolfe(torch.nn.Module):
    """The regularized solution ``y_lambda`` of ``problem`` as a layer:
    ``layer(theta, **data)`` ``(B, *problem.shape)`` -> ``(B, *problem.shape)``, the point of
    the states' hull maximising ``<sign theta, mu> - lambd/2 ||mu||^2`` (``theta`` scores, or
    costs for a min problem), differentiable (the Jacobian ``P / lambd`` on its optimal face,
    PyEPO's). Pair it with a task loss (e.g. the squared distance to the true solution).

    Args:
        problem: the problem whose MAP oracle is the linear-minimisation oracle.
        lambd, max_iter, tol: as :class:`imle_solvers.losses.RegularizedFenchelYoung`'s.
        **options: :class:`~imle_solvers.MAPOracle`'s (``backend``, ``n_jobs``, ...); a failed
            solve raises (no failure policy).
    """

    def __init__(self, problem: Problem, lambd: float = 1.0, max_iter: int = 10000, tol: float = 1e-6,
                 **options: Any) -> None:
        super().__init__()
        RegularizedFenchelYoung(lambd, max_iter, tol)  # the same checks, by the loss's name
        if "on_failure" in options:
            raise InvalidInputError("RegularizedFrankWolfe: no failure policy, a failed solve raises")
        self.problem, self.lambd, self.max_iter, self.tol = problem, float(lambd), max_iter, float(tol)
        self.oracle = MAPOracle(problem, **options)

    def forward(self, theta: torch.Tensor, **data: Any) -> torch.Tensor:
        host = {name: value.detach().cpu().numpy() if torch.is_tensor(value) else value for name, value in data.items()}
        return _RegularizedMap.apply(theta, self, host)

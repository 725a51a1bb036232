"""The pushforward (:mod:`imle_solvers.pushforward`) in torch: the expectation of a
post-processing of perturbed MAP states as an ``nn.Module``, differentiable in ``theta``
by the score-function identity, whatever ``g``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import pushforward as core
from ..problems import Problem
from ..step import Plan
from .layer import IMLELayer

__all__ = ["Pushforward"]


class _PushforwardFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, layer: Pushforward, plan: Plan, data: dict, poison: Any) -> Any:
        noise = layer.estimator.draw(theta, layer.noise.source(theta))
        value, status, values = core.forward(plan, layer.estimator, layer.g, theta, noise, data, poison)
        ctx.saved = (layer.sigma, plan, noise, values, status, poison)
        ctx.mark_non_differentiable(*(() if status is None else (status,)))
        return value if status is None else (value, status)

    @staticmethod
    def backward(ctx: Any, grad_value: torch.Tensor, *_: Any) -> tuple:
        sigma, plan, noise, values, status, poison = ctx.saved
        return core.backward(plan, noise, values, grad_value, sigma, status, poison), None, None, None, None


class Pushforward(IMLELayer):
    r"""``theta (B, *problem.shape) -> mean_m g(MAP(theta + sigma Z_m))`` ``(B, *g_shape)``:
    the Monte-Carlo expectation of a post-processing ``g`` of ``samples`` perturbed MAP
    states (standard Normal ``Z_m``), differentiable in ``theta`` by
    ``E[<v, g(Y)> Z] / sigma`` (:mod:`imle_solvers.pushforward`), even where ``g`` is not
    differentiable (InferOpt's ``Pushforward``). It returns the expectation in training
    and in eval mode.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        g: the post-processing, a function of torch tensors, called once per call on all
            states ``(B, samples, *shape)`` (float, ``theta``'s dtype and device, no
            gradient) and returning ``(B, samples, *g_shape)`` (``g_shape`` may be ``()``):
            a function of one state vectorised over the leading axes, e.g.
            ``lambda y: y[..., 0]``.
        sigma: the noise's scale, > 0.
        samples: the draws ``M`` averaged per instance (the standard error falls as
            ``1 / sqrt(M)``).
        **options: as :class:`~imle_solvers.torch.IMLELayer`'s (``validate_args``,
            ``oracle_options``, ``noise_options``, ``seed``, ``noise_source``,
            ``backend``, ``on_failure``, ...). Under a failure policy the module returns
            ``(value, status)``, a FAILED instance's value and gradient zero.
    """

    def __init__(self, problem: Problem, g: Callable[[torch.Tensor], torch.Tensor], *, sigma: float = 1.0,
                 samples: int = 1, **options: Any) -> None:
        estimator = core.perturbation("Pushforward", sigma, samples)
        super().__init__(problem, estimator, **options)
        self.g = core.check_post_processing("Pushforward", g)
        self.sigma, self.samples = float(sigma), samples

    def forward(self, theta: torch.Tensor, **data: Any) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The expectation ``(B, *g_shape)`` (and the statuses ``(B,)``, under a failure
        policy) of ``theta`` ``(B, *shape)``; ``data``: the instances' own data by field name."""
        plan, data, poison = self.step.prepare(theta.detach(), data)
        return _PushforwardFunction.apply(theta, self, plan, data, poison)

    def extra_repr(self) -> str:
        return f"problem={self.problem!r}, sigma={self.sigma}, samples={self.samples}, g={self.g!r}"

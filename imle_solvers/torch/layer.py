"""The torch layer: the step (:mod:`imle_solvers.step`) under ``torch.autograd``, as an
``nn.Module`` whose ``state_dict()`` holds its noise generators and estimator state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..estimators import Estimator
from ..frameworks.torch import NoiseGenerators
from ..noise import RandomSource
from ..options import NoiseOptions, OracleOptions, take_options
from ..problems import Problem
from ..step import Plan, Step, StepHolder, check_estimator

__all__ = ["IMLELayer", "imle"]


@dataclass
class _Call:
    """One training call: its plan, data and noise source, and the layer that holds the
    estimator's state; the forward pass sets ``status`` under a failure policy."""

    layer: IMLELayer
    plan: Plan
    data: dict[str, Any]
    poison: torch.Tensor | None
    source: RandomSource
    status: torch.Tensor | None = None


class _PerturbAndMAPFunction(torch.autograd.Function):
    """The step's forward pass forward, its backward pass backward."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, call: _Call) -> torch.Tensor:
        theta, estimator = theta.detach(), call.layer.estimator
        noise = estimator.draw(theta, call.source)
        z, call.status, ctx.residuals = call.plan.forward(estimator, theta, noise, call.data, call.poison)
        ctx.call = call
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor) -> tuple[torch.Tensor, None]:
        call = ctx.call
        layer = call.layer
        grad, state = call.plan.backward(
            layer.estimator, ctx.residuals, grad_z.detach(), layer.estimator_state, call.status, call.data
        )
        if state is not layer.estimator_state:  # nn.Module's __setattr__ costs a tiny step 3%
            layer.estimator_state = state
        return grad, None


class IMLELayer(StepHolder, torch.nn.Module):
    """A differentiable discrete layer: ``theta (B, *problem.shape) -> z``.

    In training mode it returns perturb-and-MAP samples (shape ``(B, *shape)``, or
    ``(B, samples, *shape)`` when the estimator draws several) whose gradient is the
    estimator's; in eval mode the MAP state ``(B, *shape)``, without gradient. With
    ``on_failure`` other than ``"raise"`` it returns ``(z, status)``, ``status`` being
    each instance's :class:`~imle_solvers.failures.Status` ``(B,)`` (int8): a FAILED
    instance's ``z`` is zeros and its gradient zero, so a loss can mask it.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)``, ``STE()``, ... (docs/estimators.md).
        validate_args: check that ``theta`` and the data are finite and valid (one
            reduction read back from the device per step), and give NaN gradients to rows
            whose ``dL/dz`` is not finite (on the device, nothing read back); False skips
            both (as ``torch.distributions``' ``validate_args``). Shapes are always checked.
        oracle_options, noise_options, **options: the oracle's options
            (:class:`~imle_solvers.options.OracleOptions`: ``backend``, ``n_jobs``, ...,
            ``on_failure``, ``cache``; forward and backward passes share its worker pool) and
            the noise's (:class:`~imle_solvers.options.NoiseOptions`: ``seed``,
            ``noise_source``), as objects or as keywords. Native noise is drawn on
            ``theta``'s device in its dtype, from generators seeded with ``seed`` (torch's
            default one without a seed).

    An adaptive estimator's state (AIMLE's beta) and the noise generators' states are
    part of ``state_dict()``. ``failures`` counts the failed solves of instances by reason.
    """

    def __init__(self, problem: Problem, estimator: Estimator, *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, noise_options: NoiseOptions | None = None,
                 **options: Any) -> None:
        super().__init__()
        check_estimator("IMLELayer", estimator)
        oracle, noise, _ = take_options("IMLELayer", options, oracle_options, noise_options)
        self.problem = problem
        self.estimator = estimator
        self.step = Step(oracle.oracle(problem), validate_args)
        self.noise = NoiseGenerators(noise)
        self.estimator_state = estimator.initial_state()

    def forward(self, theta: torch.Tensor, **data: Any) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``z`` (and the statuses, under a failure policy) of ``theta`` ``(B, *shape)``;
        ``data``: the instances' own data by field name (``problem.instance_fields``), each
        ``(B, *field.shape)`` (or one instance's, for all), tensors or arrays, carrying no gradient."""
        plan, data, poison = self.step.prepare(theta.detach(), data)
        if not self.training:
            with torch.no_grad():
                return plan.map(theta.detach(), data, poison)
        call = _Call(self, plan, data, poison, self.noise.source(theta))
        z = _PerturbAndMAPFunction.apply(theta, call)
        return (z, call.status) if self.step.with_status else z

    def get_extra_state(self) -> dict:
        state = self.estimator_state
        extra = {"noise": self.noise.state_dict()}
        return extra if state is None else extra | {"estimator_state": state.state_dict()}

    def set_extra_state(self, extra: dict) -> None:
        if "estimator_state" in extra:
            self.estimator_state = type(self.estimator.initial_state()).from_state_dict(extra["estimator_state"])
        self.noise.load_state_dict(extra.get("noise", {}))

    def extra_repr(self) -> str:
        policy = "" if self.oracle.on_failure == "raise" else f", on_failure={self.oracle.on_failure!r}"
        return (
            f"problem={self.problem!r}, estimator={self.estimator!r}, backend={self.oracle.solver.backend!r}, "
            f"noise_source={self.noise.noise_source!r}{policy}"
        )


def imle(problem: Problem, estimator: Estimator, **options: Any) -> IMLELayer:
    """The differentiable torch layer of ``problem`` under ``estimator``: the same entry
    point as :func:`imle_solvers.jax.imle` and :func:`imle_solvers.tensorflow.imle`
    (``options`` as :class:`IMLELayer`'s). A user's own batched torch solver becomes a
    problem with :class:`TorchFunctionProblem`::

        layer = imle(TorchFunctionProblem(my_topk, event_shape=(n,)), IMLE(noise=SumOfGamma(k=10)))
        z = layer(theta)  # (B, n)
    """
    return IMLELayer(problem, estimator, **options)

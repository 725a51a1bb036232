"""PyTorch binding: the step (:mod:`imle_solvers.step`) under ``torch.autograd``.

What is torch's own here: the autograd hooks, the noise generators (one
``torch.Generator`` per device, or numpy's) and their place in ``state_dict()``, and
``nn.Module`` plumbing. Tensors keep their dtype and device: solvers that run on any
array (top-k) see the tensor itself, others get a host copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _binding
from .errors import missing_dependency
from .estimators import Estimator
from .losses import FenchelYoung, LossDefinition, SPOPlus, check_reduction, perturbation, reduce
from .noise import NumpySource, RandomSource, TorchSource
from .options import NoiseOptions, OracleOptions, take_options
from .problems import Problem
from .problems.torch_function import TorchFunctionProblem
from .step import LossStep, Plan, Step, StepHolder, check_estimator

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised without torch installed
    raise missing_dependency("torch", "torch") from error

__all__ = ["FenchelYoungLoss", "IMLELayer", "NoiseGenerators", "SPOPlusLoss", "TorchFunctionProblem", "imle"]


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
        grad, layer.estimator_state = call.plan.backward(
            layer.estimator, ctx.residuals, grad_z.detach(), layer.estimator_state, call.status, call.data
        )
        return grad, None


class NoiseGenerators:
    """Where a layer's noise comes from (:class:`~imle_solvers.options.NoiseOptions`): with a
    seed, one ``torch.Generator`` per device, made on first use (without one, the device's
    default generator: ``torch.manual_seed`` decides); ``"numpy"``: one numpy generator.
    :meth:`state_dict` holds their states: a resumed run draws what an uninterrupted one would."""

    def __init__(self, options: NoiseOptions) -> None:
        self.seed = options.seed
        self.noise_source = options.noise_source
        self.numpy = _binding.generator(self.seed) if self.noise_source == "numpy" else None
        self.torch: dict[str, torch.Generator] = {}
        self._pending: dict[str, torch.Tensor] = {}  # loaded states of devices not used yet

    def source(self, theta: torch.Tensor) -> RandomSource:
        """The source of a call's noise for scores ``theta``."""
        if self.numpy is not None:
            return NumpySource(self.numpy)
        return TorchSource(self._generator(theta.device), theta.dtype, theta.device)

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self.torch:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            if key in self._pending:
                generator.set_state(self._pending.pop(key))
            self.torch[key] = generator
        return self.torch[key]

    def state_dict(self) -> dict:
        if self.numpy is not None:
            return {"numpy": self.numpy.bit_generator.state}
        return {"torch": {key: g.get_state() for key, g in self.torch.items()} | self._pending}

    def load_state_dict(self, state: dict) -> None:
        if "numpy" in state and self.numpy is not None:
            self.numpy.bit_generator.state = state["numpy"]
        for key, value in state.get("torch", {}).items():
            if key in self.torch:
                self.torch[key].set_state(value)
            else:
                self._pending[key] = value


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


# --- losses (imle_solvers.losses) ------------------------------------------------------


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


class _Loss(StepHolder, torch.nn.Module):
    """A loss over the step (:class:`~imle_solvers.step.LossStep`), reduced over the batch."""

    def __init__(self, problem: Problem, definition: LossDefinition, reduction: str, validate_args: bool,
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


class FenchelYoungLoss(_Loss):
    """The perturbed Fenchel-Young loss (:class:`imle_solvers.losses.FenchelYoung`, whose
    docstring lists the arguments) of ``problem``: ``loss_fn(theta, y_true, **data)``,
    ``theta`` and ``y_true`` ``(B, *problem.shape)``, reduced over the batch; its noise
    generators are part of ``state_dict()``."""

    def __init__(self, problem: Problem, noise: Any = None, sigma: float = 1.0, samples: int = 1,
                 reduction: str = "mean", multiplicative: bool = False, *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, noise_options: NoiseOptions | None = None,
                 **options: Any) -> None:
        definition = FenchelYoung(perturbation(noise, sigma, samples, multiplicative))
        super().__init__(problem, definition, reduction, validate_args, oracle_options, noise_options, options)
        self.perturbation, self.sigma, self.multiplicative = definition.perturbation, sigma, multiplicative

    def forward(self, theta: torch.Tensor, y_true: Any, **data: Any) -> torch.Tensor:
        return self._loss(theta, {"y_true": y_true}, data)


class SPOPlusLoss(_Loss):
    """SPO+ (:class:`imle_solvers.losses.SPOPlus`) of ``problem``: ``loss_fn(c_hat, c,
    w_true=None, z_true=None, **data)``, ``c_hat`` the predicted costs (scores for a max
    problem) and ``c`` the true ones, ``(B, *problem.shape)``, reduced over the batch."""

    def __init__(self, problem: Problem, reduction: str = "mean", *, validate_args: bool = True,
                 oracle_options: OracleOptions | None = None, **options: Any) -> None:
        super().__init__(problem, SPOPlus(), reduction, validate_args, oracle_options, None, options)

    def forward(self, c_hat: torch.Tensor, c: Any, w_true: Any = None, z_true: Any = None, **data: Any) -> torch.Tensor:
        return self._loss(c_hat, {"c": c, "w_true": w_true, "z_true": z_true}, data)

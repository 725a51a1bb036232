"""PyTorch binding: an autograd hook over the framework-free estimators, and a layer.

The binding only moves tensors in and out of :mod:`imle_solvers.estimators`; the
gradient math lives there. Tensors keep their dtype and device: solvers that run
on any array (top-k) see the tensor itself, others get a host copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _binding
from ._binding import NoiseSource
from .errors import missing_dependency
from .estimators import Estimator
from .failures import OnFailure, gradient_with_status, sample_with_status
from .noise import NumpySource, RandomSource, TorchSource
from .oracle import MAPOracle
from .problems import Problem
from .problems.base import check_batch_shape, check_finite
from .problems.torch_function import TorchFunctionProblem

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised without torch installed
    raise missing_dependency("torch", "torch") from error

__all__ = ["FenchelYoungLoss", "IMLELayer", "NoiseGenerators", "SPOPlusLoss", "TorchFunctionProblem", "imle"]


@dataclass
class _Step:
    """What one differentiable call needs; the state holder is the caller's."""

    estimator: Estimator
    oracle: MAPOracle
    source: RandomSource
    holder: Any  # has an ``estimator_state`` attribute that backward replaces
    validate: bool  # make rows of a non-finite dL/dz NaN in backward
    data: dict[str, torch.Tensor]  # the instances' own data, (B, *field.shape) each
    batch: int
    status: torch.Tensor | None = None  # (B,) statuses of the forward pass, under a failure policy

    def __post_init__(self) -> None:
        # every solve of the estimator's, each row with its own instance's data
        self.solve, self.solve_with_status = _binding.oracle_solves(self.oracle, self.data, self.batch)


class _PerturbAndMAPFunction(torch.autograd.Function):
    """``z = estimator.sample(theta)`` forward, ``estimator.gradient`` backward; under a
    failure policy other than ``"raise"``, through :mod:`imle_solvers.failures`."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, step: _Step) -> torch.Tensor:
        theta, sign = theta.detach(), step.oracle.problem.sign
        noise = step.estimator.draw(theta, step.source)
        if step.oracle.on_failure == "raise":
            z, residuals = step.estimator.sample_with(theta, noise, step.solve, sign=sign)
        else:
            z, step.status, residuals = sample_with_status(step.estimator, theta, noise, step.solve_with_status, sign)
        ctx.residuals, ctx.step = residuals, step
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor) -> tuple[torch.Tensor, None]:
        step = ctx.step
        grad_z, state = grad_z.detach(), step.holder.estimator_state
        if step.status is None:
            grad, state = step.estimator.gradient(ctx.residuals, grad_z, step.solve, state)
        else:
            grad, state = gradient_with_status(
                step.estimator, ctx.residuals, grad_z, step.solve_with_status, state, step.status
            )
        step.holder.estimator_state = state
        return (_binding.nan_where_not_finite(grad_z, grad) if step.validate else grad), None


class NoiseGenerators:
    """Where a layer's noise comes from (see ``noise_source`` in :mod:`imle_solvers._binding`).

    ``"native"`` with a seed: one ``torch.Generator`` per device, seeded with it, created
    on first use; without a seed, torch's default generator of the device (so
    ``torch.manual_seed`` decides). ``"numpy"``: one ``numpy.random.Generator``.
    :meth:`state_dict` holds every generator's state, so a resumed run draws what an
    uninterrupted one would.
    """

    def __init__(self, seed: int | None, noise_source: NoiseSource) -> None:
        self.seed = seed
        self.noise_source = _binding.check_noise_source(noise_source)
        self.numpy = _binding.generator(seed) if noise_source == "numpy" else None
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


class IMLELayer(torch.nn.Module):
    """A differentiable discrete layer: ``theta (B, *problem.shape) -> z``.

    In training mode it returns perturb-and-MAP samples (shape ``(B, *shape)``, or
    ``(B, samples, *shape)`` when the estimator draws several) whose gradient is the
    estimator's; in eval mode the MAP state ``(B, *shape)``, without gradient. With
    ``on_failure`` other than ``"raise"`` it returns ``(z, status)``, ``status`` being
    each instance's :class:`~imle_solvers.failures.Status` ``(B,)`` (int8): a FAILED
    instance's ``z`` is zeros and its gradient zero, so a loss can mask it.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)`` or ``STE(...)``.
        backend: solver name (see ``imle_solvers.list_solvers``) or ``"auto"``.
        seed: seed of the layer's noise generator. None: with ``noise_source="native"``,
            torch's default generator (``torch.manual_seed`` decides); with ``"numpy"``,
            fresh entropy.
        noise_source: ``"native"`` (default) draws with torch on ``theta``'s device and in
            its dtype; ``"numpy"`` draws on the host from ``numpy.random.default_rng(seed)``,
            identical in torch, JAX and Keras for one seed.
        validate_args: check that ``theta`` is finite (one reduction read back from the
            device per step), and give NaN gradients to rows whose ``dL/dz`` is not finite
            (on the device, nothing read back); False skips both (as
            ``torch.distributions``' ``validate_args``). Shapes are always checked.
        n_jobs, parallel_backend, chunk_size, time_limit, on_failure, cache: passed to
            :class:`~imle_solvers.MAPOracle` (see docs/parallel.md and docs/failures.md);
            forward and backward passes share its worker pool.

    An adaptive estimator's state (AIMLE's beta) and the noise generators' states are
    part of ``state_dict()``. ``failures`` counts the failed solves of instances by reason.
    """

    def __init__(
        self,
        problem: Problem,
        estimator: Estimator,
        backend: str = "auto",
        seed: int | None = None,
        noise_source: NoiseSource = "native",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
    ) -> None:
        super().__init__()
        _binding.check_estimator("IMLELayer", estimator)
        self.problem = problem
        self.estimator = estimator
        self.validate_args = validate_args
        self.oracle = MAPOracle(
            problem,
            backend=backend,
            n_jobs=n_jobs,
            parallel_backend=parallel_backend,
            chunk_size=chunk_size,
            time_limit=time_limit,
            on_failure=on_failure,
            cache=cache,
        )
        self.noise = NoiseGenerators(seed, noise_source)
        self.estimator_state = estimator.initial_state()

    @property
    def failures(self) -> Any:
        """Failed solves of instances by reason, since built (``oracle.failures``, a ``Counter``)."""
        return self.oracle.failures

    def forward(self, theta: torch.Tensor, **data: Any) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``z`` (and the statuses, under a failure policy) of ``theta`` ``(B, *shape)``;
        ``data``: the instances' own data by field name (``problem.instance_fields``), each
        ``(B, *field.shape)``, tensors or arrays, carrying no gradient."""
        check_batch_shape(tuple(theta.shape), self.problem.shape, "theta")
        if self.validate_args:
            check_finite(theta.detach(), "theta")
        data = _binding.instance_data(self.oracle, data, theta.detach(), self.validate_args)
        with_status = self.oracle.on_failure != "raise"
        if not self.training:
            with torch.no_grad():
                z, status = self.oracle.solve(theta, validate=False, **data)
            return (z, status) if with_status else z
        step = _Step(
            self.estimator, self.oracle, self.noise.source(theta), self, self.validate_args, data, theta.shape[0]
        )
        z = _PerturbAndMAPFunction.apply(theta, step)
        return (z, step.status) if with_status else z

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
    loss's math (values and gradient at once) runs in :mod:`imle_solvers.losses`."""

    @staticmethod
    def forward(ctx: Any, prediction: torch.Tensor, compute: Callable[[torch.Tensor], Any]) -> torch.Tensor:
        result = compute(prediction.detach())
        ctx.save_for_backward(result.gradient)
        return result.value

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (gradient,) = ctx.saved_tensors
        return grad_out.reshape(-1, *(1,) * (gradient.ndim - 1)) * gradient, None


class _OracleLoss(torch.nn.Module):
    """What both losses share: the oracle (with its failure policy and cache), the
    reduction and the checks of a call."""

    def __init__(self, problem: Problem, reduction: str, validate_args: bool, oracle_options: dict[str, Any]) -> None:
        super().__init__()
        from .losses import check_reduction

        self.problem = problem
        self.reduction = check_reduction(type(self).__name__, reduction)
        self.validate_args = validate_args
        self.oracle = MAPOracle(problem, **oracle_options)

    @property
    def failures(self) -> Any:
        """Failed solves by reason, since built (``oracle.failures``, a ``Counter``; a PFYL
        counts each of an instance's failed perturbed solves)."""
        return self.oracle.failures

    def _prepare(self, prediction: torch.Tensor, data: dict[str, Any]) -> tuple[Callable, Callable]:
        """A call's checks, and its two solves (states; states and statuses), each row with
        its instance's data."""
        check_batch_shape(tuple(prediction.shape), self.problem.shape, "prediction")
        if self.validate_args:
            check_finite(prediction.detach(), "prediction")
        data = _binding.instance_data(self.oracle, data, prediction.detach(), self.validate_args)
        return _binding.oracle_solves(self.oracle, data, prediction.shape[0])

    def _values(
        self, prediction: torch.Tensor, solves: tuple[Callable, Callable], loss: Callable[[torch.Tensor, Any], Any]
    ) -> torch.Tensor:
        """The reduced loss of ``prediction``: ``loss(prediction, solve)`` under the oracle's
        failure policy (:func:`imle_solvers.losses.under_policy`), differentiable with respect
        to ``prediction``."""
        from .losses import reduce, under_policy

        (solve, with_status), policy = solves, self.oracle.on_failure

        def compute(t: torch.Tensor) -> Any:
            return under_policy(lambda s: loss(t, s), t, solve, with_status, policy)

        return reduce(_LossFunction.apply(prediction, compute), self.reduction)


class FenchelYoungLoss(_OracleLoss):
    """The perturbed Fenchel-Young loss (Berthet et al., 2020) of ``problem``:
    ``loss_fn(theta, y_true, **data)``, ``theta`` and ``y_true`` ``(B, *problem.shape)``,
    reduced over the batch (``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` for ``(B,)``).

    Its gradient with respect to ``theta`` is ``y_sigma(theta) - y_true`` for a max problem
    and ``y_true - y_sigma(w)`` for a min problem over costs ``w`` (see
    :mod:`imle_solvers.losses` and docs/estimators.md, "Losses").

    Args:
        problem: what to solve.
        noise: ``Normal()`` (default) or ``Gumbel()``.
        sigma: the perturbation's scale, > 0.
        samples: M, perturbations per instance.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        seed, noise_source: as :class:`IMLELayer`'s (``"numpy"`` draws what the JAX and Keras
            losses draw for one seed).
        validate_args, backend, n_jobs, parallel_backend, chunk_size, time_limit: as
            :class:`IMLELayer`'s.
        on_failure: as :class:`IMLELayer`'s: ``"raise"`` names the failing instance's batch
            index; under ``"skip"`` (and ``"incumbent"`` without an incumbent) an instance
            whose perturbed solves fail adds 0 to the loss and gets gradient 0 (``"mean"``
            still divides by ``B``); ``failures`` counts them.
        cache: a :class:`~imle_solvers.cache.SolutionCache` for the oracle (as
            :class:`IMLELayer`'s).
        multiplicative: perturb ``theta * exp(sigma Z - sigma^2/2)``, keeping the scores'
            signs (PyEPO's ``perturbedFenchelYoungMul``): the gradient is then
            ``mean_m f_m * y_m - y_true``, ``f_m`` the factors (see :mod:`imle_solvers.losses`).
    """

    def __init__(
        self,
        problem: Problem,
        noise: Any = None,
        sigma: float = 1.0,
        samples: int = 1,
        reduction: str = "mean",
        backend: str = "auto",
        seed: int | None = None,
        noise_source: NoiseSource = "native",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
        multiplicative: bool = False,
    ) -> None:
        from .losses import perturbation

        super().__init__(problem, reduction, validate_args, _binding.options_of(locals()))
        self.perturbation = perturbation(noise, sigma, samples, multiplicative)
        self.sigma = sigma
        self.multiplicative = multiplicative
        self.noise = NoiseGenerators(seed, noise_source)

    def forward(self, theta: torch.Tensor, y_true: Any, **data: Any) -> torch.Tensor:
        from .losses import fenchel_young

        solves = self._prepare(theta, data)
        y_true = torch.as_tensor(y_true, dtype=theta.dtype, device=theta.device)
        noise = self.perturbation.draw(theta.detach(), self.noise.source(theta))
        sign, sigma, multiplicative = self.problem.sign, self.sigma, self.multiplicative

        def loss(t: torch.Tensor, solve: Any) -> Any:
            return fenchel_young(t, y_true, noise, solve, sign=sign, sigma=sigma, multiplicative=multiplicative)

        return self._values(theta, solves, loss)

    def get_extra_state(self) -> dict:
        return {"noise": self.noise.state_dict()}

    def set_extra_state(self, extra: dict) -> None:
        self.noise.load_state_dict(extra.get("noise", {}))


class SPOPlusLoss(_OracleLoss):
    """SPO+ (Elmachtoub and Grigas) of ``problem``: ``loss_fn(c_hat, c, w_true=None,
    z_true=None, **data)``, ``c_hat`` the predicted costs (scores for a max problem) and
    ``c`` the true ones, ``(B, *problem.shape)``; ``w_true`` ``(B, *shape)`` an optimal
    solution for ``c`` (solved for when None) and ``z_true`` ``(B,)`` its value. The
    subgradient with respect to ``c_hat`` is ``2 (w*(c) - w*(2 c_hat - c))`` for a min
    problem (mirrored for a max problem, see :mod:`imle_solvers.losses`). Options as
    :class:`FenchelYoungLoss`'s (no noise); under ``on_failure="skip"`` an instance whose
    solve of ``c`` or of ``2 c_hat - c`` fails adds 0 to the loss and gets gradient 0.
    """

    def __init__(
        self,
        problem: Problem,
        reduction: str = "mean",
        backend: str = "auto",
        validate_args: bool = True,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
        on_failure: OnFailure = "raise",
        cache: Any = None,
    ) -> None:
        super().__init__(problem, reduction, validate_args, _binding.options_of(locals()))

    def forward(self, c_hat: torch.Tensor, c: Any, w_true: Any = None, z_true: Any = None, **data: Any) -> torch.Tensor:
        from .losses import spo_plus

        solves = self._prepare(c_hat, data)
        like = {"dtype": c_hat.dtype, "device": c_hat.device}
        c = torch.as_tensor(c, **like).detach()
        w_true = None if w_true is None else torch.as_tensor(w_true, **like).detach()
        z_true = None if z_true is None else torch.as_tensor(z_true, **like).detach()
        sign = self.problem.sign

        def loss(prediction: torch.Tensor, solve: Any) -> Any:
            return spo_plus(prediction, c, solve, sign=sign, w_true=w_true, z_true=z_true)

        return self._values(c_hat, solves, loss)

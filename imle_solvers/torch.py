"""PyTorch binding: an autograd hook over the framework-free estimators, and a layer.

The binding only moves tensors in and out of :mod:`imle_solvers.estimators`; the
gradient math lives there. Tensors keep their dtype and device: solvers that run
on any array (top-k) see the tensor itself, others get a host copy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import _binding
from ._binding import NoiseSource
from .adapters import register_solver
from .errors import missing_dependency
from .estimators import Estimator, Solve
from .noise import NumpySource, RandomSource, TorchSource
from .oracle import MAPOracle
from .problems import Problem, Sense
from .problems.base import check_batch_shape, check_finite

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised without torch installed
    raise missing_dependency("torch", "torch") from error

__all__ = ["IMLELayer", "NoiseGenerators", "TorchFunctionProblem", "imle"]


@dataclass
class _Step:
    """What one differentiable call needs; the state holder is the caller's."""

    estimator: Estimator
    solve: Solve
    sign: int
    source: RandomSource
    holder: Any  # has an ``estimator_state`` attribute that backward replaces
    validate: bool  # make rows of a non-finite dL/dz NaN in backward


class _PerturbAndMAPFunction(torch.autograd.Function):
    """``z = estimator.sample(theta)`` forward, ``estimator.gradient`` backward."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, step: _Step) -> torch.Tensor:
        z, residuals = step.estimator.sample(theta.detach(), step.solve, sign=step.sign, rng=step.source)
        ctx.residuals, ctx.step = residuals, step
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor) -> tuple[torch.Tensor, None]:
        step = ctx.step
        grad_z = grad_z.detach()
        grad, step.holder.estimator_state = step.estimator.gradient(
            ctx.residuals, grad_z, step.solve, step.holder.estimator_state
        )
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
    estimator's; in eval mode the MAP state ``(B, *shape)``, without gradient.

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
        n_jobs, parallel_backend, chunk_size, time_limit: passed to
            :class:`~imle_solvers.MAPOracle` (see docs/parallel.md); forward and backward
            passes share its worker pool.

    An adaptive estimator's state (AIMLE's beta) and the noise generators' states are
    part of ``state_dict()``.
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
    ) -> None:
        super().__init__()
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
        )
        self.noise = NoiseGenerators(seed, noise_source)
        self.estimator_state = estimator.initial_state()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        check_batch_shape(tuple(theta.shape), self.problem.shape, "theta")
        if self.validate_args:
            check_finite(theta.detach(), "theta")
        solve = functools.partial(self.oracle, validate=False)
        if not self.training:
            with torch.no_grad():
                return solve(theta)
        source = self.noise.source(theta)
        step = _Step(self.estimator, solve, self.problem.sign, source, self, self.validate_args)
        return _PerturbAndMAPFunction.apply(theta, step)

    def get_extra_state(self) -> dict:
        state = self.estimator_state
        extra = {"noise": self.noise.state_dict()}
        return extra if state is None else extra | {"estimator_state": state.state_dict()}

    def set_extra_state(self, extra: dict) -> None:
        if "estimator_state" in extra:
            self.estimator_state = type(self.estimator.initial_state()).from_state_dict(extra["estimator_state"])
        self.noise.load_state_dict(extra.get("noise", {}))

    def extra_repr(self) -> str:
        return (
            f"problem={self.problem!r}, estimator={self.estimator!r}, backend={self.oracle.solver.backend!r}, "
            f"noise_source={self.noise.noise_source!r}"
        )


class _Holder:
    def __init__(self, state: Any) -> None:
        self.estimator_state = state


@dataclass(frozen=True)
class TorchFunctionProblem(Problem):
    """A user's batched torch solver ``fn: (N, *shape) -> (N, *shape)`` as a problem, so
    that :class:`~imle_solvers.MAPOracle` can spread its batches over workers."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    event_shape: tuple[int, ...]
    objective_sense: Sense = "max"
    kind: ClassVar[str] = "torch-function"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.event_shape

    @property
    def sense(self) -> Sense:
        return self.objective_sense


@register_solver(TorchFunctionProblem.kind, "torch", batched=True)
def solve_torch_function(theta: np.ndarray, problem: TorchFunctionProblem) -> np.ndarray:
    """A chunk ``(N, *shape)`` through the user's function, on CPU tensors."""
    with torch.no_grad():
        return torch.as_tensor(problem.fn(torch.from_numpy(theta))).numpy()


def imle(
    estimator: Estimator,
    sense: Sense = "max",
    seed: int | None = None,
    noise_source: NoiseSource = "native",
    validate_args: bool = True,
    n_jobs: int = 1,
    parallel_backend: str = "loky",
) -> Callable[[Callable[[torch.Tensor], torch.Tensor]], Callable[[torch.Tensor], torch.Tensor]]:
    """Make a user's batched solver differentiable::

        @imle(IMLE(noise=SumOfGamma(k=10)))
        def topk(theta):  # (B, n) tensor -> (B, n) tensor
            ...

    The wrapped function takes ``theta`` and returns perturb-and-MAP samples with
    the estimator's gradient; ``sense="min"`` for solvers that minimise costs. Its
    output is cast back to ``theta``'s dtype and device. The estimator's state lives
    on the returned function as ``wrapped.state_holder.estimator_state``; ``seed``,
    ``noise_source`` and ``validate_args`` are as :class:`IMLELayer`'s, and the noise
    generators are ``wrapped.noise`` (a :class:`NoiseGenerators`).

    With ``n_jobs=1`` the solver receives the tensors as they are (on ``theta``'s
    device). Otherwise each batch is split into chunks of CPU tensors solved on a
    persistent worker pool (``parallel_backend``, as :class:`~imle_solvers.MAPOracle`),
    shared by the forward and backward passes; the solver must then be picklable
    (cloudpickle takes closures and lambdas).
    """
    if sense not in ("max", "min"):
        raise ValueError(f"imle: sense must be 'max' or 'min', got {sense!r}")
    noise = NoiseGenerators(seed, noise_source)

    def decorate(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        oracles: dict[tuple[int, ...], MAPOracle] = {}  # one persistent pool per event shape

        def solve(theta: torch.Tensor) -> torch.Tensor:
            if n_jobs != 1:
                shape = tuple(theta.shape[1:])
                if shape not in oracles:
                    problem = TorchFunctionProblem(fn, shape, sense)
                    oracles[shape] = MAPOracle(problem, n_jobs=n_jobs, parallel_backend=parallel_backend)
                return oracles[shape](theta, validate=False)
            with torch.no_grad():
                return torch.as_tensor(fn(theta)).to(dtype=theta.dtype, device=theta.device)

        holder = _Holder(estimator.initial_state())

        def wrapped(theta: torch.Tensor) -> torch.Tensor:
            if validate_args:
                check_finite(theta.detach(), "theta")
            step = _Step(estimator, solve, 1 if sense == "max" else -1, noise.source(theta), holder, validate_args)
            return _PerturbAndMAPFunction.apply(theta, step)

        wrapped.__wrapped__ = fn
        wrapped.state_holder = holder
        wrapped.noise = noise
        return wrapped

    return decorate

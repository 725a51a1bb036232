"""PyTorch binding: an autograd hook over the framework-free estimators, and a layer.

The binding only moves tensors in and out of :mod:`imle_solvers.estimators`; the
gradient math lives there. Tensors keep their dtype and device: solvers that run
on any array (top-k) see the tensor itself, others get a host copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import _binding
from .errors import missing_dependency
from .estimators import Estimator, Solve
from .adapters import register_solver
from .oracle import MAPOracle
from .problems import Problem, Sense

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised without torch installed
    raise missing_dependency("torch", "torch") from error

__all__ = ["IMLELayer", "TorchFunctionProblem", "imle"]


@dataclass
class _Step:
    """What one differentiable call needs; the state holder is the caller's."""

    estimator: Estimator
    solve: Solve
    sign: int
    rng: np.random.Generator
    holder: Any  # has an ``estimator_state`` attribute that backward replaces


class _PerturbAndMAPFunction(torch.autograd.Function):
    """``z = estimator.sample(theta)`` forward, ``estimator.gradient`` backward."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, step: _Step) -> torch.Tensor:
        z, residuals = step.estimator.sample(theta.detach(), step.solve, sign=step.sign, rng=step.rng)
        ctx.residuals, ctx.step = residuals, step
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor) -> tuple[torch.Tensor, None]:
        step = ctx.step
        grad, step.holder.estimator_state = step.estimator.gradient(
            ctx.residuals, grad_z.detach(), step.solve, step.holder.estimator_state
        )
        return grad, None


class IMLELayer(torch.nn.Module):
    """A differentiable discrete layer: ``theta (B, *problem.shape) -> z``.

    In training mode it returns perturb-and-MAP samples (shape ``(B, *shape)``, or
    ``(B, samples, *shape)`` when the estimator draws several) whose gradient is the
    estimator's; in eval mode the MAP state ``(B, *shape)``, without gradient.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)`` or ``STE(...)``.
        backend: solver name (see ``imle_solvers.list_solvers``) or ``"auto"``.
        seed: seed of the layer's noise generator (None: fresh entropy).
        n_jobs, parallel_backend, chunk_size, time_limit: passed to
            :class:`~imle_solvers.MAPOracle` (see docs/parallel.md); forward and backward
            passes share its worker pool.

    An adaptive estimator's state (AIMLE's beta) is part of ``state_dict()``.
    """

    def __init__(
        self,
        problem: Problem,
        estimator: Estimator,
        backend: str = "auto",
        seed: int | None = None,
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
    ) -> None:
        super().__init__()
        self.problem = problem
        self.estimator = estimator
        self.oracle = MAPOracle(
            problem,
            backend=backend,
            n_jobs=n_jobs,
            parallel_backend=parallel_backend,
            chunk_size=chunk_size,
            time_limit=time_limit,
        )
        self.rng = _binding.generator(seed)
        self.estimator_state = estimator.initial_state()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        if not self.training:
            with torch.no_grad():
                return self.oracle(theta)  # which validates theta
        self.problem.validate(theta.detach())
        step = _Step(self.estimator, self.oracle, self.problem.sign, self.rng, self)
        return _PerturbAndMAPFunction.apply(theta, step)

    def get_extra_state(self) -> dict:
        state = self.estimator_state
        return {} if state is None else {"estimator_state": state.state_dict()}

    def set_extra_state(self, extra: dict) -> None:
        if "estimator_state" in extra:
            self.estimator_state = type(self.estimator_state).from_state_dict(extra["estimator_state"])

    def extra_repr(self) -> str:
        return f"problem={self.problem!r}, estimator={self.estimator!r}, backend={self.oracle.solver.backend!r}"


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
    on the returned function as ``wrapped.state_holder.estimator_state``.

    With ``n_jobs=1`` the solver receives the tensors as they are (on ``theta``'s
    device). Otherwise each batch is split into chunks of CPU tensors solved on a
    persistent worker pool (``parallel_backend``, as :class:`~imle_solvers.MAPOracle`),
    shared by the forward and backward passes; the solver must then be picklable
    (cloudpickle takes closures and lambdas).
    """
    if sense not in ("max", "min"):
        raise ValueError(f"imle: sense must be 'max' or 'min', got {sense!r}")
    rng = _binding.generator(seed)

    def decorate(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        oracles: dict[tuple[int, ...], MAPOracle] = {}  # one persistent pool per event shape

        def solve(theta: torch.Tensor) -> torch.Tensor:
            if n_jobs != 1:
                shape = tuple(theta.shape[1:])
                if shape not in oracles:
                    problem = TorchFunctionProblem(fn, shape, sense)
                    oracles[shape] = MAPOracle(problem, n_jobs=n_jobs, parallel_backend=parallel_backend)
                return oracles[shape](theta)
            with torch.no_grad():
                return torch.as_tensor(fn(theta)).to(dtype=theta.dtype, device=theta.device)

        holder = _Holder(estimator.initial_state())

        def wrapped(theta: torch.Tensor) -> torch.Tensor:
            step = _Step(estimator, solve, 1 if sense == "max" else -1, rng, holder)
            return _PerturbAndMAPFunction.apply(theta, step)

        wrapped.__wrapped__ = fn
        wrapped.state_holder = holder
        return wrapped

    return decorate

"""What happens when a solver fails on one instance of a batch: the failure policy.

``on_failure`` (an argument of :class:`~imle_solvers.MAPOracle` and of every layer):

- ``"raise"`` (default): the first failing instance raises
  :class:`~imle_solvers.errors.SolverError` naming its batch index.
- ``"skip"``: a failing instance's MAP state is the placeholder (all zeros, in the
  scores' dtype), its status is :attr:`Status.FAILED`, and its gradient is zero; the
  rest of the batch is solved as usual.
- ``"incumbent"``: as ``"skip"``, except that an instance whose solver stopped at its
  time limit with a feasible solution (CP-SAT, SCIP) keeps that solution, flagged
  :attr:`Status.INCUMBENT`; its gradient is computed as for any other instance.

Failures are: a solver's error (infeasible, unbounded, a crash), a result that fails
the oracle's output checks, a time limit without a solution, and workers that died
twice holding the instance. The oracle counts them by reason (``oracle.failures``).

The estimators never see a status. The bindings wrap the solve they hand to an
estimator in a :class:`StatusLog`, which records the statuses of every solve of a pass;
rows are grouped per instance by the one rule every estimator's solves follow (a
solve of ``N`` rows for a batch of ``B`` instances holds ``N / B`` consecutive rows per
instance, instance-major). The layer then zeroes the output rows and gradient rows of
failed instances: an estimator or loss added later inherits the policy unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Literal

from ._array import Array, array_namespace, device, framework
from .errors import InvalidInputError

OnFailure = Literal["raise", "skip", "incumbent"]
ON_FAILURE_CHOICES: tuple[OnFailure, ...] = ("raise", "skip", "incumbent")

SolveWithStatus = Callable[[Array], tuple[Array, Array]]


class Status(enum.IntEnum):
    """Per-instance outcome of a solve, ordered by severity (a pass reports its worst)."""

    OK = 0  #: solved to optimality
    INCUMBENT = 1  #: a feasible solution, not proven optimal (time limit hit)
    FAILED = 2  #: no solution: the state is the placeholder (zeros)


STATUS_DTYPE = "int8"


def check_on_failure(owner: str, on_failure: str) -> OnFailure:
    """``on_failure`` if it is a known policy; otherwise an error naming ``owner``."""
    if on_failure not in ON_FAILURE_CHOICES:
        raise InvalidInputError(f"{owner}: on_failure must be one of {ON_FAILURE_CHOICES}, got {on_failure!r}")
    return on_failure  # type: ignore[return-value]


class StatusLog:
    """The statuses of every solve an estimator makes in one pass, per instance.

    Args:
        solve: ``(N, *shape) -> ((N, *shape) states, (N,) statuses)``, the oracle's
            :meth:`~imle_solvers.MAPOracle.solve`.
        scores: ``(B, *shape)``, the pass's scores (for B).
    """

    def __init__(self, solve: SolveWithStatus, scores: Array) -> None:
        self._solve = solve
        self.batch = batch_size(scores)
        self._worst: Array | None = None

    def __call__(self, theta: Array) -> Array:
        """The estimator's ``solve``: states only, the statuses kept."""
        z, status = self._solve(theta)
        xp = array_namespace(status)
        empty = isinstance(self.batch, int) and self.batch == 0
        per_instance = status if empty else xp.max(xp.reshape(status, (self.batch, -1)), axis=1)
        self._worst = per_instance if self._worst is None else xp.maximum(self._worst, per_instance)
        return z

    def worst(self, like: Array) -> Array:
        """``(B,)`` the worst status of each instance over the pass's solves (all OK if none)."""
        if self._worst is not None:
            return self._worst
        xp = array_namespace(like)
        return xp.zeros((self.batch,), dtype=getattr(xp, STATUS_DTYPE), device=device(like))


def batch_size(x: Array) -> Any:
    """B of ``x`` ``(B, ...)``: an int, or in a graph whose batch size is unknown until run
    time, a scalar array."""
    return x.shape[0] if x.shape[0] is not None else framework(x).batch_size(x)


def zero_failed_rows(x: Array, status: Array) -> Array:
    """``x`` ``(B, ...)`` with zeros in the rows whose status ``(B,)`` is FAILED."""
    xp = array_namespace(x)
    failed = xp.reshape(status == int(Status.FAILED), (-1, *(1,) * (x.ndim - 1)))
    return xp.where(failed, xp.zeros_like(x), x)



def sample_with_status(
    estimator: Any, theta: Array, noise: Array | None, solve: SolveWithStatus, sign: int
) -> tuple[Array, Array, Any]:
    """An estimator's forward pass under a failure policy: ``(z, status, residuals)``.

    ``z`` is the estimator's output with the rows of FAILED instances zeroed (the
    placeholder); ``status`` ``(B,)`` is each instance's worst status over its solves."""
    log = StatusLog(solve, theta)
    z, residuals = estimator.sample_with(theta, noise, log, sign=sign)
    status = log.worst(theta)
    return zero_failed_rows(z, status), status, residuals


def gradient_with_status(
    estimator: Any, residuals: Any, grad_z: Array, solve: SolveWithStatus, state: Any, status: Array
) -> tuple[Array, Any]:
    """An estimator's backward pass under a failure policy: the gradient with zero rows for
    the instances FAILED in the forward pass (``status``) or in this pass, and the state."""
    log = StatusLog(solve, residuals.theta)
    grad, state = estimator.gradient(residuals, grad_z, log, state)
    xp = array_namespace(grad)
    return zero_failed_rows(grad, xp.maximum(status, log.worst(grad))), state

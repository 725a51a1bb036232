"""A problem whose solver fails on demand, for the failure policy's tests (the oracle's,
the layers' and the losses'): a one-hot argmax of ``n`` scores that fails on an instance
whose largest score exceeds ``fail_above``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import imle_solvers as ims
from imle_solvers.errors import SolverError

FLAKY = "test-flaky-argmax"


@dataclass(frozen=True)
class FlakyArgmax(ims.Problem):
    """One-hot argmax of ``n`` scores; the solver fails on an instance whose largest score
    exceeds ``fail_above`` (so a backward target pushed up past it fails too)."""

    n: int
    fail_above: float = 100.0
    kind: ClassVar[str] = FLAKY
    binary_states: ClassVar[bool] = True

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def sense(self) -> str:
        return "max"


@ims.register_solver(FLAKY, "numpy", time_limit=True)
def solve_flaky(theta: np.ndarray, problem: FlakyArgmax, time_limit: float | None = None) -> np.ndarray:
    z = np.zeros_like(theta)
    z[np.argmax(theta)] = 1.0
    if theta.max() > problem.fail_above:
        if time_limit is None:
            raise SolverError("proved infeasible", status="infeasible")
        incumbent = np.roll(z, 1)  # a feasible state, not the best one
        raise SolverError("no optimum proven", status="time-limit", incumbent=incumbent)
    return z


@ims.register_solver(FLAKY, "numpy-batched", batched=True)
def solve_flaky_batched(theta: np.ndarray, problem: FlakyArgmax) -> np.ndarray:
    return np.stack([solve_flaky(row, problem) for row in theta])

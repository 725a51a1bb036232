"""Solvers that attack the worker pool (imported from beside the tests, by the workers
too): one that aborts its process, one that spins forever, one that hangs on zeros, on
instances marked by a first score above ``MARK``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import imle_solvers as ims

MARK = 100.0


@dataclass(frozen=True)
class Hostile(ims.KSubset):
    """The best item of ``n`` (``k=1``), with hostile solvers of its own kind."""

    kind: ClassVar[str] = "test-pool-hostile"


def best(theta: np.ndarray) -> np.ndarray:
    """The one-hot of ``theta``'s argmax ``(n,)``: the state every solver here answers."""
    z = np.zeros_like(theta)
    z[np.argmax(theta)] = 1
    return z


def expected(scores: np.ndarray) -> np.ndarray:
    """``best`` of each row of ``scores`` ``(B, n)``."""
    return np.stack([best(row) for row in scores])


def marked(rng: np.random.Generator, b: int, n: int, *at: int) -> np.ndarray:
    """Scores ``(b, n)`` in [0, 1), rows ``at`` marked."""
    scores = rng.uniform(size=(b, n))
    scores[list(at), 0] = 10 * MARK
    return scores


@ims.register_solver(Hostile.kind, "abort")
def solve_or_abort(theta: np.ndarray, problem: Hostile) -> np.ndarray:
    if theta[0] > MARK:
        os.abort()  # the worker process dies (SIGABRT), as a crashing C library would make it
    return best(theta)


@ims.register_solver(Hostile.kind, "spin")
def solve_or_spin(theta: np.ndarray, problem: Hostile) -> np.ndarray:
    if theta[0] > MARK:
        while True:  # a core at 100% until its process is stopped
            pass
    return best(theta)


@ims.register_solver(Hostile.kind, "hang-on-zeros")
def solve_or_hang_on_zeros(theta: np.ndarray, problem: Hostile) -> np.ndarray:
    if not theta.any():
        time.sleep(3600)
    return best(theta)


@ims.register_solver(Hostile.kind, "best")
def solve_best(theta: np.ndarray, problem: Hostile) -> np.ndarray:
    return best(theta)

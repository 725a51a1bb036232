"""Test batches shared by the framework binding tests (imported from beside them)."""

from __future__ import annotations

import numpy as np

from imle_solvers import Problem


def scores_and_upstream(problem: Problem, b: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(b, *problem.shape)`` scores (positive costs for a min problem) and an upstream gradient."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(b, *problem.shape)).astype(np.float32)
    if problem.sense == "min":
        theta = np.abs(theta) + 0.5
    return theta, rng.normal(size=theta.shape).astype(np.float32)

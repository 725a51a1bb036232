r"""The CaVE loss's targets, on the host: each instance's predicted scores projected onto the
cone of its tight constraints' normals (Tang and Khalil, 2024; PyEPO's ``coneAlignedCosine``).

For scores ``s`` ``(n,)`` of a max problem and the normals ``a_1..a_R`` (rows of ``A``
``(R, n)``, each in ``<=`` orientation) of the constraints binding at the true solution,
the cone is ``K = {A^T lam : lam >= 0}`` (``s`` in ``K`` is the KKT condition of that
solution's optimality for the linear relaxation) and the projection is

$$
\Pi_K(s) = A^\top \lambda^*, \qquad
\lambda^* = \arg\min_{\lambda \ge 0} \|A^\top\lambda - s\|^2,
$$

a nonnegative least-squares problem (``scipy.optimize.nnls``), solved exactly per instance.
Rows that are all zero (the padding of a batch whose instances have different numbers of
tight constraints) are no generators.

CaVE+ (PyEPO's default): the same problem, as the quadratic program
``min_{lam >= 0} lam^T (2 A A^T) lam / 2 - 2 (A s)^T lam``, handed to the Clarabel
interior-point solver and stopped after ``max_iter`` iterations (PyEPO's 3): a target
inside the cone, short of the projection, which its authors found to train as well or
better (:func:`project_truncated`; Clarabel is an optional dependency).

CaVE Hybrid (PyEPO's ``solve_ratio < 1``): each batch is projected with probability
``solve_ratio``; otherwise its target is the cheap blend
``(1 - inner_ratio) s / ||s|| + inner_ratio * mean_i a_i / ||a_i||`` of the normalised
scores and the mean unit normal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls

from .errors import InvalidInputError

__all__ = ["PADDING", "CaVETargets", "check_ratio", "generators", "hybrid_targets", "project_onto_cone",
           "project_truncated"]

# a row whose entries' magnitudes sum to at most this is padding (PyEPO's test)
PADDING = 1e-7


def generators(rows: np.ndarray) -> np.ndarray:
    """The cone's generators among ``rows`` ``(R, n)``: the rows that are not padding."""
    return rows[np.abs(rows).sum(axis=1) > PADDING]


def project_onto_cone(s: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The Euclidean projection ``(n,)`` of ``s`` ``(n,)`` onto ``{A^T lam : lam >= 0}``, ``A``
    the generators among ``rows`` ``(R, n)`` (float64, by NNLS); 0 without generators."""
    a = generators(np.asarray(rows, dtype=np.float64))
    if len(a) == 0:
        return np.zeros(s.shape, dtype=np.float64)
    lam, _ = nnls(a.T, np.asarray(s, dtype=np.float64), maxiter=max(50 * a.shape[0], 1000))
    return lam @ a


def project_truncated(s: np.ndarray, rows: np.ndarray, max_iter: int) -> np.ndarray:
    """CaVE+'s target ``(n,)``: the projection of ``s`` ``(n,)`` onto the cone of the
    generators among ``rows`` ``(R, n)`` as Clarabel's interior-point method reaches it in at
    most ``max_iter`` iterations (one thread, no presolve or equilibration, as PyEPO runs
    it); 0 without generators. Needs ``clarabel`` (``pip install clarabel``)."""
    try:
        import clarabel
        from scipy import sparse
    except ImportError as error:
        raise InvalidInputError("CaVELoss(max_iter=...): the truncated projection (CaVE+) needs the clarabel package: "
                                "pip install clarabel; max_iter=None projects exactly without it") from error
    a = generators(np.asarray(rows, dtype=np.float64))
    if len(a) == 0:
        return np.zeros(s.shape, dtype=np.float64)
    m = len(a)
    quadratic = sparse.triu(sparse.csc_matrix(2.0 * (a @ a.T))).tocsc()
    linear = -2.0 * (a @ np.asarray(s, dtype=np.float64))
    settings = clarabel.DefaultSettings()
    settings.max_iter, settings.verbose, settings.max_threads = int(max_iter), False, 1
    settings.presolve_enable = settings.equilibrate_enable = False
    # lam >= 0 as Clarabel's A lam + slack = b, slack in the nonnegative cone: A = -I, b = 0
    solver = clarabel.DefaultSolver(quadratic, linear, -sparse.eye(m, format="csc"), np.zeros(m),
                                    [clarabel.NonnegativeConeT(m)], settings)
    return np.asarray(solver.solve().x) @ a


def hybrid_targets(s: np.ndarray, rows: np.ndarray, inner_ratio: float) -> np.ndarray:
    """CaVE Hybrid's cheap targets ``(B, n)`` of ``s`` ``(B, n)`` and ``rows`` ``(B, R, n)``:
    ``(1 - inner_ratio) s / ||s|| + inner_ratio`` times the mean unit generator."""
    s = np.asarray(s, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=2, keepdims=True)
    held = (norms > PADDING).astype(np.float64)
    mean_unit = (rows / np.maximum(norms, 1e-8) * held).sum(axis=1) / np.maximum(held.sum(axis=1), 1.0)
    unit_s = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-8)
    return (1 - inner_ratio) * unit_s + inner_ratio * mean_unit


class CaVETargets:
    """The host function of the CaVE loss's targets: ``(s, rows) -> (targets,)``, ``s``
    ``(..., B, n)`` the signed scores and ``rows`` ``(..., B, R, n)`` the tight constraints'
    normals (leading axes: the calls of a ``jax.vmap``, each a batch of its own), in their
    dtype. One coin per batch (``solve_ratio``) from its own generator, which is host state:
    under ``jax.jit`` each execution flips anew.

    Raises :class:`~imle_solvers.errors.InvalidInputError` naming the batch index of an
    instance without a tight constraint (all its rows zero).
    """

    def __init__(self, owner: str, solve_ratio: float, inner_ratio: float, rng: np.random.Generator,
                 max_iter: int | None = None) -> None:
        self.owner, self.solve_ratio, self.inner_ratio, self.rng = owner, solve_ratio, inner_ratio, rng
        self.max_iter = max_iter  # None: the exact projection; else CaVE+'s truncated one

    def __call__(self, s: Any, rows: Any) -> tuple[np.ndarray]:
        s, rows = np.asarray(s), np.asarray(rows)
        groups_s = s.reshape(-1, *s.shape[-2:])
        groups_rows = rows.reshape(-1, *rows.shape[-3:])
        targets = np.zeros(groups_s.shape)
        for group, (batch_s, batch_rows) in enumerate(zip(groups_s, groups_rows)):
            targets[group] = self._batch(batch_s, batch_rows)
        return (targets.reshape(s.shape).astype(s.dtype),)

    def _batch(self, s: np.ndarray, rows: np.ndarray) -> np.ndarray:
        empty = np.abs(rows).sum(axis=2).max(axis=1, initial=0.0) <= PADDING
        if empty.any():
            index = int(empty.argmax())
            raise InvalidInputError(
                f"{self.owner}: tight_ctrs at batch index {index} holds no tight constraint (all its rows are zero): "
                "CaVE needs the normals of the constraints binding at each instance's true solution "
                "(imle_solvers.tight_constraints builds them)")
        if self.solve_ratio >= 1 or self.rng.uniform() <= self.solve_ratio:
            if self.max_iter is None:
                return np.array([project_onto_cone(x, a) for x, a in zip(s, rows)]).reshape(s.shape)
            return np.array([project_truncated(x, a, self.max_iter) for x, a in zip(s, rows)]).reshape(s.shape)
        return hybrid_targets(s, rows, self.inner_ratio)


def check_ratio(owner: str, name: str, value: Any) -> float:
    """``value`` as a probability in [0, 1]; else an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"{owner}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)

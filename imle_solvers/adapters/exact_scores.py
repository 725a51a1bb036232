"""Scores as every registered solver takes them: within the problem's range, and summable.

A solver adds scores up (a path's costs, an assignment's potentials, a blossom's duals):
finite scores whose sum overflows to ``inf`` would give a wrong state without an error.
Multiplying a row by a power of two changes no comparison between sums (the argmin or
argmax of a linear objective is the same for positive multiples of the scores) and rounds
nothing, so a row whose largest score times :attr:`~imle_solvers.problems.Problem.summed_scores`
could pass the dtype's largest value is solved on ``theta * 2**-shift`` instead, where
``2**shift`` is at least twice ``summed_scores``: every sum then stays below half the largest
value. (Only scores that this pushes below the smallest normal number, about 1e-308 *
2**shift in float64, lose bits; beside a score near the largest value they are noise.)

Problems with a :attr:`~imle_solvers.problems.Problem.score_limit` (an ILP, whose backends
take objective coefficients up to a bound) have the rows beyond it refused: a
:class:`~imle_solvers.errors.SolverError` with status ``"out-of-range"``, which the oracle
names by its batch index.

The registry wraps every solver in :class:`ExactScores`, so both hold for every backend,
on every path (in the calling process, on the pool, array-native and traced).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from .._array import Array, array_namespace, is_numpy_array
from ..errors import SolverError
from ..problems.base import beyond_limit_message, first_beyond

OUT_OF_RANGE = "out-of-range"


def scaling_shift(summed_scores: int) -> int:
    """The ``shift`` of ``2**-shift``: ``2**shift >= 2 * summed_scores``."""
    return math.ceil(math.log2(max(summed_scores, 1))) + 1


def exact_scores(theta: Array, problem: Any, batched: bool) -> Array:
    """``theta`` (``(N, *problem.shape)`` when ``batched``, else one instance), its rows
    that could overflow a sum scaled by a power of two; raises :class:`SolverError`
    (``"out-of-range"``, ``index`` the row) for a score beyond ``problem.score_limit``
    (host arrays: a traced one holds no values to refuse)."""
    limit = getattr(problem, "score_limit", None)
    if limit is not None and is_numpy_array(theta):
        beyond = first_beyond(theta if batched else theta[None], limit)
        if beyond is not None:
            index, value = beyond
            raise SolverError(beyond_limit_message(problem, value), status=OUT_OF_RANGE,
                              index=index if batched else None)
    summed = getattr(problem, "summed_scores", None)
    if summed is None or math.prod(theta.shape) == 0:
        return theta
    xp = array_namespace(theta)
    if not xp.isdtype(theta.dtype, "real floating"):
        return theta
    shift = scaling_shift(summed)
    bound = math.ldexp(float(xp.finfo(theta.dtype).max), -shift)
    rows = xp.reshape(theta, (theta.shape[0], -1) if batched else (1, -1))
    over = xp.max(xp.abs(rows), axis=1) > bound  # (N,) or (1,)
    if is_numpy_array(theta) and not over.any():
        return theta  # the common case, at the cost of one reduction
    over = xp.reshape(over, (-1,) + (1,) * (theta.ndim - 1) if batched else ())
    return xp.where(over, theta * math.ldexp(1.0, -shift), theta)


class ExactScores:
    """A registered solver ``solve(theta, problem, **options)`` handed :func:`exact_scores`.
    Picklable like the function it wraps, whose name, module and docstring it carries."""

    def __init__(self, solve: Any, batched: bool) -> None:
        functools.update_wrapper(self, solve)
        self.solve = solve
        self.batched = batched

    def __call__(self, theta: Array, problem: Any, **options: Any) -> Any:
        return self.solve(exact_scores(theta, problem, self.batched), problem, **options)

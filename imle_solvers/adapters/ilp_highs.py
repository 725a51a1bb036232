"""ILPs through HiGHS, as scipy ships it (``scipy.optimize.milp``): any mix of binary,
integer and continuous variables, with no dependency beyond scipy.

Why scipy's ``milp`` rather than ``highspy``: both run the same HiGHS branch and bound,
which dominates a solve (measured on knapsacks: within the noise of each other,
``benchmarks/bench_highs.py``); ``milp`` takes a time limit and a node limit, returns
the best point found when a limit stops the search, and tells infeasible, unbounded
and limits apart, which is all this adapter needs, without a new dependency.

The "model" here is the program's arrays, built once per process (cached by the
program, which hashes by content): the constraint matrix in the column-wise form
HiGHS takes, the row and variable bounds, the integrality. They are never modified,
so threads share them. An instance hands ``milp`` its objective and, with batched
parameters (``data``), fresh arrays with the numbers its parameters set; HiGHS
copies whatever it is handed at every call, so there is nothing to rewrite in place.

HiGHS's tolerances are absolute (a point is optimal when no other is better by more
than about 1e-6): the objective is scaled by a power of two (exactly) so that its
largest coefficient lies in [1, 2), which makes them relative to the largest cost,
whatever the scale of theta. Its relative gap is set to zero (HiGHS stops at 1e-4 by
default). Integer values are rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import SolverError
from ..problems import ILP
from ..problems.ilp import InstanceValues
from ._limits import stopped_error, whole_nodes
from .registry import register_solver

# scipy.optimize.milp's status codes
_OPTIMAL, _LIMIT, _INFEASIBLE, _UNBOUNDED, _OTHER = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class HighsModel:
    """A program's arrays as ``milp`` takes them (read-only; shared by threads).

    Attributes:
        a: ``(m, n)`` the constraint matrix, column-wise (CSC).
        csc_order: ``(nnz,)`` for each entry of ``a.data``, its index in the program's
            ``constraints.data`` (row-wise), so an instance's coefficients land in place.
        row_lower, row_upper: ``(m,)`` row bounds; lower, upper: ``(n,)`` variable bounds.
        integrality: ``(n,)`` 1 for binary and integer variables, 0 for continuous ones.
        bounds, constraints: ``milp``'s objects for the base numbers (the whole program
            when it has no batched parameters).
    """

    a: sp.csc_array
    csc_order: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integrality: np.ndarray
    bounds: Any
    constraints: Any


@lru_cache(maxsize=32)
def highs_model(problem: ILP) -> HighsModel:
    """The arrays of ``problem`` (its base numbers; an instance writes its own over them)."""
    from scipy.optimize import Bounds, LinearConstraint

    numbers = problem.numbers()
    rowwise = problem.constraints
    # the CSC form of a matrix whose entries are their own CSR positions: its data is the
    # permutation that takes CSR-ordered coefficients to CSC order
    positions = sp.csr_array((np.arange(rowwise.nnz, dtype=np.float64), rowwise.indices, rowwise.indptr),
                             shape=rowwise.shape).tocsc()
    csc_order = positions.data.astype(np.int64)
    a = sp.csc_array((numbers.coefficients[csc_order], positions.indices, positions.indptr), shape=rowwise.shape)
    integrality = problem.integrality().astype(np.uint8)
    for array in (csc_order, a.data, a.indices, a.indptr, integrality, numbers.row_lower, numbers.row_upper,
                  numbers.lower, numbers.upper):
        array.flags.writeable = False
    return HighsModel(a, csc_order, numbers.row_lower, numbers.row_upper, numbers.lower, numbers.upper, integrality,
                      Bounds(numbers.lower, numbers.upper),
                      LinearConstraint(a, numbers.row_lower, numbers.row_upper))


def instance_arrays(built: HighsModel, problem: ILP, values: InstanceValues) -> tuple[Any, Any]:
    """``milp``'s bounds and constraints for one instance of a program with batched parameters."""
    from scipy.optimize import Bounds, LinearConstraint

    numbers = problem.numbers(values)
    a = sp.csc_array((numbers.coefficients[built.csc_order], built.a.indices, built.a.indptr), shape=built.a.shape)
    return Bounds(numbers.lower, numbers.upper), LinearConstraint(a, numbers.row_lower, numbers.row_upper)


@register_solver(ILP.kind, "highs", time_limit=True, work_limit=True, priority=1)
def solve_ilp_highs(theta: np.ndarray, problem: ILP, data: dict[str, np.ndarray] | None = None,
                    time_limit: float | None = None, work_limit: float | None = None) -> np.ndarray:
    """One instance ``problem.shape -> problem.shape`` with HiGHS; ``data``, ``time_limit``
    and ``work_limit`` (branch-and-bound nodes, rounded up to a whole number) as for the
    other ILP backends (:func:`.ilp_scip.solve_ilp_scip`), with the same statuses, and one
    more: ``"model-invalid"`` where HiGHS refuses the arrays (a coefficient of magnitude
    1e15 or more)."""
    values = problem.instance_values(data) if problem.parameters is not None or data else None
    built = highs_model(problem)
    if values is None:
        bounds, constraints = built.bounds, built.constraints
    else:
        bounds, constraints = instance_arrays(built, problem, values)
    costs = problem.objective_for(theta, values)
    try:
        x = solve_arrays(costs, problem.sign, built.integrality, bounds, constraints, time_limit, work_limit)
    except SolverError as error:
        if error.incumbent is not None:  # a full solution x
            error.incumbent = problem.state_from_solution(error.incumbent)
        raise
    return problem.state_from_solution(x)


def solve_arrays(costs: np.ndarray, sign: int, integrality: np.ndarray, bounds: Any, constraints: Any,
                 time_limit: float | None, work_limit: float | None = None) -> np.ndarray:
    """Optimal ``x`` ``(n,)`` for ``max/min costs @ x`` (``sign`` +1 / -1) under ``milp``'s
    ``bounds`` and ``constraints``, within ``time_limit`` seconds and ``work_limit`` nodes;
    raises :class:`SolverError` (its incumbent a full ``x``)."""
    from scipy.optimize import milp

    largest = float(np.abs(costs).max()) if costs.size else 0.0
    # a power of two scales exactly: HiGHS's absolute tolerances become relative to the largest cost
    scaled = np.ldexp(-sign * costs, 1 - np.frexp(largest)[1]) if largest > 0 else -sign * costs
    options: dict[str, Any] = {"mip_rel_gap": 0.0}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    if work_limit is not None:
        options["node_limit"] = whole_nodes(work_limit)
    result = milp(scaled, integrality=integrality, bounds=bounds, constraints=constraints, options=options)
    if result.status == _OPTIMAL:
        return result.x
    # scipy knows HiGHS's time limit (status 1) but not its node limit (status 4, "HiGHS Status
    # 16"): the node count tells that one
    work_stopped = work_limit is not None and (getattr(result, "mip_node_count", None) or 0) >= whole_nodes(work_limit)
    if (result.status == _LIMIT and time_limit is not None) or (result.status in (_LIMIT, _OTHER) and work_stopped):
        raise stopped_error("HiGHS", work_stopped, time_limit, work_limit, result.x)  # x: the best point, or None
    status, message = result.status, result.message
    if status == _OTHER and "unbounded or infeasible" in message:
        # HiGHS's presolve may not tell them apart: the program is unbounded iff it is feasible
        check = milp(np.zeros_like(scaled), integrality=integrality, bounds=bounds, constraints=constraints)
        status, message = (_UNBOUNDED, message) if check.status == _OPTIMAL else (check.status, check.message)
    if status == _INFEASIBLE and message.startswith("The problem is infeasible"):
        raise SolverError("HiGHS proved the program infeasible", status="infeasible")
    if status == _INFEASIBLE:  # scipy reports HiGHS's "model error" with the same code
        raise SolverError(f"HiGHS refused the program ({message}); coefficients of magnitude 1e15 or more "
                          "are beyond its range", status="model-invalid")
    if status == _UNBOUNDED:
        raise SolverError("HiGHS: the objective is unbounded", status="unbounded")
    raise SolverError(f"HiGHS stopped: {message}", status="error")

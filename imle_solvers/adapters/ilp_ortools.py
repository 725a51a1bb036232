"""ILPs through OR-Tools: CP-SAT for pure-integer programs, SCIP (through pywraplp) for the rest.

CP-SAT takes a program whose variables are all binary or integer with finite
bounds and whose constraint coefficients are integers (row bounds may be any
number: they are rounded inwards, exactly, since integer rows take integer
values). Its objective must be integer too: the float objective is scaled by a
power of two so that its largest possible value is about 2**50, and rounded.
A solution is thus exactly optimal for objectives that differ from the true
one by at most 2**-51 of that largest value (ties below float64's resolution
aside: exact). Any other program goes to SCIP through pywraplp, which takes
floats as they are.

Models are built once per process and thread (cached by the program, which
hashes by content); each instance only rewrites the objective. CP-SAT runs one
search worker: the oracle parallelises across instances instead.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import SolverError
from ..problems import ILP
from .registry import register_solver

# Largest objective magnitude handed to CP-SAT (its int64 arithmetic must not overflow).
_CP_SAT_OBJECTIVE_BITS = 50
# Variable bounds beyond this (infinite ones included) send a program to SCIP instead.
_CP_SAT_LARGEST_BOUND = 2.0**40


@register_solver(ILP.kind, "ortools", time_limit=True, priority=10, requires=("ortools",), extra="ortools")
def solve_ilp_ortools(theta: np.ndarray, problem: ILP, time_limit: float | None = None) -> np.ndarray:
    """One instance ``problem.shape -> problem.shape``: CP-SAT or SCIP, as the program allows.

    Raises:
        SolverError: status ``"infeasible"``, ``"unbounded"``, ``"time-limit"`` (no
            proven optimum within ``time_limit`` seconds; its ``incumbent`` is the best
            state found, if any), or the solver's own word.
    """
    costs = problem.objective_for(theta)
    try:
        if CP_SAT_SAFE_HERE and cp_sat_compatible(problem):
            x = solve_cp_sat(cp_sat_model(problem, threading.get_ident()), costs, problem.sign, time_limit)
        else:
            x = solve_pywraplp(pywraplp_model(problem, threading.get_ident()), costs, problem.sign, time_limit)
    except SolverError as error:
        if error.incumbent is not None:  # the solvers' incumbents are full solutions x
            error.incumbent = problem.state_from_solution(error.incumbent)
        raise
    return problem.state_from_solution(x)


def _load_cp_sat_before_tensorflow() -> bool:
    """Load CP-SAT's native library now, unless TensorFlow came first; returns whether
    CP-SAT can run in this process.

    CP-SAT crashes the process (SIGSEGV) where TensorFlow's native libraries were loaded
    before its own: their bundled libraries clash (OR-Tools 9.15, TensorFlow 2.21).
    Loading it when ``imle_solvers`` is imported (about 50 ms) keeps the order right
    whenever TensorFlow is imported after us; a process that imported TensorFlow first
    solves through SCIP instead, which is exact too.
    """
    if "ortools.sat.python.cp_model_helper" in sys.modules:
        return True
    if "tensorflow" in sys.modules or importlib.util.find_spec("ortools") is None:
        return "tensorflow" not in sys.modules
    import ortools.sat.python.cp_model_helper  # noqa: F401

    return True


CP_SAT_SAFE_HERE = _load_cp_sat_before_tensorflow()


@lru_cache(maxsize=64)
def cp_sat_compatible(problem: ILP) -> bool:
    """Whether CP-SAT can take ``problem`` exactly: integer variables with finite bounds
    (at most ``_CP_SAT_LARGEST_BOUND``), integer constraint coefficients."""
    bounds = np.concatenate(problem.bounds())
    data = problem.constraints.data
    return bool(
        problem.integrality().all()
        and (np.abs(bounds) <= _CP_SAT_LARGEST_BOUND).all()
        and np.array_equal(data, np.rint(data))
    )


# -- CP-SAT ------------------------------------------------------------------------


@dataclass(frozen=True)
class CpSatModel:
    """A built CP-SAT model whose objective is ``minimize sum_i coeff_i x_i`` over all variables.

    Attributes:
        model: the ``CpModel``; ``solve_cp_sat`` writes its objective coefficients.
        magnitude: ``(n,)`` largest absolute value each variable can take (for scaling).
    """

    model: Any
    magnitude: np.ndarray


@lru_cache(maxsize=32)
def cp_sat_model(problem: ILP, thread: int) -> CpSatModel:
    """The CP-SAT model of ``problem`` for one thread (an instance rewrites its objective,
    so threads must not share one)."""
    from ortools.sat.python import cp_model

    lower, upper = problem.bounds()
    lower, upper = np.ceil(lower).astype(np.int64), np.floor(upper).astype(np.int64)
    model = cp_model.CpModel()
    x = [model.new_int_var(int(lo), int(hi), "") for lo, hi in zip(lower, upper)]
    a = problem.constraints
    for row in range(a.shape[0]):
        span = slice(a.indptr[row], a.indptr[row + 1])
        columns, coefficients = a.indices[span], a.data[span].astype(np.int64)
        row_lower, row_upper = problem.row_lower[row], problem.row_upper[row]
        model.add_linear_constraint(
            cp_model.LinearExpr.weighted_sum([x[j] for j in columns], coefficients.tolist()),
            int(np.ceil(row_lower)) if np.isfinite(row_lower) else cp_model.INT_MIN,
            int(np.floor(row_upper)) if np.isfinite(row_upper) else cp_model.INT_MAX,
        )
    # the objective names every variable, in x order; solve_cp_sat fills in its coefficients
    model.proto.objective.vars.extend(range(len(x)))
    return CpSatModel(model=model, magnitude=np.maximum(np.abs(lower), np.abs(upper)).astype(np.float64))


def solve_cp_sat(built: CpSatModel, costs: np.ndarray, sign: int, time_limit: float | None) -> np.ndarray:
    """Optimal ``x`` ``(n,)`` for ``max/min costs @ x`` (``sign`` +1 / -1) on a built model."""
    from ortools.sat.python import cp_model

    largest = float(np.abs(costs) @ built.magnitude)
    exponent = _CP_SAT_OBJECTIVE_BITS - int(np.ceil(np.log2(largest))) if largest > 0 else 0
    coefficients = np.rint(np.ldexp(-sign * costs, exponent)).astype(np.int64)  # CP-SAT minimises
    objective = built.model.proto.objective
    objective.coeffs.clear()
    objective.coeffs.extend(coefficients.tolist())

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    # CP-SAT's own SIGINT handler outlives the solve and then kills the process on
    # Ctrl-C; without it, Ctrl-C stays Python's KeyboardInterrupt (training stops cleanly)
    solver.parameters.catch_sigint_signal = False
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    status = solver.solve(built.model)
    if status == cp_model.OPTIMAL:
        return np.asarray(solver.response_proto.solution, dtype=np.float64)
    if status == cp_model.INFEASIBLE:
        raise SolverError("CP-SAT proved the program infeasible", status="infeasible")
    if status in (cp_model.FEASIBLE, cp_model.UNKNOWN) and time_limit is not None:
        incumbent = np.asarray(solver.response_proto.solution, dtype=np.float64) if status == cp_model.FEASIBLE else None
        raise SolverError(f"CP-SAT found no proven optimum within {time_limit} s", status="time-limit", incumbent=incumbent)
    if status == cp_model.MODEL_INVALID:
        raise SolverError(f"CP-SAT rejected the model: {built.model.validate()}", status="model-invalid")
    name = solver.status_name(status)
    raise SolverError(f"CP-SAT stopped with status {name}", status=name.lower())


# -- SCIP through pywraplp (programs CP-SAT cannot take) -----------------------------------


@dataclass(frozen=True)
class PywraplpModel:
    """A built pywraplp (SCIP) model: the solver and its variables, in ``x`` order."""

    solver: Any
    variables: tuple[Any, ...]


@lru_cache(maxsize=32)
def pywraplp_model(problem: ILP, thread: int) -> PywraplpModel:
    """The pywraplp SCIP model of ``problem`` for one thread."""
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:
        raise SolverError("this OR-Tools build has no SCIP", status="unavailable")
    infinity = solver.infinity()
    lower, upper = problem.bounds()
    lower, upper = np.clip(lower, -infinity, infinity), np.clip(upper, -infinity, infinity)
    variables = tuple(
        solver.Var(float(lo), float(hi), bool(integer), "")
        for lo, hi, integer in zip(lower, upper, problem.integrality())
    )
    a = problem.constraints
    for row in range(a.shape[0]):
        constraint = solver.RowConstraint(
            float(np.clip(problem.row_lower[row], -infinity, infinity)),
            float(np.clip(problem.row_upper[row], -infinity, infinity)),
            "",
        )
        span = slice(a.indptr[row], a.indptr[row + 1])
        for j, coefficient in zip(a.indices[span], a.data[span]):
            constraint.SetCoefficient(variables[j], float(coefficient))
    return PywraplpModel(solver=solver, variables=variables)


def solve_pywraplp(built: PywraplpModel, costs: np.ndarray, sign: int, time_limit: float | None) -> np.ndarray:
    """Optimal ``x`` ``(n,)`` for ``max/min costs @ x`` (``sign`` +1 / -1) on a built model."""
    from ortools.linear_solver import pywraplp

    solver = built.solver
    objective = solver.Objective()
    for variable, cost in zip(built.variables, costs.tolist()):
        objective.SetCoefficient(variable, cost)
    objective.SetOptimizationDirection(sign > 0)
    solver.SetTimeLimit(0 if time_limit is None else max(1, int(np.ceil(time_limit * 1000))))  # ms; 0: none
    status = solver.Solve()
    if status == pywraplp.Solver.OPTIMAL:
        return np.array([v.solution_value() for v in built.variables])
    if status == pywraplp.Solver.INFEASIBLE:
        raise SolverError("SCIP (OR-Tools) proved the program infeasible", status="infeasible")
    if status == pywraplp.Solver.UNBOUNDED:
        raise SolverError("SCIP (OR-Tools): the objective is unbounded", status="unbounded")
    if status in (pywraplp.Solver.FEASIBLE, pywraplp.Solver.NOT_SOLVED) and time_limit is not None:
        incumbent = np.array([v.solution_value() for v in built.variables]) if status == pywraplp.Solver.FEASIBLE else None
        message = f"SCIP (OR-Tools) found no proven optimum within {time_limit} s"
        raise SolverError(message, status="time-limit", incumbent=incumbent)
    raise SolverError(f"SCIP (OR-Tools) stopped with result status {status}", status="error")

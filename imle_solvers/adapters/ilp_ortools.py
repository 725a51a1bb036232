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

With batched parameters (``data``), the model is still one per program: an instance
also rewrites the coefficients, row bounds and variable bounds that its parameters
set, those that differ from what the model holds since its last solve. CP-SAT takes
an instance whose parametric coefficients are integers and whose parametric bounds
are within range; any other instance goes to SCIP through pywraplp (its own cached
model), so the routing is exact instance by instance.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import SolverError
from ..problems import ILP
from ..problems.ilp import InstanceValues
from ._limits import SCIP_NODE_LIMIT, whole_nodes, stopped_error
from .registry import register_solver

# Largest objective magnitude handed to CP-SAT (its int64 arithmetic must not overflow).
_CP_SAT_OBJECTIVE_BITS = 50
# Variable bounds beyond this (infinite ones included) send a program to SCIP instead.
_CP_SAT_LARGEST_BOUND = 2.0**40


@register_solver(ILP.kind, "ortools", time_limit=True, work_limit=True, priority=10, requires=("ortools",),
                 extra="ortools")
def solve_ilp_ortools(theta: np.ndarray, problem: ILP, data: dict[str, np.ndarray] | None = None,
                      time_limit: float | None = None, work_limit: float | None = None) -> np.ndarray:
    """One instance ``problem.shape -> problem.shape``: CP-SAT or SCIP, as the program allows.

    ``data`` holds this instance's batched parameters (each of its parameter's shape);
    those not given take their defaults. ``work_limit`` is in the unit of the engine the
    instance goes to (:mod:`~imle_solvers.adapters._limits`): CP-SAT's deterministic
    seconds, or SCIP's nodes for a program CP-SAT cannot take.

    Raises:
        SolverError: status ``"infeasible"``, ``"unbounded"``, ``"time-limit"`` (no
            proven optimum within ``time_limit`` seconds; its ``incumbent`` is the best
            state found, if any), ``"work-limit"`` (likewise, within ``work_limit``),
            or the solver's own word.
        InvalidInputError: a batched parameter without default is not given.
    """
    values = problem.instance_values(data) if problem.parameters is not None or data else None
    costs = problem.objective_for(theta, values)
    try:
        if CP_SAT_SAFE_HERE and cp_sat_compatible(problem) and (values is None or cp_sat_takes(values)):
            built = cp_sat_model(problem, threading.get_ident())
            if values is not None:
                write_cp_sat(built, values)
            x = solve_cp_sat(built, costs, problem.sign, time_limit, work_limit)
        else:
            built = pywraplp_model(problem, threading.get_ident())
            if values is not None:
                write_pywraplp(built, values)
            x = solve_pywraplp(built, costs, problem.sign, time_limit, work_limit)
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
    (at most ``_CP_SAT_LARGEST_BOUND``), integer constraint coefficients. With batched
    parameters, of the numbers they do not set (:func:`cp_sat_takes` checks the others
    per instance)."""
    lower, upper = problem.bounds()
    data = problem.constraints.data
    fixed_columns, fixed_slots = np.ones(lower.size, bool), np.ones(data.size, bool)
    if problem.parametric is not None:
        fixed_columns[problem.parametric.columns] = False
        fixed_slots[problem.parametric.slots] = False
    bounds, data = np.concatenate([lower[fixed_columns], upper[fixed_columns]]), data[fixed_slots]
    return bool(
        problem.integrality().all()
        and (np.abs(bounds) <= _CP_SAT_LARGEST_BOUND).all()
        and np.array_equal(data, np.rint(data))
    )


def cp_sat_takes(values: InstanceValues) -> bool:
    """Whether CP-SAT can take an instance of a compatible program: its parametric
    coefficients are integers and its parametric variable bounds within range."""
    c = values.coefficients
    if c.size and not (c == np.rint(c)).all():
        return False
    # (empty arrays are skipped: this runs for every instance, and a numpy call costs a microsecond)
    return not values.lower.size or bool(
        (np.abs(values.lower) <= _CP_SAT_LARGEST_BOUND).all() and (np.abs(values.upper) <= _CP_SAT_LARGEST_BOUND).all()
    )


# -- CP-SAT ------------------------------------------------------------------------


@dataclass
class CpSatModel:
    """A built CP-SAT model whose objective is ``minimize sum_i coeff_i x_i`` over all variables.

    Row ``i`` of the program is the model's constraint ``i``, its coefficients in the
    program's column order, so an instance rewrites them in place in the proto.

    Attributes:
        model: the ``CpModel``; ``solve_cp_sat`` writes its objective coefficients.
        magnitude: ``(n,)`` largest absolute value each variable can take (for scaling).
        written: the parametric numbers the model holds (placeholders,
            ``ILP.parametric.placeholder()``, until an instance writes its own).
        empty: rows and variables (``("row", i)``, ``("column", j)``) whose integer range is
            empty in the numbers written (``0.2 <= x <= 0.8``): the instance is infeasible.
        slot_rows, slot_positions: for each parametric coefficient, its row and its place in
            the row's proto entries.
    """

    model: Any
    magnitude: np.ndarray
    written: InstanceValues | None = None  # None: the program has no batched parameters
    empty: set[tuple[str, int]] = field(default_factory=set)
    slot_rows: np.ndarray | None = None
    slot_positions: np.ndarray | None = None


@lru_cache(maxsize=32)
def cp_sat_model(problem: ILP, thread: int) -> CpSatModel:
    """The CP-SAT model of ``problem`` for one thread (an instance rewrites its objective,
    so threads must not share one)."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    built = CpSatModel(model=model, magnitude=np.zeros(problem.n_variables))
    # a program with batched parameters is built with placeholders, which instances rewrite
    built.written = problem.parametric.placeholder() if problem.parametric is not None else None
    numbers = problem.numbers(built.written)
    for j, (lo, hi) in enumerate(zip(numbers.lower.tolist(), numbers.upper.tolist())):
        domain = _integer_range(lo, hi, ("column", j), built.empty)
        model.new_int_var(*domain, "")
        built.magnitude[j] = max(abs(domain[0]), abs(domain[1]))
    # rows are written to the proto directly: one constraint per row, its entries in the
    # program's order, so that an instance can rewrite a coefficient where it stands
    a = problem.constraints
    # a parametric coefficient that is not an integer never reaches CP-SAT (cp_sat_takes):
    # rounding its base value leaves a placeholder until an instance writes its own
    coefficients = np.rint(numbers.coefficients).astype(np.int64)
    constraints = model.proto.constraints
    for row, (lo, hi) in enumerate(zip(numbers.row_lower.tolist(), numbers.row_upper.tolist())):
        span = slice(a.indptr[row], a.indptr[row + 1])
        linear = constraints.add().linear
        linear.vars.extend(a.indices[span].tolist())
        linear.coeffs.extend(coefficients[span].tolist())
        linear.domain.extend(_integer_range(lo, hi, ("row", row), built.empty))
    if problem.parametric is not None:
        slots = problem.parametric.slots
        built.slot_rows = np.searchsorted(a.indptr, slots, side="right") - 1
        built.slot_positions = slots - a.indptr[built.slot_rows]
    # the objective names every variable, in x order; solve_cp_sat fills in its coefficients
    model.proto.objective.vars.extend(range(problem.n_variables))
    return built


def _integer_range(lower: float, upper: float, key: tuple[str, int], empty: set[tuple[str, int]]) -> tuple[int, int]:
    """``[ceil(lower), floor(upper)]`` within CP-SAT's integers (an infinite side is the
    limit, which no row of in-range values reaches); records in ``empty`` whether it is
    empty (then the program is infeasible, and the range written is never solved)."""
    from ortools.sat.python import cp_model

    lo = cp_model.INT_MIN if lower < -_INT_LIMIT_FLOAT else int(np.ceil(lower))
    hi = cp_model.INT_MAX if upper > _INT_LIMIT_FLOAT else int(np.floor(upper))
    if lo > hi:
        empty.add(key)
        return lo, lo
    empty.discard(key)
    return lo, hi


_INT_LIMIT_FLOAT = 2.0**62  # beyond this, a bound is CP-SAT's "unbounded" (no feasible activity reaches it)


def write_cp_sat(built: CpSatModel, values: InstanceValues) -> None:
    """Rewrite in ``built``'s proto the parametric numbers of one instance that differ from
    those it holds (coefficients, row domains, variable domains)."""
    proto, old = built.model.proto, built.written
    constraints = proto.constraints
    for i in _changed(values.coefficients, old.coefficients):
        linear = constraints[int(built.slot_rows[i])].linear
        linear.coeffs[int(built.slot_positions[i])] = round(float(values.coefficients[i]))
    for i in _changed_pairs(values.row_lower, values.row_upper, old.row_lower, old.row_upper):
        row = int(values.rows[i])
        domain = constraints[row].linear.domain
        domain[0], domain[1] = _integer_range(values.row_lower[i], values.row_upper[i], ("row", row), built.empty)
    for i in _changed_pairs(values.lower, values.upper, old.lower, old.upper):
        j = int(values.columns[i])
        domain = proto.variables[j].domain
        domain[0], domain[1] = _integer_range(values.lower[i], values.upper[i], ("column", j), built.empty)
        built.magnitude[j] = max(abs(domain[0]), abs(domain[1]))
    built.written = values


def _changed(new: np.ndarray, old: np.ndarray) -> list[int]:
    """The indices where ``new`` differs from what the model holds, ``old``."""
    return np.flatnonzero(new != old).tolist() if new.size else []


def _changed_pairs(low: np.ndarray, high: np.ndarray, old_low: np.ndarray, old_high: np.ndarray) -> list[int]:
    """The indices where either bound differs from what the model holds."""
    return np.flatnonzero((low != old_low) | (high != old_high)).tolist() if low.size else []


def solve_cp_sat(
    built: CpSatModel, costs: np.ndarray, sign: int, time_limit: float | None, work_limit: float | None = None
) -> np.ndarray:
    """Optimal ``x`` ``(n,)`` for ``max/min costs @ x`` (``sign`` +1 / -1) on a built model,
    within ``time_limit`` seconds and ``work_limit`` deterministic seconds (None: none)."""
    from ortools.sat.python import cp_model

    if built.empty:  # a row or a variable with no integer value in range
        raise SolverError("the program is infeasible: a row or a variable has no integer value within its bounds",
                          status="infeasible")
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
    if work_limit is not None:  # one search worker: the same stop on any machine, under any load
        solver.parameters.max_deterministic_time = float(work_limit)
    status = solver.solve(built.model)
    if status == cp_model.OPTIMAL:
        return np.asarray(solver.response_proto.solution, dtype=np.float64)
    if status == cp_model.INFEASIBLE:
        raise SolverError("CP-SAT proved the program infeasible", status="infeasible")
    if status in (cp_model.FEASIBLE, cp_model.UNKNOWN) and (time_limit is not None or work_limit is not None):
        incumbent = np.asarray(solver.response_proto.solution, dtype=np.float64) if status == cp_model.FEASIBLE else None
        work_stopped = work_limit is not None and solver.response_proto.deterministic_time >= work_limit
        raise stopped_error("CP-SAT", work_stopped or time_limit is None, time_limit, work_limit, incumbent)
    if status == cp_model.MODEL_INVALID:
        raise SolverError(f"CP-SAT rejected the model: {built.model.validate()}", status="model-invalid")
    name = solver.status_name(status)
    raise SolverError(f"CP-SAT stopped with status {name}", status=name.lower())


# -- SCIP through pywraplp (programs CP-SAT cannot take) -----------------------------------


@dataclass
class PywraplpModel:
    """A built pywraplp (SCIP) model: the solver, its variables in ``x`` order, its rows
    in the program's order, and the parametric numbers it holds (placeholders until an
    instance writes its own; None without batched parameters)."""

    solver: Any
    variables: tuple[Any, ...]
    constraints: tuple[Any, ...] = ()
    written: InstanceValues | None = None
    slot_rows: np.ndarray | None = None
    slot_columns: np.ndarray | None = None
    integer: np.ndarray | None = None  # (n,) which variables are integer, for `rebuild`
    # SCIP makes an integer variable it is handed within [0, 1] binary, for good; pywraplp
    # hands it over lazily, at a solve, with the bounds of then. An instance that widens
    # such a variable's bounds past [0, 1] needs the model handed over afresh.
    rebuild: bool = False


@lru_cache(maxsize=32)
def pywraplp_model(problem: ILP, thread: int) -> PywraplpModel:
    """The pywraplp SCIP model of ``problem`` for one thread."""
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:
        raise SolverError("this OR-Tools build has no SCIP", status="unavailable")
    infinity = solver.infinity()
    written = problem.parametric.placeholder() if problem.parametric is not None else None
    numbers = problem.numbers(written)  # placeholders where instances write their own
    lower, upper = np.clip(numbers.lower, -infinity, infinity), np.clip(numbers.upper, -infinity, infinity)
    variables = tuple(
        solver.Var(float(lo), float(hi), bool(integer), "")
        for lo, hi, integer in zip(lower, upper, problem.integrality())
    )
    a = problem.constraints
    constraints = []
    for row in range(a.shape[0]):
        constraint = solver.RowConstraint(
            float(np.clip(numbers.row_lower[row], -infinity, infinity)),
            float(np.clip(numbers.row_upper[row], -infinity, infinity)),
            "",
        )
        span = slice(a.indptr[row], a.indptr[row + 1])
        for j, coefficient in zip(a.indices[span], numbers.coefficients[span]):
            constraint.SetCoefficient(variables[j], float(coefficient))
        constraints.append(constraint)
    built = PywraplpModel(solver=solver, variables=variables, constraints=tuple(constraints), written=written,
                          integer=problem.integrality())
    if problem.parameters is not None:
        built.slot_rows, built.slot_columns = problem.parameters.coefficient_rows, problem.parameters.coefficient_columns
    return built


def write_pywraplp(built: PywraplpModel, values: InstanceValues) -> None:
    """Rewrite the parametric numbers of one instance that differ from those ``built`` holds."""
    infinity = built.solver.infinity()
    old = built.written
    for i in _changed(values.coefficients, old.coefficients):
        constraint = built.constraints[int(built.slot_rows[i])]
        constraint.SetCoefficient(built.variables[int(built.slot_columns[i])], float(values.coefficients[i]))
    for i in _changed_pairs(values.row_lower, values.row_upper, old.row_lower, old.row_upper):
        built.constraints[int(values.rows[i])].SetBounds(float(np.clip(values.row_lower[i], -infinity, infinity)),
                                                         float(np.clip(values.row_upper[i], -infinity, infinity)))
    for i in _changed_pairs(values.lower, values.upper, old.lower, old.upper):
        j = int(values.columns[i])
        built.variables[j].SetBounds(float(np.clip(values.lower[i], -infinity, infinity)),
                                     float(np.clip(values.upper[i], -infinity, infinity)))
        was_binary = old.lower[i] >= 0.0 and old.upper[i] <= 1.0
        if built.integer[j] and was_binary and not (values.lower[i] >= 0.0 and values.upper[i] <= 1.0):
            built.rebuild = True
    built.written = values


def solve_pywraplp(
    built: PywraplpModel, costs: np.ndarray, sign: int, time_limit: float | None, work_limit: float | None = None
) -> np.ndarray:
    """Optimal ``x`` ``(n,)`` for ``max/min costs @ x`` (``sign`` +1 / -1) on a built model,
    within ``time_limit`` seconds and ``work_limit`` SCIP nodes (None: none)."""
    from ortools.linear_solver import pywraplp

    solver = built.solver
    objective = solver.Objective()
    for variable, cost in zip(built.variables, costs.tolist()):
        objective.SetCoefficient(variable, cost)
    objective.SetOptimizationDirection(sign > 0)
    solver.SetTimeLimit(0 if time_limit is None else max(1, int(np.ceil(time_limit * 1000))))  # ms; 0: none
    # set on every solve, -1 (none) included: the model is reused by calls with other limits
    solver.SetSolverSpecificParametersAsString(f"{SCIP_NODE_LIMIT} = {whole_nodes(work_limit)}\n")
    # see PywraplpModel.rebuild. Under a work limit too: an incremental solve starts from
    # what earlier solves left in SCIP, so a limit stops it at another point than a fresh
    # one (the result would depend on the instances solved before it in this process)
    if built.rebuild or work_limit is not None:  # hand the whole model over again
        fresh = pywraplp.MPSolverParameters()
        fresh.SetIntegerParam(fresh.INCREMENTALITY, fresh.INCREMENTALITY_OFF)
        built.rebuild = False
        status = solver.Solve(fresh)
    else:
        status = solver.Solve()
    if status == pywraplp.Solver.OPTIMAL:
        return np.array([v.solution_value() for v in built.variables])
    if status == pywraplp.Solver.INFEASIBLE:
        raise SolverError("SCIP (OR-Tools) proved the program infeasible", status="infeasible")
    if status == pywraplp.Solver.UNBOUNDED:
        raise SolverError("SCIP (OR-Tools): the objective is unbounded", status="unbounded")
    if status in (pywraplp.Solver.FEASIBLE, pywraplp.Solver.NOT_SOLVED) and (time_limit, work_limit) != (None, None):
        incumbent = np.array([v.solution_value() for v in built.variables]) if status == pywraplp.Solver.FEASIBLE else None
        # pywraplp does not say which limit stopped SCIP: the node count does
        work_stopped = work_limit is not None and solver.nodes() >= whole_nodes(work_limit)
        raise stopped_error("SCIP (OR-Tools)", work_stopped or time_limit is None, time_limit, work_limit, incumbent)
    raise SolverError(f"SCIP (OR-Tools) stopped with result status {status}", status="error")

"""ILPs through SCIP with PySCIPOpt (any mix of binary, integer and continuous variables).

The model is built once per process and thread (cached by the program, which
hashes by content); each instance frees SCIP's transformed problem, rewrites the
objective and solves again. SCIP works to a zero optimality gap (its default),
so the optimum is exact up to its feasibility tolerance; integer values are
rounded.

With batched parameters (``data``), an instance also rewrites, after freeing the
transformed problem (SCIP changes only its original problem), the coefficients,
sides and variable bounds that its parameters set and that differ from what the
model holds since its last solve.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import SolverError
from ..problems import ILP
from ..problems.ilp import InstanceValues
from ._limits import SCIP_NODE_LIMIT, whole_nodes, stopped_error
from .registry import register_solver

_NO_LIMIT = 1e20  # SCIP's own "infinite" time limit
_KEPT_SOLUTIONS = 10  # SCIP's default limits/maxorigsol
_SCIP_TYPE = {"binary": "B", "integer": "I", "continuous": "C"}


@dataclass
class ScipModel:
    """A built PySCIPOpt model, its variables in ``x`` order, its rows in the program's
    order (None for a free row, which is left out) and the parametric numbers it holds
    (placeholders, ``ILP.parametric.placeholder()``, until an instance writes its own;
    None without batched parameters)."""

    model: Any
    variables: tuple[Any, ...]
    constraints: tuple[Any, ...] = ()
    written: InstanceValues | None = None


@lru_cache(maxsize=32)
def scip_model(problem: ILP, thread: int, work_limited: bool = False) -> ScipModel:
    """The SCIP model of ``problem`` for one thread (an instance rewrites its objective,
    so threads must not share one); ``work_limited``: the model of the solves under a work
    limit, kept apart, since SCIP carries solutions of an unlimited solve in its original
    problem across ``freeTransform`` whatever ``limits/maxorigsol`` says later, and a node
    limit must stop an instance at the same point whatever was solved before it."""
    import pyscipopt

    model = pyscipopt.Model(problem.name)
    model.hideOutput()
    # a program with batched parameters is built with placeholders, which instances rewrite
    written = problem.parametric.placeholder() if problem.parametric is not None else None
    numbers = problem.numbers(written)
    lower, upper = numbers.lower, numbers.upper
    types = [_SCIP_TYPE[v.type] for v in problem.variables for _ in range(v.size)]
    variables = tuple(
        model.addVar(vtype=t, lb=_finite_or_none(lo), ub=_finite_or_none(hi)) for t, lo, hi in zip(types, lower, upper)
    )
    a = problem.constraints
    constraints = []
    for row in range(a.shape[0]):
        span = slice(a.indptr[row], a.indptr[row + 1])
        activity = pyscipopt.quicksum(float(c) * variables[j] for j, c in zip(a.indices[span], numbers.coefficients[span]))
        bounds = {"lhs": _finite_or_none(numbers.row_lower[row]), "rhs": _finite_or_none(numbers.row_upper[row])}
        if bounds == {"lhs": None, "rhs": None}:
            constraints.append(None)  # a free row constrains nothing (and SCIP wants a side); a
            continue  # parametric side is always finite, so it stays free in every instance
        constraints.append(model.addCons(pyscipopt.ExprCons(activity, **bounds)))
    return ScipModel(model=model, variables=variables, constraints=tuple(constraints), written=written)


def write_scip(built: ScipModel, problem: ILP, values: InstanceValues) -> None:
    """Rewrite the parametric numbers of one instance that differ from those ``built``
    holds; the transformed problem must be freed first."""
    model, old = built.model, built.written
    rows, columns = problem.parameters.coefficient_rows, problem.parameters.coefficient_columns
    for i in np.flatnonzero(values.coefficients != old.coefficients):
        constraint = built.constraints[rows[i]]
        if constraint is not None:
            model.chgCoefLinear(constraint, built.variables[columns[i]], float(values.coefficients[i]))
    for i in np.flatnonzero((values.row_lower != old.row_lower) | (values.row_upper != old.row_upper)):
        constraint = built.constraints[values.rows[i]]
        if constraint is not None:
            _set_range(model.chgLhs, model.chgRhs, constraint, values.row_lower[i], values.row_upper[i],
                       old.row_upper[i])
    for i in np.flatnonzero((values.lower != old.lower) | (values.upper != old.upper)):
        _set_range(model.chgVarLb, model.chgVarUb, built.variables[values.columns[i]], values.lower[i],
                   values.upper[i], old.upper[i])
    built.written = values


def _set_range(set_lower: Any, set_upper: Any, target: Any, lower: float, upper: float, old_upper: float) -> None:
    """Set both sides of a row or a variable, in the order that never leaves the lower side
    above the upper one in between (SCIP refuses that): the upper side first when the new
    lower side lies above the old upper side."""
    if lower > old_upper:
        set_upper(target, _finite_or_none(upper))
        set_lower(target, _finite_or_none(lower))
    else:
        set_lower(target, _finite_or_none(lower))
        set_upper(target, _finite_or_none(upper))


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@register_solver(ILP.kind, "scip", time_limit=True, work_limit=True, priority=5, requires=("pyscipopt",), extra="scip")
def solve_ilp_scip(theta: np.ndarray, problem: ILP, data: dict[str, np.ndarray] | None = None,
                   time_limit: float | None = None, work_limit: float | None = None) -> np.ndarray:
    """One instance ``problem.shape -> problem.shape`` with SCIP.

    ``data`` holds this instance's batched parameters (each of its parameter's shape);
    those not given take their defaults. ``work_limit`` counts branch-and-bound nodes over
    all restarts (``limits/totalnodes``, rounded up to a whole number).

    Raises:
        SolverError: status ``"infeasible"``, ``"unbounded"``, ``"time-limit"`` (no
            proven optimum within ``time_limit`` seconds; its ``incumbent`` is the best
            state found, if any), ``"work-limit"`` (likewise, within ``work_limit``
            nodes), or SCIP's own word.
        InvalidInputError: a batched parameter without default is not given.
    """
    import pyscipopt

    values = problem.instance_values(data) if problem.parameters is not None or data else None
    built = scip_model(problem, threading.get_ident(), work_limit is not None)
    model = built.model
    # SCIP keeps solutions of a solve (at freeTransform) to start the next one from: under a
    # work limit an instance's result would depend on the instances solved before it in this
    # process, so none are kept then (the same answer in the process and on any worker)
    model.setParam("limits/maxorigsol", 0 if work_limit is not None else _KEPT_SOLUTIONS)
    model.freeTransform()  # SCIP changes its original problem only, never a transformed one
    if values is not None:
        write_scip(built, problem, values)
    costs = problem.objective_for(theta, values)
    model.setObjective(
        pyscipopt.quicksum(c * v for c, v in zip(costs.tolist(), built.variables) if c != 0.0),
        "maximize" if problem.sign > 0 else "minimize",
    )
    model.setParam("limits/time", _NO_LIMIT if time_limit is None else float(time_limit))
    model.setParam(SCIP_NODE_LIMIT, whole_nodes(work_limit))  # -1: none (the model is reused)
    model.optimize()
    status = model.getStatus()
    if status == "optimal":
        return problem.state_from_solution(np.array([model.getVal(v) for v in built.variables]))
    if status == "inforunbd":
        status = _infeasible_or_unbounded(model)
    if status == "infeasible":
        raise SolverError("SCIP proved the program infeasible", status="infeasible")
    if status == "unbounded":
        raise SolverError("SCIP: the objective is unbounded", status="unbounded")
    if status in ("timelimit", "totalnodelimit"):
        incumbent = None
        if model.getNSols() > 0:
            best = model.getBestSol()
            incumbent = problem.state_from_solution(np.array([model.getSolVal(best, v) for v in built.variables]))
        raise stopped_error("SCIP", status == "totalnodelimit", time_limit, work_limit, incumbent)
    raise SolverError(f"SCIP stopped with status {status!r}", status=status)


def _infeasible_or_unbounded(model: Any) -> str:
    """Tell SCIP's ``"inforunbd"`` apart: the program is unbounded iff it is feasible,
    which a solve with a zero objective decides."""
    import pyscipopt

    model.freeTransform()
    model.setObjective(pyscipopt.Expr(), "minimize")
    model.optimize()
    return "infeasible" if model.getStatus() == "infeasible" else "unbounded"

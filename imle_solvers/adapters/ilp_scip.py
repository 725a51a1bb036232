"""ILPs through SCIP with PySCIPOpt (any mix of binary, integer and continuous variables).

The model is built once per process and thread (cached by the program, which
hashes by content); each instance frees SCIP's transformed problem, rewrites the
objective and solves again. SCIP works to a zero optimality gap (its default),
so the optimum is exact up to its feasibility tolerance; integer values are
rounded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import SolverError
from ..problems import ILP
from .registry import register_solver

_NO_LIMIT = 1e20  # SCIP's own "infinite" time limit
_SCIP_TYPE = {"binary": "B", "integer": "I", "continuous": "C"}


@dataclass(frozen=True)
class ScipModel:
    """A built PySCIPOpt model and its variables, in ``x`` order."""

    model: Any
    variables: tuple[Any, ...]


@lru_cache(maxsize=32)
def scip_model(problem: ILP, thread: int) -> ScipModel:
    """The SCIP model of ``problem`` for one thread (an instance rewrites its objective,
    so threads must not share one)."""
    import pyscipopt

    model = pyscipopt.Model(problem.name)
    model.hideOutput()
    lower, upper = problem.bounds()
    types = [_SCIP_TYPE[v.type] for v in problem.variables for _ in range(v.size)]
    variables = tuple(
        model.addVar(vtype=t, lb=_finite_or_none(lo), ub=_finite_or_none(hi)) for t, lo, hi in zip(types, lower, upper)
    )
    a = problem.constraints
    for row in range(a.shape[0]):
        span = slice(a.indptr[row], a.indptr[row + 1])
        activity = pyscipopt.quicksum(float(c) * variables[j] for j, c in zip(a.indices[span], a.data[span]))
        bounds = {"lhs": _finite_or_none(problem.row_lower[row]), "rhs": _finite_or_none(problem.row_upper[row])}
        if bounds == {"lhs": None, "rhs": None}:
            continue  # a free row constrains nothing (and SCIP wants a side)
        model.addCons(pyscipopt.ExprCons(activity, **bounds))
    return ScipModel(model=model, variables=variables)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@register_solver(ILP.kind, "scip", time_limit=True, priority=5, requires=("pyscipopt",), extra="scip")
def solve_ilp_scip(theta: np.ndarray, problem: ILP, time_limit: float | None = None) -> np.ndarray:
    """One instance ``problem.shape -> problem.shape`` with SCIP.

    Raises:
        SolverError: status ``"infeasible"``, ``"unbounded"``, ``"time-limit"`` (no
            proven optimum within ``time_limit`` seconds; its ``incumbent`` is the best
            state found, if any), or SCIP's own word.
    """
    import pyscipopt

    built = scip_model(problem, threading.get_ident())
    model = built.model
    model.freeTransform()
    costs = problem.objective_for(theta)
    model.setObjective(
        pyscipopt.quicksum(c * v for c, v in zip(costs.tolist(), built.variables) if c != 0.0),
        "maximize" if problem.sign > 0 else "minimize",
    )
    model.setParam("limits/time", _NO_LIMIT if time_limit is None else float(time_limit))
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
    if status == "timelimit":
        incumbent = None
        if model.getNSols() > 0:
            best = model.getBestSol()
            incumbent = problem.state_from_solution(np.array([model.getSolVal(best, v) for v in built.variables]))
        raise SolverError(f"SCIP found no proven optimum within {time_limit} s", status="time-limit", incumbent=incumbent)
    raise SolverError(f"SCIP stopped with status {status!r}", status=status)


def _infeasible_or_unbounded(model: Any) -> str:
    """Tell SCIP's ``"inforunbd"`` apart: the program is unbounded iff it is feasible,
    which a solve with a zero objective decides."""
    import pyscipopt

    model.freeTransform()
    model.setObjective(pyscipopt.Expr(), "minimize")
    model.optimize()
    return "infeasible" if model.getStatus() == "infeasible" else "unbounded"

"""ILP adapters: the cached model against rebuilding it per instance, and against
the raw solver call on a model built beforehand.

A 0/1 knapsack with 30 items and 3 resource constraints, 40 instances (random
item values theta), for each ILP backend:

- *cached*: the oracle (``n_jobs=1``): the model is built once per process, each
  instance only rewrites the objective, solves and reads back z;
- *rebuilt*: the same registered solver with its model cache cleared before every
  instance (what a loop that builds a fresh model per instance costs);
- *raw*: only the solver's own call (``CpSolver.solve``, ``Model.optimize``,
  ``scipy.optimize.milp``) on a native model that already holds the instance's
  objective, built beforehand by plain library code: the floor no adapter can beat
  (for HiGHS through scipy the "model" is the arrays ``milp`` takes; it copies them
  into HiGHS at every call, the adapter too).

Prints a markdown table (milliseconds per instance and ratios); ``main()`` returns the rows.
Run: ``python benchmarks/bench_ilp_models.py`` or ``imle-solvers bench ilp``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import imle_solvers as ims
from imle_solvers.adapters import ilp_highs, ilp_ortools, ilp_scip, resolve_solver

from _timing import wall_times  # beside this script
from bench_oracle import knapsack_ilp

ITEMS, RESOURCES, INSTANCES = 30, 3, 40


def knapsack() -> tuple[ims.ILP, np.ndarray, np.ndarray]:
    """The program, its ``(RESOURCES, ITEMS)`` integer weights and integer capacities (the
    weights are integers, so rounding the capacities down leaves the same feasible sets)."""
    problem = knapsack_ilp(ITEMS, RESOURCES)
    weights = problem.constraints.toarray().astype(int)
    return problem, weights, np.floor(problem.row_upper).astype(int)


def seconds_per_instance(run: Callable[[], object]) -> float:
    """One timed run after a warm-up (imports, first model build), per instance."""
    return wall_times(run, 1)[0] / INSTANCES


def rebuilt(problem: ims.ILP, backend: str, theta: np.ndarray, clear: Callable[[], None]) -> Callable[[], None]:
    solve = resolve_solver(problem.kind, backend).solve

    def run() -> None:
        for instance in theta:
            clear()
            solve(instance, problem)

    return run


def raw_cp_sat(weights: np.ndarray, capacity: np.ndarray, theta: np.ndarray) -> Callable[[], float]:
    """Time of ``CpSolver.solve`` alone on models built beforehand (objective scaled to integers)."""
    from ortools.sat.python import cp_model

    models = []
    for values in theta:
        model = cp_model.CpModel()
        x = [model.new_bool_var("") for _ in range(ITEMS)]
        for row, cap in zip(weights, capacity):
            model.add(cp_model.LinearExpr.weighted_sum(x, row.tolist()) <= int(cap))
        model.maximize(cp_model.LinearExpr.weighted_sum(x, np.rint(values * 2**20).astype(int).tolist()))
        models.append(model)

    def run() -> float:
        spent = 0.0
        for model in models:
            solver = cp_model.CpSolver()
            solver.parameters.num_workers = 1
            start = time.perf_counter()
            solver.solve(model)
            spent += time.perf_counter() - start
        return spent

    return run


def raw_scip(weights: np.ndarray, capacity: np.ndarray, theta: np.ndarray) -> Callable[[], float]:
    """Time of ``Model.optimize`` alone on PySCIPOpt models built beforehand."""
    import pyscipopt

    models = []
    for values in theta:
        model = pyscipopt.Model()
        model.hideOutput()
        x = [model.addVar(vtype="B") for _ in range(ITEMS)]
        for row, cap in zip(weights, capacity):
            model.addCons(pyscipopt.quicksum(float(w) * v for w, v in zip(row, x)) <= float(cap))
        model.setObjective(pyscipopt.quicksum(float(c) * v for c, v in zip(values, x)), "maximize")
        models.append(model)

    def run() -> float:
        spent = 0.0
        for model in models:
            model.freeTransform()
            start = time.perf_counter()
            model.optimize()
            spent += time.perf_counter() - start
        return spent

    return run


def raw_highs(weights: np.ndarray, capacity: np.ndarray, theta: np.ndarray) -> Callable[[], float]:
    """Time of ``scipy.optimize.milp`` alone on arrays built beforehand (HiGHS minimises;
    a zero relative gap, as the adapter asks)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    constraints = LinearConstraint(weights.astype(float), -np.inf, capacity.astype(float))
    bounds, integrality = Bounds(0.0, 1.0), np.ones(ITEMS, np.uint8)
    objectives = [-values for values in theta]

    def run() -> float:
        spent = 0.0
        for c in objectives:
            start = time.perf_counter()
            milp(c, integrality=integrality, bounds=bounds, constraints=constraints, options={"mip_rel_gap": 0.0})
            spent += time.perf_counter() - start
        return spent

    return run


def main() -> list[dict]:
    problem, weights, capacity = knapsack()
    theta = np.random.default_rng(1).uniform(1, 10, size=(INSTANCES, ITEMS))
    backends = {
        "ortools": (ilp_ortools.cp_sat_model.cache_clear, raw_cp_sat),
        "scip": (ilp_scip.scip_model.cache_clear, raw_scip),
        "highs": (ilp_highs.highs_model.cache_clear, raw_highs),
    }
    rows = []
    for backend, (clear, raw) in backends.items():
        oracle = ims.MAPOracle(problem, backend=backend)
        cached_s = seconds_per_instance(lambda: oracle(theta))
        rebuilt_s = seconds_per_instance(rebuilt(problem, backend, theta, clear))
        raw_run = raw(weights, capacity, theta)
        raw_run()
        raw_s = raw_run() / INSTANCES
        rows.append({"backend": backend, "cached_ms": 1e3 * cached_s, "rebuilt_ms": 1e3 * rebuilt_s,
                     "raw_ms": 1e3 * raw_s})
    print(f"knapsack, {ITEMS} items x {RESOURCES} constraints, {INSTANCES} instances; ms per instance\n")
    print("| backend | cached model (oracle) | rebuilt per instance | raw solver call | rebuilt / cached | cached / raw |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['cached_ms']:.2f} | {r['rebuilt_ms']:.2f} | {r['raw_ms']:.2f} | "
              f"{r['rebuilt_ms'] / r['cached_ms']:.2f}x | {r['cached_ms'] / r['raw_ms']:.2f}x |")
    return rows


if __name__ == "__main__":
    main()

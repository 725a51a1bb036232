"""ILP adapters: the cached model against rebuilding it per instance, and against
the raw solver call on a model built beforehand.

Random multi-constraint 0/1 knapsacks (``bench_oracle.knapsack_ilp``: integer weights 5
to 39, seed 0, each capacity a third of its row's total weight) of three sizes, 20 items x
1 constraint, 20 x 3 and 50 x 5; 40 instances of random item values theta (uniform in
``[1, 10)``, seed 1); for each ILP backend:

- *cached*: the oracle (``n_jobs=1``): the model is built once per process, each
  instance only rewrites the objective, solves and reads back z;
- *rebuilt*: the same registered solver with its model cache cleared before every
  instance (what a loop that builds a fresh model per instance costs);
- *raw*: only the solver's own call (``CpSolver.solve``, ``Model.optimize``,
  ``scipy.optimize.milp``) on a native model that already holds the instance's
  objective, built beforehand by plain library code: the floor no adapter can beat
  (for HiGHS through scipy the "model" is the arrays ``milp`` takes; it copies them
  into HiGHS at every call, the adapter too).

Each figure is the median of ``--rounds`` runs over the 40 instances after a warm-up run
(which builds the cached model), per instance; *cached* and *rebuilt* are timed apart,
not interleaved, since clearing the cache would make the cached oracle rebuild too.

Prints a markdown table (milliseconds per instance and ratios); ``main()`` returns the rows.
Run: ``python benchmarks/bench_ilp_models.py [--rounds 3] [--out rows.json]`` or ``imle-solvers
bench ilp``; ``--out`` writes the settings and the rows (ms per instance) as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import imle_solvers as ims
from imle_solvers.adapters import ilp_highs, ilp_ortools, ilp_scip, resolve_solver

from _timing import median_seconds  # beside this script
from bench_oracle import knapsack_ilp

SIZES = ((20, 1), (20, 3), (50, 5))  # (items, constraints)
INSTANCES = 40


def knapsack(items: int, resources: int) -> tuple[ims.ILP, np.ndarray, np.ndarray]:
    """The program, its ``(resources, items)`` integer weights and integer capacities (the
    weights are integers, so rounding the capacities down leaves the same feasible sets)."""
    problem = knapsack_ilp(items, resources)
    weights = problem.constraints.toarray().astype(int)
    return problem, weights, np.floor(problem.row_upper).astype(int)


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
        x = [model.new_bool_var("") for _ in range(weights.shape[1])]
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
        x = [model.addVar(vtype="B") for _ in range(weights.shape[1])]
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
    bounds, integrality = Bounds(0.0, 1.0), np.ones(weights.shape[1], np.uint8)
    objectives = [-values for values in theta]

    def run() -> float:
        spent = 0.0
        for c in objectives:
            start = time.perf_counter()
            milp(c, integrality=integrality, bounds=bounds, constraints=constraints, options={"mip_rel_gap": 0.0})
            spent += time.perf_counter() - start
        return spent

    return run


def measure(items: int, resources: int, rounds: int) -> list[dict]:
    """One row per backend: ms per instance, cached, rebuilt and raw."""
    problem, weights, capacity = knapsack(items, resources)
    theta = np.random.default_rng(1).uniform(1, 10, size=(INSTANCES, items))
    backends = {
        "ortools": (ilp_ortools.cp_sat_model.cache_clear, raw_cp_sat),
        "scip": (ilp_scip.scip_model.cache_clear, raw_scip),
        "highs": (ilp_highs.highs_model.cache_clear, raw_highs),
    }
    rows = []
    for backend, (clear, raw) in backends.items():
        with ims.MAPOracle(problem, backend=backend) as oracle:
            cached_s = median_seconds(lambda: oracle(theta), rounds) / INSTANCES
        rebuilt_s = median_seconds(rebuilt(problem, backend, theta, clear), rounds) / INSTANCES
        raw_run = raw(weights, capacity, theta)
        raw_run()  # warm-up
        raw_s = sorted(raw_run() for _ in range(rounds))[rounds // 2] / INSTANCES
        rows.append({"items": items, "constraints": resources, "backend": backend, "cached_ms": 1e3 * cached_s,
                     "rebuilt_ms": 1e3 * rebuilt_s, "raw_ms": 1e3 * raw_s})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse ``argv`` (default: the command line), measure, print the table; the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs (medians) after a warm-up")
    parser.add_argument("--sizes", type=int, nargs="+", default=[n for size in SIZES for n in size],
                        help="items and constraints, in pairs (default: 20 1 20 3 50 5)")
    parser.add_argument("--out", type=Path, help="write the settings and rows as JSON here")
    arguments = parser.parse_args(argv)
    sizes = list(zip(arguments.sizes[::2], arguments.sizes[1::2]))
    rows = [row for items, resources in sizes for row in measure(items, resources, arguments.rounds)]
    print(f"knapsacks, {INSTANCES} instances each; ms per instance, medians of {arguments.rounds} runs\n")
    print("| knapsack | backend | cached model (oracle) | rebuilt per instance | raw solver call | rebuilt / cached "
          "| cached / raw |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['items']} x {r['constraints']} | {r['backend']} | {r['cached_ms']:.2f} | {r['rebuilt_ms']:.2f} "
              f"| {r['raw_ms']:.2f} | {r['rebuilt_ms'] / r['cached_ms']:.2f}x | {r['cached_ms'] / r['raw_ms']:.2f}x |")
    if arguments.out is not None:
        settings = {"instances": INSTANCES, "rounds": arguments.rounds, "n_jobs": 1}
        arguments.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

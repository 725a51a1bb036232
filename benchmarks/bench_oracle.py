"""The parallel oracle against plain serial loops.

- solver-bound: instances of a few milliseconds each (the pure-Python networkx
  Dijkstra on a 24x24 grid, and a 50-item, 5-constraint knapsack ILP through the
  fastest installed ILP backend), ``n_jobs=2`` on loky against the serial loop
  over the same solver function, and against a plain ``joblib.Parallel`` with
  one task per instance;
- pool overhead: 256 trivial instances (3x3 assignments, scipy's
  ``linear_sum_assignment``) through the pool, with ``chunk_size="auto"`` (which
  keeps so small a batch in-process) and with eight forced chunks, against the
  serial loop;
- grid shortest path 12x12, batch 70, through the oracle (scipy's compiled
  Dijkstra over the whole batch) against the heapq Dijkstra loop of
  ``bench_grid_paths.py``.

Only built-in solvers: the workers import them by name, as they would in training
(a solver defined in a script travels by value with every task instead).

Times are the best of five alternating repeats on a warm pool. On a shared
machine the parallel rows depend on how many cores are free: the load average is
printed, and the plain ``joblib.Parallel`` rows show what the cores allow.
``speed-up`` is serial time over parallel time. Prints a markdown table;
``main()`` returns the rows.

Run: ``python benchmarks/bench_oracle.py`` or ``imle-solvers bench oracle``
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

import imle_solvers as ims
from imle_solvers.adapters import resolve_solver
from imle_solvers.errors import MissingDependencyError
from imle_solvers.problems.base import Problem

from bench_grid_paths import heapq_batch  # beside this script

N_JOBS = 2


def knapsack_ilp(items: int = 50, constraints: int = 5, seed: int = 0) -> ims.ILP:
    """A multi-constraint 0/1 knapsack ``max theta.x  s.t.  W x <= capacity``, W ``(constraints, items)``."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(5, 40, size=(constraints, items)).astype(float)
    return ims.ILP(
        variables=(ims.Variable("x", (items,), "binary"),),
        constraints=sp.csr_array(weights),
        row_lower=np.full(constraints, -np.inf),
        row_upper=weights.sum(axis=1) / 3,
        theta_variables=("x",),
        objective_sense="max",
        name="knapsack",
    )


def best_times(first: Callable[[], object], second: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """Best wall times of ``first`` and ``second``, run alternately (the machine's load
    drifts; alternating exposes both to it alike) after one warm-up call each, which
    also starts the pool."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, record in zip((first, second), times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def serial_loop(problem: Problem, backend: str, theta: np.ndarray) -> Callable[[], np.ndarray]:
    """The plain loop a user would write over the registered solver function."""
    solve = resolve_solver(problem.kind, backend).solve
    return lambda: np.stack([solve(instance, problem) for instance in theta])


def plain_joblib(problem: Problem, backend: str, theta: np.ndarray) -> Callable[[], list]:
    """What a user would write without the oracle: one ``joblib.Parallel`` task per instance.

    Its speed-up tells apart the oracle's own overhead from how many cores are free."""
    import joblib

    solve = resolve_solver(problem.kind, backend).solve
    return lambda: joblib.Parallel(n_jobs=N_JOBS)(joblib.delayed(solve)(instance, problem) for instance in theta)


def row(case: str, serial: Callable[[], object], oracle: Callable[[], object], note: str = "") -> dict:
    serial_s, oracle_s = best_times(serial, oracle)
    return {
        "case": case,
        "serial_ms": 1e3 * serial_s,
        "oracle_ms": 1e3 * oracle_s,  # or plain joblib, see "note"
        "speedup": serial_s / oracle_s,
        "note": note,
    }


def solver_bound_rows(rng: np.random.Generator) -> list[dict]:
    cases = [
        ("grid 24x24, networkx Dijkstra, batch 64", ims.GridShortestPath(24, 24), "networkx",
         rng.uniform(0.1, 10.0, size=(64, 24, 24))),
    ]
    ilp = knapsack_ilp()
    try:
        backend = resolve_solver(ilp.kind).backend  # "auto": the fastest installed
    except MissingDependencyError:
        backend = None  # no ILP backend installed: no ILP row
    if backend is not None:
        cases.append((f"ILP knapsack 50 items x 5 constraints, {backend}, batch 32", ilp, backend,
                      rng.uniform(1, 10, size=(32, 50))))
    rows = []
    for case, problem, backend, theta in cases:
        serial = serial_loop(problem, backend, theta)
        with ims.MAPOracle(problem, backend=backend, n_jobs=N_JOBS) as oracle:
            np.testing.assert_array_equal(oracle(theta), serial())
            rows.append(row(case, serial, lambda: oracle(theta), f"oracle, n_jobs={N_JOBS} loky"))
        rows.append(row(case, serial, plain_joblib(problem, backend, theta),
                        f"plain joblib.Parallel(n_jobs={N_JOBS}), one task per instance"))
    return rows


def overhead_rows(rng: np.random.Generator) -> list[dict]:
    problem = ims.BipartiteMatching(3, 3)
    theta = rng.normal(size=(256, 3, 3))
    serial = serial_loop(problem, "scipy", theta)
    rows = []
    for chunk_size, note in [("auto", "auto chunks: solved in-process"), (32, "8 chunks of 32 on the pool")]:
        with ims.MAPOracle(problem, backend="scipy", n_jobs=N_JOBS, chunk_size=chunk_size) as oracle:
            rows.append(row("256 trivial instances (3x3 assignment)", serial, lambda: oracle(theta),
                            f"oracle, n_jobs={N_JOBS}, {note}"))
    return rows


def grid_rows(rng: np.random.Generator) -> list[dict]:
    problem = ims.GridShortestPath(12, 12)
    costs = rng.uniform(0.1, 10.0, size=(70, 12, 12))
    oracle, loop = ims.MAPOracle(problem), heapq_batch
    oracle_cost, loop_cost = (problem.path_cost(costs, z) for z in (oracle(costs), loop(costs)))
    assert np.allclose(oracle_cost, loop_cost), "the oracle and the heapq loop disagree on the optimal cost"
    return [row("grid shortest path 12x12, batch 70", lambda: loop(costs), lambda: oracle(costs),
                f"oracle backend {oracle.solver.backend!r}, in-process; serial = heapq Dijkstra loop")]


def main() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = solver_bound_rows(rng) + overhead_rows(rng) + grid_rows(rng)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| case | serial loop (ms) | oracle or joblib (ms) | speed-up | setting |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['case']} | {r['serial_ms']:.1f} | {r['oracle_ms']:.1f} | {r['speedup']:.2f}x | {r['note']} |")
    return rows


if __name__ == "__main__":
    main()

"""Reproducibility of limited solves: a deterministic ``work_limit`` against a wall-clock
``time_limit``, in the process and on a loaded pool, run after run.

A 60-item, 5-row knapsack (``bench_oracle.knapsack_ilp``), 8 instances, that neither
CP-SAT nor SCIP nor HiGHS solves to a proven optimum within the limits below. Each case solves
the batch once in the calling process, then ``RUNS`` times on a pool of two loky workers
(``chunk_size=1``) while a busy-loop process keeps a core loaded, all under
``on_failure="incumbent"``. A row counts the distinct outcomes (statuses and states of
the whole batch) over those ``RUNS + 1`` solves, the instances whose outcome changed at
least once, and per run the incumbents (INCUMBENT) and failures (FAILED: no solution
within the limit).

With a work limit the in-process solve and every pool run should be one outcome; with
a wall-clock limit what the solver reaches depends on the load.

Run: ``python benchmarks/bench_reproducible_limits.py`` or ``imle-solvers bench reproducible``
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

import imle_solvers as ims
from imle_solvers.failures import Status

from bench_oracle import knapsack_ilp  # beside this script

RUNS = 5
BATCH = 8
# (backend, limit, value): about the same effort per instance for each backend's two limits
CASES = [
    ("ortools", "work_limit", 0.02),  # CP-SAT deterministic seconds
    ("ortools", "time_limit", 0.02),  # seconds
    ("scip", "work_limit", 20),  # branch-and-bound nodes
    ("scip", "time_limit", 0.05),  # seconds
    ("highs", "work_limit", 20),  # branch-and-bound nodes
    ("highs", "time_limit", 0.05),  # seconds
]


def outcome_rows() -> list[dict]:
    problem = knapsack_ilp(items=60, constraints=5, seed=0)
    rng = np.random.default_rng(1)
    theta = rng.integers(10, 60, size=(BATCH, 60)) + rng.normal(size=(BATCH, 60))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    rows = []
    try:
        for backend, limit, value in CASES:
            options = {"backend": backend, limit: value, "on_failure": "incumbent"}
            solves = [ims.MAPOracle(problem, **options).solve(theta)]  # in the process
            start = time.perf_counter()
            with ims.MAPOracle(problem, n_jobs=2, chunk_size=1, **options) as pooled:
                pooled.warm_up()
                solves += [pooled.solve(theta) for _ in range(RUNS)]
            seconds = (time.perf_counter() - start) / RUNS
            rows.append(_row(backend, limit, value, solves, seconds))
    finally:
        busy.kill()
        busy.wait()
    return rows


def _row(backend: str, limit: str, value: float, solves: list, seconds: float) -> dict:
    """Counts over ``solves`` (``(z, status)`` each; the first in the process)."""
    outcomes = {(z.tobytes(), status.tobytes()) for z, status in solves}
    z = np.stack([z for z, _ in solves])
    status = np.stack([status for _, status in solves])
    varying = (z != z[:1]).any(axis=tuple(range(2, z.ndim))) | (status != status[:1])
    incumbents = [(s == Status.INCUMBENT).sum() for s in status]
    failed = [(s == Status.FAILED).sum() for s in status]
    return {"backend": backend, "limit": f"{limit}={value}", "outcomes": len(outcomes),
            "varying": int(varying.any(axis=0).sum()), "incumbents": (min(incumbents), max(incumbents)),
            "failed": (min(failed), max(failed)), "seconds": seconds}


def main() -> list[dict]:
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; a busy-loop process "
          f"runs beside the pool\n")
    rows = outcome_rows()
    print(f"{BATCH} instances of a 60-item, 5-row knapsack, on_failure='incumbent': 1 solve in the process, "
          f"then {RUNS} on a loky pool of 2 workers (chunk_size=1)\n")
    header = ("backend", "limit", "distinct outcomes", "instances that varied", "incumbents per run",
              "failed per run", "pool s per run")
    table = [header, ("---",) * 2 + ("---:",) * 5]
    table += [(r["backend"], r["limit"], r["outcomes"], f"{r['varying']} of {BATCH}", "%d-%d" % r["incumbents"],
               "%d-%d" % r["failed"], f"{r['seconds']:.2f}") for r in rows]
    print("\n".join("| " + " | ".join(map(str, cells)) + " |" for cells in table))
    return rows


if __name__ == "__main__":
    main()

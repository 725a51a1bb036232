"""Solve times of the TSP (CP-SAT's circuit constraint; Held-Karp's programme up to 16
nodes) and the portfolio (SCIP) at PyEPO's sizes, on PyEPO's data
(``imle_solvers.data.tsp_data``: 5 features, degree 4, noise half-width 0.5;
``portfolio_data``: 5 features, degree 4, noise level 1), one instance at a time through
``MAPOracle`` (``n_jobs=1``, in-process), after one warm-up solve per size (the model
build). Prints a markdown table of milliseconds per instance (median and
largest of ``--instances``) and, at the end, the load average: the machine may be shared.

The sizes are interleaved within each round, so that a machine that slows down during the
run slows every size alike; compare sizes within one run.

    python benchmarks/bench_tsp_portfolio.py [--instances 10] [--nodes 10 15 20 30] [--assets 10 50] [--out FILE]

(``--out``: the settings and the seconds per case as JSON too.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

import imle_solvers as ims
from imle_solvers import data
from imle_solvers.adapters.tsp import HELD_KARP_MAX_NODES


def oracles_and_rows(nodes: list[int], assets: list[int], instances: int) -> dict[str, tuple]:
    """Per size: the oracle and its ``(instances + 1, d)`` theta rows (the first for warm-up)."""
    cases = {}
    for n in nodes:
        _, costs = data.tsp_data(instances + 1, 5, n, deg=4, noise_width=0.5)
        cases[f"TSP, {n} nodes ({n * (n - 1) // 2} edges)"] = (ims.MAPOracle(ims.TravellingSalesman(n)), costs)
        if n <= HELD_KARP_MAX_NODES:
            held_karp = ims.MAPOracle(ims.TravellingSalesman(n), backend="held-karp")
            cases[f"TSP, {n} nodes, held-karp"] = (held_karp, costs)
    for m in assets:
        covariance, _, returns = data.portfolio_data(instances + 1, 5, m, deg=4)
        cases[f"portfolio, {m} assets"] = (ims.MAPOracle(ims.Portfolio(covariance)), returns.astype(np.float64))
    return cases


def main(instances: int = 10, nodes: tuple[int, ...] = (10, 15, 20, 30), assets: tuple[int, ...] = (10, 50),
         out: Path | None = None) -> dict:
    """Seconds per instance by case: ``{"median": ..., "max": ...}`` (``out``: as JSON too,
    with the settings)."""
    cases = oracles_and_rows(list(nodes), list(assets), instances)
    for oracle, rows in cases.values():
        oracle(rows[:1])  # warm-up: builds the model
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(1, instances + 1):
        for name, (oracle, rows) in cases.items():
            start = time.perf_counter()
            oracle(rows[i : i + 1])
            seconds[name].append(time.perf_counter() - start)
    results = {name: {"median": statistics.median(s), "max": max(s)} for name, s in seconds.items()}
    print("| case | median ms per instance | largest ms |\n| --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['median'] * 1e3:.1f} | {r['max'] * 1e3:.1f} |")
    print("\nload average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    if out is not None:
        settings = {"instances": instances, "nodes": list(nodes), "assets": list(assets),
                    "held-karp max nodes": HELD_KARP_MAX_NODES}
        out.write_text(json.dumps({"settings": settings, "cases": results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 15, 20, 30])
    parser.add_argument("--assets", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--out", type=Path, help="write the settings and seconds per case as JSON here")
    arguments = parser.parse_args()
    main(arguments.instances, tuple(arguments.nodes), tuple(arguments.assets), arguments.out)

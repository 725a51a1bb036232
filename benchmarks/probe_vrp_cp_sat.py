"""Whether CP-SAT solves PyEPO's capacitated vehicle routing exactly at its sizes: a probe
for the docs (docs/problems.md, "Vehicle routing"), not a problem of the library.

The model: each undirected edge of PyEPO's TSP costs (``imle_solvers.data.tsp_data``, 5
features, degree 4, noise 0.5; costs in units of 1e-4, as PyEPO rounds them) is two arcs;
``AddMultipleCircuit`` makes routes that leave and return to the depot (node 0) and
visit every customer once; a load per node (``load[j] >= load[i] + demand[j]`` on a used
arc into a customer, ``0 <= load <= capacity``) keeps each route within the capacity and
forbids subtours away from the depot. Demands 1 to 10 (``RandomState(135)``), capacity
30. CP-SAT runs one search worker within ``--seconds`` per instance.

    python benchmarks/probe_vrp_cp_sat.py [--nodes 10 15 20] [--instances 2] [--seconds 60]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from ortools.sat.python import cp_model

from imle_solvers import data

CAPACITY = 30


def solve_vrp(costs: np.ndarray, demand: np.ndarray, seconds: float) -> tuple[str, float, float, float]:
    """CP-SAT on one instance: status, seconds, objective and bound (in cost units)."""
    n = len(demand)
    model = cp_model.CpModel()
    load = [model.new_int_var(0, CAPACITY, "") for _ in range(n)]
    model.add(load[0] == 0)
    arcs, objective = [], []
    integer_costs = np.rint(costs * 1e4).astype(np.int64)
    for k, (i, j) in enumerate(itertools.combinations(range(n), 2)):
        for tail, head in ((i, j), (j, i)):
            arc = model.new_bool_var("")
            arcs.append((tail, head, arc))
            objective.append(int(integer_costs[k]) * arc)
            if head != 0:
                model.add(load[head] >= load[tail] + int(demand[head])).only_enforce_if(arc)
    model.add_multiple_circuit(arcs)
    model.minimize(sum(objective))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = seconds
    start = time.perf_counter()
    status = solver.solve(model)
    return (solver.status_name(status), time.perf_counter() - start, solver.objective_value / 1e4,
            solver.best_objective_bound / 1e4)


def main(nodes: tuple[int, ...] = (10, 15, 20), instances: int = 2, seconds: float = 60.0) -> None:
    for n in nodes:
        _, costs = data.tsp_data(instances, 5, n, deg=4, noise_width=0.5)
        demand = np.r_[0, np.random.RandomState(135).randint(1, 11, n - 1)]
        for i in range(instances):
            status, took, value, bound = solve_vrp(costs[i].astype(np.float64), demand, seconds)
            print(f"{n} nodes, instance {i}: {status} in {took:.1f} s, objective {value:.4f}, bound {bound:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 15, 20])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    main(tuple(arguments.nodes), arguments.instances, arguments.seconds)

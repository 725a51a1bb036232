"""HiGHS (``backend="highs"``) against CP-SAT (``"ortools"``) and SCIP (``"scip"``): ms per
instance through ``MAPOracle``, in the process (``n_jobs=1``) and on a pool of two
workers (``n_jobs=2``), on three ILPs of ``examples/specs/`` and a 300-item, 8-row
knapsack.

- ``knapsack.yaml`` (6 items, 1 row), ``timetabling.yaml`` (12 variables, 16 rows, a
  fixed objective), ``rota_weekly.yaml`` (70 variables, 154 rows, a batched
  availability table per instance): proven optima;
- the 300 x 8 knapsack (uniform weights, capacities a third of each row's total): no
  backend proves it optimal within seconds, so it runs under ``time_limit`` with
  ``on_failure="incumbent"``; the table says how many instances were proven and how far
  the incumbents' mean objective lies below the best backend's.

Each cell is the best of ``REPEATS`` timed runs after a warm-up run (which starts the
pool and builds the models). Prints a markdown table; ``main()`` returns the rows.
The adapter against the raw solver on a prebuilt model is in ``bench_ilp_models.py``.

``--route`` measures instead what the choice of ``scipy.optimize.milp`` costs against a
persistent HiGHS model that only rewrites its costs (``highspy``'s way; timed through
the ``Highs`` class that scipy vendors, private API, the same HiGHS version): ms per
instance on the three specs.

``--overhead`` times the adapter (the registered solver, on its cached model) against
``milp`` alone on the same prebuilt arrays, in this process's CPU time, interleaved
round by round (steadier than wall time on a shared machine): the goal is at most 1.1x.

Run: ``python benchmarks/bench_highs.py [--quick] [--route] [--overhead] [--out rows.json]``
(``--out``: what the run printed as JSON too: the main table's settings and rows, the
``--route`` rows or the ``--overhead`` ratios; times in ms per instance).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import imle_solvers as ims
from imle_solvers.spec import load_yaml

from _timing import best_seconds  # beside this script

SPECS = Path(__file__).resolve().parents[1] / "examples" / "specs"
BACKENDS = ("ortools", "scip", "highs")


def spec_cases(instances: int, rng: np.random.Generator) -> list[tuple[str, ims.ILP, np.ndarray, dict]]:
    """``(name, program, theta (B, *shape), data)`` for the three specs."""
    cases = []
    for name in ("knapsack", "timetabling", "rota_weekly"):
        problem = load_yaml(SPECS / f"{name}.yaml")
        theta = rng.normal(size=(instances, *problem.shape))
        data = {}
        if name == "rota_weekly":  # one availability table per week; some weeks are infeasible
            data = {"available": (rng.random((instances, *problem.shape)) < 0.8).astype(np.float64)}
        cases.append((f"{name}.yaml ({problem.n_variables} vars, {problem.constraints.shape[0]} rows)",
                      problem, theta, data))
    return cases


def big_knapsack(rng: np.random.Generator, items: int = 300, rows: int = 8) -> ims.ILP:
    """``max theta @ x`` s.t. ``W x <= W.sum(1) / 3``, ``W`` uniform integers in [1, 100)."""
    weights = rng.integers(1, 100, size=(rows, items))
    builder = ims.ILPBuilder(f"knapsack {items}x{rows}")
    builder.add_set("items", items)
    builder.add_variable("x", over=["items"])
    for row in range(rows):
        builder.add_constraint({"x": weights[row]}, upper=weights[row].sum() / 3, name=f"capacity{row}")
    builder.set_objective("max", theta="x")
    return builder.build()


def timed(problem: ims.ILP, theta: np.ndarray, data: dict, backend: str, n_jobs: int, repeats: int,
          time_limit: float | None = None) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Wall seconds per instance (best run), this process's CPU seconds per instance (mean
    of the runs; what ``n_jobs=1`` costs on a machine shared with other work), and the
    states and statuses of the last run."""
    with ims.MAPOracle(problem, backend=backend, n_jobs=n_jobs, time_limit=time_limit,
                       on_failure="incumbent" if time_limit else "skip") as oracle:
        out: list = []
        oracle.solve(theta, **data)  # warm-up: the pool, the models
        cpu = time.process_time()
        seconds = best_seconds(lambda: out.append(oracle.solve(theta, **data)), repeats)
        cpu = (time.process_time() - cpu) / (repeats + 1)  # best_seconds warms up once more
    z, status = out[-1]
    return seconds / len(theta), cpu / len(theta), np.asarray(z), np.asarray(status)


def main(quick: bool = False, out: Path | None = None) -> list[dict]:
    rng = np.random.default_rng(0)
    instances, repeats = (40, 1) if quick else (200, 3)
    rows = []
    for name, problem, theta, data in spec_cases(instances, rng):
        row: dict = {"program": name, "instances": instances}
        states = {}
        for backend in BACKENDS:
            for n_jobs in (1, 2):
                seconds, cpu, z, status = timed(problem, theta, data, backend, n_jobs, repeats)
                row[f"{backend} n_jobs={n_jobs}"] = 1e3 * seconds
                if n_jobs == 1:
                    row[f"{backend} cpu"] = 1e3 * cpu
                states[backend] = (z, status)
        objective = {b: np.einsum("bi,bi->b", theta.reshape(len(theta), -1), z.reshape(len(theta), -1))
                     for b, (z, _) in states.items()}
        same_status = all(np.array_equal(states[b][1], states["highs"][1]) for b in BACKENDS)
        row["agree"] = same_status and all(np.allclose(objective[b], objective["highs"], atol=1e-6) for b in BACKENDS)
        rows.append(row)

    limit, count = (0.2, 4) if quick else (1.0, 8)
    knapsack = big_knapsack(rng)
    theta = rng.uniform(1, 10, size=(count, knapsack.n_variables))
    row = {"program": f"knapsack 300 items x 8 rows, time_limit={limit} s", "instances": count}
    found = {}
    for backend in BACKENDS:
        for n_jobs in (1, 2):
            seconds, cpu, z, status = timed(knapsack, theta, {}, backend, n_jobs, 1, time_limit=limit)
            row[f"{backend} n_jobs={n_jobs}"] = 1e3 * seconds
            if n_jobs == 1:
                row[f"{backend} cpu"] = 1e3 * cpu
                found[backend] = (np.einsum("bi,bi->b", theta, z), status)
    best = np.max([values for values, _ in found.values()], axis=0)
    row["proven / gap"] = {b: (int((status == 0).sum()), float(np.mean(1 - values / best)))
                          for b, (values, status) in found.items()}
    rows.append(row)

    columns = [f"{b} {c}" for b in BACKENDS for c in ("n_jobs=1", "n_jobs=2", "cpu")]
    print("ms per instance (MAPOracle): wall, best of the timed runs, n_jobs=1 and 2; this process's CPU, n_jobs=1\n")
    print("| program | " + " | ".join(columns) + " | agree |")
    print("|---|" + "---:|" * len(columns) + "---|")
    for r in rows:
        extra = r.get("agree", r.get("proven / gap"))
        if isinstance(extra, dict):
            extra = "; ".join(f"{b}: {p} proven, gap {g:.2%}" for b, (p, g) in extra.items())
        print(f"| {r['program']} | " + " | ".join(f"{r[c]:.2f}" for c in columns) + f" | {extra} |")
    if out is not None:
        settings = {"instances": instances, "repeats": repeats, "time limit": limit, "time-limited instances": count}
        out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    return rows


def route(instances: int = 100, repeats: int = 3) -> dict[str, dict[str, float]]:
    """ms per instance: ``milp`` on the cached arrays against a persistent HiGHS model."""
    import scipy.optimize._highspy._core as core
    from scipy.optimize import milp

    from _timing import interleaved_medians
    from imle_solvers.adapters.ilp_highs import highs_model

    rows = {}
    for name in ("knapsack", "timetabling", "rota"):
        problem = load_yaml(SPECS / f"{name}.yaml")
        built, n = highs_model(problem), problem.n_variables
        costs = [-(c + problem.objective) for c in np.random.default_rng(0).normal(size=(instances, n))]
        highs = core._Highs()
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("mip_rel_gap", 0.0)
        lp = core.HighsLp()
        lp.num_col_, lp.num_row_ = n, built.a.shape[0]
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, built.a.shape[0]
        lp.a_matrix_.format_ = core.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = built.a.indptr, built.a.indices, built.a.data
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = np.zeros(n), built.lower, built.upper
        lp.row_lower_ = np.maximum(built.row_lower, -core.kHighsInf)
        lp.row_upper_ = np.minimum(built.row_upper, core.kHighsInf)
        lp.integrality_ = [core.HighsVarType(int(i)) for i in built.integrality]
        highs.passModel(lp)
        columns = np.arange(n, dtype=np.int32)

        def persistent() -> None:
            for c in costs:
                highs.changeColsCost(n, columns, c)
                highs.run()
                np.asarray(highs.getSolution().col_value)

        def through_milp() -> None:
            for c in costs:
                milp(c, integrality=built.integrality, bounds=built.bounds, constraints=built.constraints,
                     options={"mip_rel_gap": 0.0})

        medians = interleaved_medians({"milp": through_milp, "persistent": persistent}, repeats)
        rows[name] = {k: 1e3 * v / instances for k, v in medians.items()}
    print("| spec | milp, ms | persistent HiGHS model, ms | ratio |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name}.yaml | {r['milp']:.2f} | {r['persistent']:.2f} | {r['milp'] / r['persistent']:.2f}x |")
    return rows


def overhead(instances: int = 40, rounds: int = 5) -> dict[str, float]:
    """CPU ms per instance of the adapter and of raw ``milp`` on a 30-item, 3-row knapsack
    (``bench_oracle.knapsack_ilp``, as ``bench_ilp_models.py`` builds its knapsacks) and on
    ``timetabling.yaml``."""
    import statistics

    from scipy.optimize import milp

    from bench_oracle import knapsack_ilp
    from imle_solvers.adapters import resolve_solver
    from imle_solvers.adapters.ilp_highs import highs_model

    solve = resolve_solver("ilp", "highs").solve
    rows = {}
    programs = (("knapsack 30x3", knapsack_ilp(30, 3)), ("timetabling.yaml", load_yaml(SPECS / "timetabling.yaml")))
    for name, problem in programs:
        built = highs_model(problem)
        theta = np.random.default_rng(1).uniform(1, 10, size=(instances, *problem.shape))
        costs = [-(problem.sign * problem.objective_for(t)) for t in theta]

        def adapter() -> None:
            for t in theta:
                solve(t, problem)

        def raw() -> None:
            for c in costs:
                milp(c, integrality=built.integrality, bounds=built.bounds, constraints=built.constraints,
                     options={"mip_rel_gap": 0.0})

        times: dict[str, list[float]] = {"adapter": [], "raw": []}
        for round_ in range(rounds + 1):
            for key, fn in (("adapter", adapter), ("raw", raw)):
                start = time.process_time()
                fn()
                if round_:
                    times[key].append(time.process_time() - start)
        a, r = (1e3 * statistics.median(times[k]) / instances for k in ("adapter", "raw"))
        rows[name] = a / r
        print(f"| {name} | adapter {a:.2f} ms | raw milp {r:.2f} ms | {a / r:.2f}x |")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer instances and runs")
    parser.add_argument("--route", action="store_true", help="milp against a persistent HiGHS model")
    parser.add_argument("--overhead", action="store_true", help="the adapter against raw milp (CPU time)")
    parser.add_argument("--out", type=Path, help="write what the run printed as JSON here")
    arguments = parser.parse_args()
    if arguments.route or arguments.overhead:
        measured = route() if arguments.route else overhead()
        if arguments.out is not None:
            arguments.out.write_text(json.dumps(measured, indent=2) + "\n")
    else:
        main(arguments.quick, arguments.out)

"""Side by side with PyEPO: its benchmark problems, every method both libraries have,
trained once through PyEPO's ``pyepo.func`` modules and once through this library's.

Problems (``--problems``; PyEPO's settings, ``pyepo_recipes.py``): the 5x5 grid shortest
path, the knapsack of 32 items and 2 resources, and the 20-node TSP (ours only: PyEPO's
TSP models need Gurobi, COPT or a Pyomo MIP solver). Data by ``imle_solvers.data``,
PyEPO's ``genData`` value for value: 1,000 training and 1,000 held-out instances, 5
features, degree 4, noise half-width 0.5, PyEPO's seed 135.

The same for both libraries, per seed: the data, the true solutions ``w`` and their
objective values ``z`` (solved once), the batches (one ``torch.utils.data.DataLoader``,
batch 32, shuffled by a generator seeded with the seed), the initial weights of the
linear model (``nn.Linear(5, d)`` after ``torch.manual_seed(seed)``), the optimiser (Adam,
lr 1e-2), and the loss each method is trained on (PyEPO's training recipes):

    2S      MSE(cp, c): the two-stage baseline, no solver in training (the same code for both)
    SPO+    spo(cp, c, w, z)                      PyEPO SPOPlus             ours SPOPlusLoss
    DBB     L1(<c, dbb(cp)>, z)   lambda 10       blackboxOpt               BlackboxDifferentiation
    NID     L1(<c, nid(cp)>, z)                   negativeIdentity          NegativeIdentity
    DPO     MSE(dpo(cp), w)       sigma 0.5, 10   perturbedOpt              PerturbedOptimizer(Normal())
    PFYL    pfy(cp, w)            sigma 0.5, 10   perturbedFenchelYoung     FenchelYoungLoss(Normal())
    I-MLE   L1(imle(cp), w)       sigma 1, lambda 10, 10 samples, Sum-of-Gamma k 5 (10 terms)
    AI-MLE  L1(aimle(cp), w)      sigma 1, 2 samples, Sum-of-Gamma k 5
    NCE     nce(cp, w)            pool of the training solutions, solve_ratio 0.3   NCELoss
    CMAP    cmap(cp, w)           the same pool                                     CMAPLoss
    ptLTR, prLTR, lsLTR (cp, c)   the same pool     Pointwise-, Pairwise-, ListwiseLTRLoss
    PG      pg(cp, c)             sigma 0.1, backward differences                   PGLoss
    CaVE    cave(cp, tight)       CaVE+: 3 interior-point iterations, PyEPO's default   CaVELoss(max_iter=3)
    CaVE-E  cave(cp, tight)       the exact projection (PyEPO max_iter 200)             CaVELoss()
            (both on the tight rows of ``ims.batch_tight_constraints``: PyEPO's own need Gurobi)
    RFY     rfy(cp, w)            lambda 1, Frank-Wolfe to 1e-6   RegularizedFenchelYoungLoss
    SVM     svm(cp, w)            Hamming margin (ours only: InferOpt.jl's)   StructuredSVMLoss

The metric is held-out normalised regret on the true costs
(``imle_solvers.metrics.normalized_regret``). PyEPO solves with its OR-Tools models, one
process; ours with the library's default solvers, one process. ms/step is the wall time
of the training epochs divided by their steps: loading the batch, forward, loss,
backward, Adam step. Methods run in turn, PyEPO then ours for each (order swapped every
other seed), so that a machine that speeds up or slows down moves both alike.

PyEPO is a test- and benchmark-only dependency (the ``compare`` extra), never a runtime one:

    pip install -e '.[torch,compare]'
    python benchmarks/bench_pyepo.py [--problems shortest_path knapsack tsp] [--epochs 5] \\
        [--seeds 3] [--methods SPO+ I-MLE] [--threads 1] [--json results.json]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from imle_solvers import metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyepo_recipes import (  # noqa: E402 - beside this script
    METHODS,
    N_TRAIN,
    OURS_ONLY,
    PROBLEMS,
    UNSUPPORTED,
    Benchmark,
    Recipe,
    our_recipe,
    pyepo_recipe,
)

BATCH, LR = 32, 1e-2
INSTALL = ("pip install -e '.[compare]' (PyEPO 2.2.7, a benchmark-only dependency), or pip install --target DIR "
           "pyepo==2.2.7 and pass --pyepo-path DIR")


def import_pyepo(path: str | None) -> Any | None:
    """PyEPO's module, with ``path`` put on ``sys.path`` first when given; None if missing."""
    if path is not None and path not in sys.path:
        sys.path.insert(0, path)
    try:
        pyepo = importlib.import_module("pyepo")
        importlib.import_module("pyepo.model.ort")
        importlib.import_module("pyepo.func")
    except ImportError:
        return None
    return pyepo


def train(recipe: Recipe, bench: Benchmark, loader: DataLoader, epochs: int, seed: int) -> tuple[float, float]:
    """Train a fresh ``nn.Linear`` (weights fixed by ``seed``); held-out normalised regret and
    seconds per step (DataLoader included)."""
    torch.manual_seed(seed)
    model = nn.Linear(bench.x.shape[1], bench.out_features)
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    step = recipe(model)
    loader.generator.manual_seed(seed)  # the same batches, in the same order, for both libraries
    steps, seconds = 0, 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        for x, c, w, z, i in loader:
            loss = step(x, c, w, z, i)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
        seconds += time.perf_counter() - start
    with torch.no_grad():
        predicted = model(torch.from_numpy(bench.x[N_TRAIN:]).float()).double().numpy()
    return metrics.normalized_regret(bench.oracle, predicted, bench.c[N_TRAIN:]), seconds / max(steps, 1)


def libraries(pyepo: Any, bench: Benchmark, name: str, seed: int) -> list[tuple[str, Recipe]]:
    """The recipes to run for ``name``: PyEPO's (where it has the method and can solve the
    problem here) and ours; the two-stage baseline once, as it is the same code."""
    ours = ("ours", our_recipe(bench, name, seed))
    if name == "2S" or name in OURS_ONLY or bench.pyepo_model is None:
        return [ours]
    return [("PyEPO", pyepo_recipe(pyepo, bench, name, seed)), ours]


def run(problem: str, epochs: int = 5, seeds: int = 3, methods: tuple[str, ...] = METHODS,
        pyepo: Any = None) -> list[dict]:
    """Train every method with both libraries on ``problem``; one row per method (means and
    standard deviations over the seeds; None where a library does not run it)."""
    bench = PROBLEMS[problem]()
    n = N_TRAIN
    train_set = TensorDataset(torch.from_numpy(bench.x[:n]).float(), torch.from_numpy(bench.c[:n]).float(),
                              torch.from_numpy(bench.w).float(), torch.from_numpy(bench.z).float().view(-1, 1),
                              torch.arange(n))
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, generator=torch.Generator())
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for seed in range(seeds):
        for name in methods:
            if (problem, name) in UNSUPPORTED:
                continue
            runs = libraries(pyepo, bench, name, seed)
            for library, recipe in runs if seed % 2 == 0 else runs[::-1]:
                result = train(recipe, bench, loader, epochs, seed)
                results.setdefault((name, library), []).append(result)
                print(f"  {problem} seed {seed} {name:6s} {library:5s}: regret {result[0]:.4f}, "
                      f"{1e3 * result[1]:.2f} ms/step", file=sys.stderr, flush=True)
    rows = []
    for name in methods:
        row: dict[str, Any] = {"problem": problem, "method": name}
        for library in ("PyEPO", "ours"):
            measured = results.get((name, library))
            if measured is None and name == "2S" and bench.pyepo_model is not None:
                measured = results[(name, "ours")]  # one run serves both columns
            regrets, times = zip(*measured) if measured else ((), ())
            row[f"{library}_regret"] = statistics.mean(regrets) if regrets else None
            row[f"{library}_regret_sd"] = statistics.stdev(regrets) if len(regrets) > 1 else (0.0 if regrets else None)
            row[f"{library}_ms"] = 1e3 * statistics.mean(times) if times else None
        row["speedup"] = (row["PyEPO_ms"] / row["ours_ms"] if row["PyEPO_ms"] and name != "2S" else None)
        row["note"] = UNSUPPORTED.get((problem, name)) or OURS_ONLY.get(name) or (
            bench.pyepo_missing if bench.pyepo_model is None else "")
        rows.append(row)
    return rows


def table(rows: list[dict], epochs: int, seeds: int) -> str:
    """The markdown table of ``rows`` (one problem's or several), with its settings line."""
    sd = seeds > 1

    def regret(r: dict, lib: str) -> str:
        if r[f"{lib}_regret"] is None:
            return "n/a"
        return f"{r[f'{lib}_regret']:.4f}" + (f" ± {r[f'{lib}_regret_sd']:.4f}" if sd else "")

    def number(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.2f}{unit}"

    lines = [f"{N_TRAIN} train / 1000 test, 5 features, deg 4, noise 0.5, nn.Linear, Adam lr {LR}, batch {BATCH}, "
             f"{epochs} epochs, mean{' ± sd' if sd else ''} of {seeds} seed(s)", "",
             "| problem | method | PyEPO regret | ours regret | PyEPO ms/step | ours ms/step | speed-up |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        speedup = "—" if r["method"] == "2S" else number(r["speedup"], "x")
        lines.append(f"| {r['problem']} | {r['method']} | {regret(r, 'PyEPO')} | {regret(r, 'ours')} "
                     f"| {number(r['PyEPO_ms'])} | {number(r['ours_ms'])} | {speedup} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict] | None:
    """Parse ``argv`` (default: the command line), run, print the markdown table, return its
    rows (and write them with the run's settings to ``--json``); without PyEPO print one
    line saying the benchmark is skipped and return None."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=["shortest_path"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds: 0, 1, ...")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--pyepo-path", default=None, help="a folder holding PyEPO (pip install --target)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch's intra-op threads (default 1: a linear model gains nothing from more, "
                             "and on a busy machine their spinning costs both libraries tens of ms per step)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and settings here")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    pyepo = import_pyepo(arguments.pyepo_path)
    if pyepo is None:
        print(f"bench_pyepo skipped: PyEPO is not importable; to run it: {INSTALL}.")
        return None
    rows: list[dict] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyEPO's import-time notices, negative perturbed costs
        for problem in arguments.problems:
            rows += run(problem, arguments.epochs, arguments.seeds, tuple(arguments.methods), pyepo)
    print(table(rows, arguments.epochs, arguments.seeds))
    if arguments.json is not None:
        record = {"command": "python benchmarks/bench_pyepo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, "
                  f"{__import__('os').cpu_count()} cores", "epochs": arguments.epochs, "seeds": arguments.seeds,
                  "threads": arguments.threads, "rows": rows}
        arguments.json.write_text(json.dumps(record, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()

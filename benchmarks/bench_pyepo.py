"""Side by side with PyEPO: its 5x5 shortest-path benchmark, every method both libraries
have, trained once through PyEPO's ``pyepo.func`` module and once through this library's.

The same for both libraries, per seed: the data (``imle_solvers.data.shortest_path_data``,
PyEPO's ``genData`` value for value: 1,000 training and 1,000 held-out instances, 5
features, degree 4, noise half-width 0.5, PyEPO's seed 135), the true paths ``w`` and
their costs ``z`` (solved once), the batches (one ``torch.utils.data.DataLoader``, batch
32, shuffled by a generator seeded with the seed), the initial weights of the linear model
(``nn.Linear(5, 40)`` after ``torch.manual_seed(seed)``), the optimiser (Adam, lr 1e-2),
the loss each method is trained on (PyEPO's training recipes, docs "Training"):

    SPO+    spo(cp, c, w, z)                      PyEPO SPOPlus             ours SPOPlusLoss
    DBB     L1(<c, dbb(cp)>, z)   lambda 10       blackboxOpt               BlackboxDifferentiation
    NID     L1(<c, nid(cp)>, z)                   negativeIdentity          NegativeIdentity
    DPO     MSE(dpo(cp), w)       sigma 0.5, 10   perturbedOpt              PerturbedOptimizer(Normal())
    PFYL    pfy(cp, w)            sigma 0.5, 10   perturbedFenchelYoung     FenchelYoungLoss(Normal())
    I-MLE   L1(imle(cp), w)       sigma 1, lambda 10, 10 samples, Sum-of-Gamma k 5 (10 terms)
    AI-MLE  L1(aimle(cp), w)      sigma 1, 2 samples, Sum-of-Gamma k 5

(samples averaged into the output for DPO, I-MLE and AI-MLE, as PyEPO's modules do: our
``marginal_samples``), and the metric: held-out normalised regret on the true costs by
``imle_solvers.metrics.normalized_regret``. PyEPO solves with its OR-Tools model
(``pyepo.model.ort.shortestPathModel``, GLOP, one process); ours with the library's
default shortest-path solver. ms/step is the wall time of the training epochs divided by
their steps: loading the batch from the DataLoader, forward, loss, backward, Adam step.
Methods are run in turn, PyEPO then ours for each (order swapped every other seed), so
that a machine that speeds up or slows down moves both alike.

PyEPO is a benchmark-only dependency (never a runtime one of this library):

    pip install pyepo==2.2.7             # or: pip install --target DIR pyepo==2.2.7
    python benchmarks/bench_pyepo.py [--epochs 5] [--seeds 3] [--pyepo-path DIR] [--methods SPO+ I-MLE] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import imle_solvers as ims
from imle_solvers import data, metrics

GRID = (5, 5)
N_TRAIN, N_TEST, FEATURES, DEG, NOISE_WIDTH = 1000, 1000, 5, 4, 0.5
BATCH, LR = 32, 1e-2
METHODS = ("SPO+", "DBB", "NID", "DPO", "PFYL", "I-MLE", "AI-MLE")
INSTALL = ("pip install pyepo==2.2.7 (a benchmark-only dependency), or pip install --target DIR "
           "pyepo==2.2.7 and pass --pyepo-path DIR")

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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


def pyepo_method(pyepo: Any, name: str, seed: int) -> Callable[[nn.Module], Step]:
    """PyEPO's module for ``name`` (its tutorial settings) and the loss it is trained on."""
    from pyepo.func.utils import sumGammaDistribution
    from pyepo.model.ort import shortestPathModel

    optmodel = shortestPathModel(GRID)  # OR-Tools GLOP
    f = pyepo.func
    l1, mse = nn.L1Loss(), nn.MSELoss()
    if name == "SPO+":
        spo = f.SPOPlus(optmodel, processes=1)
        return lambda m: lambda x, c, w, z, _: spo(m(x), c, w, z)
    if name in ("DBB", "NID"):
        layer = f.blackboxOpt(optmodel, lambd=10, processes=1) if name == "DBB" else \
            f.negativeIdentity(optmodel, processes=1)
        return lambda m: lambda x, c, w, z, _: l1((layer(m(x)) * c).sum(1).view(-1, 1), z)
    if name == "DPO":
        dpo = f.perturbedOpt(optmodel, n_samples=10, sigma=0.5, processes=1, seed=seed)
        return lambda m: lambda x, c, w, z, _: mse(dpo(m(x)), w)
    if name == "PFYL":
        pfy = f.perturbedFenchelYoung(optmodel, n_samples=10, sigma=0.5, processes=1, seed=seed)
        return lambda m: lambda x, c, w, z, _: pfy(m(x), w)
    if name == "I-MLE":
        imle = f.implicitMLE(optmodel, n_samples=10, sigma=1.0, lambd=10, processes=1,
                             distribution=sumGammaDistribution(kappa=5, n_iterations=10, seed=seed))
        return lambda m: lambda x, c, w, z, _: l1(imle(m(x)), w)
    if name == "AI-MLE":
        aimle = f.adaptiveImplicitMLE(optmodel, n_samples=2, sigma=1.0, processes=1,
                                      distribution=sumGammaDistribution(kappa=5, n_iterations=10, seed=seed))
        return lambda m: lambda x, c, w, z, _: l1(aimle(m(x)), w)
    raise ValueError(name)


def our_method(name: str, seed: int) -> Callable[[nn.Module], Step]:
    """This library's counterpart of PyEPO's module for ``name``, same settings, same loss."""
    problem = data.shortest_path_problem(GRID)
    l1, mse = nn.L1Loss(), nn.MSELoss()
    if name == "SPO+":
        spo = ims.torch.SPOPlusLoss(problem)
        return lambda m: lambda x, c, w, z, _: spo(m(x), c, w_true=w, z_true=z[:, 0])
    if name == "PFYL":
        pfy = ims.torch.FenchelYoungLoss(problem, noise=ims.Normal(), sigma=0.5, samples=10, seed=seed)
        return lambda m: lambda x, c, w, z, _: pfy(m(x), w)
    estimator = {
        "DBB": lambda: ims.BlackboxDifferentiation(lambda_=10.0),
        "NID": lambda: ims.NegativeIdentity(),
        "DPO": lambda: ims.PerturbedOptimizer(ims.Normal(), noise_temperature=0.5, marginal_samples=10),
        "I-MLE": lambda: ims.IMLE(ims.SumOfGamma(k=5), noise_temperature=1.0, lambda_=10.0, marginal_samples=10),
        "AI-MLE": lambda: ims.AIMLE(ims.SumOfGamma(k=5), noise_temperature=1.0, marginal_samples=2),
    }[name]()
    layer = ims.torch.IMLELayer(problem, estimator, seed=seed)
    if name in ("DBB", "NID"):
        return lambda m: lambda x, c, w, z, _: l1((layer(m(x)) * c).sum(1).view(-1, 1), z)
    if name == "DPO":
        return lambda m: lambda x, c, w, z, _: mse(layer(m(x)), w)
    return lambda m: lambda x, c, w, z, _: l1(layer(m(x)), w)


def train(make_step: Callable[[nn.Module], Step], loader: DataLoader, epochs: int, seed: int,
          x_test: torch.Tensor, c_test: np.ndarray, oracle: ims.MAPOracle) -> tuple[float, float]:
    """Train a fresh ``nn.Linear`` (weights fixed by ``seed``); held-out normalised regret and
    seconds per step (DataLoader included)."""
    torch.manual_seed(seed)
    model = nn.Linear(FEATURES, GRID[0] * (GRID[1] - 1) * 2)
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    step = make_step(model)
    loader.generator.manual_seed(seed)  # the same batches, in the same order, for both libraries
    steps, seconds = 0, 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        for x, c, w, z in loader:
            loss = step(x, c, w, z, None)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
        seconds += time.perf_counter() - start
    with torch.no_grad():
        predicted = model(x_test).double().numpy()
    return metrics.normalized_regret(oracle, predicted, c_test), seconds / max(steps, 1)


def run(epochs: int = 5, seeds: int = 3, methods: tuple[str, ...] = METHODS, pyepo: Any = None) -> list[dict]:
    """Train every method with both libraries; one row per method (means over the seeds)."""
    x, c = data.shortest_path_data(N_TRAIN + N_TEST, FEATURES, GRID, deg=DEG, noise_width=NOISE_WIDTH)
    oracle = ims.MAPOracle(data.shortest_path_problem(GRID))
    w = oracle(c[:N_TRAIN].astype(np.float64))
    z = metrics.objective_values(w, c[:N_TRAIN])
    train_set = TensorDataset(torch.from_numpy(x[:N_TRAIN]).float(), torch.from_numpy(c[:N_TRAIN]).float(),
                              torch.from_numpy(w).float(), torch.from_numpy(z).float().view(-1, 1))
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, generator=torch.Generator())
    x_test, c_test = torch.from_numpy(x[N_TRAIN:]).float(), c[N_TRAIN:]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for seed in range(seeds):
        for name in methods:
            libraries = [("PyEPO", pyepo_method(pyepo, name, seed)), ("ours", our_method(name, seed))]
            for library, make_step in libraries if seed % 2 == 0 else libraries[::-1]:
                result = train(make_step, loader, epochs, seed, x_test, c_test, oracle)
                results.setdefault((name, library), []).append(result)
                print(f"  seed {seed} {name:6s} {library:5s}: regret {result[0]:.4f}, "
                      f"{1e3 * result[1]:.2f} ms/step", file=sys.stderr, flush=True)
    rows = []
    for name in methods:
        row: dict[str, Any] = {"method": name}
        for library in ("PyEPO", "ours"):
            regrets, times = zip(*results[(name, library)])
            row[f"{library}_regret"] = statistics.mean(regrets)
            row[f"{library}_regret_sd"] = statistics.stdev(regrets) if len(regrets) > 1 else 0.0
            row[f"{library}_ms"] = 1e3 * statistics.mean(times)
        row["speedup"] = row["PyEPO_ms"] / row["ours_ms"] if row["ours_ms"] > 0 else float("nan")
        rows.append(row)
    return rows


def print_table(rows: list[dict], epochs: int, seeds: int) -> None:
    sd = seeds > 1
    print(f"PyEPO 5x5 shortest path, {N_TRAIN} train / {N_TEST} test, deg {DEG}, noise {NOISE_WIDTH}, "
          f"nn.Linear(5, 40), Adam lr {LR}, batch {BATCH}, {epochs} epochs, mean of {seeds} seed(s)\n")
    print("| method | PyEPO regret | ours regret | PyEPO ms/step | ours ms/step | speed-up |")
    print("|---|---|---|---|---|---|")
    def regret(r: dict, lib: str) -> str:
        return f"{r[f'{lib}_regret']:.4f}" + (f" ± {r[f'{lib}_regret_sd']:.4f}" if sd else "")

    for r in rows:
        print(f"| {r['method']} | {regret(r, 'PyEPO')} | {regret(r, 'ours')} | {r['PyEPO_ms']:.2f} "
              f"| {r['ours_ms']:.2f} | {r['speedup']:.1f}x |")


def main(argv: list[str] | None = None) -> list[dict] | None:
    """Parse ``argv`` (default: the command line), run, print the markdown table, return its
    rows; without PyEPO print one line saying the benchmark is skipped and return None."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds: 0, 1, ...")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--pyepo-path", default=None, help="a folder holding PyEPO (pip install --target)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch's intra-op threads (default 1: a 5x40 linear model gains nothing from more, "
                             "and on a busy machine their spinning costs both libraries tens of ms per step)")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    pyepo = import_pyepo(arguments.pyepo_path)
    if pyepo is None:
        print(f"bench_pyepo skipped: PyEPO is not importable; to run it: {INSTALL}.")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyEPO's import-time notices, negative perturbed costs
        rows = run(arguments.epochs, arguments.seeds, tuple(arguments.methods), pyepo)
    print_table(rows, arguments.epochs, arguments.seeds)
    return rows


if __name__ == "__main__":
    main()

"""I-MLE's settings on ILP layers, one factor at a time: ``lambda_``, the noise, its
temperature and the number of samples, trained on two ILPs of different size; and the
worker pool (``n_jobs=1`` against ``n_jobs=2``) on the same two.

The two programs (OR-Tools CP-SAT, the default ILP backend):

- *knapsack*: PyEPO's knapsack, 24 binary items, one capacity row (30% of the items'
  total weight, so about 8 items are packed); about a millisecond a solve;
- *assignment*: 8 workers x 16 jobs, 128 binary variables, every job to exactly one
  worker, at most 3 jobs a worker (24 rows, 16 ones in every state); several ms a solve.

Data, as PyEPO's "learn the costs from features": 5 features per instance, the true
values (item values, worker-job affinities) a hidden polynomial of degree 4 of the
features times multiplicative noise (``imle_solvers.data.knapsack_data``, PyEPO's
knapsack generator, its values read as the ``(8, 16)`` affinities for the assignment);
the target is the optimal state under the true values. A linear model predicts theta
from the features and is trained (Adam) through a torch ``IMLELayer`` on the Hamming
loss to the target, written linearly as ``<z, 1 - 2 w> + |w|`` and summed over the
batch and the samples, so that ``dL/dz`` is +-1 on every entry: the I-MLE target
``theta - lambda_ dL/dz`` moves every score by ``lambda_``, in theta's own units. The
metric is PyEPO's held-out normalised regret, ``sum_i (z*_i - <c_i, z(theta_i)>) /
sum_i |z*_i|`` (``imle_solvers.metrics``), ``z(theta_i)`` the layer's MAP state in
eval mode.

Each setting differs from the default (``IMLE(SumOfGamma(k), noise_temperature=1,
lambda_=10, samples=1)``, ``k`` the number of ones in a state: 8 and 16) in one factor.
Per setting: regret mean and standard deviation over the seeds, solves per step (rows
the layer's oracle was asked to solve, counted by wrapping its ``solve_with``), ms per
step (the training epochs' wall time over their steps) and the held-out theta's scale
(the mean over instances of the standard deviation of their scores: lambda_ and the
temperature act relative to it).

Sizes, to keep the full run near 10 minutes on 2 shared cores: knapsack 480 training
and 200 held-out instances, assignment 192 and 100, batch 32, 4 epochs (both had
converged: more epochs did not lower the default's regret), 3 seeds.

The pool: ms per training step with ``n_jobs=1`` and ``n_jobs=2`` (loky, ``chunk_size="auto"``,
warmed up), the two layers stepped in turn for several rounds (interleaved medians), for
each program and batch size (8, 32, 128); all of it repeated with fresh pools
(``--pool-repeats``), since on a shared machine the ratio moves with the other work.

Run: ``python benchmarks/sweep_ilp_settings.py [--short] [--seeds 3] [--pool-repeats 3]
[--no-sweep | --no-pool] [--out FILE]``; ``main()`` returns the rows (the pool's have a
``batch`` key); ``--out`` writes them as JSON too, with each program's sizes, the scale of its true values
(seed 0) and the settings.
``--short`` is a tiny version (one seed, a few steps, two settings, one pool round) for tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers import data, metrics
from imle_solvers.torch import IMLELayer

from _timing import interleaved_medians  # beside this script

FEATURES, DEG, NOISE_WIDTH = 5, 4, 0.5
LR = 0.05


@dataclass(frozen=True)
class Case:
    """One program and its data size: ``train`` / ``test`` instances, ``epochs`` of ``batch``."""

    name: str
    problem: ims.ILP
    ones: int  # ones in a typical state: Sum-of-Gamma's k
    train: int
    test: int
    epochs: int
    batch: int = 32


@dataclass(frozen=True)
class Setting:
    """One I-MLE configuration; ``noise`` is ``"sog"`` (Sum-of-Gamma, k = the case's ones),
    ``"gumbel"`` or ``"none"`` (``IMLE(noise=None)``: blackbox differentiation)."""

    label: str
    lambda_: float = 10.0
    noise: str = "sog"
    temperature: float = 1.0
    samples: int = 1
    marginal_samples: int = 1

    def estimator(self, ones: int) -> ims.IMLE:
        noise = {"sog": ims.SumOfGamma(k=ones), "gumbel": ims.Gumbel(), "none": None}[self.noise]
        return ims.IMLE(noise, noise_temperature=self.temperature, lambda_=self.lambda_,
                        samples=self.samples, marginal_samples=self.marginal_samples)


DEFAULT = Setting("default: SoG(k), tau 1, lambda 10, S 1")
SETTINGS = (
    DEFAULT,
    *(replace(DEFAULT, label=f"lambda {lam:g}", lambda_=lam) for lam in (0.1, 0.3, 1.0, 3.0, 30.0, 100.0)),
    replace(DEFAULT, label="Gumbel noise", noise="gumbel"),
    replace(DEFAULT, label="no noise (noise=None)", noise="none"),
    *(replace(DEFAULT, label=f"temperature {t:g}", temperature=t) for t in (0.3, 3.0)),
    *(replace(DEFAULT, label=f"samples {s}", samples=s) for s in (2, 4)),
)


def knapsack_case(train: int = 480, test: int = 200, epochs: int = 4) -> Case:
    weights, _, _ = data.knapsack_data(1, FEATURES, 24, dim=1, deg=DEG, noise_width=NOISE_WIDTH)
    capacity = np.floor(0.3 * weights.sum(axis=1))
    return Case("knapsack 24x1", data.knapsack_problem(weights, capacity=capacity), 8, train, test, epochs)


def assignment_problem(workers: int = 8, jobs: int = 16, capacity: int = 3) -> ims.ILP:
    """Every job to exactly one worker, at most ``capacity`` jobs a worker; theta ``(workers, jobs)``."""
    return ims.ILP.from_dict({
        "name": "assignment",
        "sets": {"workers": workers, "jobs": jobs},
        "constants": {"capacity": [capacity] * workers},
        "variables": {"x": {"over": ["workers", "jobs"], "type": "binary"}},
        "constraints": [
            {"name": "each_job_once", "for": "j in jobs", "expr": "sum(w in workers) x[w, j] == 1"},
            {"name": "capacity", "for": "w in workers", "expr": "sum(j in jobs) x[w, j] <= capacity[w]"},
        ],
        "objective": {"sense": "max", "theta": "x"},
    })


def assignment_case(train: int = 192, test: int = 100, epochs: int = 4) -> Case:
    return Case("assignment 8x16", assignment_problem(), 16, train, test, epochs)


def make_data(case: Case, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n, FEATURES)`` float32 and true values ``(n, *problem.shape)`` float64,
    ``n = train + test``, from PyEPO's knapsack generator (the hidden map drawn by ``seed``)."""
    d = int(np.prod(case.problem.shape))
    _, x, c = data.knapsack_data(case.train + case.test, FEATURES, d, deg=DEG, noise_width=NOISE_WIDTH,
                                 seed=1000 + seed)
    return x.astype(np.float32), c.astype(np.float64).reshape(-1, *case.problem.shape)


class SolveCounter:
    """Counts the rows ``oracle`` is asked to solve (each row one instance's MAP problem),
    by wrapping the oracle's ``solve_with``, the call every solve of a layer goes through."""

    def __init__(self, oracle: ims.MAPOracle) -> None:
        self.rows = 0
        self.calls = 0
        inner = oracle.solve_with

        def counted(solver: Any, native: bool, theta: Any, data: Any) -> Any:
            self.rows += int(theta.shape[0])
            self.calls += 1
            return inner(solver, native, theta, data)

        oracle.solve_with = counted  # type: ignore[method-assign]


class LinearScores(torch.nn.Module):
    """theta ``(B, *shape)`` = a linear map of the features ``(B, FEATURES)``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape
        self.linear = torch.nn.Linear(FEATURES, int(np.prod(shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(-1, *self.shape)


def hamming_loss(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hamming distance of binary ``z`` ``(B, *shape)`` or ``(B, S, *shape)`` to ``target``
    ``(B, *shape)``, summed over the batch and the samples, in its linear form ``<z, 1 - 2 w>
    + |w|``: ``dL/dz = 1 - 2 w`` is +-1 on every entry, where ``|z - w|`` would give 0 on
    the entries that already agree."""
    if z.dim() > target.dim():  # a sample axis
        target = target.unsqueeze(1).expand_as(z)
    return (z * (1 - 2 * target)).sum() + target.sum()


def held_out_regret(layer: IMLELayer, model: torch.nn.Module, features: torch.Tensor, values: np.ndarray,
                    optimum: np.ndarray) -> float:
    """PyEPO's normalised regret ``sum_i (z*_i - <c_i, z_i>) / sum_i |z*_i|`` of the layer's
    MAP states ``z_i`` (eval mode) of the model's theta, under the true values ``values``
    ``(n, *shape)`` whose optimal objectives are ``optimum`` ``(n,)`` (a max problem)."""
    was_training = layer.training
    layer.eval()
    with torch.no_grad():
        theta = model(features)
        states = layer(theta)
    layer.train(was_training)
    obtained = metrics.objective_values(states, values)
    return float((optimum - obtained).sum() / (np.abs(optimum).sum() + metrics.NORMALIZATION_EPS))


def theta_scale(model: torch.nn.Module, features: torch.Tensor) -> float:
    """The mean over instances of the standard deviation of an instance's predicted scores."""
    with torch.no_grad():
        theta = model(features).flatten(1)
    return float(theta.std(dim=1).mean())


def train(case: Case, setting: Setting, seed: int, n_jobs: int = 1) -> dict[str, Any]:
    """Train a fresh linear model through an I-MLE layer with ``setting``; held-out regret,
    solves per step, ms per step and theta's scale."""
    x, c = make_data(case, seed)
    problem = case.problem
    with ims.MAPOracle(problem) as oracle:
        w = oracle(c)
    optimum = metrics.objective_values(w, c)
    n = case.train
    x_train, w_train = torch.from_numpy(x[:n]), torch.from_numpy(w[:n]).float()
    x_test = torch.from_numpy(x[n:])
    torch.manual_seed(seed)
    model = LinearScores(problem.shape)
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    layer = IMLELayer(problem, setting.estimator(case.ones), seed=seed, n_jobs=n_jobs)
    untrained = held_out_regret(layer, model, x_test, c[n:], optimum[n:])
    counter = SolveCounter(layer.oracle)
    order = torch.Generator().manual_seed(seed)
    steps, seconds = 0, 0.0
    for _ in range(case.epochs):
        start = time.perf_counter()
        for batch in torch.randperm(n, generator=order).split(case.batch):
            loss = hamming_loss(layer(model(x_train[batch])), w_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
        seconds += time.perf_counter() - start
    solves, calls = counter.rows, counter.calls  # before the held-out evaluation's call
    regret = held_out_regret(layer, model, x_test, c[n:], optimum[n:])
    layer.oracle.close()
    return {"regret": regret, "untrained_regret": untrained, "solves_per_step": solves / steps,
            "calls_per_step": calls / steps, "ms_per_step": 1e3 * seconds / steps,
            "theta_sd": theta_scale(model, x_test), "steps": steps}


def sweep(cases: list[Case], settings: tuple[Setting, ...], seeds: int) -> list[dict[str, Any]]:
    """One row per case and setting: means over ``seeds`` seeds, the regret's sd, and its
    difference from the first setting's (the default) paired by seed: each seed draws its
    own data, initial weights and noise, so the paired difference is the sharper test."""
    rows = []
    for case in cases:
        baseline: list[float] = []
        for setting in settings:
            runs = []
            for seed in range(seeds):
                runs.append(train(case, setting, seed))
                print(f"  {case.name} | {setting.label} | seed {seed}: regret {runs[-1]['regret']:.4f}, "
                      f"{runs[-1]['ms_per_step']:.1f} ms/step", file=sys.stderr, flush=True)
            regrets = [r["regret"] for r in runs]
            baseline = baseline or regrets
            differences = [a - b for a, b in zip(regrets, baseline)]
            rows.append({
                "case": case.name, "setting": setting.label, "regret": statistics.mean(regrets),
                "regret_sd": _sd(regrets), "vs_default": statistics.mean(differences),
                "vs_default_sd": _sd(differences),
                **{key: statistics.mean(r[key] for r in runs)
                   for key in ("untrained_regret", "solves_per_step", "calls_per_step", "ms_per_step", "theta_sd",
                               "steps")},
            })
    return rows


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def pool_rows(cases: list[Case], batches: tuple[int, ...], rounds: int, repeats: int = 1) -> list[dict[str, Any]]:
    """ms per training step (forward, loss, backward) of the default setting with
    ``n_jobs=1`` and ``n_jobs=2`` (loky, warmed up), the two stepped in turn ``rounds``
    times (interleaved medians), per case and batch size; all of it ``repeats`` times with
    fresh layers and pools (on a shared machine the ratio moves with the other work), the
    medians over the repeats and the ratio's range."""
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(repeats):
        for case in cases:
            for batch in batches:
                run = _pool_run(case, batch, rounds)
                runs.setdefault((case.name, batch), []).append(run)
                print(f"  pool {case.name} batch {batch}: {run['ms_1']:.1f} / {run['ms_2']:.1f} ms",
                      file=sys.stderr, flush=True)
    rows = []
    for (name, batch), measured in runs.items():
        ratios = [run["ms_1"] / run["ms_2"] for run in measured]
        ms_1 = statistics.median(run["ms_1"] for run in measured)
        solves = 2 * batch * DEFAULT.samples * DEFAULT.marginal_samples
        ms_2 = statistics.median(run["ms_2"] for run in measured)
        rows.append({"case": name, "batch": batch, "ms_1": ms_1, "ms_2": ms_2,
                     "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
                     "repeats": len(measured), "ms_per_solve_1": ms_1 / solves})
    return rows


def _pool_run(case: Case, batch: int, rounds: int) -> dict[str, float]:
    x, c = make_data(case, 0)
    with ims.MAPOracle(case.problem) as oracle:
        target = torch.from_numpy(oracle(c[:batch])).float()
    features = torch.from_numpy(x[:batch])
    torch.manual_seed(0)
    model = LinearScores(case.problem.shape)
    layers = {jobs: IMLELayer(case.problem, DEFAULT.estimator(case.ones), seed=0, n_jobs=jobs) for jobs in (1, 2)}
    layers[2].oracle.warm_up()

    def step(layer: IMLELayer) -> None:
        model.zero_grad()
        hamming_loss(layer(model(features)), target).backward()

    seconds = interleaved_medians({jobs: (lambda layer=layer: step(layer)) for jobs, layer in layers.items()}, rounds)
    for layer in layers.values():
        layer.oracle.close()
    return {"ms_1": 1e3 * seconds[1], "ms_2": 1e3 * seconds[2]}


def true_value_scale(case: Case) -> dict[str, float]:
    """The mean and standard deviation of seed 0's true values (all instances, all entries)."""
    values = make_data(case, 0)[1]
    return {"true values mean (seed 0)": float(values.mean()), "true values sd (seed 0)": float(values.std())}


def print_tables(rows: list[dict[str, Any]], pool: list[dict[str, Any]], cases: list[Case], seeds: int,
                 rounds: int) -> None:
    for case in cases:
        mine = [r for r in rows if r["case"] == case.name]
        if not mine:
            continue
        scale = true_value_scale(case)
        print(f"\n{case.name}: true values {scale['true values mean (seed 0)']:.2f} ± "
              f"{scale['true values sd (seed 0)']:.2f} (seed 0); {case.train} train / "
              f"{case.test} held-out instances, batch {case.batch}, "
              f"{case.epochs} epochs ({mine[0]['steps']:.0f} steps), Adam lr {LR}, mean ± sd over {seeds} seed(s); "
              f"the untrained model's regret {mine[0]['untrained_regret']:.4f}\n")
        print("| setting | held-out normalised regret | minus the default's, paired by seed | solves per step "
              "| ms per step | theta sd |")
        print("|---|---|---|---:|---:|---:|")
        for r in mine:
            print(f"| {r['setting']} | {r['regret']:.4f} ± {r['regret_sd']:.4f} "
                  f"| {r['vs_default']:+.4f} ± {r['vs_default_sd']:.4f} | {r['solves_per_step']:.0f} "
                  f"| {r['ms_per_step']:.1f} | {r['theta_sd']:.2f} |")
    if pool:
        print(f"\npool: ms per training step (default setting), n_jobs=1 against n_jobs=2 (loky, chunk_size auto), "
              f"interleaved medians of {rounds} rounds; medians over {pool[0]['repeats']} repeat(s)\n")
        print("| program | batch | step ms per solve, n_jobs=1 | ms per step, n_jobs=1 | n_jobs=2 "
              "| n_jobs=1 / n_jobs=2, median (range) |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in pool:
            print(f"| {r['case']} | {r['batch']} | {r['ms_per_solve_1']:.2f} | {r['ms_1']:.1f} | {r['ms_2']:.1f} "
                  f"| {r['speedup']:.2f}x ({r['speedup_min']:.2f}-{r['speedup_max']:.2f}) |")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``argv`` (default: the command line), run the sweep and the pool comparison,
    print markdown tables; the rows of both (pool rows have a ``batch`` key)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a tiny run: one seed, a few steps, two settings")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of the pool comparison")
    parser.add_argument("--pool-repeats", type=int, default=3,
                        help="repeats of the pool comparison, each with fresh pools (medians and the ratio's range)")
    parser.add_argument("--no-pool", action="store_true", help="skip the pool comparison")
    parser.add_argument("--no-sweep", action="store_true", help="skip the settings sweep (the pool comparison only)")
    parser.add_argument("--threads", type=int, default=1, help="torch's intra-op threads")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    if arguments.short:
        cases = [knapsack_case(train=64, test=32, epochs=1), assignment_case(train=32, test=16, epochs=1)]
        cases = [replace(case, batch=16) for case in cases]
        settings, seeds, batches, rounds, repeats = (DEFAULT, SETTINGS[-2]), 1, (8,), 1, 1
    else:
        cases, settings, seeds = [knapsack_case(), assignment_case()], SETTINGS, arguments.seeds
        batches, rounds, repeats = (8, 32, 128), arguments.rounds, arguments.pool_repeats
    rows = [] if arguments.no_sweep else sweep(cases, settings, seeds)
    pool = [] if arguments.no_pool else pool_rows(cases, batches, rounds, repeats)
    print_tables(rows, pool, cases, seeds, rounds)
    if arguments.out is not None:
        programs = {case.name: {"train": case.train, "test": case.test, "batch": case.batch, "epochs": case.epochs,
                                **true_value_scale(case)} for case in cases}
        settings = {"seeds": seeds, "rounds": rounds, "pool repeats": repeats, "adam lr": LR}
        arguments.out.write_text(json.dumps({"settings": settings, "programs": programs, "sweep": rows, "pool": pool},
                                            indent=2) + "\n")
    return rows + pool


if __name__ == "__main__":
    main()

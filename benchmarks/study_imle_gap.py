"""Our I-MLE against PyEPO's on its 5x5 shortest path: each difference swapped, one at a time.

The setting is ``bench_pyepo.py``'s I-MLE row (``pyepo_recipes.py``): PyEPO's shortest path
data, the same batches, initial weights, Adam (lr 1e-2, batch 32, 5 epochs) and L1 loss to
the true path for every variant, PyEPO's ``implicitMLE(n_samples=10, sigma=1, lambd=10,
sumGammaDistribution(kappa=5, n_iterations=10))`` against our
``IMLE(SumOfGamma(k=5), noise_temperature=1, lambda_=10, marginal_samples=10)``.

The two implementations compute the same estimator up to the differences below; each
variant swaps ONE of them to PyEPO's form, by a wrapper in this script (the library is
unchanged):

    PyEPO          PyEPO's implicitMLE, as in bench_pyepo
    ours           our IMLELayer, as in bench_pyepo (its defaults)
    sign           PyEPO's noise sign for a min problem: MAP_min(c + eps), ours MAP_min(c - eps)
    exact          Sum-of-Gamma drawn as 10 Gamma terms per entry (PyEPO's sampler), not from
                   our quantile table
    pyepo_noise    PyEPO's noise itself: its sumGammaDistribution object, seeded as PyEPO's,
                   with its sign (the same draws, in the same order, as the PyEPO run of that
                   seed); all of the noise's differences at once
    pyepo_solver   our estimator's math with PyEPO's solver (its OR-Tools GLOP model) for
                   every solve, instead of our shortest-path solver
    pyepo_both     pyepo_noise and pyepo_solver together: what remains is the arithmetic
                   (our estimator vs PyEPO's autograd function, equal to 1e-8 at a step);
                   it tracks PyEPO's run for a few steps, then parts (--divergence-steps)
    two_sided      the central difference (PyEPO's two_sides=True form, which neither run
                   uses): (MAP(c + eps + lambda g) - MAP(c + eps - lambda g)) / (2 lambda)

What is the same in both and so has no swap: 10 perturbations averaged into the forward
output (our ``marginal_samples=10``, PyEPO's ``n_samples=10``), the backward target
``c + lambda dL/dz`` on the same noise (for a min problem; ours writes it as the max
problem over ``-c``, the same numbers), the gradient divided by lambda (PyEPO by
``lambda + 1e-7``), one-sided differences, the loss, the optimiser step.

Per variant: mean ± standard error of the held-out normalised regret over its seeds, and
per seed the difference to PyEPO's run and to ours of the same seed (paired: the same
data, batches and initial weights), its mean ± standard error and how often the variant
is below. PyEPO and the swaps that use its solver are slow (about 20x ours per step), so
they run on fewer seeds; ours runs on every seed of the other swaps.

    python benchmarks/study_imle_gap.py --seeds 20 --swap-seeds 100 --solver-seeds 4 --out gap.json
    python benchmarks/study_imle_gap.py --merge gap.json more_seeds.json --out pooled.json

docs/data-metrics.md ("The I-MLE gap, difference by difference") has the runs and results.

``--divergence-steps N`` instead traces PyEPO against ``pyepo_both`` step by step (how fast
two runs with the same draws part: Adam divides each gradient entry by its running scale,
so a 1e-8 difference in an entry that is otherwise zero becomes a full step).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pyepo import BATCH, LR, import_pyepo, train
from pyepo_recipes import N_TRAIN, Benchmark, Recipe, our_recipe, pyepo_recipe, shortest_path

import imle_solvers as ims
from imle_solvers.noise import TorchSource

K, SIGMA, LAMBDA, PERTURBATIONS, TERMS = 5, 1.0, 10.0, 10, 10
BASELINE = ("PyEPO", "ours")
SWAPS = ("sign", "exact", "pyepo_noise", "pyepo_solver", "pyepo_both", "two_sided")
#: the swaps that solve with PyEPO's GLOP model, as slow per step as PyEPO itself
SOLVER_SWAPS = ("pyepo_solver", "pyepo_both")


# --- noise wrappers ----------------------------------------------------------------


@dataclass(frozen=True)
class Negated:
    """``-eps`` for ``eps`` drawn from ``inner``: turns our ``MAP_min(c - sigma eps)`` into
    PyEPO's ``MAP_min(c + sigma eps)`` (``shape`` as the inner distribution's)."""

    inner: Any

    def sample(self, source: Any, shape: tuple[int, ...]) -> Any:
        return -self.inner.sample(source, shape)


@dataclass(frozen=True)
class PyEPONoise:
    """PyEPO's ``sumGammaDistribution`` draws, negated so that our layer perturbs as PyEPO:
    ``MAP_min(c + sigma eps)``. Our draw of shape ``(B, 1, 10, d)`` takes the values PyEPO
    draws for ``(B, 10, d)`` (the same count, the same order, float32, on the CPU)."""

    distribution: Any

    def sample(self, source: Any, shape: tuple[int, ...]) -> torch.Tensor:
        return -self.distribution.sample(size=tuple(shape), device="cpu", dtype=torch.float32)


def pyepo_distribution(seed: int) -> Any:
    """PyEPO's noise object as its recipe builds it for ``seed``."""
    from pyepo.func.utils import sumGammaDistribution

    return sumGammaDistribution(kappa=K, n_iterations=TERMS, seed=seed)


# --- estimator wrappers ------------------------------------------------------------


def TwoSidedIMLE(noise: Any, **settings: Any) -> ims.IMLE:  # noqa: N802 - the swap's name in the tables
    """I-MLE with the central difference ``(MAP(theta + lambda g + eps) - MAP(theta - lambda g
    + eps)) / (2 lambda)`` of the max problem: the library's ``IMLE(..., two_sided=True)``
    (PyEPO's ``two_sides=True``, up to the sign convention of a min problem)."""
    return ims.IMLE(noise, two_sided=True, **settings)


def estimator(noise: Any) -> ims.IMLE:
    """Our I-MLE of the benchmark with ``noise``."""
    return ims.IMLE(noise, noise_temperature=SIGMA, lambda_=LAMBDA, marginal_samples=PERTURBATIONS)


def layer_recipe(bench: Benchmark, imle: Any, seed: int) -> Recipe:
    """``L1(layer(m(x)), w)`` with our ``IMLELayer`` around ``imle``: the benchmark's recipe."""
    layer = ims.torch.IMLELayer(bench.problem, imle, seed=seed)
    l1 = nn.L1Loss()
    return lambda m: lambda x, c, w, z, i: l1(layer(m(x)), w)


class _WithSolver(torch.autograd.Function):
    """Our estimator's forward and backward (``sample``, ``gradient``) around any batched
    min-problem solver ``solve`` (costs ``(N, d)`` -> states ``(N, d)``)."""

    @staticmethod
    def forward(ctx: Any, theta: torch.Tensor, imle: Any, solve: Callable, rng: Any) -> torch.Tensor:
        z, ctx.residuals = imle.sample(theta.detach(), solve, sign=-1, rng=rng)
        ctx.imle, ctx.solve = imle, solve
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor) -> tuple[Any, ...]:
        grad, _ = ctx.imle.gradient(ctx.residuals, grad_z.detach(), ctx.solve)
        return grad, None, None, None


def pyepo_solve(optmodel: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """PyEPO's model as a batched solver of costs ``(N, d)``, one ``setObj``/``solve`` per
    row as PyEPO's own ``_solve_or_cache`` with one process, float32 states."""

    def solve(costs: torch.Tensor) -> torch.Tensor:
        rows = []
        for cost in costs.detach().cpu().numpy():
            optmodel.setObj(cost)
            rows.append(np.asarray(optmodel.solve()[0], dtype=np.float32))
        return torch.from_numpy(np.stack(rows)).to(costs.dtype)

    return solve


def solver_recipe(bench: Benchmark, noise: Any, seed: int) -> Recipe:
    """``L1(estimator(m(x)), w)`` with our estimator's math and PyEPO's solver; the noise from
    ``noise`` through a torch source seeded with ``seed``."""
    imle, solve = estimator(noise), pyepo_solve(bench.pyepo_model())
    rng = TorchSource(torch.Generator().manual_seed(seed), torch.float32, torch.device("cpu"))
    l1 = nn.L1Loss()
    return lambda m: lambda x, c, w, z, i: l1(_WithSolver.apply(m(x), imle, solve, rng), w)


def recipe(pyepo: Any, bench: Benchmark, variant: str, seed: int) -> Recipe:
    """The recipe of ``variant`` (see the module docstring) for ``seed``."""
    if variant == "PyEPO":
        return pyepo_recipe(pyepo, bench, "I-MLE", seed)
    if variant == "ours":
        return our_recipe(bench, "I-MLE", seed)
    if variant == "sign":
        return layer_recipe(bench, estimator(Negated(ims.SumOfGamma(k=K))), seed)
    if variant == "exact":
        return layer_recipe(bench, estimator(ims.SumOfGamma(k=K, nb_iterations=TERMS, method="exact")), seed)
    if variant == "pyepo_noise":
        return layer_recipe(bench, estimator(PyEPONoise(pyepo_distribution(seed))), seed)
    if variant == "pyepo_solver":
        return solver_recipe(bench, ims.SumOfGamma(k=K), seed)
    if variant == "pyepo_both":
        return solver_recipe(bench, PyEPONoise(pyepo_distribution(seed)), seed)
    if variant == "two_sided":
        return layer_recipe(bench, TwoSidedIMLE(ims.SumOfGamma(k=K), noise_temperature=SIGMA, lambda_=LAMBDA,
                                                marginal_samples=PERTURBATIONS), seed)
    raise ValueError(f"unknown variant {variant!r}")


# --- summary -----------------------------------------------------------------------


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for one value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0)


def paired(by_seed: dict[int, float], reference: dict[int, float]) -> dict[str, Any] | None:
    """``by_seed - reference`` on their common seeds: count, mean ± se, how many below, the
    mean relative to the reference's mean there; None without a common seed."""
    common = sorted(set(by_seed) & set(reference))
    if not common:
        return None
    diffs = [by_seed[s] - reference[s] for s in common]
    mean, se = mean_se(diffs)
    return {"seeds": len(common), "mean": mean, "se": se, "below": sum(d < 0 for d in diffs),
            "relative": mean / statistics.fmean(reference[s] for s in common)}


def summary(regrets: dict[str, dict[int, float]]) -> dict[str, dict[str, Any]]:
    """Per variant: seeds, mean ± se, and the paired differences to PyEPO and to ours."""
    rows = {}
    for variant, by_seed in regrets.items():
        if not by_seed:
            continue
        mean, se = mean_se(list(by_seed.values()))
        row: dict[str, Any] = {"seeds": len(by_seed), "mean": mean, "se": se}
        for reference in ("PyEPO", "ours"):
            difference = paired(by_seed, regrets.get(reference, {})) if variant != reference else None
            if difference is not None:
                row[f"minus_{reference.lower()}"] = difference
        rows[variant] = row
    return rows


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The markdown table of :func:`summary`'s rows."""

    def difference(d: dict[str, Any] | None) -> str:
        if d is None:
            return "—"
        return f"{d['mean']:+.4f} ± {d['se']:.4f} ({100 * d['relative']:+.1f}%, {d['below']}/{d['seeds']} below)"

    lines = ["| variant | seeds | regret (mean ± se) | minus PyEPO, same seed | minus ours, same seed |",
             "|---|---|---|---|---|"]
    for variant, r in rows.items():
        lines.append(f"| {variant} | {r['seeds']} | {r['mean']:.4f} ± {r['se']:.4f} "
                     f"| {difference(r.get('minus_pyepo'))} | {difference(r.get('minus_ours'))} |")
    return "\n".join(lines)


def divergence(pyepo: Any, bench: Benchmark, loader: DataLoader, seed: int, steps: int) -> dict[str, Any]:
    """PyEPO and ``pyepo_both`` (the same noise draws, the same solver) trained side by side
    for ``steps`` steps on ``seed``: the largest difference of their weights after each
    step, and the first step whose losses differ (None if none does)."""
    weights, losses = {}, {}
    for variant in ("PyEPO", "pyepo_both"):
        torch.manual_seed(seed)
        model = nn.Linear(bench.x.shape[1], bench.out_features)
        optimiser = torch.optim.Adam(model.parameters(), lr=LR)
        step = recipe(pyepo, bench, variant, seed)(model)
        loader.generator.manual_seed(seed)
        weights[variant], losses[variant] = [], []
        batches = (batch for _ in range(steps) for batch in loader)  # epochs, as train() does
        for _, batch in zip(range(steps), batches):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loss = step(*batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            weights[variant].append(model.weight.detach().clone())
            losses[variant].append(loss.item())
    gaps = [(a - b).abs().max().item() for a, b in zip(weights["PyEPO"], weights["pyepo_both"])]
    first = next((t for t, (a, b) in enumerate(zip(losses["PyEPO"], losses["pyepo_both"])) if a != b), None)
    return {"seed": seed, "max_weight_difference": gaps, "first_step_losses_differ": first}


def merge(paths: list[Path], out: Path | None, command: str) -> dict[str, Any]:
    """The regrets of several ``--out`` files pooled per variant (a seed in two files is an
    error), summarised and printed; written to ``out`` when given."""
    regrets: dict[str, dict[int, float]] = {}
    for path in paths:
        for variant, by_seed in json.loads(path.read_text())["regrets"].items():
            pooled = regrets.setdefault(variant, {})
            for seed, regret in by_seed.items():
                if int(seed) in pooled:
                    raise ValueError(f"{path}: seed {seed} of {variant} is in an earlier file too")
                pooled[int(seed)] = regret
    record = {"command": command, "sources": [json.loads(p.read_text())["command"] for p in paths],
              "regrets": {v: {str(s): r for s, r in sorted(b.items())} for v, b in regrets.items()},
              "summary": summary(regrets)}
    print(table(record["summary"]))
    if out is not None:
        out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Run the baseline pair on ``--seeds`` seeds and the swaps on ``--swap-seeds``; print
    the table, write the regrets per seed and the summary to ``--out`` after every seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0.. for PyEPO (and ours)")
    parser.add_argument("--swap-seeds", type=int, default=20, help="seeds 0.. for each swap (and ours)")
    parser.add_argument("--solver-seeds", type=int, default=5,
                        help="seeds 0.. for the swaps that solve with PyEPO's solver (slow)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=BASELINE + SWAPS, default=list(BASELINE + SWAPS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--divergence-steps", type=int, default=0,
                        help="only trace PyEPO against pyepo_both step by step on --first-seed for this many steps")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="only pool the regrets of earlier --out files (disjoint seeds) and summarise them")
    parser.add_argument("--out", type=Path, default=None)
    arguments = parser.parse_args(argv)
    command = "python benchmarks/study_imle_gap.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if arguments.merge:
        return merge(arguments.merge, arguments.out, command)
    torch.set_num_threads(1)
    pyepo = import_pyepo(None)
    if pyepo is None:
        print("study_imle_gap skipped: PyEPO is not importable (pip install -e '.[compare]').")
        return None
    bench = shortest_path()
    train_set = TensorDataset(torch.from_numpy(bench.x[:N_TRAIN]).float(), torch.from_numpy(bench.c[:N_TRAIN]).float(),
                              torch.from_numpy(bench.w).float(), torch.from_numpy(bench.z).float().view(-1, 1),
                              torch.arange(N_TRAIN))
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, generator=torch.Generator())
    if arguments.divergence_steps > 0:
        traced = divergence(pyepo, bench, loader, arguments.first_seed, arguments.divergence_steps)
        for t, gap in enumerate(traced["max_weight_difference"]):
            print(f"step {t}: max |W_PyEPO - W_pyepo_both| = {gap:.3g}")
        print(f"first step whose losses differ: {traced['first_step_losses_differ']}")
        if arguments.out is not None:
            arguments.out.write_text(json.dumps({"command": command, "divergence": traced}, indent=1) + "\n")
        return traced
    regrets: dict[str, dict[int, float]] = {v: {} for v in arguments.variants}
    seconds: dict[str, list[float]] = {v: [] for v in arguments.variants}
    record: dict[str, Any] = {}
    # ours is every swap's reference: it runs on the swaps' seeds too, where they are more
    counts = {v: arguments.seeds if v == "PyEPO" else arguments.solver_seeds if v in SOLVER_SWAPS
              else arguments.swap_seeds if v != "ours" else max(arguments.seeds, arguments.swap_seeds)
              for v in arguments.variants}
    for seed in range(arguments.first_seed, arguments.first_seed + max(counts.values())):
        wanted = [v for v in arguments.variants if seed - arguments.first_seed < counts[v]]
        for variant in wanted if seed % 2 == 0 else wanted[::-1]:  # drifts of the machine move all alike
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PyEPO's notices
                regret, _ = train(recipe(pyepo, bench, variant, seed), bench, loader, arguments.epochs, seed)
            regrets[variant][seed] = regret
            seconds[variant].append(time.perf_counter() - start)
            print(f"seed {seed} {variant:12s} regret {regret:.4f} ({seconds[variant][-1]:.1f} s)",
                  file=sys.stderr, flush=True)
        record = {"command": command,
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "load_average": os.getloadavg(), "epochs": arguments.epochs, "batch": BATCH, "lr": LR,
                  "seconds_per_run": {v: statistics.fmean(s) for v, s in seconds.items() if s},
                  "regrets": {v: {str(s): r for s, r in by_seed.items()} for v, by_seed in regrets.items()},
                  "summary": summary(regrets)}
        if arguments.out is not None:
            arguments.out.write_text(json.dumps(record, indent=1) + "\n")
    print(table(record["summary"]))
    return record


if __name__ == "__main__":
    main()

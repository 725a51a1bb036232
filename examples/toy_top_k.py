"""The I-MLE paper's toy problem: descent on the exact expected loss of a top-5 of 10.

The distribution is the exponential family ``p(z; theta) ~ exp(<z, theta>)`` over the 252
5-subsets of 10 items; the loss of a state is ``||z - b||^2`` for a fixed target ``b``, and
the objective ``E_{z ~ p(z; theta)} ||z - b||^2`` is known exactly by enumerating the 252
states. Its infimum over ``theta`` is ``min_z ||z - b||^2`` (approached as ``theta`` puts
all mass on the best state), so the **optimality gap** at ``theta`` is

    gap(theta) = E_{z ~ p(z; theta)} ||z - b||^2  -  min_z ||z - b||^2      (>= 0)

Each seed draws its own target ``b = |N(0, I)|`` and start ``theta_0 ~ N(0, I)`` (as in the
authors' synthetic scripts; the starting gap is 4.47 on average over seeds 0-19, the paper's 4.11).
``theta`` then takes ``steps`` optimizer steps with one estimate per step, one sample each,
under one of two optimizers (one table each): ``momentum``, heavy-ball SGD with momentum 0.9
(the update of ``torch.optim.SGD(momentum=0.9)``, written in numpy), the main table; and
``sgd``, plain gradient descent. The estimates come from:

- ``I-MLE (SoG)``: ``IMLE(SumOfGamma(k=5), lambda_)``, the library's estimator;
- ``I-MLE (Gumbel)``: ``IMLE(Gumbel(), lambda_)``;
- ``STE``: ``STE(Gumbel())``, the upstream gradient ``2 (z - b)`` passed straight through;
- ``score function``: REINFORCE, written here, the library has none: a state ``z`` drawn
  from the exact ``p(z; theta)`` (by enumeration) and ``||z - b||^2 * grad log p(z; theta)``,
  ``grad log p(z; theta) = z - E_p[z]`` (no baseline, as the paper's).

Under each optimizer, every method's learning rate (and I-MLE's lambda) is chosen on the
same grid by the lowest mean final gap on tuning seeds 1000, 1001, ... (100 by default),
disjoint from the reported seeds 0, 1, ... (``--no-tune`` and ``--quick`` skip tuning and
use ``DEFAULTS``, the values the full run chose). The figures are the mean and sd over the
reported seeds.

Run: ``python examples/toy_top_k.py [--optimizer momentum sgd] [--seeds 20] [--quick]
[--out runs/toy_top_k]``; the measured figures are in docs/gallery/toy-top-k.md.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import imle_solvers as ims

N, K = 10, 5
STATES = np.array([[1.0 if i in c else 0.0 for i in range(N)] for c in itertools.combinations(range(N), K)])  # (252, 10)
PAPER_GAP = {"I-MLE (SoG)": 0.18, "I-MLE (Gumbel)": 0.26, "STE": 0.75, "score function": 3.12}
PAPER_START = 4.11
METHODS = tuple(PAPER_GAP)
OPTIMIZERS = ("momentum", "sgd")  # the first is the main table
OPTIMIZER_TITLES = {"momentum": "SGD, momentum 0.9", "sgd": "plain gradient descent"}
MOMENTUM = 0.9
# per optimizer, the settings the full run's tuning picked (used as they are with --no-tune and --quick)
DEFAULTS = {
    "momentum": {
        "I-MLE (SoG)": {"lr": 1.5, "lambda_": 2.0},
        "I-MLE (Gumbel)": {"lr": 5.0, "lambda_": 5.0},
        "STE": {"lr": 20.0},
        "score function": {"lr": 0.02},
    },
    "sgd": {
        "I-MLE (SoG)": {"lr": 20.0, "lambda_": 5.0},
        "I-MLE (Gumbel)": {"lr": 5.0, "lambda_": 2.0},
        "STE": {"lr": 10.0},
        "score function": {"lr": 0.2},
    },
}
LR_GRID = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 5.0, 10.0, 20.0, 50.0)
LAMBDA_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
TUNING_SEEDS = 1000  # tuning seeds are 1000, 1001, ...; reported seeds 0, 1, ...


def problem_instances(seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``b`` ``(S, 10)`` (``|N(0, 1)|``) and starts ``theta_0`` ``(S, 10)``, one row per seed."""
    rows = [np.random.default_rng(seed) for seed in seeds]
    b = np.stack([np.abs(rng.normal(size=N)) for rng in rows])
    theta = np.stack([rng.normal(size=N) for rng in rows])
    return b, theta


def state_losses(b: np.ndarray) -> np.ndarray:
    """``||z - b||^2`` of every state, ``(S, 252)``."""
    return ((STATES[None] - b[:, None, :]) ** 2).sum(axis=-1)


def probabilities(theta: np.ndarray) -> np.ndarray:
    """The exact ``p(z; theta)`` over the 252 states, ``(S, 252)``."""
    logits = theta @ STATES.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def optimality_gap(theta: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """``E_p[||z - b||^2] - min_z ||z - b||^2`` per row, ``(S,)``."""
    return (probabilities(theta) * losses).sum(axis=1) - losses.min(axis=1)


def score_function_gradient(theta: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """REINFORCE with one exact sample per row: ``L(z) (z - E_p[z])``, ``(S, 10)``."""
    p = probabilities(theta)
    u = rng.random((len(theta), 1))
    index = np.minimum((p.cumsum(axis=1) < u).sum(axis=1), len(STATES) - 1)  # inverse CDF
    z = STATES[index]
    loss = ((z - b) ** 2).sum(axis=1, keepdims=True)
    return loss * (z - p @ STATES)


def estimator_gradient(estimator) -> Callable:
    """The gradient of ``||z - b||^2`` through the library's ``estimator`` on the top-5 oracle."""
    oracle = ims.MAPOracle(ims.KSubset(N, K))

    def gradient(theta: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z, residuals = estimator.sample(theta, oracle, sign=1, rng=rng)
        grad, _ = estimator.gradient(residuals, 2 * (z - b), oracle)
        return grad

    return gradient


def gradient_function(method: str, lambda_: float | None = None) -> Callable:
    if method == "I-MLE (SoG)":
        return estimator_gradient(ims.IMLE(ims.SumOfGamma(k=K), lambda_=lambda_))
    if method == "I-MLE (Gumbel)":
        return estimator_gradient(ims.IMLE(ims.Gumbel(), lambda_=lambda_))
    if method == "STE":
        return estimator_gradient(ims.STE(ims.Gumbel()))
    if method == "score function":
        return score_function_gradient
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def optimizer(name: str, lr: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A stateful update ``theta, grad -> theta`` (shapes ``(S, 10)``), one call per step.

    ``"sgd"``: plain gradient descent, ``theta - lr * grad``. ``"momentum"``: heavy-ball SGD
    with momentum 0.9 written as ``torch.optim.SGD(lr=lr, momentum=0.9)`` does it (no
    dampening, no Nesterov): ``v <- 0.9 v + grad`` (``v = grad`` at the first step), then
    ``theta - lr * v``; here in numpy.
    """
    if name == "sgd":
        return lambda theta, grad: theta - lr * grad
    if name != "momentum":
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    velocity: np.ndarray | None = None

    def step(theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        nonlocal velocity
        velocity = grad.copy() if velocity is None else MOMENTUM * velocity + grad
        return theta - lr * velocity

    return step


def descend(
    method: str, seeds: list[int], steps: int, lr: float, lambda_: float | None = None, optimizer_name: str = "momentum"
) -> np.ndarray:
    """``steps`` optimizer steps from each seed's start; the gaps ``(steps + 1, S)``, step 0 first.
    All seeds run as one batch; the noise comes from one generator seeded by the seeds, so
    both optimizers see the same draws for the same ``theta``."""
    b, theta = problem_instances(seeds)
    losses = state_losses(b)
    rng = np.random.default_rng([*seeds, METHODS.index(method)])
    gradient = gradient_function(method, lambda_)
    update = optimizer(optimizer_name, lr)
    gaps = [optimality_gap(theta, losses)]
    for _ in range(steps):
        theta = update(theta, gradient(theta, b, rng))
        gaps.append(optimality_gap(theta, losses))
    return np.stack(gaps)


def tune(method: str, seeds: int, steps: int, optimizer_name: str = "momentum") -> dict[str, float]:
    """The grid point with the lowest mean final gap on ``seeds`` tuning seeds (1000, 1001, ...)."""
    tuning = list(range(TUNING_SEEDS, TUNING_SEEDS + seeds))
    lambdas = LAMBDA_GRID if method.startswith("I-MLE") else (None,)
    scored = []
    for lr, lambda_ in itertools.product(LR_GRID, lambdas):
        final = descend(method, tuning, steps, lr, lambda_, optimizer_name)[-1]
        scored.append((np.nan_to_num(final.mean(), nan=np.inf), lr, lambda_))
    _, lr, lambda_ = min(scored, key=lambda entry: entry[0])
    return {"lr": lr} if lambda_ is None else {"lr": lr, "lambda_": lambda_}


def plot(gaps: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    """One panel per optimizer: mean gap per step and a +- sd band across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(gaps), figsize=(5.2 * len(gaps), 3.8), dpi=110, sharey=True, squeeze=False)
    for ax, (optimizer_name, by_method) in zip(axes[0], gaps.items()):
        for method, series in by_method.items():
            steps = np.arange(len(series))
            mean, sd = series.mean(axis=1), series.std(axis=1)
            ax.plot(steps, mean, label=method)
            ax.fill_between(steps, np.maximum(mean - sd, 0), mean + sd, alpha=0.2)
        ax.set_xlabel("step")
        ax.set_title(f"{OPTIMIZER_TITLES[optimizer_name]}, {series.shape[1]} seeds")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("optimality gap (exact), mean ± sd")
    axes[0][0].legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_protocol(optimizer_name: str, seeds: int, steps: int, tuning_seeds: int, tuned: bool) -> tuple[dict, dict]:
    """One table: tune (or take the defaults), then run every method on seeds ``0 .. seeds-1``.
    Returns the table's figures and the gaps per method ``(steps + 1, seeds)``."""
    start_time = time.perf_counter()
    reported = list(range(seeds))
    settings = {
        m: tune(m, tuning_seeds, steps, optimizer_name) if tuned else dict(DEFAULTS[optimizer_name][m]) for m in METHODS
    }
    gaps = {m: descend(m, reported, steps, **settings[m], optimizer_name=optimizer_name) for m in METHODS}
    start = gaps[METHODS[0]][0]
    table: dict = {
        "optimizer": OPTIMIZER_TITLES[optimizer_name],
        "reported seeds": reported,
        "tuning seeds": list(range(TUNING_SEEDS, TUNING_SEEDS + tuning_seeds)) if tuned else None,
        "lr grid": list(LR_GRID) if tuned else None,
        "lambda grid": list(LAMBDA_GRID) if tuned else None,
        "steps": steps,
        "tuned": tuned,
        "start gap": {"mean": float(start.mean()), "sd": float(start.std())},
        "paper start gap": PAPER_START,
        "methods": {
            m: {
                **settings[m],
                "final gap": {"mean": float(gaps[m][-1].mean()), "sd": float(gaps[m][-1].std())},
                "paper final gap": PAPER_GAP[m],
                "final gap per seed": [round(float(g), 4) for g in gaps[m][-1]],
                "mean gap per step": [round(float(g), 4) for g in gaps[m].mean(axis=1)],
            }
            for m in METHODS
        },
    }
    table["ranking"] = sorted(METHODS, key=lambda m: table["methods"][m]["final gap"]["mean"])
    table["seconds"] = round(time.perf_counter() - start_time, 1)
    print(f"{table['optimizer']}: start gap {start.mean():.2f} ± {start.std():.2f} (paper {PAPER_START}); after {steps} steps:")
    for m in METHODS:
        r = table["methods"][m]
        knobs = ", ".join(f"{name}={value}" for name, value in settings[m].items())
        print(f"  {m:15} {r['final gap']['mean']:.3f} ± {r['final gap']['sd']:.3f}  (paper {PAPER_GAP[m]})  [{knobs}]")
    print(f"  ranking: {' < '.join(table['ranking'])}; {table['seconds']} s")
    return table, gaps


def main(
    seeds: int = 20,
    steps: int = 50,
    tuning_seeds: int = 100,
    tuned: bool = True,
    optimizers: tuple[str, ...] = OPTIMIZERS,
    out: Path | None = None,
) -> dict:
    """One table per optimizer in ``optimizers`` (the first is the main one), each with the
    settings and, per method, the final gap's mean and sd, the per-seed final gaps and the
    mean gap per step; written to ``out/metrics.json`` with the figure when ``out`` is given."""
    start_time = time.perf_counter()
    tables, gaps = {}, {}
    for name in optimizers:
        tables[name], gaps[name] = run_protocol(name, seeds, steps, tuning_seeds, tuned)
    results = {
        "main table": optimizers[0],
        "date": datetime.date.today().isoformat(),
        "protocols": tables,
        "seconds": round(time.perf_counter() - start_time, 1),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot(gaps, out / "toy-top-k.png")
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="reported seeds")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--tuning-seeds", type=int, default=100)
    parser.add_argument("--no-tune", action="store_true", help="use the defaults instead of tuning")
    parser.add_argument("--short", "--quick", dest="quick", action="store_true", help="short version: 5 seeds, no tuning")
    parser.add_argument(
        "--optimizer", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS),
        help="one table per optimizer, the first the main one (default: momentum, then sgd)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/toy_top_k"))
    args = parser.parse_args()
    optimizers = tuple(dict.fromkeys(args.optimizer))
    if args.quick:
        main(seeds=5, steps=args.steps, tuned=False, optimizers=optimizers, out=args.out)
    else:
        main(seeds=args.seeds, steps=args.steps, tuning_seeds=args.tuning_seeds, tuned=not args.no_tune,
             optimizers=optimizers, out=args.out)

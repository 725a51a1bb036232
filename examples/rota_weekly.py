"""A week's rota learned from the rotas a planner made, with availability that changes weekly.

Each week, five workers cover fourteen shifts (``examples/specs/rota_weekly.yaml``): one
worker a shift, no two consecutive shifts, at most four a week, and only shifts a worker
is available for. Who is available changes every week: the table is a *batched
parameter* of the ILP, passed per instance beside the scores
(``layer(theta, available=table)``), so one layer solves every week of a batch, each
under its own table.

The planner's rotas (the labels) are the optimal rotas under preferences the model
never sees; they depend on the week's context (three numbers: season, holidays,
demand). A linear model maps the context to scores ``theta`` ``(B, 5, 14)``; the I-MLE
layer turns them into rotas, trained to reproduce the planner's (the Hamming loss). A
second model is trained the way one had to before, with one fixed problem that
ignores availability. Prints, on held-out weeks, the share of shifts given to the
planner's worker, whole weeks reproduced, and the assignments to unavailable
workers: none through the batched table, whatever the scores.

    python examples/rota_weekly.py [--steps 300] [--backend ortools] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers.torch import IMLELayer

SPEC = Path(__file__).parent / "specs" / "rota_weekly.yaml"
WORKERS, SHIFTS, CONTEXT = 5, 14, 3
AVAILABILITY = 0.75  # the chance that a worker can take a shift in a given week


def make_weeks(
    n: int, rng: np.random.Generator, problem: ims.ILP, backend: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` weeks: context ``(n, 3)``, availability ``(n, 5, 14)`` (0/1) and the planner's
    rota ``(n, 5, 14)``, optimal under the hidden preferences and the week's availability.
    Weeks whose availability leaves no rota are drawn again."""
    truth = np.random.default_rng(0)
    weights, base = truth.normal(size=(CONTEXT, WORKERS * SHIFTS)), truth.normal(size=WORKERS * SHIFTS)
    planner = ims.MAPOracle(problem, backend=backend, on_failure="skip")
    context, available, rotas = [], [], []
    while len(rotas) < n:
        c = rng.normal(size=(n, CONTEXT))
        a = (rng.random((n, WORKERS, SHIFTS)) < AVAILABILITY).astype(float)
        preferences = (c @ weights + base).reshape(n, WORKERS, SHIFTS)
        z, status = planner.solve(preferences, available=a)
        feasible = np.asarray(status) == 0
        context += list(c[feasible])
        available += list(a[feasible])
        rotas += list(z[feasible])
    return (np.stack(context[:n]).astype(np.float32), np.stack(available[:n]).astype(np.float32),
            np.stack(rotas[:n]).astype(np.float32))


def train(
    problem: ims.ILP, weeks: tuple, steps: int, batch: int, per_week: bool, backend: str, seed: int
) -> torch.nn.Module:
    """A linear model from context to scores, trained through the rota layer on the Hamming
    loss; ``per_week``: each week solved under its own availability, else under none."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(CONTEXT, WORKERS * SHIFTS)
    layer = IMLELayer(problem, ims.IMLE(noise=ims.SumOfGamma(k=3), lambda_=5.0), backend=backend, seed=seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    context, available, rotas = (torch.as_tensor(x) for x in weeks)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = torch.as_tensor(rng.choice(len(context), batch, replace=False))
        theta = model(context[rows]).reshape(-1, WORKERS, SHIFTS)
        table = available[rows] if per_week else torch.ones_like(available[rows])
        z = layer(theta, available=table)
        loss = ((z - rotas[rows]) ** 2).sum()  # Hamming distance: z and the labels are 0/1
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


def evaluate(model: torch.nn.Module, problem: ims.ILP, weeks: tuple, per_week: bool, backend: str) -> dict[str, float]:
    """Held-out scores: the share of shifts given to the planner's worker, the share of weeks
    reproduced exactly, and how many assignments went to unavailable workers."""
    context, available, rotas = weeks
    with torch.no_grad():
        theta = model(torch.as_tensor(context)).reshape(-1, WORKERS, SHIFTS).numpy().astype(np.float64)
    table = available if per_week else np.ones_like(available)
    z = ims.MAPOracle(problem, backend=backend)(theta, available=table)
    same_worker = (z * rotas).sum() / rotas.sum()
    return {
        "shifts given to the planner's worker": float(same_worker),
        "weeks reproduced": float(np.mean(np.all(z == rotas, axis=(1, 2)))),
        "assignments to unavailable workers": int((z * (1 - available)).sum()),
    }


def main(
    steps: int = 300, batch: int = 32, backend: str = "auto", seed: int = 0, weeks: tuple[int, int] = (512, 256)
) -> dict[str, dict[str, float]]:
    """Train both models; ``weeks``: how many training and held-out weeks. Returns the
    held-out scores of each and of an untrained model."""
    problem = ims.ILP.from_yaml(SPEC)
    rng = np.random.default_rng(seed)
    train_weeks = make_weeks(weeks[0], rng, problem, backend)
    test_weeks = make_weeks(weeks[1], rng, problem, backend)
    results = {}
    for name, per_week in (("availability per week", True), ("one fixed problem", False)):
        model = train(problem, train_weeks, steps, batch, per_week, backend, seed)
        results[name] = evaluate(model, problem, test_weeks, per_week, backend)
    untrained = torch.nn.Linear(CONTEXT, WORKERS * SHIFTS)
    results["untrained"] = evaluate(untrained, problem, test_weeks, True, backend)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--backend", default="auto", help="ILP backend: auto, ortools or scip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the results (JSON) to this file")
    arguments = parser.parse_args()
    text = json.dumps(main(arguments.steps, arguments.batch, arguments.backend, arguments.seed), indent=2)
    print(text)
    if arguments.out is not None:
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        arguments.out.write_text(text + "\n")

"""Predict-then-optimise with a knapsack declared in YAML.

Each instance has ten items with features; their true values are an unknown
non-linear function of the features. A small network predicts the values from
the features, the knapsack of ``examples/specs/knapsack.yaml`` (weights and
capacity supplied as parameters) picks the items through an I-MLE layer, and
the network is trained on the regret of that choice under the true values.
Prints the normalised regret on held-out instances before and after training.

    python examples/knapsack_from_spec.py [--epochs 8] [--backend ortools]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers.spec import load_yaml
from imle_solvers.torch import IMLELayer

SPEC = Path(__file__).parent / "specs" / "knapsack.yaml"
ITEMS, FEATURES = 10, 5


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n, ITEMS, FEATURES)`` and true item values ``(n, ITEMS)``, PyEPO style:
    a fixed random linear map, raised to a power, plus multiplicative noise."""
    mixing = np.random.default_rng(0).normal(size=FEATURES)
    features = rng.normal(size=(n, ITEMS, FEATURES))
    values = (features @ mixing / np.sqrt(FEATURES) + 3.0) ** 2 / 3.0 + 1.0
    return features.astype(np.float32), (values * rng.uniform(0.8, 1.2, size=values.shape)).astype(np.float32)


def regret(layer: IMLELayer, model: torch.nn.Module, features: torch.Tensor, values: torch.Tensor,
           best: torch.Tensor) -> float:
    """Mean of ``(v . z* - v . z_hat) / v . z*`` with ``z_hat`` the MAP state of the predictions."""
    layer.eval()
    with torch.no_grad():
        chosen = layer(model(features))
    layer.train()
    return float(((best - (values * chosen).sum(1)) / best).mean())


def main(epochs: int = 8, backend: str = "auto", seed: int = 0) -> tuple[float, float]:
    """Train; returns the held-out regret before and after."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    weights = rng.integers(1, 10, size=ITEMS)
    problem = load_yaml(SPEC, n_items=ITEMS, weights=weights, capacity=int(weights.sum() // 3))
    layer = IMLELayer(problem, ims.IMLE(noise=ims.SumOfGamma(k=3), lambda_=5.0), backend=backend, seed=seed)
    oracle = ims.MAPOracle(problem, backend=backend)

    (train_x, train_v), (test_x, test_v) = make_data(200, rng), make_data(100, rng)
    train_x, train_v, test_x, test_v = map(torch.from_numpy, (train_x, train_v, test_x, test_v))
    train_best = (train_v * oracle(train_v)).sum(1)
    test_best = (test_v * oracle(test_v)).sum(1)

    # one small network scores every item from its own features: (B, ITEMS, FEATURES) -> (B, ITEMS)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1),
                                torch.nn.Flatten(-2))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)

    before = regret(layer, model, test_x, test_v, test_best)
    print(f"held-out regret before training: {before:.3f}")
    for epoch in range(epochs):
        order = torch.randperm(len(train_x))
        for batch in order.split(20):
            chosen = layer(model(train_x[batch]))
            loss = ((train_best[batch] - (train_v[batch] * chosen).sum(1)) / train_best[batch]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        print(f"epoch {epoch + 1}: train regret {loss.item():.3f}")
    after = regret(layer, model, test_x, test_v, test_best)
    print(f"held-out regret after training:  {after:.3f}")
    return before, after


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--backend", default="auto", help="ortools, scip or auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.backend, args.seed)

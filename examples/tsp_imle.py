"""PyEPO's travelling-salesman data, trained through an I-MLE layer.

The data are PyEPO's, value for value (``imle_solvers.data.tsp_data``: 10 nodes, so 45
edges, 5 features, polynomial degree 4, noise half-width 0.5, PyEPO's seed 135). A linear
model maps the features to the 45 edge costs; the TSP layer (CP-SAT's circuit
constraint) turns them into a tour; the loss is the Hamming distance between that tour
and the true costs' optimal tour, with I-MLE's gradient (sum-of-gamma noise, 1 sample,
lambda 10), as in the shortest-path example. Reports PyEPO's normalised regret on
held-out instances before and after training.

    python examples/tsp_imle.py [--epochs 4] [--train 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers import data, metrics

NODES = 10


def main(epochs: int = 4, n_train: int = 300, n_test: int = 200, seed: int = 0,
         batch_size: int = 20) -> dict[str, float]:
    """Train; returns the held-out metrics before (``*_before``) and after training."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    x, c = data.tsp_data(n_train + n_test, 5, NODES, deg=4, noise_width=0.5)
    x_train, x_test = torch.from_numpy(x[:n_train]).float(), torch.from_numpy(x[n_train:]).float()
    c_train, c_test = c[:n_train], c[n_train:]

    problem = ims.TravellingSalesman(NODES)  # (B, 45) edge costs in PyEPO's order -> (B, 45) tours
    oracle = ims.MAPOracle(problem)
    tours_train = torch.from_numpy(oracle(c_train.astype(np.float64))).float()
    estimator = ims.IMLE(noise=ims.SumOfGamma(k=NODES), noise_temperature=1.0, lambda_=10.0, samples=1)
    layer = ims.torch.IMLELayer(problem, estimator, seed=seed)
    model = torch.nn.Linear(5, problem.n_edges)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-2)

    def held_out() -> dict[str, float]:
        with torch.no_grad():
            predicted = model(x_test).double().numpy()
        return {"normalized_regret": metrics.normalized_regret(oracle, predicted, c_test)}

    results = {f"{k}_before": v for k, v in held_out().items()}
    print(f"before training: normalised regret {results['normalized_regret_before']:.4f}")
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        for batch in np.array_split(rng.permutation(n_train), max(1, n_train // batch_size)):
            z = layer(model(x_train[batch]))  # (b, 45): perturbed optimal tours
            loss = (z - tours_train[batch]).abs().sum()  # Hamming, summed (see IMLE's lambda_)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
        print(f"epoch {epoch + 1}: Hamming loss per instance {total / n_train:.3f}")
    results.update(held_out())
    results["seconds"] = time.perf_counter() - start
    print(f"after training:  normalised regret {results['normalized_regret']:.4f} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    main(arguments.epochs, arguments.train, seed=arguments.seed)

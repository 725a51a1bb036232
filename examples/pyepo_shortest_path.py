"""PyEPO's 5x5 shortest-path benchmark, trained through an I-MLE layer.

The data are PyEPO's, value for value (``imle_solvers.data.shortest_path_data``: 5
features, polynomial degree 4, noise half-width 0.5, PyEPO's seed 135). A linear model
maps the features to the 40 arc costs; the shortest-path layer turns them into a path;
as in PyEPO's I-MLE tutorial, the loss is the L1 (Hamming) distance between that path and
the true costs' optimal path, with I-MLE's gradient (sum-of-gamma noise, 10 samples,
lambda 10). Reports PyEPO's normalised regret, and cost-accuracy and exact match, on
held-out instances before and after training.

    python examples/pyepo_shortest_path.py [--epochs 20] [--train 1000] [--seed 0] [--out m.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers import data, metrics


def main(epochs: int = 20, n_train: int = 1000, n_test: int = 1000, seed: int = 0,
         batch_size: int = 32) -> dict[str, float]:
    """Train; returns the held-out metrics before (``*_before``) and after training."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    x, c = data.shortest_path_data(n_train + n_test, 5, (5, 5), deg=4, noise_width=0.5)
    x_train, x_test = torch.from_numpy(x[:n_train]).float(), torch.from_numpy(x[n_train:]).float()
    c_train, c_test = c[:n_train], c[n_train:]

    problem = data.shortest_path_problem((5, 5))  # (B, 40) costs in PyEPO's arc order -> (B, 40) paths
    oracle = ims.MAPOracle(problem)
    paths_train = torch.from_numpy(oracle(c_train.astype(np.float64))).float()
    estimator = ims.IMLE(noise=ims.SumOfGamma(k=5), noise_temperature=1.0, lambda_=10.0, samples=10)
    layer = ims.torch.IMLELayer(problem, estimator, seed=seed)
    model = torch.nn.Linear(5, problem.shape[0])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    def held_out() -> dict[str, float]:
        with torch.no_grad():
            predicted = model(x_test).double().numpy()
        return metrics.evaluate(oracle, predicted, c_test)

    results = {f"{k}_before": v for k, v in held_out().items()}
    print(f"before training: normalised regret {results['normalized_regret_before']:.4f}")
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        for batch in np.array_split(rng.permutation(n_train), max(1, n_train // batch_size)):
            z = layer(model(x_train[batch]))  # (b, 10 samples, 40): perturbed shortest paths
            loss = (z - paths_train[batch, None]).abs().sum()  # Hamming, summed (see IMLE's lambda_)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
        print(f"epoch {epoch + 1}: Hamming loss per sample {total / (10 * n_train):.3f}")
    results.update(held_out())
    results["seconds"] = time.perf_counter() - start
    print(f"after training:  normalised regret {results['normalized_regret']:.4f}, cost-accuracy "
          f"{results['cost_accuracy']:.1%}, exact match {results['exact_match']:.1%} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    arguments = parser.parse_args()
    results = main(arguments.epochs, arguments.train, seed=arguments.seed)
    if arguments.out is not None:
        arguments.out.write_text(json.dumps(results, indent=2) + "\n")

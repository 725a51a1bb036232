"""Learn shortest paths through map images with an I-MLE layer (a small, readable version of the demo).

A CNN predicts one cost per map tile; a grid shortest-path layer turns the costs into a path;
only the true paths supervise training (the Hamming loss), never the true costs.

    python examples/warcraft_shortest_path.py            # under a minute on 2 CPU cores, ~80% cost-accuracy
    python examples/warcraft_shortest_path.py --epochs 12 --maps 2000
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers.datasets.warcraft import generate_warcraft_maps
from imle_solvers.demo import CostNet, hamming_loss


def main(epochs: int = 6, n_maps: int = 800, seed: int = 0) -> float:
    """Train on 80% of ``n_maps`` synthetic 12x12 maps; returns the held-out cost-accuracy."""
    torch.manual_seed(seed)
    maps = generate_warcraft_maps(n_maps, grid=12, seed=seed)
    n_train = int(0.8 * n_maps)
    images, paths = torch.from_numpy(maps.images), torch.from_numpy(maps.paths)

    problem = ims.GridShortestPath(12, 12)  # costs in, 0/1 path mask out; a minimisation
    estimator = ims.IMLE(noise=ims.SumOfGamma(k=int(1.3 * 12)), noise_temperature=0.5, lambda_=20.0)
    layer = ims.torch.IMLELayer(problem, estimator, seed=seed)
    net = CostNet(grid=12)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    # The learning rate decays to 0 along a cosine over all steps, as in the demo.
    n_batches = max(1, n_train // 70)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * n_batches)
    # Noise and the I-MLE target can push costs below zero; the problem clamps them to 0 by design.
    warnings.simplefilter("ignore", ims.NegativeCostWarning)

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        for batch in np.array_split(rng.permutation(n_train), n_batches):
            loss = hamming_loss(layer(net(images[batch])), paths[batch]).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        print(f"epoch {epoch + 1}: last batch Hamming loss per map {loss.item() / len(batch):.2f}")

    net.eval()
    layer.eval()  # in eval mode the layer returns the plain, unperturbed shortest path
    with torch.no_grad():
        predicted = layer(net(images[n_train:])).numpy()
    true_costs = maps.costs[n_train:].astype(np.float64)
    optimal = problem.path_cost(true_costs, maps.paths[n_train:])
    cost_accuracy = float(np.mean(problem.path_cost(true_costs, predicted) <= optimal * (1 + 1e-6)))
    print(f"held-out cost-accuracy: {cost_accuracy:.1%}")
    return cost_accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--maps", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    main(arguments.epochs, arguments.maps, arguments.seed)

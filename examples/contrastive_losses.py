"""The solution-pool and margin losses on PyEPO's 5x5 shortest path: NCE, contrastive MAP,
pointwise, pairwise and listwise learning to rank, the structured SVM loss and CaVE.

The data are PyEPO's (``imle_solvers.data.shortest_path_data``: 5 features, polynomial
degree 4, noise half-width 0.5). A linear model maps the features to the 40 arc costs.
The pool losses start from a ``SolutionPool`` of the training paths and add the paths
they solve on a share ``solve_ratio`` of the calls, as PyEPO does; NCE and CMAP compare
the true path with the pool's, the ranking losses rank the pool by the true costs. The
structured SVM loss asks the true path to beat every other by its Hamming distance (on
the negated costs: the shortest path is the MAP state of a min problem). CaVE aligns the
predicted costs with the cone of the constraints binding at the true path (flow
conservation and the arcs' bounds, ``ims.batch_tight_constraints``). Each loss trains
its own model from the same start; the script prints each one's held-out normalised
regret (lower is better) and the pool's final size.

    python examples/contrastive_losses.py [--epochs 3] [--train 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers import data, metrics


def main(epochs: int = 3, n_train: int = 500, n_test: int = 200, seed: int = 0,
         batch_size: int = 32) -> dict[str, dict[str, float]]:
    """Train one model per loss; returns, per loss name, its held-out ``normalized_regret``
    (and ``pool_start``, ``pool_size`` for the pool losses), with ``"untrained"`` for the
    shared start."""
    torch.manual_seed(seed)
    x, c = data.shortest_path_data(n_train + n_test, 5, (5, 5), deg=4, noise_width=0.5, seed=seed)
    x_train, x_test = torch.from_numpy(x[:n_train]).float(), torch.from_numpy(x[n_train:]).float()
    c_train, c_test = torch.from_numpy(c[:n_train]).float(), c[n_train:]
    problem = data.shortest_path_problem((5, 5))  # (B, 40) arc costs -> (B, 40) paths
    oracle = ims.MAPOracle(problem)
    paths = torch.from_numpy(oracle(c[:n_train].astype(np.float64))).float()
    start = torch.nn.Linear(5, problem.shape[0]).state_dict()

    def held_out(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return metrics.evaluate(oracle, model(x_test).double().numpy(), c_test)["normalized_regret"]

    def pool() -> ims.SolutionPool:
        return ims.SolutionPool(paths.numpy(), solve_ratio=0.3, seed=seed)

    # each loss as (the loss, what it compares the prediction with: the true paths or costs)
    losses = {
        "NCE": (ims.torch.NCELoss(problem, pool()), paths),
        "contrastive MAP": (ims.torch.CMAPLoss(problem, pool()), paths),
        "pointwise LTR": (ims.torch.PointwiseLTRLoss(problem, pool()), c_train),
        "pairwise LTR": (ims.torch.PairwiseLTRLoss(problem, pool()), c_train),
        "listwise LTR": (ims.torch.ListwiseLTRLoss(problem, pool()), c_train),
        "structured SVM": (ims.torch.StructuredSVMLoss(problem), paths),
        # the tight constraints of every true path, (n_train, R, 40), built once
        "CaVE": (ims.torch.CaVELoss(problem), torch.from_numpy(ims.batch_tight_constraints(problem, paths.numpy()))),
    }
    model = torch.nn.Linear(5, problem.shape[0])
    model.load_state_dict(start)
    results: dict[str, dict[str, float]] = {"untrained": {"normalized_regret": held_out(model)}}
    print(f"untrained: normalised regret {results['untrained']['normalized_regret']:.4f}")
    for name, (loss_fn, targets) in losses.items():
        began = time.perf_counter()
        model = torch.nn.Linear(5, problem.shape[0])
        model.load_state_dict(start)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            for batch in np.array_split(rng.permutation(n_train), max(1, n_train // batch_size)):
                loss = loss_fn(model(x_train[batch]), targets[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        results[name] = {"normalized_regret": held_out(model)}
        pool_note = ""
        if hasattr(loss_fn, "pool"):
            results[name]["pool_start"] = len(pool())
            results[name]["pool_size"] = len(loss_fn.pool)
            pool_note = f", pool {results[name]['pool_start']} -> {len(loss_fn.pool)} paths"
        print(f"{name}: normalised regret {results[name]['normalized_regret']:.4f}"
              f"{pool_note} ({time.perf_counter() - began:.2f} s)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    main(arguments.epochs, arguments.train, seed=arguments.seed)

"""Train a torch layer whose solver runs on two worker processes.

A linear model maps each item's features to a value; an I-MLE layer picks the
best set of items under several capacity constraints (a multi-constraint
knapsack, an integer linear program solved by OR-Tools or SCIP, whichever is
installed). The loss compares the chosen set with the set an unknown true value
vector would choose. Every step solves the batch twice (forward and backward),
spread over ``n_jobs`` workers of one persistent pool; ``with`` stops them at the
end (see docs/parallel.md).

Run: ``python examples/parallel_training.py`` (``--n-jobs 1`` to solve in-process)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch

import imle_solvers as ims
from imle_solvers.torch import IMLELayer

ITEMS, FEATURES, CONSTRAINTS = 30, 6, 3


def knapsack(seed: int = 0) -> ims.ILP:
    """``max theta.x  s.t.  W x <= capacity``, x binary ``(ITEMS,)``, W ``(CONSTRAINTS, ITEMS)``."""
    weights = np.random.default_rng(seed).integers(5, 40, size=(CONSTRAINTS, ITEMS)).astype(float)
    return ims.ILP(
        variables=(ims.Variable("x", (ITEMS,), "binary"),),
        constraints=sp.csr_array(weights),
        row_lower=np.full(CONSTRAINTS, -np.inf),
        row_upper=weights.sum(axis=1) / 3,
        theta_variables=("x",),
        name="knapsack",
    )


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(n, ITEMS, FEATURES)`` and the values ``(n, ITEMS)`` a hidden linear rule gives them."""
    rule = np.random.default_rng(0).normal(size=FEATURES)  # the same for every data set
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, ITEMS, FEATURES))
    values = features @ rule + 0.1 * rng.normal(size=(n, ITEMS))
    return torch.tensor(features), torch.tensor(values)


def main(steps: int = 40, n_jobs: int = 2, batch: int = 32, seed: int = 0) -> float:
    """Train; return the mean overlap (0..1) of chosen and optimal sets on held-out data."""
    torch.manual_seed(seed)
    problem = knapsack()
    features, values = make_data(batch * 4, seed=1)
    test_features, test_values = make_data(64, seed=2)
    model = torch.nn.Linear(FEATURES, 1, dtype=torch.float64)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    estimator = ims.IMLE(ims.SumOfGamma(k=8), lambda_=10.0)
    layer = IMLELayer(problem, estimator, seed=seed, n_jobs=n_jobs)
    with layer.oracle:  # stop the workers when training is over
        targets = layer.oracle(values)  # the sets the true values choose: (n, ITEMS)
        test_targets = layer.oracle(test_values)
        start = time.perf_counter()
        for step in range(steps):
            rows = torch.randint(0, len(features), (batch,))
            chosen = layer(model(features[rows]).squeeze(-1))
            loss = ((chosen - targets[rows]) ** 2).sum(dim=-1).mean()  # Hamming distance
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step % 10 == 0:
                print(f"step {step:3d}  Hamming loss {loss.item():6.2f}")
        seconds = time.perf_counter() - start
        layer.eval()
        with torch.no_grad():
            predicted = layer(model(test_features).squeeze(-1))
    overlap = float((predicted * test_targets).sum() / test_targets.sum())
    print(f"{steps} steps in {seconds:.1f} s with n_jobs={n_jobs}; held-out overlap {overlap:.2f}")
    return overlap


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--n-jobs", type=int, default=2)
    main(steps=parser.parse_args().steps, n_jobs=parser.parse_args().n_jobs)

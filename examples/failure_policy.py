"""Train through instances that fail: routes on a road grid whose predicted costs may
make a route unbounded, with ``on_failure="skip"``.

A linear model predicts the cost of each road (each direction of a street) from 4
features and learns, from observed shortest routes alone, to reproduce them. Early on
it predicts negative costs, and where a street costs less than nothing both ways the
cheapest walk is unbounded (drive round it for ever): the solver refuses that instance.
With ``on_failure="raise"`` the first such instance would stop training; with ``"skip"``
it gets a placeholder state, a zero gradient and a FAILED status that the loss masks,
and training goes on while the failures die out. (I-MLE's backward target shifts costs
by lambda * dL/dz: a lambda as large as the costs would make the targets unbounded too,
so every gradient would be zero; lambda = 0.1 keeps them solvable.)
Run: python examples/failure_policy.py
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import torch

import imle_solvers as ims
from imle_solvers.failures import Status


def make_data(n_instances: int, side: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, ims.Problem]:
    """Road features ``(N, E, 4)``, the observed shortest routes ``(N, E)``, the problem."""
    roads = nx.grid_2d_graph(side, side).to_directed()
    problem = ims.GraphShortestPath(roads, source=(0, 0), target=(side - 1, side - 1))
    features = torch.rand(n_instances, problem.shape[0], 4, generator=generator, dtype=torch.float64)
    true_costs = 0.2 + features @ torch.tensor([1.5, 0.2, 1.0, 0.0], dtype=torch.float64)
    routes = torch.as_tensor(ims.MAPOracle(problem)(true_costs.numpy()))
    return features, routes, problem


def main(steps: int = 150, seed: int = 0) -> dict[str, float]:
    """Train; returns the share of failed instances in the first and last 10 steps, the
    failures counted by reason, and the held-out share of routes reproduced exactly."""
    generator = torch.Generator().manual_seed(seed)
    features, routes, problem = make_data(1200, side=5, generator=generator)
    model = torch.nn.Linear(4, 1, dtype=torch.float64)
    with torch.no_grad():  # a poor start: the third feature's sign is wrong, many costs negative
        model.weight.copy_(torch.tensor([[0.3, 0.3, -0.3, 0.3]]))
        model.bias.fill_(0.4)
    layer = ims.torch.imle(
        problem, ims.IMLE(ims.SumOfGamma(k=8), noise_temperature=0.5, lambda_=0.1), seed=seed, on_failure="skip"
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    failed_share = []
    for _ in range(steps):
        batch = torch.randint(0, 1000, (32,), generator=generator)
        z, status = layer(model(features[batch]).squeeze(-1))
        solved = (status != Status.FAILED).to(z.dtype)
        loss = (solved[:, None] * (z - routes[batch]) ** 2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        failed_share.append(1 - solved.mean().item())
    layer.eval()
    with torch.no_grad():
        z, status = layer(model(features[1000:]).squeeze(-1))
    exact = ((z == routes[1000:]).all(dim=1) & (status == Status.OK)).double().mean().item()
    return {
        "failed share, first 10 steps": float(np.mean(failed_share[:10])),
        "failed share, last 10 steps": float(np.mean(failed_share[-10:])),
        "failures by reason": dict(layer.failures),
        "held-out routes reproduced": exact,
    }


if __name__ == "__main__":
    for name, value in main().items():
        print(f"{name}: {value}")

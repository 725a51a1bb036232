"""Train through a solver you wrote yourself: choose the single best of n items.

A linear scorer learns which of 5 item features predicts the label item, with the
gradient of an argmax one-hot solver given by I-MLE. Run: python examples/custom_solver.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

import imle_solvers as ims


@dataclass(frozen=True)
class PickOne(ims.Problem):
    """Choose exactly one of ``n`` items."""

    n: int
    kind: ClassVar[str] = "example-pick-one"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def sense(self) -> str:
        return "max"


@ims.register_solver(PickOne.kind, backend="python")
def pick_best(theta: np.ndarray, problem: PickOne) -> np.ndarray:
    """One instance: ``(n,)`` scores -> one-hot of the best."""
    z = np.zeros_like(theta)
    z[np.argmax(theta)] = 1.0
    return z


def main(steps: int = 300, seed: int = 0) -> float:
    """Train; returns the held-out accuracy of the chosen item."""
    generator = torch.Generator().manual_seed(seed)
    n_items, n_features = 10, 5
    true_weights = torch.tensor([2.0, -1.0, 0.0, 0.5, 0.0])
    features = torch.randn(2000, n_items, n_features, generator=generator)
    labels = (features @ true_weights).argmax(dim=1)

    scorer = torch.nn.Linear(n_features, 1, bias=False)
    layer = ims.torch.IMLELayer(PickOne(n_items), ims.IMLE(ims.Gumbel(), lambda_=10.0), seed=seed)
    optimiser = torch.optim.Adam(scorer.parameters(), lr=0.05)
    train, test = slice(0, 1600), slice(1600, None)
    for step in range(steps):
        batch = torch.randint(0, 1600, (64,), generator=generator)
        z = layer(scorer(features[train][batch]).squeeze(-1))
        target = torch.nn.functional.one_hot(labels[train][batch], n_items).to(z.dtype)
        loss = ((z - target) ** 2).sum(dim=1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    layer.eval()
    with torch.no_grad():
        chosen = layer(scorer(features[test]).squeeze(-1)).argmax(dim=1)
    accuracy = (chosen == labels[test]).float().mean().item()
    print(f"held-out accuracy of the chosen item: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()

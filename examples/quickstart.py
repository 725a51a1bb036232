"""The three-line quickstart, and a k-subset layer that learns which items matter.

A scorer sees 20 items with 4 features each; the label is the sum of a hidden value
over the 5 items that are truly relevant. Training through the top-5 I-MLE layer
makes the layer select them. Run: python examples/quickstart.py
"""

from __future__ import annotations

import torch

import imle_solvers as ims


def main(steps: int = 200, seed: int = 0) -> float:
    """Train; returns the precision of the selected items on held-out data."""
    torch.manual_seed(seed)
    n_items, k, n_features = 20, 5, 4
    layer = ims.torch.IMLELayer(ims.KSubset(n_items, k), ims.IMLE(ims.SumOfGamma(k=k), lambda_=10.0), seed=seed)

    features = torch.randn(3000, n_items, n_features)
    relevant = features[..., 0] > 0.5  # the hidden rule the scorer must find
    values = features[..., 1]
    targets = (values * relevant).sum(dim=1)

    scorer = torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimiser = torch.optim.Adam(scorer.parameters(), lr=1e-2)
    for _ in range(steps):
        batch = torch.randint(0, 2500, (100,))
        z = layer(scorer(features[batch]).squeeze(-1))  # (100, 20), exactly 5 ones per row
        prediction = (z * values[batch]).sum(dim=1)
        loss = ((prediction - targets[batch]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    layer.eval()
    with torch.no_grad():
        z = layer(scorer(features[2500:]).squeeze(-1))
    precision = ((z * relevant[2500:]).sum() / z.sum()).item()
    print(f"precision of the selected items: {precision:.3f} (chance: {relevant.float().mean().item():.3f})")
    return precision


if __name__ == "__main__":
    main()

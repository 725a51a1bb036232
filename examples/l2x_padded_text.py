"""Learning to explain (L2X) texts of different lengths: a mask keeps padding out of the explanation.

As the I-MLE paper's BeerAdvocate experiment, on synthetic reviews (generated here, no
downloads). A review has 12 to 60 tokens, padded to 60 with a pad token; one token in 12
is a sentiment token (4 positive and 4 negative words of a 200-word vocabulary, the rest
neutral), and its rating is ``#positive - #negative``. An explainer scores each
position, an I-MLE k-subset layer keeps k of them, and a predictor sees only the kept
tokens' embeddings. The positions of the sentiment tokens are the true explanation.

The pad token's embedding is zero (``padding_idx``), as usual, so a selected pad costs
the predictor nothing: with a fixed k, a short review's spare slots may go to padding
as well as to neutral words, and nothing but the mask keeps them off it. Three
pipelines, trained alike:

- ``no mask, k=3``: what one did before per-instance data, padding selectable;
- ``mask, k=3``: ``layer(scores, mask=~padding)``, padding never selected;
- ``mask, k per length``: also ``k=length // 12`` per review, as many as the review holds.

Run: ``python examples/l2x_padded_text.py [--steps 1500] [--out metrics.json]``; measured
figures in docs/instances.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import imle_solvers as ims

VOCAB, PAD = 200, 0
POSITIVE, NEGATIVE = (1, 2, 3, 4), (5, 6, 7, 8)  # tokens 9..199 are neutral
MIN_LEN, MAX_LEN, TOKENS_PER_SENTIMENT = 12, 60, 12
K = 3  # the fixed k: about the mean number of sentiment tokens in a review (2.55)
VARIANTS = {"no mask, k=3": (False, False), "mask, k=3": (True, False), "mask, k per length": (True, True)}


def make_reviews(n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """``n`` reviews: ``tokens`` ``(n, 60)`` int64 (``PAD`` after each review's end),
    ``padding`` and ``sentiment`` ``(n, 60)`` bool, ``length`` ``(n,)`` int64 and the
    rating ``y`` ``(n,)`` float32. A review of length L holds ``L // 12`` sentiment tokens."""
    length = rng.integers(MIN_LEN, MAX_LEN + 1, n)
    tokens = rng.integers(NEGATIVE[-1] + 1, VOCAB, (n, MAX_LEN))  # first, only neutral words
    sentiment = np.zeros((n, MAX_LEN), dtype=bool)
    y = np.zeros(n, dtype=np.float32)
    for i, n_tokens in enumerate(length):
        positions = rng.choice(n_tokens, n_tokens // TOKENS_PER_SENTIMENT, replace=False)
        words = rng.choice(POSITIVE + NEGATIVE, len(positions))
        tokens[i, positions], sentiment[i, positions] = words, True
        y[i] = np.isin(words, POSITIVE).sum() - np.isin(words, NEGATIVE).sum()
    padding = np.arange(MAX_LEN) >= length[:, None]
    tokens[padding] = PAD
    arrays = {"tokens": tokens, "padding": padding, "sentiment": sentiment, "length": length, "y": y}
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


class Explainer(torch.nn.Module):
    """Token scores: ``tokens (B, 60) -> scores (B, 60)``, a convolution over 3 tokens."""

    def __init__(self, dim: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.conv = torch.nn.Conv1d(dim, hidden, kernel_size=3, padding=1)
        self.out = torch.nn.Conv1d(hidden, 1, kernel_size=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embedding(tokens).transpose(1, 2)  # (B, dim, 60)
        return self.out(torch.relu(self.conv(h))).squeeze(1)


class Predictor(torch.nn.Module):
    """The rating from the selected tokens only: ``tokens (B, 60), z (B, 60) -> y (B,)``."""

    def __init__(self, dim: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, dim, padding_idx=PAD)  # the pad embedding is zero
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        selected = (z.unsqueeze(-1) * self.embedding(tokens)).sum(dim=1)  # (B, dim)
        return self.mlp(selected).squeeze(-1)


def instance_data(reviews: dict[str, torch.Tensor], masked: bool, k_per_length: bool) -> dict[str, torch.Tensor]:
    """The layer's per-instance data: ``mask`` ``(B, 60)`` bool and ``k`` ``(B,)``, as the variant uses."""
    data = {"mask": ~reviews["padding"]} if masked else {}
    if k_per_length:
        data["k"] = reviews["length"] // TOKENS_PER_SENTIMENT
    return data


def train(
    train_set: dict[str, torch.Tensor],
    test_set: dict[str, torch.Tensor],
    masked: bool,
    k_per_length: bool,
    steps: int,
    seed: int,
    batch: int = 64,
) -> dict[str, float]:
    """Train explainer and predictor with Adam; held-out R^2 of the rating, precision and
    recall of the selected positions, and the padding positions selected (training
    samples and held-out MAP states)."""
    torch.manual_seed(seed)
    explainer, predictor = Explainer(), Predictor()
    layer = ims.torch.IMLELayer(ims.KSubset(n=MAX_LEN, k=K), ims.IMLE(ims.SumOfGamma(k=K), lambda_=10.0), seed=seed)
    optimiser = torch.optim.Adam([*explainer.parameters(), *predictor.parameters()], lr=1e-2)
    padding_in_training = selected_in_training = 0
    for _ in range(steps):
        rows = torch.randint(0, len(train_set["y"]), (batch,))
        reviews = {name: value[rows] for name, value in train_set.items()}
        z = layer(explainer(reviews["tokens"]), **instance_data(reviews, masked, k_per_length))  # (B, 60)
        padding_in_training += int(z.detach()[reviews["padding"]].sum())
        selected_in_training += int(z.detach().sum())
        loss = ((predictor(reviews["tokens"], z) - reviews["y"]) ** 2).sum()  # summed: lambda in score units
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    layer.eval()
    with torch.no_grad():
        z = layer(explainer(test_set["tokens"]), **instance_data(test_set, masked, k_per_length))
        y = test_set["y"]
        mse = ((predictor(test_set["tokens"], z) - y) ** 2).mean()
    hits = (z * test_set["sentiment"]).sum()
    return {
        "r2": float(1 - mse / y.var()),
        "precision": float(hits / z.sum()),
        "recall": float(hits / test_set["sentiment"].sum()),
        "padding selected, test": int(z[test_set["padding"]].sum()),
        "padding selected, training": padding_in_training,
        "padding share, training": padding_in_training / max(selected_in_training, 1),
    }


def main(steps: int = 1500, seed: int = 0) -> dict:
    """Train the three variants for ``steps`` steps each; their held-out metrics by name,
    with ``chance precision`` (the share of a review's tokens that carry sentiment: a
    selection at random among the review's own tokens) and ``best precision, k=3`` (a
    review with fewer than 3 sentiment tokens leaves the rest of a fixed k=3 to others)."""
    rng = np.random.default_rng(seed)
    train_set, test_set = make_reviews(4000, rng), make_reviews(1000, rng)
    n_sentiment = test_set["sentiment"].sum(dim=1)  # (1000,)
    results: dict = {
        "chance precision": float((n_sentiment / test_set["length"]).mean()),
        "best precision, k=3": float(n_sentiment.clamp(max=K).sum() / (K * len(n_sentiment))),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models this small run fastest on one thread (and far faster on a busy machine)
    try:
        for name, (masked, k_per_length) in VARIANTS.items():
            start = time.perf_counter()
            results[name] = train(train_set, test_set, masked, k_per_length, steps, seed)
            results[name]["seconds"] = round(time.perf_counter() - start, 1)
    finally:
        torch.set_num_threads(threads)
    print(
        f"{steps} steps; precision by chance {results['chance precision']:.3f}, "
        f"at best with k=3 {results['best precision, k=3']:.3f}"
    )
    print(f"{'':20} {'R^2':>6} {'precision':>9} {'recall':>6}  {'pads selected: test':>19}  {'training':>14}  seconds")
    for name in VARIANTS:
        r = results[name]
        training = f"{r['padding selected, training']} ({r['padding share, training']:.1%})"
        print(
            f"{name:20} {r['r2']:6.3f} {r['precision']:9.3f} {r['recall']:6.3f}  "
            f"{r['padding selected, test']:19d}  {training:>14}  {r['seconds']:7.1f}"
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    args = parser.parse_args()
    metrics = main(steps=args.steps, seed=args.seed)
    if args.out is not None:
        args.out.write_text(json.dumps(metrics, indent=2) + "\n")

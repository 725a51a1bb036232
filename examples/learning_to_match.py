"""Learning to match: sort handwritten digits through a bipartite-matching layer.

An instance is ``n = 5`` images of scikit-learn's 8x8 digits (no downloads) with five
distinct labels, in random order. The target is the permutation that sorts them by
label: image ``i`` goes to rank position ``j``, a 0/1 matrix ``P`` (5 x 5) with one 1 in
every row and column. A small MLP scores each image against each of the 5 positions
(the same MLP for every image: a ``(B, 5, 5)`` score matrix), a
``BipartiteMatching(5, 5)`` layer turns the scores into a permutation matrix ``z``, and
the loss is the Hamming distance ``sum z (1 - P) + (1 - z) P`` to the true one; the
gradient goes through the matching with I-MLE (Gumbel noise). The network never sees a
label: only the permutations.

The network scores each image alone, yet an image's rank depends on the other four
(a 5 is first among 6, 7, 8, 9 and last among 0, 1, 2, 3). The matching supplies that
context: by the rearrangement inequality, scores ``a_j v_i`` with ``a_j`` increasing in
``j`` are maximised by sorting the images by ``v_i``, so the network only has to learn a
value that grows with the digit, and the solver sorts.

The baseline is the same MLP trained on the same permutations with a cross-entropy per
image over the 5 positions (its true rank as the class), evaluated two ways:

- ``argmax per image``: each image to its most likely position, no matching
  constraint: two images can claim one position (an invalid assignment);
- ``matched at test time``: the same scores through the solver (a valid permutation).

Run: ``python examples/learning_to_match.py [--steps 2000] [--out runs/learning-to-match]``
(the full run) or ``--short`` (the tests' version). Writes ``learning_to_match.png`` (a few
held-out instances: input order and predicted order) and ``metrics.json`` to ``--out``.
``--seeds 0 1 2`` runs both methods once per seed (image split, held-out instances,
initialisation, batches and noise all follow the seed) and writes one ``metrics.json``
holding every seed's metrics and, per method and figure, the mean and sample standard
deviation over the seeds; the picture is the first seed's. Measured figures in
docs/gallery/matching.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import imle_solvers as ims

N = 5  # images per instance


def load_digits(seed: int, n_test_images: int = 600) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's digits, ``(images (m, 64) float32 in [0, 1], labels (m,))``, split
    into disjoint train and test pools of images (held-out instances use unseen images)."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    images, labels = (digits.data.astype(np.float32) / 16.0)[order], digits.target[order]
    return {
        "train": (images[n_test_images:], labels[n_test_images:]),
        "test": (images[:n_test_images], labels[:n_test_images]),
    }


def make_instances(
    pool: tuple[np.ndarray, np.ndarray], count: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` instances: ``x (count, N, 64)``, ``labels (count, N)`` and the sorting
    permutation ``P (count, N, N)``, ``P[b, i, j] = 1`` when image ``i`` has rank ``j``."""
    images, labels = pool
    by_label = [np.flatnonzero(labels == d) for d in range(10)]
    chosen = np.stack([rng.choice(10, N, replace=False) for _ in range(count)])  # distinct labels, random order
    index = np.stack([[rng.choice(by_label[d]) for d in row] for row in chosen])
    rank = chosen.argsort(1).argsort(1)  # labels distinct: the rank of each image in its instance
    permutation = np.eye(N, dtype=np.float32)[rank]
    return torch.from_numpy(images[index]), torch.from_numpy(chosen), torch.from_numpy(permutation)


def scorer(seed: int, hidden: int = 128) -> torch.nn.Module:
    """``(B, N, 64) -> (B, N, N)``: each image's score for each position, image by image."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, N),
    )


def accuracy(z: torch.Tensor, permutation: torch.Tensor) -> dict[str, float]:
    """Share of instances whose assignment is exactly the true permutation, share of images
    put at their true position, and share of instances whose assignment is no permutation."""
    correct = (z * permutation).sum(-1)  # (B, N): 1 where image i sits at its true position
    valid = (z.sum(1) == 1).all(-1) & (z.sum(2) == 1).all(-1)
    return {
        "exact permutations": float((correct.sum(-1) == N).float().mean()),
        "images placed right": float(correct.mean()),
        "invalid assignments": float((~valid).float().mean()),
    }


def train_imle(
    pools: dict, test: tuple, steps: int, batch: int, seed: int, lambda_: float, lr: float
) -> tuple[torch.nn.Module, dict]:
    """The scorer trained through the matching layer on the Hamming loss."""
    model = scorer(seed)
    layer = ims.torch.IMLELayer(ims.BipartiteMatching(N, N), ims.IMLE(ims.Gumbel(), lambda_=lambda_), seed=seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed + 1)
    for _ in range(steps):
        x, _, permutation = make_instances(pools["train"], batch, rng)
        z = layer(model(x))
        loss = (z * (1 - permutation) + (1 - z) * permutation).sum()  # Hamming, summed: lambda in score units
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    layer.eval()
    with torch.no_grad():
        z = layer(model(test[0]))
    return model, {"I-MLE through the matching": accuracy(z, test[2])}


def train_baseline(
    pools: dict, test: tuple, steps: int, batch: int, seed: int, lr: float
) -> tuple[torch.nn.Module, dict]:
    """The same scorer, a cross-entropy per image over the positions; argmax per image, or
    the solver at test time."""
    model = scorer(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed + 1)  # the same instances as I-MLE's
    for _ in range(steps):
        x, _, permutation = make_instances(pools["train"], batch, rng)
        loss = torch.nn.functional.cross_entropy(
            model(x).reshape(-1, N), permutation.argmax(-1).reshape(-1), reduction="sum"
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        scores = model(test[0])
    argmax = torch.nn.functional.one_hot(scores.argmax(-1), N).float()
    matched = ims.MAPOracle(ims.BipartiteMatching(N, N))(scores)
    return model, {
        "baseline: cross-entropy, argmax per image": accuracy(argmax, test[2]),
        "baseline: cross-entropy, matched at test time": accuracy(matched, test[2]),
    }


def picture(path: Path, test: tuple, predictions: dict[str, torch.Tensor], n_show: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, labels, permutation = test
    names = list(predictions)
    fig, axes = plt.subplots(n_show, 1 + len(names), figsize=(2.3 * (1 + len(names)), 0.62 * n_show + 0.6))
    for row in range(n_show):
        panels = [("input order", torch.arange(N), None)]
        for name in names:
            z = predictions[name][row]
            position_of = z.argmax(-1)  # image i -> its assigned position (argmax: may collide)
            order = torch.full((N,), -1, dtype=torch.long)
            for i in range(N):
                if order[position_of[i]] < 0:
                    order[position_of[i]] = i
            panels.append((name, order, bool((z == permutation[row]).all())))
        for col, (name, order, right) in enumerate(panels):
            ax = axes[row, col]
            canvas = np.ones((8, N * 9 - 1))
            for slot, i in enumerate(order.tolist()):
                if i >= 0:
                    canvas[:, slot * 9 : slot * 9 + 8] = x[row, i].reshape(8, 8).numpy()
                else:  # a position nobody was assigned to
                    canvas[:, slot * 9 : slot * 9 + 8] = 0.5
            ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=8)
            if right is not None:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green" if right else "tab:red")
                    spine.set_linewidth(2.5)
            labelled = [str(int(labels[row, i])) if i >= 0 else "-" for i in order.tolist()]
            ax.set_xlabel(" ".join(labelled), fontsize=8, labelpad=1)
    fig.suptitle(
        "held-out instances: sorted by digit? (green: exactly right; grey tile: position left empty)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(
    steps: int = 2000,
    batch: int = 32,
    n_test: int = 1000,
    seed: int = 0,
    lambda_: float = 10.0,
    lr: float = 1e-3,
    out: Path | None = Path("runs/learning-to-match"),
) -> dict:
    """Train I-MLE and the baseline for ``steps`` steps of ``batch`` instances each; the
    held-out accuracies by method, with chance's, and the seconds; writes the picture
    and ``metrics.json`` to ``out`` (None: nothing written)."""
    pools = load_digits(seed)
    test = make_instances(pools["test"], n_test, np.random.default_rng(seed + 2))
    results: dict = {
        "steps": steps,
        "batch": batch,
        "n_test": n_test,
        "seed": seed,
        "lambda": lambda_,
        "chance": {"exact permutations": 1 / math.factorial(N), "images placed right": 1 / N},
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models this small run fastest on one thread
    try:
        start = time.perf_counter()
        imle_model, imle_results = train_imle(pools, test, steps, batch, seed, lambda_, lr)
        results |= imle_results
        results["seconds, I-MLE"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        baseline_model, baseline_results = train_baseline(pools, test, steps, batch, seed, lr)
        results |= baseline_results
        results["seconds, baseline"] = round(time.perf_counter() - start, 1)
    finally:
        torch.set_num_threads(threads)
    print(f"{steps} steps of {batch} instances; {n_test} held-out instances of {N} unseen images")
    print(f"{'':48} {'exact':>6} {'placed':>6} {'invalid':>7}")
    for name, r in results.items():
        if isinstance(r, dict) and "images placed right" in r:
            invalid = f"{r['invalid assignments']:7.1%}" if "invalid assignments" in r else ""
            print(f"{name:48} {r['exact permutations']:6.1%} {r['images placed right']:6.1%} {invalid}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            imle_z = ims.MAPOracle(ims.BipartiteMatching(N, N))(imle_model(test[0][:8]))
            baseline_scores = baseline_model(test[0][:8])
        predictions = {
            "I-MLE": imle_z,
            "baseline, argmax": torch.nn.functional.one_hot(baseline_scores.argmax(-1), N).float(),
            "baseline, matched": ims.MAPOracle(ims.BipartiteMatching(N, N))(baseline_scores),
        }
        picture(out / "learning_to_match.png", test, predictions)
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


METHODS = (
    "I-MLE through the matching",
    "baseline: cross-entropy, argmax per image",
    "baseline: cross-entropy, matched at test time",
)
FIGURES = ("exact permutations", "images placed right", "invalid assignments")


def across_seeds(values: list[float]) -> dict:
    """``{"mean", "sd", "per seed"}`` of one figure over the seeds; ``sd`` is the sample
    standard deviation (``n - 1`` in the denominator; 0 for a single seed)."""
    array = np.asarray(values, dtype=float)
    sd = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "sd": sd, "per seed": [float(v) for v in values]}


def main_seeds(seeds: list[int], out: Path | None = Path("runs/learning-to-match"), **settings) -> dict:
    """``main(seed=s, **settings)`` once per seed; ``{"seeds", "per seed": {seed: main's
    metrics}, "summary": {method: {figure: across_seeds(...)}, "seconds, I-MLE": ...,
    "seconds, baseline": ...}, "chance": ...}``. Writes the first seed's picture and this
    ``metrics.json`` to ``out`` (None: nothing written)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    per_seed = {}
    for index, seed in enumerate(seeds):
        print(f"seed {seed}")
        per_seed[str(seed)] = main(seed=seed, out=out if index == 0 else None, **settings)
    runs = list(per_seed.values())
    summary: dict = {m: {f: across_seeds([r[m][f] for r in runs]) for f in FIGURES} for m in METHODS}
    for clock in ("seconds, I-MLE", "seconds, baseline"):
        summary[clock] = across_seeds([r[clock] for r in runs])
    first = runs[0]
    results = {"seeds": list(seeds), **{key: first[key] for key in ("steps", "batch", "n_test", "lambda", "chance")},
               "per seed": per_seed, "summary": summary}
    print(f"over seeds {seeds}, mean ± sd:")
    for method in METHODS:
        print(f"{method:48} " + "  ".join(f"{f} {summary[method][f]['mean']:.1%} ± {summary[method][f]['sd']:.1%}"
                                          for f in FIGURES))
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")  # over the first seed's own
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per method")
    parser.add_argument("--short", "--quick", action="store_true", help="300 steps, 300 held-out instances (what the tests run)")
    parser.add_argument("--lambda", dest="lambda_", type=float, default=10.0, help="I-MLE's lambda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run every seed given (instead of --seed); metrics.json holds each and their mean ± sd")
    parser.add_argument("--out", type=Path, default=Path("runs/learning-to-match"))
    args = parser.parse_args()
    settings = {"steps": 300, "n_test": 300} if args.short else {"steps": args.steps}
    if args.seeds is not None:
        main_seeds(args.seeds, lambda_=args.lambda_, out=args.out, **settings)
    else:
        main(seed=args.seed, lambda_=args.lambda_, out=args.out, **settings)

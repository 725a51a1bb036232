"""Learning to explain (L2X) with a k-subset layer: L2X's synthetic data sets and 8x8 digits.

Instance-wise feature selection (Chen, Song, Wainwright, Jordan, *Learning to Explain*,
ICML 2018), trained as in the I-MLE paper: a *selector* MLP scores the features of
``x``, a k-subset layer keeps ``k`` of them (``z``, exactly ``k`` ones), and a *predictor*
MLP sees only ``x * z`` and predicts the label. At test time the layer returns the MAP
state (the ``k`` best-scored features).

The four synthetic data sets of L2X, 10 features ``x ~ N(0, I)``, a binary label whose
probability depends only on a known set of relevant features (written as L2X's data
script writes them; the predictor is trained on the class probabilities, as there):

- ``XOR`` (k=2): ``P(y=1 | x) = 1 / (1 + exp(x1 x2))``; relevant {x1, x2}.
- ``orange skin`` (k=4): ``P(y=1 | x) = 1 / (1 + exp(sum_{i<=4} x_i^2 - 4))``; relevant x1..x4.
- ``nonlinear additive`` (k=4): ``P(y=1 | x) = 1 / (1 + exp(-100 sin(0.2 x1) + |x2| + x3
  + exp(-x4) - 2.4))``; relevant x1..x4.
- ``switch`` (k=5): ``x10`` is drawn from N(+3, 1) or N(-3, 1) with equal chance; with +3
  the label follows orange skin on x1..x4, with -3 nonlinear additive on x5..x8; the
  relevant set, {x10} and the 4 features of its branch, depends on the sample.

Metric: subset precision, the share of the selected features that are truly relevant,
per sample, averaged over 2000 held-out samples (``k`` equals the number of relevant
features, so it is also the recall), and the predictor's accuracy on ``x * z`` against
the label of the larger true class probability.

Estimators through the same layer, networks and training:

- ``I-MLE``: ``IMLE(SumOfGamma(k), lambda_=10)``, the loss summed over the batch;
- ``I-MLE (Gumbel)``: the same with ``Gumbel()`` noise;
- ``STE``: ``STE(SumOfGamma(k))``, the upstream gradient passed straight through;
- ``L2X (relaxed)``: L2X's own continuous relaxation, written here: ``k`` Gumbel-softmax
  draws at temperature 0.1, their elementwise maximum as a soft mask (no layer).

Digits (``sklearn.datasets.load_digits``, 1797 images of 8x8 pixels, 10 classes): the
same pipeline keeps ``k`` of 64 pixels per image; the predictor's held-out accuracy with
the selected pixels is compared with a predictor trained and tested on ``k`` pixels drawn
at random per image, and one that sees all 64. (As in every L2X setup the selector sees
the whole image, so *which* pixels are kept can itself carry information.)

Run: ``python examples/l2x_synthetic.py [--quick] [--out runs/l2x_synthetic]``; the
measured figures are in docs/gallery/l2x.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import imle_solvers as ims

N_FEATURES = 10
DATASETS = {"XOR": 2, "orange skin": 4, "nonlinear additive": 4, "switch": 5}  # name: k
METHODS = ("I-MLE", "I-MLE (Gumbel)", "STE", "L2X (relaxed)")
PAPER_BEER = {"I-MLE (tau=30)": 47.98, "SoftSub": 44.44, "I-MLE (Gumbel)": 39.28, "STE": 38.93, "L2X": 26.65}
LAMBDA = 10.0
RELAXED_TEMPERATURE = 0.1


# --- data ---------------------------------------------------------------------------


def _sigmoid_of_minus(logit: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(logit))``, computed without overflow."""
    return 1.0 / (1.0 + np.exp(np.clip(logit, -50, 50)))


def xor_probability(x: np.ndarray) -> np.ndarray:
    return _sigmoid_of_minus(x[:, 0] * x[:, 1])


def orange_skin_probability(x: np.ndarray) -> np.ndarray:
    return _sigmoid_of_minus((x[:, :4] ** 2).sum(axis=1) - 4.0)


def additive_probability(x: np.ndarray) -> np.ndarray:
    return _sigmoid_of_minus(-100 * np.sin(0.2 * x[:, 0]) + np.abs(x[:, 1]) + x[:, 2] + np.exp(-x[:, 3]) - 2.4)


def make_synthetic(name: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` samples of data set ``name``: ``x`` ``(n, 10)`` float32, ``p`` ``(n,)`` the
    probability of class 1, ``relevant`` ``(n, 10)`` bool, the truly relevant features."""
    x = rng.normal(size=(n, N_FEATURES))
    relevant = np.zeros((n, N_FEATURES), dtype=bool)
    if name == "XOR":
        p, relevant[:, :2] = xor_probability(x), True
    elif name == "orange skin":
        p, relevant[:, :4] = orange_skin_probability(x), True
    elif name == "nonlinear additive":
        p, relevant[:, :4] = additive_probability(x), True
    elif name == "switch":
        orange = rng.random(n) < 0.5
        x[:, 9] += np.where(orange, 3.0, -3.0)
        p = np.where(orange, orange_skin_probability(x), additive_probability(x[:, 4:8]))
        relevant[:, 9] = True
        relevant[orange, :4] = True
        relevant[~orange, 4:8] = True
    else:
        raise ValueError(f"unknown data set {name!r}; expected one of {list(DATASETS)}")
    return {"x": x.astype(np.float32), "p": p.astype(np.float32), "relevant": relevant}


def make_digits(rng: np.random.Generator, n_test: int = 450) -> tuple[dict, dict]:
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1], split at random into training and
    held-out sets: ``x`` ``(n, 64)`` float32, ``y`` ``(n,)`` int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    order = rng.permutation(len(y))
    test, train = order[:n_test], order[n_test:]
    return {"x": x[train], "y": y[train]}, {"x": x[test], "y": y[test]}


# --- models ---------------------------------------------------------------------------


def mlp(n_in: int, hidden: int, n_out: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, n_out),
    )


def relaxed_subset(scores: torch.Tensor, k: int, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """L2X's continuous subset sampling: ``k`` Gumbel-softmax draws over the ``n`` features of
    each row, their elementwise maximum, ``(B, n)`` in [0, 1]."""
    u = torch.rand((k, *scores.shape), generator=generator).clamp_(1e-10, 1.0)
    gumbel = -torch.log(-torch.log(u))
    return torch.softmax((scores + gumbel) / temperature, dim=-1).amax(dim=0)


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros_like(scores).scatter_(1, scores.topk(k, dim=1).indices, 1.0)


class Selection:
    """A method's training-time subset ``z (B, n)`` and its held-out MAP state."""

    def __init__(self, method: str, n: int, k: int, seed: int) -> None:
        self.method, self.k = method, k
        self.generator = torch.Generator().manual_seed(seed)
        estimators = {
            "I-MLE": lambda: ims.IMLE(ims.SumOfGamma(k=k), lambda_=LAMBDA),
            "I-MLE (Gumbel)": lambda: ims.IMLE(ims.Gumbel(), lambda_=LAMBDA),
            "STE": lambda: ims.STE(ims.SumOfGamma(k=k)),
        }
        self.layer = None
        if method in estimators:
            self.layer = ims.torch.IMLELayer(ims.KSubset(n, k), estimators[method](), seed=seed)
        elif method not in ("L2X (relaxed)", "random", "all"):
            raise ValueError(f"unknown method {method!r}")

    def train_mask(self, scores: torch.Tensor) -> torch.Tensor:
        if self.layer is not None:
            return self.layer(scores)
        if self.method == "L2X (relaxed)":
            return relaxed_subset(scores, self.k, RELAXED_TEMPERATURE, self.generator)
        return self.test_mask(scores)

    def test_mask(self, scores: torch.Tensor) -> torch.Tensor:
        if self.method == "all":
            return torch.ones_like(scores)
        if self.method == "random":  # k features drawn uniformly per row
            noise = torch.rand(scores.shape, generator=self.generator)
            return top_k_mask(noise, self.k)
        return top_k_mask(scores.detach(), self.k)


def train(
    method: str, train_set: dict, test_set: dict, k: int, n_classes: int, steps: int, seed: int,
    batch: int = 100, hidden: tuple[int, int] = (100, 200), lr: float = 1e-3,
) -> dict:
    """Train selector and predictor with Adam on the cross-entropy summed over the batch
    (soft labels ``p`` for the synthetic sets, classes ``y`` for digits). Returns the
    held-out selection ``z`` (numpy) and predictor accuracy."""
    torch.manual_seed(seed)
    n = train_set["x"].shape[1]
    selector, predictor = mlp(n, hidden[0], n), mlp(n, hidden[1], n_classes)
    selection = Selection(method, n, k, seed)
    optimiser = torch.optim.Adam([*selector.parameters(), *predictor.parameters()], lr=lr)
    x_train = torch.from_numpy(train_set["x"])
    soft = "p" in train_set
    target = torch.from_numpy(np.stack([1 - train_set["p"], train_set["p"]], axis=1) if soft else train_set["y"])
    rows = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(0, len(x_train), (batch,), generator=rows)
        x = x_train[index]
        z = selection.train_mask(selector(x))
        logits = predictor(x * z)
        if soft:
            loss = -(target[index] * F.log_softmax(logits, dim=1)).sum()
        else:
            loss = F.cross_entropy(logits, target[index], reduction="sum")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    with torch.no_grad():
        x = torch.from_numpy(test_set["x"])
        z = selection.test_mask(selector(x))
        predicted = predictor(x * z).argmax(dim=1).numpy()
    label = (test_set["p"] > 0.5).astype(np.int64) if soft else test_set["y"]
    return {"z": z.numpy(), "accuracy": float((predicted == label).mean())}


def sample_sd(values: list[float]) -> float:
    """The sample standard deviation over the seeds (``n - 1`` in the denominator; 0 for one seed)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def subset_precision(z: np.ndarray, relevant: np.ndarray) -> float:
    """The share of the selected features that are relevant, per sample, averaged."""
    return float(((z * relevant).sum(axis=1) / z.sum(axis=1)).mean())


# --- the runs ------------------------------------------------------------------------


def run_synthetic(steps: int, seeds: list[int], n_train: int, n_test: int, datasets: tuple, methods: tuple) -> dict:
    results = {}
    for d, (name, k) in enumerate(DATASETS.items()):
        if name not in datasets:
            continue
        rng = np.random.default_rng([d, 2018])
        train_set, test_set = make_synthetic(name, n_train, rng), make_synthetic(name, n_test, rng)
        entry: dict = {"k": k, "chance precision": float(test_set["relevant"].mean())}
        for method in methods:
            start = time.perf_counter()
            runs = [train(method, train_set, test_set, k, 2, steps, seed) for seed in seeds]
            precision = [subset_precision(r["z"], test_set["relevant"]) for r in runs]
            accuracy = [r["accuracy"] for r in runs]
            entry[method] = {
                "precision": float(np.mean(precision)),
                "precision sd": sample_sd(precision),
                "precision per seed": precision,
                "accuracy": float(np.mean(accuracy)),
                "accuracy sd": sample_sd(accuracy),
                "accuracy per seed": accuracy,
                "seconds": round(time.perf_counter() - start, 1),
            }
        results[name] = entry
    return results


def run_digits(steps: int, seeds: list[int], k: int, methods: tuple) -> tuple[dict, dict]:
    train_set, test_set = make_digits(np.random.default_rng(1797))
    results: dict = {"k": k, "pixels": 64, "test images": len(test_set["y"])}
    kept = None
    for method in (*methods, "random", "all"):
        start = time.perf_counter()
        runs = [train(method, train_set, test_set, k, 10, steps, seed, batch=64, hidden=(128, 128)) for seed in seeds]
        accuracy = [r["accuracy"] for r in runs]
        results[method] = {
            "accuracy": float(np.mean(accuracy)),
            "accuracy sd": sample_sd(accuracy),
            "accuracy per seed": accuracy,
            "distinct pixels selected": int((runs[0]["z"].sum(axis=0) > 0).sum()),  # the first seed's
            "distinct pixels selected per seed": [int((r["z"].sum(axis=0) > 0).sum()) for r in runs],
            "seconds": round(time.perf_counter() - start, 1),
        }
        if method == "I-MLE":
            kept = runs[0]["z"]  # the picture shows the first seed's selection
    return results, {"x": test_set["x"], "y": test_set["y"], "z": kept}


def plot_synthetic(results: dict, methods: tuple, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=110)
    width = 0.8 / len(methods)
    names = list(results)
    for m, method in enumerate(methods):
        means = [results[name][method]["precision"] for name in names]
        sds = [results[name][method]["precision sd"] for name in names]
        ax.bar(np.arange(len(names)) + (m - (len(methods) - 1) / 2) * width, means, width, yerr=sds, label=method)
    for i, name in enumerate(names):
        ax.plot([i - 0.45, i + 0.45], [results[name]["chance precision"]] * 2, "k:", lw=1)
    ax.set_xticks(range(len(names)), [f"{name}\n(k={results[name]['k']})" for name in names])
    ax.set_ylabel("subset precision (held out)")
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False, fontsize=8, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_digits(kept: dict, k: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 10, figsize=(10, 2.4), dpi=100)
    for digit in range(10):
        first = np.flatnonzero(kept["y"] == digit)[:2]
        for row, index in enumerate(first):
            ax = axes[row, digit]
            ax.imshow(kept["x"][index].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            rows, cols = np.divmod(np.flatnonzero(kept["z"][index]), 8)
            ax.scatter(cols, rows, s=36, facecolors="none", edgecolors="red", linewidths=1.5)
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"the {k} pixels I-MLE keeps (red) on held-out digits", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(
    steps: int = 1000, digit_steps: int = 1500, seeds: int = 1, n_train: int = 10_000, n_test: int = 2000,
    digit_k: int = 8, datasets: tuple = tuple(DATASETS), methods: tuple = METHODS, digits: bool = True,
    out: Path | None = None,
) -> dict:
    """Train ``methods`` on the synthetic ``datasets`` and (``digits``) on digits; the metrics by name."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # networks this small run fastest on one thread
    start = time.perf_counter()
    try:
        seed_list = list(range(seeds))
        results: dict = {"steps": steps, "digit steps": digit_steps, "seeds": seeds, "lambda": LAMBDA}
        results["synthetic"] = run_synthetic(steps, seed_list, n_train, n_test, datasets, methods)
        if digits:
            results["digits"], kept = run_digits(digit_steps, seed_list, digit_k, methods)
    finally:
        torch.set_num_threads(threads)
    results["paper BeerAdvocate precision"] = PAPER_BEER
    results["seconds"] = round(time.perf_counter() - start, 1)

    print(f"subset precision, held out (mean ± sd over {seeds} seeds; accuracy of the predictor in brackets)")
    print(f"{'':22}" + "".join(f"{m:>22}" for m in methods) + f"{'chance':>8}")
    for name, entry in results["synthetic"].items():
        cells = "".join(
            f"{entry[m]['precision']:>10.3f} ± {entry[m]['precision sd']:.3f} ({entry[m]['accuracy']:.2f})" for m in methods
        )
        print(f"{name + ' (k=' + str(entry['k']) + ')':22}{cells}{entry['chance precision']:>8.3f}")
    if digits:
        d = results["digits"]
        print(f"digits, {digit_k} of 64 pixels, held-out accuracy: " + ", ".join(
            f"{m} {d[m]['accuracy']:.3f}" for m in (*methods, "random", "all")))
    print(f"{results['seconds']} s")
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        out.mkdir(parents=True, exist_ok=True)
        plot_synthetic(results["synthetic"], methods, out / "l2x-synthetic.png")
        if digits:
            plot_digits(kept, digit_k, out / "l2x-digits.png")
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps on each synthetic set")
    parser.add_argument("--digit-steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=1,
                        help="train every method with seeds 0 .. SEEDS-1; metrics.json: per seed, mean and sample sd")
    parser.add_argument("--digit-k", type=int, default=8)
    parser.add_argument("--short", "--quick", dest="quick", action="store_true", help="short version: 300 steps, 1 seed, 3000 samples")
    parser.add_argument("--out", type=Path, default=Path("runs/l2x_synthetic"))
    args = parser.parse_args()
    if args.quick:
        main(steps=300, digit_steps=400, seeds=1, n_train=3000, n_test=1000, digit_k=args.digit_k, out=args.out)
    else:
        main(steps=args.steps, digit_steps=args.digit_steps, seeds=args.seeds, digit_k=args.digit_k, out=args.out)

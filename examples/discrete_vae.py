"""A discrete VAE on scikit-learn's 8x8 digits whose code is 20 k-subsets (10 of 20 each).

As the I-MLE paper's VAE experiment (there on MNIST), on the 1797 digits that ship with
scikit-learn (no downloads), pixels scaled to [0, 1]. An encoder MLP maps an image to
scores ``theta`` of shape ``(B, 20, 20)``: 20 latent variables, each a choice of 10 of 20
items. One ``KSubset(20, 10)`` layer samples all of them at once (the scores reshaped to
``(B * 20, 20)``: the layer takes a batch of instances), and a decoder MLP maps the
400-bit code to pixel logits (a Bernoulli likelihood per pixel).

The loss is the negative ELBO, per image,

    -ELBO = BCE(x, decoder(z)) + sum over the 20 variables of KL(p_theta || uniform),

- the reconstruction term on one perturb-and-MAP sample ``z = topk(theta + eps)`` with
  Sum-of-Gamma noise, the sampler the I-MLE paper uses for k-subsets;
- the KL *exact* for the distribution that sample approximates, the exponential family
  ``p_theta(z) = exp(<theta, z> - A(theta))`` over the C(20, 10) = 184,756 subsets:
  ``KL(p_theta || uniform) = <theta, mu> - A(theta) + log C(20, 10)`` with the log-partition
  ``A(theta) = log e_10(exp theta)`` (an elementary symmetric polynomial, computed by a
  dynamic programme in log space) and the marginals ``mu = dA/dtheta`` (by autograd). The
  reference implementation of the I-MLE papers' VAE approximates it with
  ``sum q log(20 q)``, ``q = softmax(theta)`` over each variable's 20 items: the KL of a
  categorical (one item of 20) to the uniform. Here no approximation is needed at this
  size. The reported figure is still an estimate: the sample comes from perturb-and-MAP,
  which approximates ``p_theta`` rather than sampling it exactly.

Three ways through the layer, the same model, data, batches, forward samples and
optimiser, only the gradient of ``z`` differing:

- ``I-MLE``: ``IMLE(SumOfGamma(k=10), lambda_=1.0)`` (the best of 0.3, 1, 3, 10 and 100
  over 20 epochs);
- ``STE``: ``STE(SumOfGamma(k=10))``, the upstream gradient passed back unchanged;
- ``relaxed top-k (ST)``: the hard sample forward, backward the gradient of a relaxed
  top-k of the *same* perturbed scores (k successive softmaxes, Xie & Ermon 2019, the
  k-subset form of straight-through Gumbel-softmax), temperature 1.

Run: ``python examples/discrete_vae.py [--epochs 50] [--out runs/discrete-vae]`` (the
full run) or ``--short`` (a few epochs, as the tests). Writes ``discrete_vae.png`` (the
negative ELBO per epoch, reconstructions, samples from the prior) and ``metrics.json``
to ``--out``. ``--seeds 0 1 2`` runs the whole comparison once per seed (data split,
initialisation, batches and noise all follow the seed) and writes one ``metrics.json``
holding every seed's metrics and, per method, the mean and sample standard deviation
over the seeds; the picture is the first seed's. Measured figures in
docs/gallery/discrete-vae.md.
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
from imle_solvers.noise import TorchSource

N_VARIABLES, N_ITEMS, K = 20, 20, 10  # 20 latent variables, each 10 of 20 items
PIXELS = 64
METHODS = ("I-MLE", "STE", "relaxed top-k (ST)")


def load_digits(seed: int, n_test: int = 360) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as ``(n, 64)`` float32 in [0, 1]; a shuffled (train, test) split."""
    from sklearn.datasets import load_digits as sklearn_digits

    images = sklearn_digits().data.astype(np.float32) / 16.0
    order = np.random.default_rng(seed).permutation(len(images))
    images = torch.from_numpy(images[order])
    return images[n_test:], images[:n_test]


def log_partition(theta: torch.Tensor, k: int = K) -> torch.Tensor:
    """``A(theta) = log sum_{|z| = k} exp <theta, z>`` per row of ``theta (R, n)``: the
    log of the k-th elementary symmetric polynomial of ``exp(theta)``, by the recurrence
    ``e_j(x_1..x_i) = e_j(x_1..x_{i-1}) + x_i e_{j-1}(x_1..x_{i-1})`` in log space."""
    rows, never = theta.shape[0], -1e30  # log 0, finite: -inf - -inf would be NaN
    log_e = torch.full((rows, k + 1), never, dtype=theta.dtype)
    log_e[:, 0] = 0.0
    for i in range(theta.shape[1]):
        shifted = torch.cat([torch.full((rows, 1), never, dtype=theta.dtype), log_e[:, :-1] + theta[:, i : i + 1]], 1)
        top = torch.maximum(log_e, shifted).detach()  # exact for any constant: no NaN in double backward
        log_e = top + torch.log(torch.exp(log_e - top) + torch.exp(shifted - top))
    return log_e[:, k]


def kl_to_uniform(theta: torch.Tensor, k: int = K) -> torch.Tensor:
    """Exact ``KL(p_theta || uniform over the k-subsets)`` per row of ``theta (R, n)``,
    differentiable: ``<theta, mu> - A(theta) + log C(n, k)``, ``mu = dA/dtheta``."""
    with torch.enable_grad():
        theta = theta if theta.requires_grad else theta.detach().requires_grad_(True)
        a = log_partition(theta, k)
        (mu,) = torch.autograd.grad(a.sum(), theta, create_graph=True)
    return (theta * mu).sum(1) - a + math.log(math.comb(theta.shape[1], k))


class RelaxedTopK(torch.nn.Module):
    """Straight-through relaxed top-k: forward the hard ``topk(theta + eps)``; backward
    the gradient of ``k`` successive softmaxes of ``(theta + eps) / temperature`` (Xie &
    Ermon 2019), the same Sum-of-Gamma ``eps`` as the other methods."""

    def __init__(self, seed: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)
        self.temperature = temperature
        self.noise = ims.SumOfGamma(k=K)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return ims.MAPOracle(ims.KSubset(N_ITEMS, K))(theta.detach())
        eps = self.noise.sample(TorchSource(self.generator, theta.dtype, theta.device), tuple(theta.shape))
        scores = theta + eps
        hard = torch.zeros_like(theta).scatter_(1, scores.detach().topk(K, dim=1).indices, 1.0)
        logits, onehot, soft = scores / self.temperature, torch.zeros_like(theta), torch.zeros_like(theta)
        for _ in range(K):
            logits = logits + torch.log((1.0 - onehot).clamp(min=1e-20))
            onehot = torch.softmax(logits, dim=1)
            soft = soft + onehot
        return hard + soft - soft.detach()


def make_layer(method: str, seed: int, lambda_: float) -> torch.nn.Module:
    problem = ims.KSubset(N_ITEMS, K)
    if method == "I-MLE":
        return ims.torch.IMLELayer(problem, ims.IMLE(ims.SumOfGamma(k=K), lambda_=lambda_), seed=seed)
    if method == "STE":
        return ims.torch.IMLELayer(problem, ims.STE(ims.SumOfGamma(k=K)), seed=seed)
    return RelaxedTopK(seed)


class VAE(torch.nn.Module):
    def __init__(self, hidden: int = 256) -> None:
        super().__init__()
        code = N_VARIABLES * N_ITEMS
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(PIXELS, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, code)
        )
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(code, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, PIXELS)
        )

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 64) -> (B * 20, 20)``: one row per latent variable, as the layer takes them."""
        return self.encoder(x).reshape(-1, N_ITEMS)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B * 20, 20)`` or ``(B, 20, 20)`` binary codes -> ``(B, 64)`` pixel logits."""
        return self.decoder(z.reshape(-1, N_VARIABLES * N_ITEMS))


def negative_elbo(model: VAE, layer: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: ``(reconstruction BCE, KL)``, each ``(B,)``; one sample through ``layer``."""
    theta = model.scores(x)
    z = layer(theta)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none").sum(1)
    kl = kl_to_uniform(theta).reshape(-1, N_VARIABLES).sum(1)
    return bce, kl


def evaluate(model: VAE, x: torch.Tensor, samples: int, seed: int) -> dict[str, float]:
    """Held-out negative ELBO, averaged over ``samples`` Sum-of-Gamma perturb-and-MAP
    samples drawn from a fixed seed: every method and epoch is judged on the same noise."""
    sampler = ims.torch.IMLELayer(ims.KSubset(N_ITEMS, K), ims.IMLE(ims.SumOfGamma(k=K)), seed=seed)
    with torch.no_grad():
        bce = torch.stack([negative_elbo(model, sampler, x)[0] for _ in range(samples)]).mean()
        kl = kl_to_uniform(model.scores(x)).reshape(-1, N_VARIABLES).sum(1).mean()
    return {"negative ELBO": float(bce + kl), "reconstruction": float(bce), "KL": float(kl)}


def train(
    method: str,
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    epochs: int,
    seed: int,
    lambda_: float,
    batch: int = 100,
    lr: float = 1e-3,
    eval_samples: int = 5,
) -> tuple[VAE, dict]:
    """Train one method; the training negative ELBO (mean over the epoch's batches) and
    the held-out one after each epoch (index 0: before training)."""
    torch.manual_seed(seed)
    model = VAE()
    layer = make_layer(method, seed, lambda_)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(seed)
    history = {"train": [], "test": [evaluate(model, test_x, eval_samples, seed + 1)["negative ELBO"]]}
    for _ in range(epochs):
        model.train()
        layer.train()
        total = 0.0
        order = torch.randperm(len(train_x), generator=shuffle)
        for start in range(0, len(train_x), batch):
            x = train_x[order[start : start + batch]]
            bce, kl = negative_elbo(model, layer, x)
            loss = (bce + kl).sum()  # summed over the batch: lambda in score units
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        history["train"].append(total / len(train_x))
        history["test"].append(evaluate(model, test_x, eval_samples, seed + 1)["negative ELBO"])
    return model, history


def picture(path: Path, histories: dict, models: dict, test_x: torch.Tensor, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_show = 10
    fig = plt.figure(figsize=(11, 7.2))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.25], height_ratios=[1, 1], hspace=0.35, wspace=0.32)
    ax = fig.add_subplot(grid[:, 0])
    for (method, history), colour in zip(histories.items(), ("C0", "C3", "C2")):
        epochs = np.arange(len(history["test"]))
        ax.plot(epochs[1:], history["train"], color=colour, alpha=0.45, lw=1)
        ax.plot(epochs, history["test"], color=colour, lw=2, label=f"{method}: {history['test'][-1]:.1f}")
    ax.set_ylim(top=min(max(h["test"][1] for h in histories.values()) + 5, 80))
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative ELBO (nats per image)")
    ax.set_title("held-out (thick) and training (thin) negative ELBO")
    ax.legend(title="final held-out")
    ax.grid(alpha=0.3)

    def tiles(images: torch.Tensor) -> np.ndarray:  # (rows, n, 64) -> one (rows*9, n*9) mosaic
        rows, n = images.shape[:2]
        canvas = np.zeros((rows * 9 - 1, n * 9 - 1))  # white gaps between tiles
        for r in range(rows):
            for c in range(n):
                canvas[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = images[r, c].reshape(8, 8).numpy()
        return canvas

    x = test_x[:n_show]
    rows = [x]
    with torch.no_grad():
        for method, (model, layer) in models.items():
            layer.eval()
            rows.append(torch.sigmoid(model.decode(layer(model.scores(x)))))
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(tiles(torch.stack(rows)), cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks([4 + 9 * i for i in range(len(rows))], ["held-out", *models], fontsize=8)
    ax.set_xticks([])
    ax.set_title("held-out images, reconstructed from the MAP code")

    generator = torch.Generator().manual_seed(seed)
    ranks = torch.rand(len(models) * n_show * N_VARIABLES, N_ITEMS, generator=generator).argsort(1).argsort(1)
    z = (ranks < K).float().reshape(len(models), n_show, N_VARIABLES * N_ITEMS)  # uniform random 10-subsets
    with torch.no_grad():
        samples = [torch.sigmoid(model.decode(z[i])) for i, (model, _) in enumerate(models.values())]
    ax = fig.add_subplot(grid[1, 1])
    ax.imshow(tiles(torch.stack(samples)), cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks([4 + 9 * i for i in range(len(samples))], list(models), fontsize=8)
    ax.set_xticks([])
    ax.set_title("samples from the prior (random 10-subsets, decoded means)")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main(
    epochs: int = 50,
    seed: int = 0,
    lambda_: float = 1.0,
    methods: tuple[str, ...] = METHODS,
    out: Path | None = Path("runs/discrete-vae"),
    eval_samples: int = 2,
) -> dict:
    """Train each method for ``epochs`` epochs; per method the held-out negative ELBO
    (``negative ELBO``, with its ``reconstruction`` and ``KL`` parts, averaged over 20
    samples) and the per-epoch histories; writes the picture and ``metrics.json`` to
    ``out`` (None: nothing written)."""
    train_x, test_x = load_digits(seed)
    results: dict = {"epochs": epochs, "seed": seed, "lambda": lambda_, "n_train": len(train_x), "n_test": len(test_x)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models this small run fastest on one thread
    models, histories = {}, {}
    try:
        for method in methods:
            start = time.perf_counter()
            model, history = train(method, train_x, test_x, epochs, seed, lambda_, eval_samples=eval_samples)
            seconds = time.perf_counter() - start
            results[method] = evaluate(model, test_x, 20, seed + 2) | {"seconds": round(seconds, 1), "history": history}
            models[method], histories[method] = (model, make_layer(method, seed, lambda_)), history
            r = results[method]
            print(
                f"{method:20} held-out -ELBO {r['negative ELBO']:7.2f} (reconstruction {r['reconstruction']:6.2f}, "
                f"KL {r['KL']:5.2f}); first epoch {history['test'][0]:.1f} -> {history['test'][1]:.1f}; {seconds:.0f} s"
            )
    finally:
        torch.set_num_threads(threads)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        picture(out / "discrete_vae.png", histories, models, test_x, seed)
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


SUMMARISED = ("negative ELBO", "reconstruction", "KL", "after epoch 1", "seconds")


def across_seeds(values: list[float]) -> dict:
    """``{"mean", "sd", "per seed"}`` of one figure over the seeds; ``sd`` is the sample
    standard deviation (``n - 1`` in the denominator; 0 for a single seed)."""
    array = np.asarray(values, dtype=float)
    sd = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "sd": sd, "per seed": [float(v) for v in values]}


def main_seeds(
    seeds: list[int],
    epochs: int = 50,
    lambda_: float = 1.0,
    methods: tuple[str, ...] = METHODS,
    out: Path | None = Path("runs/discrete-vae"),
    eval_samples: int = 2,
) -> dict:
    """``main`` once per seed; ``{"seeds", "epochs", "lambda", "per seed": {seed: main's
    metrics}, "summary": {method: {figure: across_seeds(...)}}}`` with the figures of
    ``SUMMARISED`` (``after epoch 1``: the held-out negative ELBO after the first epoch)
    and ``untrained`` (the held-out one before training). Writes the first seed's picture
    and this ``metrics.json`` to ``out`` (None: nothing written)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    per_seed = {}
    for index, seed in enumerate(seeds):
        print(f"seed {seed}")
        per_seed[str(seed)] = main(epochs, seed, lambda_, methods, out if index == 0 else None, eval_samples)
    summary: dict = {}
    for method in methods:
        runs = [r[method] | {"after epoch 1": r[method]["history"]["test"][1]} for r in per_seed.values()]
        summary[method] = {figure: across_seeds([r[figure] for r in runs]) for figure in SUMMARISED}
    summary["untrained"] = across_seeds([r[methods[0]]["history"]["test"][0] for r in per_seed.values()])
    results = {"seeds": list(seeds), "epochs": epochs, "lambda": lambda_, "per seed": per_seed, "summary": summary}
    print(f"over seeds {seeds}, held-out -ELBO mean ± sd:")
    for method in methods:
        figure = summary[method]["negative ELBO"]
        print(f"{method:20} {figure['mean']:7.2f} ± {figure['sd']:.2f}")
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")  # over the first seed's own
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50, help="training epochs per method")
    parser.add_argument("--short", "--quick", action="store_true", help="3 epochs per method (the tests run 2)")
    parser.add_argument("--lambda", dest="lambda_", type=float, default=1.0, help="I-MLE's lambda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run every seed given (instead of --seed); metrics.json holds each and their mean ± sd")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD",
                        help=f"the methods to train, of {', '.join(METHODS)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/discrete-vae"))
    args = parser.parse_args()
    methods = tuple(args.methods)
    epochs = 3 if args.short else args.epochs
    if args.seeds is not None:
        main_seeds(args.seeds, epochs=epochs, lambda_=args.lambda_, methods=methods, out=args.out)
    else:
        main(epochs=epochs, seed=args.seed, lambda_=args.lambda_, methods=methods, out=args.out)

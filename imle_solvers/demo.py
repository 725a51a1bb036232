"""The ``imle-solvers demo``: learn to find shortest paths through synthetic Warcraft maps.

A CNN reads a map image and outputs one non-negative cost per tile; an I-MLE layer over
:class:`~imle_solvers.GridShortestPath` turns the costs into a path; the Hamming loss
between that path and the true shortest path trains the CNN end to end. The network
never sees a true cost. As a baseline, the same CNN regresses the true costs with MSE
(a stronger supervision signal: it sees every cell's cost) and the solver runs on its
predictions.

Other methods can run beside them (``run_demo(methods=...)``, see :data:`METHODS`):
blackbox differentiation and the straight-through estimator through the same solver and
loss, the perturbed Fenchel-Young loss, and the paper's solver-free baseline
(``direct``: a whole ResNet-18, :class:`~imle_solvers.demo_networks.ResNet18PathNet`,
whose 144 outputs are the path's cells, trained with binary cross-entropy).

All are scored on held-out maps by cost-accuracy (the predicted path costs, under the
true costs, as much as the optimum) and exact-match accuracy (the predicted path is the
labelled one; equal-cost paths are common, so this is lower).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from tqdm import tqdm

from . import torch as ims_torch
from .datasets.warcraft import TILE_PIXELS, WarcraftMaps, generate_warcraft_maps
from .demo_networks import BasicBlock, ResNet18PathNet, resnet_stem
from .errors import InvalidInputError
from .estimators import IMLE, STE, BlackboxDifferentiation
from .noise import SumOfGamma
from .oracle import MAPOracle
from .problems import GridShortestPath, NegativeCostWarning

# Defaults chosen to finish within 10 minutes on 2 CPU cores: 8 min 30 s measured on a
# 2-core machine that trains at about 1.4 steps/s one method after the other (docs/demo.md).
DEFAULT_MAPS = 3000
DEFAULT_EPOCHS = 13
GRID = 12
HELD_OUT_SHARE = 0.2
# Validation maps are the last 15% of the training part, so the held-out maps (and every
# figure measured on them) stay the same whether or not a run validates.
VALIDATION_SHARE = 0.15
EVALUATION_SETS = ("held-out", "validation")  # what run_demo(evaluate_on=...) scores
COST_TOLERANCE = 1e-6  # relative: a path within this of the optimum counts as optimal


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of the training runs.

    Attributes:
        learning_rate: Adam's step size (every method but ``direct``).
        direct_learning_rate: Adam's step size for ``direct``'s ResNet-18: 5e-4, the
            paper's setting for that network (Vlastelica et al.; with batch 70).
        batch_size: maps per step.
        lambda_: I-MLE's step towards the target distribution, in cost units per cell
            (the loss below gives ``dL/dz = +-1`` per cell).
        noise_temperature: scale of the Sum-of-Gamma perturbation.
        imle_cosine_schedule: anneal I-MLE's learning rate from ``learning_rate`` to 0
            along a cosine over all training steps; False keeps it constant. It applies to
            every method trained on paths alone (``imle``, ``blackbox``, ``ste``, ``pfyl``,
            ``direct``).
        baseline_cosine_schedule: the same for the baseline. Each method gets the schedule
            it does better with, measured (docs/demo.md): I-MLE 91.7% with the cosine
            against 88.3% without, the baseline 98.8% without against 93.3% with.
        blackbox_lambda: blackbox differentiation's interpolation step (Vlastelica et al.
            use 20 on Warcraft).
        fy_sigma: the Fenchel-Young loss's Normal perturbation scale, in cost units.
        fy_samples: perturbations per map of the Fenchel-Young loss.
    """

    learning_rate: float = 1e-3
    direct_learning_rate: float = 5e-4
    batch_size: int = 70
    lambda_: float = 20.0
    noise_temperature: float = 0.5
    imle_cosine_schedule: bool = True
    baseline_cosine_schedule: bool = False
    blackbox_lambda: float = 20.0
    fy_sigma: float = 1.0
    fy_samples: int = 3


class CostNet(nn.Module):
    """ResNet-18's first block, pooled to one non-negative cost per tile.

    ``(B, 3, 8 * grid, 8 * grid)`` images in [0, 1] -> ``(B, grid, grid)`` costs > 0:
    conv 7x7/2, batch norm, ReLU, max-pool 3x3/2, two 64-channel basic blocks, adaptive
    max-pool to ``grid x grid``, mean over channels, softplus.

    Weights and activations are channels-last (NHWC): on a CPU thread a training step
    takes 13% less time than channels-first (measured at batch 70).
    """

    def __init__(self, grid: int = GRID, channels: int = 64) -> None:
        super().__init__()
        self.stem = resnet_stem(channels)
        self.layer1 = nn.Sequential(BasicBlock(channels), BasicBlock(channels))
        self.pool = nn.AdaptiveMaxPool2d(grid)
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.layer1(self.stem(images.contiguous(memory_format=torch.channels_last))))
        return nn.functional.softplus(features.mean(dim=1))


def hamming_loss(z: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """``(B,)`` number of cells where the 0/1 masks ``z`` and ``gold`` (``(B, rows, cols)``) differ."""
    return (z * (1 - gold) + (1 - z) * gold).sum(dim=(-2, -1))


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def solver_hamming_loss(layer: ims_torch.IMLELayer) -> LossFn:
    """Per-map Hamming loss ``(B,)`` of ``layer``'s path on the network's costs (the loss of
    ``imle``, ``blackbox`` and ``ste``, which differ only in the layer's estimator)."""

    def loss(net: nn.Module, images: torch.Tensor, costs: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
        return hamming_loss(layer(net(images)), paths)

    return loss


def regression_loss(net: nn.Module, images: torch.Tensor, costs: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
    """Per-map mean squared error ``(B,)`` between predicted and true costs (the baseline)."""
    return ((net(images) - costs) ** 2).mean(dim=(-2, -1))


def fenchel_young_loss(loss_fn: ims_torch.FenchelYoungLoss) -> LossFn:
    """Per-map perturbed Fenchel-Young loss ``(B,)`` of the network's costs against the gold
    path (``loss_fn`` built with ``reduction="none"``)."""

    def loss(net: nn.Module, images: torch.Tensor, costs: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
        return loss_fn(net(images), paths)

    return loss


def direct_loss(net: nn.Module, images: torch.Tensor, costs: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
    """Per-map binary cross-entropy ``(B,)``, summed over cells, of the network's logits
    against the gold path (the solver-free ``direct`` method)."""
    bce = nn.functional.binary_cross_entropy_with_logits(net(images), paths, reduction="none")
    return bce.sum(dim=(-2, -1))


def _layer(estimator: IMLE | STE | BlackboxDifferentiation, seed: int) -> ims_torch.IMLELayer:
    """The demo's solver layer: ``estimator`` over the 12x12 grid shortest path."""
    return ims_torch.IMLELayer(GridShortestPath(GRID, GRID), estimator, seed=seed)


@dataclass(frozen=True)
class Method:
    """How the demo trains and scores one method.

    Attributes:
        loss: ``(config, seed) -> LossFn``, the per-map training loss.
        cosine: ``config -> bool``, whether its learning rate follows the cosine schedule.
        through_solver: True: the network (:class:`CostNet`) predicts costs and the
            solver's shortest path on them is the prediction; False (``direct``): the
            network (:class:`~imle_solvers.demo_networks.ResNet18PathNet`) outputs logits
            of the path's cells, read with :func:`direct_metrics`.
        learning_rate: ``config -> float``, Adam's step size.
    """

    loss: Callable[[TrainingConfig, int], LossFn]
    cosine: Callable[[TrainingConfig], bool]
    through_solver: bool = True
    learning_rate: Callable[[TrainingConfig], float] = lambda config: config.learning_rate

    def network(self) -> nn.Module:
        """A freshly initialised network for this method (from torch's global seed)."""
        return CostNet(GRID) if self.through_solver else ResNet18PathNet(GRID)


def _imle(config: TrainingConfig, seed: int) -> LossFn:
    estimator = IMLE(noise=SumOfGamma(k=int(1.3 * GRID)), noise_temperature=config.noise_temperature,
                     lambda_=config.lambda_)
    return solver_hamming_loss(_layer(estimator, seed))


def _blackbox(config: TrainingConfig, seed: int) -> LossFn:
    return solver_hamming_loss(_layer(BlackboxDifferentiation(lambda_=config.blackbox_lambda), seed))


def _ste(config: TrainingConfig, seed: int) -> LossFn:
    # Deterministic: with the Hamming loss STE's gradient, (2 gold - 1) per cell, does not
    # depend on the forward path, so noise would change nothing but the reported loss.
    return solver_hamming_loss(_layer(STE(noise=None), seed))


def _pfyl(config: TrainingConfig, seed: int) -> LossFn:
    problem = GridShortestPath(GRID, GRID)
    return fenchel_young_loss(ims_torch.FenchelYoungLoss(
        problem, sigma=config.fy_sigma, samples=config.fy_samples, reduction="none", seed=seed))


def _path_cosine(config: TrainingConfig) -> bool:
    return config.imle_cosine_schedule


METHODS: dict[str, Method] = {
    "imle": Method(_imle, _path_cosine),
    "blackbox": Method(_blackbox, _path_cosine),
    "ste": Method(_ste, _path_cosine),
    "pfyl": Method(_pfyl, _path_cosine),
    "direct": Method(lambda config, seed: direct_loss, _path_cosine, through_solver=False,
                     learning_rate=lambda config: config.direct_learning_rate),
    "baseline": Method(lambda config, seed: regression_loss, lambda config: config.baseline_cosine_schedule),
}
"""The demo's methods by name: how each builds its loss, picks its schedule, and predicts."""
DEFAULT_METHODS = ("imle", "baseline")


def parse_methods(methods: str | Iterable[str] | None) -> tuple[str, ...]:
    """The methods to run, in :data:`METHODS`' order: ``None`` the defaults, ``"all"`` every
    one, otherwise names (a sequence, or one comma-separated string); unknown names raise
    :class:`InvalidInputError` listing the valid ones."""
    if methods is None:
        return DEFAULT_METHODS
    names = [name.strip() for name in methods.split(",")] if isinstance(methods, str) else list(methods)
    names = [name for name in names if name]
    if names == ["all"]:
        return tuple(METHODS)
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise InvalidInputError(
            f"run_demo: unknown method(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"valid: {', '.join(METHODS)} or all"
        )
    return tuple(name for name in METHODS if name in names)


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled index batches covering ``range(n)`` once (the last one may be smaller)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fit(
    net: nn.Module,
    loss_fn: LossFn,
    maps: WarcraftMaps,
    epochs: int,
    config: TrainingConfig,
    seed: int,
    name: str,
    cosine_schedule: bool = False,
    bar_position: int = 0,
    learning_rate: float | None = None,
) -> list[float]:
    """Train ``net`` with Adam on ``loss_fn`` (progress bar titled ``name``, on line
    ``bar_position``); returns each epoch's mean per-map loss.

    Adam's step size is ``learning_rate`` (None: ``config.learning_rate``). With
    ``cosine_schedule`` it follows a cosine from there down to 0 over the ``epochs`` (one
    scheduler step per batch); otherwise it stays constant.
    """
    rng = np.random.default_rng(seed)
    learning_rate = config.learning_rate if learning_rate is None else learning_rate
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    tensors = tuple(torch.from_numpy(array) for array in (maps.images, maps.costs, maps.paths))
    steps = epochs * -(-len(maps) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps) if cosine_schedule else None
    net.train()
    with tqdm(total=steps, desc=name, unit="step", position=bar_position) as progress:
        return [
            train_epoch(
                net, loss_fn, optimiser, tensors, minibatches(len(maps), config.batch_size, rng), progress, schedule
            )
            for _ in range(epochs)
        ]


def train_epoch(
    net: nn.Module,
    loss_fn: LossFn,
    optimiser: torch.optim.Optimizer,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    batches: Iterator[np.ndarray],
    progress: tqdm,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """One pass over ``batches`` of indices into ``(images, costs, paths)``; returns the mean per-map loss.

    ``schedule``, if given, steps after every optimiser step."""
    total, count = 0.0, 0
    for index in batches:
        per_map = loss_fn(net, *(t[index] for t in tensors))
        optimiser.zero_grad()
        # Summed, not averaged, over the batch: dL/dz is then +-1 per cell whatever the batch
        # size, so lambda_ reads in cost units (Adam is invariant to the loss's scale).
        per_map.sum().backward()
        optimiser.step()
        if schedule is not None:
            schedule.step()
        total, count = total + float(per_map.detach().sum()), count + len(index)
        progress.update()
        progress.set_postfix(loss=f"{float(per_map.detach().mean()):.3f}")
    return total / count


@torch.no_grad()
def predict_costs(net: nn.Module, images: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """``(N, grid, grid)`` costs (logits for ``direct``) the network predicts for
    ``(N, 3, H, W)`` images, in eval mode."""
    net.eval()
    chunks = [net(torch.from_numpy(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(chunks).numpy()


def path_metrics(predicted_paths: np.ndarray, maps: WarcraftMaps) -> dict[str, float]:
    """Cost-accuracy and exact-match accuracy of ``(N, rows, cols)`` paths against ``maps``' labels."""
    problem = GridShortestPath(*maps.grid)
    true_costs = maps.costs.astype(np.float64)
    cost = problem.path_cost(true_costs, predicted_paths)
    optimum = problem.path_cost(true_costs, maps.paths)
    exact = (predicted_paths == maps.paths).all(axis=(-2, -1))
    return {
        "cost_accuracy": float(np.mean(cost <= optimum * (1 + COST_TOLERANCE))),
        "exact_match": float(np.mean(exact)),
        "mean_cost_ratio": float(np.mean(cost / optimum)),
    }


def connects_corners(selected: np.ndarray) -> np.ndarray:
    """``(N,)`` whether each ``(N, rows, cols)`` 0/1 selection contains an 8-neighbour path
    of selected cells from the top-left to the bottom-right cell."""
    eight = np.ones((3, 3), dtype=bool)
    valid = []
    for cells in selected > 0.5:
        labels, _ = ndimage.label(cells, structure=eight)
        valid.append(bool(labels[0, 0]) and labels[0, 0] == labels[-1, -1])
    return np.array(valid, dtype=bool)


def direct_metrics(selected: np.ndarray, maps: WarcraftMaps) -> dict[str, float | None]:
    """The metrics of the ``direct`` method's ``(N, rows, cols)`` 0/1 selections.

    Exact match as for any path. A selection is cost-accurate if it is a valid path (it
    contains an 8-neighbour path from the top-left to the bottom-right cell,
    :func:`connects_corners`) and the true costs of all its cells sum to no more than the
    optimum (relative tolerance ``COST_TOLERANCE``): a cheaper-looking selection that does
    not connect the corners does not count. ``valid_path`` is the share of valid
    selections, ``mean_cost_ratio`` their mean cost over the optimum (None if none is valid).
    """
    problem = GridShortestPath(*maps.grid)
    true_costs = maps.costs.astype(np.float64)
    cost = (true_costs * (selected > 0.5)).sum(axis=(-2, -1))
    optimum = problem.path_cost(true_costs, maps.paths)
    valid = connects_corners(selected)
    exact = (selected == maps.paths).all(axis=(-2, -1))
    return {
        "cost_accuracy": float(np.mean(valid & (cost <= optimum * (1 + COST_TOLERANCE)))),
        "exact_match": float(np.mean(exact)),
        "mean_cost_ratio": float(np.mean(cost[valid] / optimum[valid])) if valid.any() else None,
        "valid_path": float(np.mean(valid)),
    }


def evaluate(net: nn.Module, maps: WarcraftMaps, through_solver: bool = True) -> tuple[dict, np.ndarray]:
    """Metrics of the network's predicted paths on ``maps``, and those ``(N, rows, cols)``
    paths: the shortest paths on its costs, or (``through_solver=False``) the cells whose
    logit is positive (sigmoid > 0.5), scored by :func:`direct_metrics`."""
    outputs = predict_costs(net, maps.images)
    if not through_solver:
        selected = (outputs > 0).astype(maps.paths.dtype)
        return direct_metrics(selected, maps), selected
    paths = MAPOracle(GridShortestPath(*maps.grid))(outputs)
    return path_metrics(paths, maps), paths


def random_cost_metrics(maps: WarcraftMaps, seed: int) -> dict[str, float]:
    """The metrics of paths through uniformly random costs: the floor any training must beat."""
    rng = np.random.default_rng(seed)
    oracle = MAPOracle(GridShortestPath(*maps.grid))
    return path_metrics(oracle(rng.uniform(size=maps.costs.shape)), maps)


def save_figure(maps: WarcraftMaps, paths: dict[str, np.ndarray], filename: Path, n_examples: int = 4) -> None:
    """A PNG grid: one row per example map, the map then each method's path drawn over it (gold first)."""
    # A bare Figure renders with the Agg canvas and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure

    columns = ["map", *paths]
    size = 2.4 if len(columns) <= 4 else 2.0
    fig = Figure(figsize=(size * len(columns), size * n_examples))
    axes = fig.subplots(n_examples, len(columns), squeeze=False)
    for row in range(n_examples):
        image = maps.images[row].transpose(1, 2, 0)
        for column, title in enumerate(columns):
            ax = axes[row, column]
            ax.imshow(image)
            if title != "map":
                cells = np.argwhere(paths[title][row] > 0.5)
                ax.scatter((cells[:, 1] + 0.5) * TILE_PIXELS, (cells[:, 0] + 0.5) * TILE_PIXELS, s=18, c="red")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title)
    fig.tight_layout()
    fig.savefig(filename, dpi=80)


def run_demo(
    epochs: int | None = None,
    maps: int | None = None,
    seed: int = 0,
    out: str = "runs/demo",
    config: TrainingConfig | None = None,
    methods: str | Iterable[str] | None = None,
    evaluate_on: str = "held-out",
) -> dict:
    """Train ``methods`` (default: I-MLE and the cost-regression baseline) on synthetic
    maps; write a PNG and a JSON.

    The trainings are independent, so they run side by side in
    ``min(len(methods), os.cpu_count())`` worker processes (:func:`side_by_side`), each on
    one CPU thread with pinned CPU kernels: about a quarter faster than one after the
    other on two cores, and the same figures on every machine that runs the same torch
    build.

    Args:
        epochs: passes over the training maps for each method (None: ``DEFAULT_EPOCHS``).
        maps: maps generated, 80% for training, 20% held out (None: ``DEFAULT_MAPS``).
        seed: seed of the maps, the initialisation, the batch order and the noise.
        out: folder for ``demo.png`` and ``metrics.json`` (created if needed).
        config: training hyper-parameters (None: :class:`TrainingConfig` defaults).
        methods: names from :data:`METHODS` (a sequence or a comma-separated string),
            ``"all"``, or None for ``DEFAULT_METHODS`` (``imle`` and ``baseline``).
        evaluate_on: ``"held-out"`` (train on all training maps, score on the held-out
            ones) or ``"validation"`` (train on the training maps less their last
            ``VALIDATION_SHARE``, score on those: for tuning, :func:`split_validation`).

    Returns:
        The metrics: per method its ``cost_accuracy``, ``exact_match``,
        ``mean_cost_ratio``, per-epoch ``loss`` and ``seconds`` (``direct`` also
        ``valid_path``, see :func:`direct_metrics`) on the maps ``evaluate_on`` names;
        ``random`` costs as a floor; the settings (with ``evaluate_on`` and the number of
        ``training_maps`` and ``scored_maps``); and the ``files`` written.
    """
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    n_maps = DEFAULT_MAPS if maps is None else maps
    if n_maps < 2:
        raise InvalidInputError(f"run_demo: maps must be at least 2 (one to train, one held out), got {n_maps}")
    config = TrainingConfig() if config is None else config
    names = parse_methods(methods)
    train, scored = training_and_scored_maps(n_maps, seed, evaluate_on)
    settings = {"epochs": epochs, "maps": n_maps, "seed": seed, "methods": list(names), "evaluate_on": evaluate_on,
                "training_maps": len(train), "scored_maps": len(scored), **asdict(config)}
    metrics: dict = {"settings": settings}
    paths = {"gold": scored.paths}
    with side_by_side(workers=min(len(names), os.cpu_count() or 1)) as pool:
        runs = {
            pool.submit(train_and_evaluate, method, n_maps, epochs, config, seed, position, evaluate_on): method
            for position, method in enumerate(names)
        }
        done = {}
        for run in concurrent.futures.as_completed(runs):
            done[runs[run]] = run.result()
            tqdm.write(f"done: {summary_line(runs[run], done[runs[run]][0])}")
    for method in names:
        metrics[method], paths[method] = done[method]
    metrics["random"] = random_cost_metrics(scored, seed)
    metrics["files"] = write_outputs(Path(out), metrics, scored, paths)
    print_summary(metrics)
    return metrics


def split_maps(n_maps: int, seed: int) -> tuple[WarcraftMaps, WarcraftMaps]:
    """The demo's ``n_maps`` maps of ``seed``, split 80% for training and 20% held out."""
    data = generate_warcraft_maps(n_maps, grid=GRID, seed=seed)
    n_train = _training_count(n_maps)
    return data.subset(slice(0, n_train)), data.subset(slice(n_train, None))


def _training_count(n_maps: int) -> int:
    """How many of ``n_maps`` maps come before the held-out ones (at least 1, at most ``n_maps - 1``)."""
    return min(n_maps - 1, max(1, round(n_maps * (1 - HELD_OUT_SHARE))))


def split_validation(train: WarcraftMaps) -> tuple[WarcraftMaps, WarcraftMaps]:
    """``train`` split into the maps a validating run trains on and its validation maps:
    the last ``VALIDATION_SHARE`` of them (at least one map, and at least one left to train on).

    Tuning scores on these, never on the held-out maps, which stay those of :func:`split_maps`.
    """
    if len(train) < 2:
        raise InvalidInputError(
            f"run_demo: validation needs at least 2 training maps (one to train, one to validate), got {len(train)}"
        )
    n_fit = min(len(train) - 1, max(1, round(len(train) * (1 - VALIDATION_SHARE))))
    return train.subset(slice(0, n_fit)), train.subset(slice(n_fit, None))


def training_and_scored_maps(n_maps: int, seed: int, evaluate_on: str = "held-out") -> tuple[WarcraftMaps, WarcraftMaps]:
    """The maps a run trains on and the maps it is scored on: all training maps and the held-out
    ones (``evaluate_on="held-out"``), or the training maps less the validation ones and the
    validation maps (``"validation"``)."""
    if evaluate_on not in EVALUATION_SETS:
        raise InvalidInputError(
            f"run_demo: evaluate_on must be one of {', '.join(EVALUATION_SETS)}, got {evaluate_on!r}"
        )
    train, held_out = split_maps(n_maps, seed)
    return split_validation(train) if evaluate_on == "validation" else (train, held_out)


def train_and_evaluate(
    method: str, n_maps: int, epochs: int, config: TrainingConfig, seed: int, bar_position: int = 0,
    evaluate_on: str = "held-out",
) -> tuple[dict, np.ndarray]:
    """Train one method (a name in :data:`METHODS`) from scratch and score it on the held-out
    maps, or (``evaluate_on="validation"``) on the validation maps, having trained without them.

    The maps are generated again from the seed (faster than sending 330 MB to a worker).
    Returns its metrics (scores, per-epoch ``loss``, training ``seconds``) and its paths
    ``(N, rows, cols)`` on the scored maps.
    """
    train, scored = training_and_scored_maps(n_maps, seed, evaluate_on)
    spec = METHODS[method]
    loss_fn, cosine = spec.loss(config, seed), spec.cosine(config)
    torch.manual_seed(seed)
    net = spec.network()
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Noise and the I-MLE target push costs below zero by design; clamping them to 0
        # (the problem's default) keeps the target's gold cells cheapest, as intended.
        warnings.simplefilter("ignore", NegativeCostWarning)
        history = fit(net, loss_fn, train, epochs, config, seed, method, cosine, bar_position,
                      spec.learning_rate(config))
    seconds = time.perf_counter() - start
    scores, paths = evaluate(net, scored, spec.through_solver)
    return {**scores, "loss": history, "seconds": seconds}, paths


# Kernels chosen by instruction set round differently (AVX-512 against AVX2), so the workers
# use AVX2's, which every x86-64 CPU of the last decade has, and one thread each.
PINNED_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PINNED_X86_ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


@contextlib.contextmanager
def side_by_side(workers: int) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A pool of ``workers`` fresh processes, each on one thread, with torch's CPU kernels
    pinned to AVX2's where the CPU has AVX2 (both are read when a process starts, so the
    environment holds these settings while the pool is open, and is restored after)."""
    environment = dict(PINNED_ENVIRONMENT)
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        environment |= PINNED_X86_ENVIRONMENT
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # this process runs no torch op while the pool is open
    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


OUTPUT_FILES = {"picture": "demo.png", "metrics": "metrics.json"}  # what the demo writes into its folder


def write_outputs(folder: Path, metrics: dict, held_out: WarcraftMaps, paths: dict[str, np.ndarray]) -> dict[str, str]:
    """Write ``demo.png`` and ``metrics.json`` into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {key: str(folder / name) for key, name in OUTPUT_FILES.items()}
    save_figure(held_out, paths, Path(files["picture"]), n_examples=min(4, len(held_out)))
    Path(files["metrics"]).write_text(json.dumps({**metrics, "files": files}, indent=2))
    return files


def summary_line(name: str, scores: dict) -> str:
    """One method's accuracies on the scored maps, and its training seconds if it trained."""
    seconds = f"  {scores['seconds']:.0f} s" if "seconds" in scores else ""
    return f"{name:9} cost-accuracy {scores['cost_accuracy']:.1%}  exact-match {scores['exact_match']:.1%}{seconds}"


def print_summary(metrics: dict) -> None:
    """Print the accuracies on the scored maps (and training seconds) of every method run,
    of random costs, and the files written."""
    settings = metrics["settings"]
    print(f"scored on {settings['scored_maps']} {settings['evaluate_on']} maps "
          f"(trained on {settings['training_maps']}):")
    for name in (*metrics["settings"]["methods"], "random"):
        print(summary_line(name, metrics[name]))
    for kind, filename in metrics["files"].items():
        print(f"{kind}: {filename}")

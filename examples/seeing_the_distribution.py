"""Seeing the distribution: the paths Sum-of-Gamma noise samples, and tile weights learnt from one gold path.

As the pictures of the torch-imle README, on one synthetic Warcraft map (12x12 tiles,
``imle_solvers.datasets.warcraft``), in two parts:

1. **Sampling.** ``IMLE(noise=SumOfGamma(k), noise_temperature=tau, samples=N)`` in an
   ``IMLELayer`` over ``GridShortestPath(12, 12)`` draws N perturb-and-MAP paths of the
   map's true costs (``k`` = the gold path's length, as Sum-of-Gamma noise is tailored to
   states with k ones). The mean of the N paths estimates each tile's marginal
   probability of lying on a sampled path. Picture: the map, a few sampled paths, the
   marginals at each temperature and the gold (shortest) path.
2. **Training tile weights from the gold path alone.** One free parameter per tile,
   ``costs = softplus(w)``, ``w`` drawn at random; Adam minimises the Hamming loss between
   the layer's path and the gold path for T steps, the true costs never seen. Five
   settings of the input (forward) and target (backward) noise temperatures:
   0/0, 1/1, 2/2, 5/5 and 5/0. Per setting an animated GIF of the produced path and the
   weights over the steps, and one plot of the loss per step for all settings.

Run: ``python examples/seeing_the_distribution.py [--steps 300] [--samples 1000]
[--out runs/distribution]`` (``--short`` for a quick version); it writes the pictures
and ``metrics.json`` under ``--out``. Measured figures in docs/gallery/distribution.md.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import imle_solvers as ims
from imle_solvers.datasets.warcraft import TILE_PIXELS, generate_warcraft_maps

GRID = 12
TEMPERATURES = (0.5, 1.0, 2.0, 5.0)  # sampling temperatures of part 1
SETTINGS = ((0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (5.0, 5.0), (5.0, 0.0))  # (input, target) of part 2
SHOWN_SAMPLES = 5  # sampled paths drawn over the map in part 1's picture


def setting_name(tau_in: float, tau_target: float) -> str:
    return f"{tau_in:g}/{tau_target:g}"


def load_map(seed: int, index: int) -> dict[str, np.ndarray]:
    """One map of ``generate_warcraft_maps(index + 1, seed=seed)``: its ``image`` ``(96, 96, 3)``,
    true ``costs`` and ``gold`` path ``(12, 12)``."""
    maps = generate_warcraft_maps(index + 1, grid=GRID, seed=seed)
    return {"image": maps.images[index].transpose(1, 2, 0), "costs": maps.costs[index], "gold": maps.paths[index]}


def quiet_layer(estimator: ims.IMLE, seed: int) -> ims.torch.IMLELayer:
    """The layer over ``GridShortestPath(12, 12)``. Noise can push a cost below zero, which
    the grid solver clamps to zero (with a warning, silenced here: it is expected)."""
    warnings.filterwarnings("ignore", category=ims.NegativeCostWarning)
    return ims.torch.IMLELayer(ims.GridShortestPath(GRID, GRID), estimator, seed=seed)


def sample_paths(costs: np.ndarray, k: float, temperature: float, n: int, seed: int) -> np.ndarray:
    """``(n, 12, 12)`` perturb-and-MAP paths of ``costs`` under Sum-of-Gamma(k) noise at ``temperature``."""
    estimator = ims.IMLE(noise=ims.SumOfGamma(k=k), noise_temperature=temperature, samples=n)
    layer = quiet_layer(estimator, seed)
    with torch.no_grad():
        return layer(torch.from_numpy(costs)[None])[0].numpy()


def path_cost(paths: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """The true cost of each path of ``paths`` ``(..., 12, 12)``."""
    return (paths * costs).sum(axis=(-2, -1))


def sampling_metrics(paths: np.ndarray, costs: np.ndarray, gold: np.ndarray) -> dict:
    """What the N sampled ``paths`` say about the distribution around the gold (MAP) path."""
    marginals = paths.mean(axis=0)
    p = np.clip(marginals.astype(np.float64), 1e-12, 1 - 1e-12)
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))  # per tile, bits
    on_gold = gold > 0
    optimum = float(path_cost(gold, costs))
    return {
        "share equal to the MAP path": float((paths == gold).all(axis=(1, 2)).mean()),
        "share optimal under the true costs": float((path_cost(paths, costs) <= optimum * (1 + 1e-6)).mean()),
        "distinct paths": len({path.tobytes() for path in paths.astype(np.uint8)}),
        "mean path length": float(paths.sum(axis=(1, 2)).mean()),
        "marginals sum": float(marginals.sum()),
        "gold tiles mean marginal": float(marginals[on_gold].mean()),
        "other tiles mean marginal": float(marginals[~on_gold].mean()),
        "other tiles max marginal": float(marginals[~on_gold].max()),
        "tiles ever sampled": int((marginals > 0).sum()),
        "summed tile entropy, bits": float(entropy.sum()),
        "mean true cost / optimum": float(path_cost(paths, costs).mean() / optimum),
    }


def train_weights(
    gold: np.ndarray,
    costs: np.ndarray,
    k: float,
    tau_in: float,
    tau_target: float,
    steps: int,
    frames: int,
    seed: int,
    lr: float,
    lambda_: float,
) -> dict:
    """Learn ``softplus(w)`` from ``gold`` alone; the loss per step (the sampled path's and
    the noise-free MAP path's Hamming loss to the gold), and ``frames`` snapshots (step,
    produced path, weights) spread evenly from step 0 to the last."""
    torch.manual_seed(seed)
    w = torch.nn.Parameter(torch.rand(GRID, GRID))  # weights softplus(w) uniform-ish in [0.69, 1.31]
    estimator = ims.IMLE(
        noise=ims.SumOfGamma(k=k), noise_temperature=tau_in, target_noise_temperature=tau_target, lambda_=lambda_
    )
    layer = quiet_layer(estimator, seed)
    optimiser = torch.optim.Adam([w], lr=lr)
    target = torch.from_numpy(gold)[None]
    snapshot_steps = set(np.linspace(0, steps - 1, frames).round().astype(int).tolist())
    sampled_loss, map_loss, snapshots = [], [], []
    for step in range(steps):
        weights = torch.nn.functional.softplus(w)[None]
        z = layer(weights)
        loss = (z * (1 - target) + (1 - z) * target).sum()  # Hamming: tiles that differ
        optimiser.zero_grad()
        loss.backward()
        with torch.no_grad():
            map_path = layer.oracle(weights.detach())
        sampled_loss.append(float(loss.detach()))
        map_loss.append(float((map_path != target).sum()))
        if step in snapshot_steps:
            snapshots.append((step, z.detach()[0].numpy().copy(), weights.detach()[0].numpy().copy()))
        optimiser.step()
    weights = torch.nn.functional.softplus(w).detach()
    final_map = layer.oracle(weights[None])[0].numpy()
    optimum = float(path_cost(gold, costs))
    reached = [step for step, loss in enumerate(map_loss) if loss == 0]
    return {
        "weights": weights.numpy(),
        "sampled loss": sampled_loss,
        "MAP loss": map_loss,
        "snapshots": snapshots,
        "metrics": {
            "final sampled loss (mean of last 10 steps)": float(np.mean(sampled_loss[-10:])),
            "first sampled loss (mean of first 10 steps)": float(np.mean(sampled_loss[:10])),
            "final MAP loss": int((final_map != gold).sum()),
            "final MAP path is the gold path": bool((final_map == gold).all()),
            "final MAP path costs no more than the gold": bool(path_cost(final_map, costs) <= optimum * (1 + 1e-6)),
            "final MAP path true cost / optimum": float(path_cost(final_map, costs) / optimum),
            "first step with MAP path = gold": reached[0] + 1 if reached else None,  # steps count from 1
            "gold tiles mean weight": float(weights.numpy()[gold > 0].mean()),
            "other tiles mean weight": float(weights.numpy()[gold == 0].mean()),
            "steps with MAP path = gold, last quarter": float(
                np.mean([loss == 0 for loss in map_loss[-(steps // 4 or 1) :]])
            ),
        },
    }


# --- pictures --------------------------------------------------------------------------


def _centres(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres ``(x, y)`` of a path's tiles, ordered from the top-left corner along the path."""
    cells = {tuple(cell) for cell in np.argwhere(path > 0.5)}
    order, current = [], (0, 0)
    while current in cells:
        order.append(current)
        cells.discard(current)
        neighbours = [(current[0] + dr, current[1] + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
        nxt = [cell for cell in neighbours if cell in cells]
        current = min(nxt, key=lambda c: abs(c[0] - current[0]) + abs(c[1] - current[1])) if nxt else None
    order += sorted(cells)  # anything left over (never, for a simple path)
    rows, cols = np.array(order).T
    return (cols + 0.5) * TILE_PIXELS - 0.5, (rows + 0.5) * TILE_PIXELS - 0.5


def _tile_mask(ax, path: np.ndarray, colour: str, alpha: float = 0.75) -> None:
    """Shade ``path``'s tiles over an image of ``12 * 8`` pixels."""
    rgba = np.zeros((*path.shape, 4))
    rgba[..., :3] = {"red": (1.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0)}[colour]
    rgba[..., 3] = alpha * (path > 0.5)
    extent = (-0.5, GRID * TILE_PIXELS - 0.5, GRID * TILE_PIXELS - 0.5, -0.5)
    ax.imshow(rgba, extent=extent, interpolation="nearest")


def _bare(ax, title: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_sampling(path: Path, data: dict, samples: dict[float, np.ndarray], shown: float) -> None:
    """Part 1's picture: map, sampled paths at ``shown``, marginals per temperature, gold path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temperatures = sorted(samples)
    fig, axes = plt.subplots(1, 3 + len(temperatures), figsize=(2.0 * (3 + len(temperatures)), 2.3))
    axes[0].imshow(data["image"])
    _bare(axes[0], "map")
    axes[1].imshow(data["image"])
    colours = plt.get_cmap("tab10").colors
    for i, sampled in enumerate(samples[shown][:SHOWN_SAMPLES]):
        x, y = _centres(sampled)
        jitter = (i - SHOWN_SAMPLES / 2) * 0.6
        axes[1].plot(x + jitter, y + jitter, "-", color=colours[i], lw=1.3)
    _bare(axes[1], f"{SHOWN_SAMPLES} sampled paths, $\\tau$={shown:g}")
    for ax, tau in zip(axes[2:], temperatures):
        ax.imshow(samples[tau].mean(axis=0), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        _bare(ax, f"marginals, $\\tau$={tau:g}")
    axes[-1].imshow(data["image"])
    _tile_mask(axes[-1], data["gold"], "red")
    _bare(axes[-1], "gold (shortest) path")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


PANEL, GAP, HEADER = 144, 6, 36  # GIF layout, pixels: panel side, gap, title band


def _panel(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` ``(h, w, 3)`` in [0, 1], scaled up (nearest) to ``PANEL x PANEL`` uint8."""
    rows = np.arange(PANEL) * rgb.shape[0] // PANEL
    cols = np.arange(PANEL) * rgb.shape[1] // PANEL
    return (255 * np.clip(rgb[rows][:, cols], 0, 1)).astype(np.uint8)


def _on_map(image: np.ndarray, path: np.ndarray) -> np.ndarray:
    """The map ``image`` with ``path``'s tiles shaded red."""
    mask = np.kron(path > 0.5, np.ones((TILE_PIXELS, TILE_PIXELS)))[..., None]
    return image * (1 - 0.75 * mask) + np.array([1.0, 0.0, 0.0]) * 0.75 * mask


def draw_animation(path: Path, data: dict, run: dict, name: str) -> int:
    """Part 2's GIF for one setting: the gold path, the produced (sampled) path and the
    weights at each snapshot; returns the frame count. Drawn with PIL, a frame in
    milliseconds; the weights share one grey scale over all frames (dark: high)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    snapshots = run["snapshots"]
    vmax = float(np.percentile(np.stack([weights for _, _, weights in snapshots]), 99))
    width = 3 * PANEL + 4 * GAP
    gold_panel = _panel(_on_map(data["image"], data["gold"]))
    frames = []
    for step, produced, weights in snapshots:
        canvas = np.full((HEADER + PANEL + GAP, width, 3), 255, dtype=np.uint8)
        grey = 1 - np.clip(weights / vmax, 0, 1)
        panels = (gold_panel, _panel(_on_map(data["image"], produced)), _panel(np.repeat(grey[..., None], 3, axis=2)))
        for i, panel in enumerate(panels):
            x = GAP + i * (PANEL + GAP)
            canvas[HEADER : HEADER + PANEL, x : x + PANEL] = panel
        frame = Image.fromarray(canvas)
        draw = ImageDraw.Draw(frame)
        loss = int((produced != data["gold"]).sum())
        draw.text((GAP, 2), f"input/target noise temperature {name}; dark weight: high", fill=(0, 0, 0), font=font)
        titles = ("gold path", f"step {step + 1}: loss {loss}", f"weights (0 to {vmax:.1f})")
        for i, title in enumerate(titles):
            draw.text((GAP + i * (PANEL + GAP), HEADER - 16), title, fill=(0, 0, 0), font=font)
        frames.append(frame)
    # One palette for all frames (from all of them together): frames then differ only where
    # the picture changes, which is all a GIF stores of them.
    strip = Image.new("RGB", (width, len(frames) * frames[0].height))
    for i, frame in enumerate(frames):
        strip.paste(frame, (0, i * frame.height))
    palette = strip.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    frames = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=160, loop=0, optimize=False)
    return len(frames)


def draw_losses(path: Path, runs: dict[str, dict]) -> None:
    """The sampled path's loss (smoothed) and the MAP path's loss per step, every setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True)
    for name, run in runs.items():
        sampled = np.asarray(run["sampled loss"])
        window = max(1, min(10, len(sampled) // 10))
        smooth = np.convolve(sampled, np.ones(window) / window, mode="valid")
        axes[0].plot(np.arange(window, len(sampled) + 1), smooth, label=name, lw=1.2)
        axes[1].plot(np.arange(1, len(run["MAP loss"]) + 1), run["MAP loss"], label=name, lw=1.2)
    axes[0].set_title(f"sampled path (training), mean of {window} steps", fontsize=9)
    axes[1].set_title("MAP path of the learnt weights (no noise)", fontsize=9)
    axes[0].set_ylabel("Hamming loss to the gold (tiles)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].legend(title="input/target $\\tau$", fontsize=7, title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the run -----------------------------------------------------------------------------


def main(
    steps: int = 300,
    samples: int = 1000,
    frames: int = 40,
    temperatures: tuple[float, ...] = TEMPERATURES,
    settings: tuple[tuple[float, float], ...] = SETTINGS,
    lr: float = 0.05,
    lambda_: float = 0.5,
    seed: int = 0,
    map_index: int = 0,
    out: str | Path = "runs/distribution",
) -> dict:
    """Both parts on map ``map_index`` of ``generate_warcraft_maps(..., seed=seed)``; writes
    ``distribution-sampling.png``, ``distribution-loss.png``, one
    ``distribution-train-{in}-{target}.gif`` per setting and ``metrics.json`` under ``out``,
    and returns the metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 12x12 tensors: one thread is fastest, and kind to a shared machine
    try:
        data = load_map(seed, map_index)
        gold, costs = data["gold"], data["costs"]
        k = float(gold.sum())
        results: dict = {
            "map": {
                "seed": seed,
                "index": map_index,
                "gold path length": int(k),
                "gold path cost": float(path_cost(gold, costs)),
            },
            "settings": {
                "steps": steps,
                "samples": samples,
                "frames": frames,
                "lr": lr,
                "lambda": lambda_,
                "noise": f"SumOfGamma(k={k:g})",
            },
            "sampling": {},
            "training": {},
            "files": {},
        }
        sampled = {}
        for tau in temperatures:
            sampled[tau] = sample_paths(costs, k, tau, samples, seed)
            results["sampling"][f"{tau:g}"] = sampling_metrics(sampled[tau], costs, gold)
        shown = 2.0 if 2.0 in sampled else max(sampled)
        picture = out / "distribution-sampling.png"
        draw_sampling(picture, data, sampled, shown)
        results["files"]["sampling"] = picture.name
        results["sampling seconds"] = round(time.perf_counter() - start, 1)

        runs = {}
        for tau_in, tau_target in settings:
            name = setting_name(tau_in, tau_target)
            began = time.perf_counter()
            runs[name] = train_weights(gold, costs, k, tau_in, tau_target, steps, frames, seed, lr, lambda_)
            gif = out / f"distribution-train-{tau_in:g}-{tau_target:g}.gif"
            n_frames = draw_animation(gif, data, runs[name], name)
            results["training"][name] = {
                **runs[name]["metrics"],
                "frames": n_frames,
                "seconds": round(time.perf_counter() - began, 1),
            }
            results["files"][name] = gif.name
        losses = out / "distribution-loss.png"
        draw_losses(losses, runs)
        results["files"]["loss"] = losses.name
        results["seconds"] = round(time.perf_counter() - start, 1)
    finally:
        torch.set_num_threads(threads)
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    return results


def report(results: dict) -> None:
    m = results["map"]
    print(
        f"map {m['index']} (seed {m['seed']}): gold path {m['gold path length']} tiles, cost {m['gold path cost']:.1f}"
    )
    print(
        f"{'tau':>5} {'=MAP':>6} {'optimal':>7} {'distinct':>8} {'gold marg.':>10} {'other marg.':>11} {'entropy':>8}"
    )
    for tau, s in results["sampling"].items():
        print(
            f"{tau:>5} {s['share equal to the MAP path']:6.3f} {s['share optimal under the true costs']:7.3f} "
            f"{s['distinct paths']:8d} {s['gold tiles mean marginal']:10.3f} {s['other tiles mean marginal']:11.3f} "
            f"{s['summed tile entropy, bits']:8.1f}"
        )
    print(
        f"{'in/target':>9} {'loss first':>10} {'last':>6} {'MAP loss':>8} {'=gold':>5} {'cost ok':>7} {'first gold':>10}  seconds"
    )
    for name, t in results["training"].items():
        first = t["first step with MAP path = gold"]
        print(
            f"{name:>9} {t['first sampled loss (mean of first 10 steps)']:10.1f} "
            f"{t['final sampled loss (mean of last 10 steps)']:6.1f} {t['final MAP loss']:8d} "
            f"{t['final MAP path is the gold path']!s:>5} {t['final MAP path costs no more than the gold']!s:>7} "
            f"{'never' if first is None else first:>10}  {t['seconds']:7.1f}"
        )
    print(f"total {results['seconds']:.1f} s")


SHORT = {
    "steps": 60,
    "samples": 200,
    "frames": 10,
    "temperatures": (1.0, 5.0),
    "settings": SETTINGS[:2] + SETTINGS[3:4],
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per setting")
    parser.add_argument("--samples", type=int, default=1000, help="sampled paths per temperature")
    parser.add_argument("--frames", type=int, default=40, help="frames per GIF")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--lambda", dest="lambda_", type=float, default=0.5, help="I-MLE's lambda, in weight units")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--map", dest="map_index", type=int, default=0, help="which map of the seed's maps")
    parser.add_argument("--short", "--quick", action="store_true", help=f"the quick version: {SHORT}")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/distribution"), help="folder of the pictures and metrics.json"
    )
    args = parser.parse_args()
    options = {name: value for name, value in vars(args).items() if name != "short"}
    if args.short:
        options.update(SHORT)
    main(**options)

"""The fast path: an I-MLE training step against the work it cannot avoid, in torch and JAX.

k-subset layers, one training step (forward and backward, native noise, the default
``validate_args=True``), against in the same framework and run:

- its unavoidable work: one noise draw of the step's shape plus two bare top-k + scatter
  (goal: at most 1.25x on a CPU, 1.5x on a GPU);
- two bare top-k + scatter alone (reported: on a CPU the noise draw, not the solve, is
  the floor);
- and, for contrast, the same step drawing its noise on the host with numpy's exact
  Sum-of-Gamma (``noise_source="numpy"``, ``method="exact"``: how the library drew before).

Then one Sum-of-Gamma draw (the default tabulated inverse CDF) against one Gumbel draw of
the same shape in each framework (goal: at most 3x), and the grid layer's step (12x12,
batch 70, torch CPU) against its two MAP batches (goal: at most 1.3x).

    python benchmarks/bench_fast_path.py [--device cuda] [--out rows.json]

(``--out``: the rows as JSON too, times in ms, ratios as step time over the reference.)
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import imle_solvers as ims
from imle_solvers.noise import JaxSource, TorchSource

from _timing import interleaved_medians  # beside this script

CPU_SIZES = [(128, 1000, 10), (1024, 100, 10), (64, 10000, 50)]
GPU_SIZES = [(1024, 1000, 10), (8192, 1000, 50), (256, 100000, 100)]
REPEATS = 40


def noises(k: int) -> dict[str, object]:
    return {"Gumbel": ims.Gumbel(), "Sum-of-Gamma": ims.SumOfGamma(k=k)}


def torch_rows(sizes: list[tuple[int, int, int]], device: str) -> list[dict[str, object]]:
    import torch

    from imle_solvers.torch import IMLELayer

    def synchronised(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        return run

    rows = []
    for b, n, k in sizes:
        theta = torch.randn(b, n, device=device)
        upstream = torch.randn(b, n, device=device)

        def bare_topk() -> None:
            torch.zeros_like(theta).scatter_(1, torch.topk(theta, k, dim=-1).indices, 1.0)

        source = TorchSource(torch.Generator(device=device).manual_seed(0), theta.dtype, theta.device)
        for name, noise in noises(k).items():
            layer = IMLELayer(ims.KSubset(n, k), ims.IMLE(noise, lambda_=10.0), seed=0)

            def step(layer: IMLELayer = layer) -> None:
                (layer(theta.clone().requires_grad_()) * upstream).sum().backward()

            def unavoidable(noise: object = noise) -> None:
                noise.sample(source, (b, 1, 1, n))
                bare_topk()
                bare_topk()

            times = interleaved_medians(
                {"step": synchronised(step), "unavoidable": synchronised(unavoidable),
                 "two_topk": synchronised(lambda: (bare_topk(), bare_topk()))}, REPEATS)
            rows.append(row("torch", device, (b, n, k), name, times["step"], times["unavoidable"], times["two_topk"]))
        if not device.startswith("cuda"):
            before = IMLELayer(ims.KSubset(n, k), ims.IMLE(ims.SumOfGamma(k, method="exact")), seed=0,
                               noise_source="numpy")
            times = interleaved_medians(
                {"step": lambda: (before(theta.clone().requires_grad_()) * upstream).sum().backward(),
                 "two_topk": lambda: (bare_topk(), bare_topk())}, REPEATS)
            rows.append(row("torch", device, (b, n, k), "Sum-of-Gamma, numpy exact draw", times["step"], None,
                            times["two_topk"]))
    return rows


def jax_rows(sizes: list[tuple[int, int, int]], device: str) -> list[dict[str, object]]:
    import jax
    import jax.numpy as jnp

    from imle_solvers.jax import imle

    target = jax.devices("gpu")[0] if device.startswith("cuda") else jax.devices("cpu")[0]

    def blocking(fn: Callable[[], object]) -> Callable[[], object]:
        return lambda: jax.block_until_ready(fn())

    rows = []
    for b, n, k in sizes:
        key = jax.random.key(0)
        theta = jax.device_put(jax.random.normal(key, (b, n)), target)
        upstream = jax.device_put(jax.random.normal(jax.random.key(1), (b, n)), target)

        def bare_topk(x: jax.Array) -> jax.Array:
            indices = jax.lax.top_k(x, k)[1]
            return jnp.zeros_like(x).at[jnp.arange(x.shape[0])[:, None], indices].set(1.0)

        two_topk_fn = jax.jit(lambda x: (bare_topk(x), bare_topk(x + 1.0)))
        for name, noise in noises(k).items():
            fns = {}
            for validate in (True, False):
                f = imle(ims.KSubset(n, k), ims.IMLE(noise, lambda_=10.0), validate_args=validate)
                grad = jax.jit(jax.grad(lambda t, key, f=f: jnp.sum(f(t, key) * upstream)))
                fns[f"step{validate}"] = blocking(lambda grad=grad: grad(theta, key))

            @jax.jit
            def unavoidable_fn(x: jax.Array, key: jax.Array, noise: object = noise) -> tuple:
                eps = noise.sample(JaxSource(key, x.dtype), (b, 1, 1, n))
                return eps, bare_topk(x), bare_topk(x + 1.0)

            fns["unavoidable"] = blocking(lambda unavoidable_fn=unavoidable_fn: unavoidable_fn(theta, key))
            fns["two_topk"] = blocking(lambda: two_topk_fn(theta))
            times = interleaved_medians(fns, REPEATS)
            rows.append(row("jax.jit", device, (b, n, k), name, times["stepTrue"], times["unavoidable"],
                            times["two_topk"]))
            rows.append(row("jax.jit", device, (b, n, k), f"{name}, validate_args=False", times["stepFalse"],
                            times["unavoidable"], times["two_topk"]))
    return rows


def draw_rows(framework: str, device: str) -> dict[str, object]:
    """Sum-of-Gamma against Gumbel: one draw of 128 x 1000 in ``framework``."""
    shape = (128, 1000)
    if framework == "torch":
        import torch

        source = TorchSource(torch.Generator(device=device).manual_seed(0), torch.float32, device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        fns = {name: lambda noise=noise: (noise.sample(source, shape), sync()) for name, noise in noises(10).items()}
    elif framework == "jax.jit":
        import jax

        fns = {}
        for name, noise in noises(10).items():
            fn = jax.jit(lambda key, noise=noise: noise.sample(JaxSource(key, "float32"), shape))
            fns[name] = lambda fn=fn: jax.block_until_ready(fn(jax.random.key(0)))
    else:
        import numpy as np

        generator = np.random.default_rng(0)
        fns = {name: lambda noise=noise: noise.sample(generator, shape) for name, noise in noises(10).items()}
    return {"framework": framework, **interleaved_medians(fns, REPEATS)}


def grid_row() -> dict[str, object]:
    """The grid layer (12x12, batch 70, torch CPU, scipy's Dijkstra) against its two MAP
    batches: the very perturbed and target costs its step solves, solved by the bare oracle."""
    import dataclasses

    import torch

    from imle_solvers.torch import IMLELayer

    problem = ims.GridShortestPath(12, 12)
    theta = torch.rand(70, 12, 12) + 0.5
    upstream = torch.randn(70, 12, 12)
    layer = IMLELayer(problem, ims.IMLE(ims.SumOfGamma(k=15), lambda_=10.0), seed=0)
    solved = []
    entry = layer.oracle.solver

    def recording(costs, problem):  # noqa: ANN001, ANN202
        solved.append(costs.copy())
        return entry.solve(costs, problem)

    def step() -> None:
        (layer(theta.clone().requires_grad_()) * upstream).sum().backward()

    oracle = ims.MAPOracle(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ims.NegativeCostWarning)  # noise may dip costs below 0: clamped
        layer.oracle.solver = dataclasses.replace(entry, solve=recording)
        step()
        layer.oracle.solver = entry
        perturbed, target = solved
        times = interleaved_medians({"step": step, "maps": lambda: (oracle(perturbed), oracle(target))}, REPEATS)
    return {"step_ms": 1e3 * times["step"], "two_maps_ms": 1e3 * times["maps"], "ratio": times["step"] / times["maps"]}


def row(framework: str, device: str, size: tuple, noise: str, step: float, unavoidable: float | None,
        two_topk: float) -> dict[str, object]:
    return {
        "framework": framework,
        "device": device,
        "size": size,
        "noise": noise,
        "step_ms": 1e3 * step,
        "unavoidable_ms": None if unavoidable is None else 1e3 * unavoidable,
        "vs_unavoidable": None if unavoidable is None else step / unavoidable,
        "two_topk_ms": 1e3 * two_topk,
        "vs_two_topk": step / two_topk,
    }


def main(device: str = "cpu", out: Path | None = None) -> list[dict[str, object]]:
    """Run the benchmark on ``device`` ("cpu" or "cuda"), print markdown tables, return the rows
    (``out``: as JSON too: the steps, the draws in seconds, the grid row).

    Torch runs first: once JAX has run, its idle threads slow torch's CPU ops on 2 cores."""
    sizes = GPU_SIZES if device.startswith("cuda") else CPU_SIZES
    steps = torch_rows(sizes, device)
    draws = [draw_rows("torch", device)]
    grid = None if device.startswith("cuda") else grid_row()
    steps += jax_rows(sizes, device)
    draws.append(draw_rows("jax.jit", device))
    if not device.startswith("cuda"):
        draws.append(draw_rows("numpy (float64)", device))
    print("| framework | device | (B, n, k) | noise | step (ms) | noise + 2 top-k (ms) | ratio | 2 top-k (ms) | ratio |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in steps:
        unavoidable = "" if r["unavoidable_ms"] is None else f"{r['unavoidable_ms']:.2f}"
        ratio = "" if r["vs_unavoidable"] is None else f"{r['vs_unavoidable']:.2f}"
        print(f"| {r['framework']} | {r['device']} | {r['size']} | {r['noise']} | {r['step_ms']:.2f} | "
              f"{unavoidable} | {ratio} | {r['two_topk_ms']:.2f} | {r['vs_two_topk']:.1f} |")
    print("\n| framework | Gumbel draw 128x1000 (ms) | Sum-of-Gamma draw (ms) | ratio |\n|---|---:|---:|---:|")
    for d in draws:
        print(f"| {d['framework']} | {1e3 * d['Gumbel']:.2f} | {1e3 * d['Sum-of-Gamma']:.2f} | "
              f"{d['Sum-of-Gamma'] / d['Gumbel']:.2f} |")
    if grid is not None:
        print(f"\ngrid 12x12, batch 70, torch CPU: step {grid['step_ms']:.2f} ms, two MAP batches "
              f"{grid['two_maps_ms']:.2f} ms, ratio {grid['ratio']:.2f}")
    if out is not None:
        out.write_text(json.dumps({"device": device, "steps": steps, "draws": draws, "grid": grid}, indent=2) + "\n")
    return [*steps, *({"draws": d} for d in draws), *([] if grid is None else [{"grid": grid}])]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    arguments = parser.parse_args()
    main(arguments.device, arguments.out)

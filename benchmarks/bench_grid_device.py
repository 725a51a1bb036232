"""Grid shortest paths on the array's own device, batch of 70: the "bellman-ford" backend
(min-pooling relaxations, array-native) in torch and in JAX under ``jax.jit``, against our
scipy backend (compiled Dijkstra on the host) in the same run.

Random positive float32 maps of 12x12 and 30x30. The scipy backend takes the numpy maps;
torch takes them on ``--device`` (with ``torch.cuda.synchronize()`` on CUDA) and JAX on
its GPU if it sees one, else its CPU (``block_until_ready``). Every backend must find paths
of the same cost (paths may differ on float32 near-ties). Prints a markdown table of the
median time per batch and each time's ratio to scipy's (above 1: slower than scipy).

    python benchmarks/bench_grid_device.py [--device cuda]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from imle_solvers import GridShortestPath, MAPOracle

from _timing import median_seconds  # beside this script

BATCH = 70
SIDES = (12, 30)
REPEATS = 7


def torch_solver(problem: GridShortestPath, costs: np.ndarray, device: str) -> Callable[[], np.ndarray]:
    """One bellman-ford batch in torch on ``device``, waiting for it to finish; the masks on the host."""
    import torch

    oracle = MAPOracle(problem, backend="bellman-ford")
    theta = torch.from_numpy(costs).to(device)

    def solve() -> np.ndarray:
        z = oracle(theta)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return z

    return lambda: solve().cpu().numpy()


def jax_solver(problem: GridShortestPath, costs: np.ndarray) -> tuple[Callable[[], np.ndarray], str]:
    """One bellman-ford batch under ``jax.jit`` on JAX's GPU if it has one, and that device's name."""
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    target = gpus[0] if gpus else jax.devices("cpu")[0]
    oracle = MAPOracle(problem, backend="bellman-ford")
    solve = jax.jit(lambda t: oracle(t, validate=False))  # validation reads values, not possible in a trace
    theta = jax.device_put(costs, target)
    return lambda: np.asarray(jax.block_until_ready(solve(theta))), target.platform


def bench_side(side: int, rng: np.random.Generator, device: str) -> dict[str, float | str]:
    """One table row: the three solvers on a batch of ``side x side`` maps, path costs checked equal."""
    problem = GridShortestPath(side, side)
    costs = rng.uniform(0.5, 10.0, size=(BATCH, side, side)).astype(np.float32)
    scipy_oracle = MAPOracle(problem, backend="scipy")
    torch_solve = torch_solver(problem, costs, device)
    jax_solve, jax_device = jax_solver(problem, costs)
    reference = problem.path_cost(costs.astype(np.float64), scipy_oracle(costs))
    for solve in (torch_solve, jax_solve):
        np.testing.assert_allclose(problem.path_cost(costs.astype(np.float64), solve()), reference, rtol=1e-5)
    scipy_s = median_seconds(lambda: scipy_oracle(costs), REPEATS)
    torch_s = median_seconds(torch_solve, REPEATS)
    jax_s = median_seconds(jax_solve, REPEATS)
    return {
        "grid": f"{side}x{side}",
        "batch": BATCH,
        "scipy_ms": 1e3 * scipy_s,
        "torch_device": device,
        "torch_ms": 1e3 * torch_s,
        "torch_vs_scipy": torch_s / scipy_s,
        "jax_device": jax_device,
        "jax_ms": 1e3 * jax_s,
        "jax_vs_scipy": jax_s / scipy_s,
    }


def main(device: str = "cpu") -> list[dict[str, float | str]]:
    """Run the benchmark (torch on ``device``), print the markdown table, return its rows."""
    rng = np.random.default_rng(0)
    rows = [bench_side(side, rng, device) for side in SIDES]
    print("| grid | batch | scipy (ms) | bellman-ford torch (ms) | vs scipy | bellman-ford jax.jit (ms) | vs scipy |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['grid']} | {row['batch']} | {row['scipy_ms']:.2f} "
            f"| {row['torch_ms']:.2f} ({row['torch_device']}) | {row['torch_vs_scipy']:.2f}x "
            f"| {row['jax_ms']:.2f} ({row['jax_device']}) | {row['jax_vs_scipy']:.2f}x |"
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (torch's device; JAX uses its GPU if it sees one)")
    main(parser.parse_args().device)

"""The cost of the I-MLE layer beyond its solver: one training step (forward and backward of
``IMLELayer``, batch of 70) against the two bare MAP batches that step needs (the perturbed
state, then the target state). A ratio near 1 means the solver is all the cost.

    python benchmarks/bench_layer_overhead.py
"""

from __future__ import annotations

import warnings

import torch

import imle_solvers as ims
from imle_solvers import GridShortestPath, KSubset, MAPOracle, NegativeCostWarning, Problem

from _timing import median_seconds  # beside this script

BATCH = 70
REPEATS = 20


def bench_problem(name: str, problem: Problem, kappa: int) -> dict[str, float | str]:
    """One row: the layer's step, two bare MAP calls on the same batch of positive scores, and
    the step's one noise draw (the part of the overhead that is sampling)."""
    theta = torch.rand(BATCH, *problem.shape, dtype=torch.float64) + 0.5
    layer = ims.torch.IMLELayer(problem, ims.IMLE(noise=ims.SumOfGamma(k=kappa), lambda_=10.0), seed=0)
    oracle = MAPOracle(problem)
    upstream = torch.randn(BATCH, *problem.shape, dtype=torch.float64)

    def training_step() -> None:
        leaf = theta.clone().requires_grad_()
        (layer(leaf) * upstream).sum().backward()

    def two_map_batches() -> None:
        oracle(theta)
        oracle(theta)

    with warnings.catch_warnings():
        # the perturbation may dip grid costs below zero; clamping is the intended default
        warnings.simplefilter("ignore", NegativeCostWarning)
        layer_s = median_seconds(training_step, REPEATS)
    map_s = median_seconds(two_map_batches, REPEATS)
    noise_s = median_seconds(lambda: layer.estimator.draw(theta, layer.noise.source(theta)), REPEATS)
    return {
        "problem": name,
        "batch": BATCH,
        "layer_step_ms": 1e3 * layer_s,
        "two_maps_ms": 1e3 * map_s,
        "noise_ms": 1e3 * noise_s,
        "overhead": layer_s / map_s,
    }


def main() -> list[dict[str, float | str]]:
    """Run the benchmark, print the markdown table, return its rows."""
    torch.manual_seed(0)
    rows = [
        bench_problem("grid 12x12", GridShortestPath(12, 12), kappa=int(1.3 * 12)),
        bench_problem("k-subset n=100 k=10", KSubset(n=100, k=10), kappa=10),
    ]
    print("| problem | batch | I-MLE step (ms) | 2 bare MAP batches (ms) | noise draw in the step (ms) | overhead |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['problem']} | {row['batch']} | {row['layer_step_ms']:.2f} | {row['two_maps_ms']:.2f} "
            f"| {row['noise_ms']:.2f} | {row['overhead']:.2f} |"
        )
    return rows


if __name__ == "__main__":
    main()

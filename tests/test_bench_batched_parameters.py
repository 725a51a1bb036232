"""benchmarks/bench_batched_parameters.py: its batched knapsack, given a capacity, is the
plain program holding that capacity (both against brute force), and a run reports the
four timings per size and backend with the states agreeing."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ortools")

import imle_solvers as ims

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports _timing from beside it
    spec = importlib.util.spec_from_file_location("bench_batched_parameters",
                                                  BENCHMARKS / "bench_batched_parameters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCHMARKS))


def brute_force(theta: np.ndarray, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The best of all 0/1 packings within every row's capacity."""
    states = np.array(list(itertools.product((0, 1), repeat=theta.size)))
    feasible = states[(states @ weights.T <= capacity).all(axis=1)]
    return feasible[np.argmax(feasible @ theta)]


def test_batched_capacity_solves_as_the_plain_program_holding_it(bench):
    items, rows = 8, 2
    weights = bench.weights(items, rows)
    rng = np.random.default_rng(3)
    theta = rng.random((4, items))
    capacities = np.array([[10, 30], [25, 5], [40, 40], [0, 20]])
    with ims.MAPOracle(bench.knapsack(items, rows), backend="ortools") as batched:
        z = batched(theta, capacity=capacities)
    for row, capacity, state in zip(theta, capacities, z):
        with ims.MAPOracle(bench.knapsack(items, rows, capacity), backend="ortools") as plain:
            np.testing.assert_array_equal(plain(row[None])[0], state)
        np.testing.assert_array_equal(state, brute_force(row, weights, capacity))


def test_a_run_reports_every_way_per_size_and_backend(bench, tmp_path):
    rows = bench.main(["--rounds", "1", "--sizes", "6", "1", "--out", str(tmp_path / "rows.json")])
    assert [(r["items"], r["rows"], r["backend"]) for r in rows] == [(6, 1, "ortools"), (6, 1, "scip")]
    for r in rows:
        assert r["same states"] is True
        assert all(r[f"{way} ms"] > 0 for way in ("plain", "same", "differing", "rebuilt"))
    assert (tmp_path / "rows.json").read_text().startswith("{")

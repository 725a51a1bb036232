"""Batched parameters (one capacity per instance) against plain programs: ms per instance.

A multi-constraint 0/1 knapsack ``max theta.x  s.t.  W x <= capacity`` built with the
public builder (``ims.ILPBuilder``), its weights ``W`` ``(rows, items)`` a fixed parameter
(integers 1 to 19, seed 0) and its capacity ``(rows,)`` either fixed in the program
(``add_parameter("capacity", value, over=["rows"])``: a *plain* program) or batched
(``add_parameter("capacity", over=["rows"], default=..., batched=True)``: one value per
instance, given beside theta as ``oracle(theta, capacity=...)``). The default capacity is a
third of each row's total weight; the 64 per-instance capacities are it times uniform
factors in ``[0.5, 1.5]``, rounded. 64 random thetas (uniform in ``[0, 1)``). Two sizes,
50 items x 1 row and 30 items x 3 rows; backends ``ortools`` and ``scip``; ``n_jobs=1``.

Per size and backend, four ways through the same 64 thetas:

- *plain*: ``MAPOracle(plain program)(theta)``, the capacity fixed in the program;
- *same*: ``MAPOracle(batched program)(theta, capacity=c)``, every instance given the plain
  program's capacity: the same solves, so *same / plain* is the price of batched
  parameters (each instance rewrites the numbers they set in the cached model);
- *differing*: the batched program with the 64 different capacities (its instances differ
  in difficulty from the plain ones, so this is no measure of overhead);
- *rebuilt*: what a user without batched parameters writes: per capacity, a plain program
  built with the builder and a fresh ``MAPOracle`` solving its one instance, the solver
  models' caches cleared first so every instance builds its model (as 64 programs new to
  the process would).

*plain*, *same* and *differing* are timed in turn round by round (interleaved medians of
``--rounds`` rounds after a warm-up round, ``_timing.interleaved_medians``); *rebuilt*
afterwards on its own (the median of as many runs after a warm-up run), since clearing
the caches would make the others rebuild their models too. The run also checks that
*same* returns *plain*'s states.

Run: ``python benchmarks/bench_batched_parameters.py [--rounds 5] [--out rows.json]``;
prints a markdown table, ``main()`` returns the rows; ``--out`` writes the settings and
the rows (times in ms per instance) as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

import imle_solvers as ims
from imle_solvers.adapters import ilp_ortools, ilp_scip

from _timing import interleaved_medians, median_seconds  # beside this script

BATCH = 64
SIZES = ((50, 1), (30, 3))  # (items, rows)
BACKENDS = ("ortools", "scip")


def weights(items: int, rows: int, seed: int = 0) -> np.ndarray:
    """The fixed integer weights ``(rows, items)``, 1 to 19."""
    return np.random.default_rng(seed).integers(1, 20, size=(rows, items))


def default_capacity(items: int, rows: int) -> np.ndarray:
    """A third of each row's total weight, rounded down, ``(rows,)``."""
    return weights(items, rows).sum(axis=1) // 3


def knapsack(items: int, rows: int, capacity: np.ndarray | None = None) -> ims.ILP:
    """The knapsack from the builder: with ``capacity`` ``(rows,)`` a plain program holding
    it; without, the capacity a batched parameter (default: :func:`default_capacity`)."""
    b = ims.ILPBuilder("knapsack")
    b.add_set("items", items)
    b.add_set("rows", rows)
    if capacity is None:
        b.add_parameter("capacity", over=["rows"], default=default_capacity(items, rows).tolist(), batched=True)
    else:
        b.add_parameter("capacity", np.asarray(capacity).tolist(), over=["rows"])
    b.add_parameter("weights", weights(items, rows).tolist(), over=["rows", "items"])
    b.add_variable("x", over=["items"], type="binary")
    b.add_constraint("sum(i in items) weights[r, i] * x[i] <= capacity[r]", name="fits", for_each="r in rows")
    b.set_objective("max", theta="x")
    return b.build()


def clear_model_caches() -> None:
    """Forget every cached solver model (and CP-SAT's per-program check), so that the next
    solve of any program builds its model afresh."""
    for cached in (ilp_ortools.cp_sat_model, ilp_ortools.cp_sat_compatible, ilp_ortools.pywraplp_model,
                   ilp_scip.scip_model):
        cached.cache_clear()


def rebuilt_loop(items: int, rows: int, backend: str, theta: np.ndarray,
                 capacities: np.ndarray) -> Callable[[], None]:
    """Per capacity: build the plain program, open an oracle, solve the one instance."""

    def run() -> None:
        for row, capacity in zip(theta, capacities):
            clear_model_caches()
            with ims.MAPOracle(knapsack(items, rows, capacity), backend=backend) as oracle:
                oracle(row[None])

    return run


def measure(items: int, rows: int, backend: str, rounds: int) -> dict[str, object]:
    """One row of the table: ms per instance of the four ways, and whether *same* gave
    *plain*'s states."""
    default = default_capacity(items, rows)
    rng = np.random.default_rng(1)
    theta = rng.random((BATCH, items))
    capacities = np.round(default * rng.uniform(0.5, 1.5, size=(BATCH, rows)))
    same = np.broadcast_to(default, capacities.shape).astype(float)
    with ims.MAPOracle(knapsack(items, rows, default), backend=backend) as plain, \
            ims.MAPOracle(knapsack(items, rows), backend=backend) as batched:
        agree = bool(np.array_equal(plain(theta), batched(theta, capacity=same)))
        times = interleaved_medians({
            "plain": lambda: plain(theta),
            "same": lambda: batched(theta, capacity=same),
            "differing": lambda: batched(theta, capacity=capacities),
        }, rounds)
    times["rebuilt"] = median_seconds(rebuilt_loop(items, rows, backend, theta, capacities), rounds)
    return {"items": items, "rows": rows, "backend": backend, "same states": agree,
            **{f"{name} ms": 1e3 * seconds / BATCH for name, seconds in times.items()}}


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    """Parse ``argv`` (default: the command line), measure, print the table; the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (medians) after a warm-up")
    parser.add_argument("--sizes", type=int, nargs="+", default=[n for size in SIZES for n in size],
                        help="items and rows, in pairs (default: 50 1 30 3)")
    parser.add_argument("--out", type=Path, help="write the settings and rows as JSON here")
    arguments = parser.parse_args(argv)
    sizes = list(zip(arguments.sizes[::2], arguments.sizes[1::2]))
    rows = [measure(items, n_rows, backend, arguments.rounds) for items, n_rows in sizes for backend in BACKENDS]
    print(f"knapsack, batch {BATCH}, capacity fixed or batched; ms per instance, medians of {arguments.rounds} "
          "rounds\n")
    print("| knapsack | backend | plain | batched, same capacity | same / plain | batched, 64 capacities "
          "| plain rebuilt per capacity | same states |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['items']} x {r['rows']} | {r['backend']} | {r['plain ms']:.2f} | {r['same ms']:.2f} "
              f"| {r['same ms'] / r['plain ms']:.2f}x | {r['differing ms']:.2f} | {r['rebuilt ms']:.2f} "
              f"| {r['same states']} |")
    if arguments.out is not None:
        settings = {"batch": BATCH, "rounds": arguments.rounds, "backends": list(BACKENDS), "n_jobs": 1}
        arguments.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

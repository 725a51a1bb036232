"""What the private copies of a solver's inputs cost (issue 19, item 1).

Every host solver gets copies of its rows and per-instance data
(``imle_solvers.chunks._private``), so that a solver writing into its arguments
(``theta[~allowed] = -inf``) cannot change the caller's arrays. The copy is made once per
solver call: once per chunk for a batched solver, once per instance for the others.

Measured on a 12x12 grid shortest path, batch 70, ``n_jobs=1``:

- the copies alone: ``_private`` of what each solver call gets, against the oracle's call
  (validation and solve included), for the cheapest host solver (scipy's compiled
  Dijkstra over the whole batch, one call) and for a per-instance one (networkx, 70 calls);
- the oracle with its copies against the oracle with ``_private`` replaced by the
  identity (no copy), timed in alternation: the difference is within the noise.

Medians of interleaved repeats. Prints a markdown table and the ratio of the cheapest
host solver (the figure the issue bounds at 5%); ``main()`` returns the rows.

Run: ``python benchmarks/bench_input_copy.py``
"""

from __future__ import annotations

import numpy as np

import imle_solvers as ims
from imle_solvers import chunks

from _timing import interleaved_medians, median_seconds

BATCH, SIDE, REPEATS = 70, 12, 30


def measure(backend: str) -> dict[str, object]:
    problem = ims.GridShortestPath(SIDE, SIDE)
    costs = np.random.default_rng(0).uniform(0.1, 1.0, size=(BATCH, SIDE, SIDE))
    oracle = ims.MAPOracle(problem, backend=backend)
    calls = 1 if oracle.solver.batched else BATCH  # what one batch costs in copies
    rows = costs if oracle.solver.batched else costs[0]

    def copies() -> None:
        for _ in range(calls):
            chunks._private(rows, {})

    copy_seconds = median_seconds(copies, REPEATS)
    private = chunks._private
    without = {"with copies": lambda: oracle(costs), "without": lambda: _uncopied(oracle, costs, private)}
    times = interleaved_medians(without, REPEATS)
    return {
        "backend": backend,
        "solver calls": calls,
        "oracle call (ms)": times["with copies"] * 1e3,
        "without copies (ms)": times["without"] * 1e3,
        "copies (ms)": copy_seconds * 1e3,
        "copies / call": copy_seconds / times["with copies"],
    }


def _uncopied(oracle: ims.MAPOracle, costs: np.ndarray, private) -> object:
    chunks._private = lambda theta, data: (theta, data)
    try:
        return oracle(costs)
    finally:
        chunks._private = private


def main() -> list[dict[str, object]]:
    rows = [measure(backend) for backend in ("scipy", "networkx")]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{v:.4f}" if isinstance(v, float) and v < 1 else f"{v:.3g}" if isinstance(v, float) else str(v)
                 for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    cheapest = rows[0]
    print(f"\ncheapest host solver ({cheapest['backend']}, grid {SIDE}x{SIDE}, batch {BATCH}): "
          f"copies are {100 * cheapest['copies / call']:.2f}% of the oracle's call (bound: 5%)")
    return rows


if __name__ == "__main__":
    main()

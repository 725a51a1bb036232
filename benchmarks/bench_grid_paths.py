"""Grid shortest paths, batch of 70: the library's MAP oracle (scipy backend) against a
plain-Python heapq Dijkstra loop, the kind of solver the reference code runs per instance.

Both must agree on every path's cost (paths may differ where costs tie). Prints a markdown
table of the median time per batch and the speed-up ratio, measured in one run.

    python benchmarks/bench_grid_paths.py
"""

from __future__ import annotations

import heapq

import numpy as np

from imle_solvers import GridShortestPath, MAPOracle

from _timing import median_seconds  # beside this script

BATCH = 70
SIDES = (12, 30)
REPEATS = 5
KING_MOVES = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def heapq_dijkstra(costs: np.ndarray) -> np.ndarray:
    """One ``(rows, cols)`` grid -> the 0/1 mask of an 8-neighbour min-cost corner-to-corner path.

    Vertex-weighted (both endpoints counted); stale heap entries are skipped, not re-expanded.
    """
    rows, cols = costs.shape
    grid = costs.tolist()
    distance = {(0, 0): grid[0][0]}
    previous: dict[tuple[int, int], tuple[int, int]] = {}
    done: set[tuple[int, int]] = set()
    heap = [(grid[0][0], (0, 0))]
    target = (rows - 1, cols - 1)
    while heap:
        d, cell = heapq.heappop(heap)
        if cell in done:
            continue
        done.add(cell)
        if cell == target:
            break
        r, c = cell
        for dr, dc in KING_MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols and (nr, nc) not in done:
                candidate = d + grid[nr][nc]
                if candidate < distance.get((nr, nc), float("inf")):
                    distance[(nr, nc)] = candidate
                    previous[(nr, nc)] = cell
                    heapq.heappush(heap, (candidate, (nr, nc)))
    mask = np.zeros_like(costs)
    cell = target
    mask[cell] = 1
    while cell != (0, 0):
        cell = previous[cell]
        mask[cell] = 1
    return mask


def heapq_batch(costs: np.ndarray) -> np.ndarray:
    """``(B, rows, cols)`` -> ``(B, rows, cols)``: the Python loop over instances."""
    return np.stack([heapq_dijkstra(instance) for instance in costs])


def bench_side(side: int, rng: np.random.Generator) -> dict[str, float | str]:
    """One table row: times of both solvers on a batch of ``side x side`` grids, costs checked equal."""
    problem = GridShortestPath(side, side)
    costs = rng.choice([0.8, 1.2, 5.3, 7.7, 9.2], size=(BATCH, side, side))
    oracle = MAPOracle(problem, backend="scipy")
    ours_paths, reference_paths = oracle(costs), heapq_batch(costs)
    ours = median_seconds(lambda: oracle(costs), REPEATS)
    reference = median_seconds(lambda: heapq_batch(costs), REPEATS)
    # paths may differ where costs tie; their costs may not
    np.testing.assert_allclose(
        problem.path_cost(costs, ours_paths), problem.path_cost(costs, reference_paths), rtol=1e-9
    )
    return {
        "grid": f"{side}x{side}",
        "batch": BATCH,
        "imle_solvers_ms": 1e3 * ours,
        "heapq_ms": 1e3 * reference,
        "speedup": reference / ours,
    }


def main() -> list[dict[str, float | str]]:
    """Run the benchmark, print the markdown table, return its rows."""
    rng = np.random.default_rng(0)
    rows = [bench_side(side, rng) for side in SIDES]
    print("| grid | batch | MAPOracle scipy (ms) | heapq Dijkstra (ms) | speed-up |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['grid']} | {row['batch']} | {row['imle_solvers_ms']:.2f} | {row['heapq_ms']:.2f} "
            f"| {row['speedup']:.1f}x |"
        )
    return rows


if __name__ == "__main__":
    main()

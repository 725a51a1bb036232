"""GraphShortestPath, batch of 70 with non-negative costs: the batched scipy backend
against a plain per-instance scipy loop and networkx; and a batch of 256 with negative
costs on a grid DAG: the batched DAG programme against the plain loop. The plain loop
is what a user would write: per instance, one scipy ``dijkstra`` call (``bellman_ford``
when a cost is negative) on the prebuilt graph, its path read back by a Python walk.

The batched backend runs scipy's multi-source Dijkstra over block-diagonal graphs of
several instances (about ``DIJKSTRA_CALL_NODES`` nodes per call); "one call" is the same
with all 70 instances in a single Dijkstra call, for comparison. With negative costs on a
DAG it relaxes each topological level for all instances at once. All must agree on every
path's cost. Prints markdown tables of the median time per batch and the ratios to the
batched backend, measured in one run.

    python benchmarks/bench_graph_paths.py
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from scipy.sparse.csgraph import bellman_ford, dijkstra

from imle_solvers.adapters.graph_paths import (
    batched_dijkstra_masks,
    path_structure,
    solve_graph_path_networkx,
    solve_graph_path_scipy,
)
from imle_solvers.problems import GraphShortestPath

from _timing import median_seconds  # beside this script

BATCH = 70
NEGATIVE_BATCH = 256
REPEATS = 5


def graphs() -> list[tuple[str, GraphShortestPath]]:
    """The benchmarked problems: the 30x30 grid digraph, a random sparse digraph of 1000
    nodes, and a small 10x10 grid, where a call's fixed cost weighs most."""
    random = nx.gnm_random_graph(1000, 4000, seed=1, directed=True)
    target = max(nx.descendants(random, 0))
    return [
        ("30x30 grid digraph", GraphShortestPath(nx.DiGraph(nx.grid_2d_graph(30, 30)), (0, 0), (29, 29))),
        ("random digraph, 1000 nodes, 4000 arcs", GraphShortestPath(random, 0, target)),
        ("10x10 grid digraph", GraphShortestPath(nx.DiGraph(nx.grid_2d_graph(10, 10)), (0, 0), (9, 9))),
    ]


def plain_scipy_loop(problem: GraphShortestPath, theta: np.ndarray) -> np.ndarray:
    """``(N, n_edges)`` masks, one scipy call and one Python walk per instance (the reference)."""
    structure = path_structure(problem)
    edge_of_step = {(t, h): e for t, h, e in zip(structure.tails.tolist(), structure.heads.tolist(),
                                                  structure.edge_of_arc.tolist())}
    masks = np.zeros_like(theta)
    for mask, costs in zip(masks, theta):
        arc_costs = costs[structure.edge_of_arc]
        search = bellman_ford if (arc_costs < 0).any() else dijkstra
        _, predecessors = search(structure.csgraph(arc_costs), indices=structure.source, return_predecessors=True)
        node, predecessors = structure.target, predecessors.tolist()
        while node != structure.source:
            mask[edge_of_step[predecessors[node], node]] = 1
            node = predecessors[node]
    return masks


def bench_graph(name: str, problem: GraphShortestPath, rng: np.random.Generator) -> dict[str, float | str]:
    """One table row: the four solvers on one batch, path costs checked equal."""
    structure = path_structure(problem)  # built once, outside the timings
    theta = rng.random((BATCH, problem.graph.n_edges))
    solvers = {
        "batched": lambda t: solve_graph_path_scipy(t, problem),
        "one_call": lambda t: batched_dijkstra_masks(structure, t, call_nodes=1 << 62),
        "loop": lambda t: plain_scipy_loop(problem, t),
        "networkx": lambda t: np.stack([solve_graph_path_networkx(instance, problem) for instance in t]),
    }
    seconds, costs = {}, {}
    for key, solve in solvers.items():
        z = solve(theta)
        seconds[key] = median_seconds(lambda: solve(theta), REPEATS)
        costs[key] = (theta * z).sum(axis=1)
    for key in solvers:  # paths may differ where costs tie; their costs may not
        np.testing.assert_allclose(costs[key], costs["batched"], rtol=1e-9)
    row: dict[str, float | str] = {"graph": name, "nodes": problem.graph.n_nodes, "batch": BATCH}
    row.update({f"{key}_ms": 1e3 * value for key, value in seconds.items()})
    row.update({f"{key}_ratio": value / seconds["batched"] for key, value in seconds.items() if key != "batched"})
    return row


def grid_dag(side: int) -> nx.DiGraph:
    """The ``side x side`` grid with every edge pointing right or down: a DAG."""
    return nx.DiGraph([(u, v) for u, v in nx.DiGraph(nx.grid_2d_graph(side, side)).edges if u < v])


def bench_negative_dag(rng: np.random.Generator) -> dict[str, float | str]:
    """The negative-cost row: the 30x30 grid DAG, costs uniform on [-0.25, 0.75) (about a
    quarter negative), the batched DAG programme against the plain loop; the same
    batch shifted to non-negative costs (batched Dijkstra) for scale."""
    problem = GraphShortestPath(grid_dag(30), (0, 0), (29, 29))
    structure = path_structure(problem)  # built once, outside the timings
    theta = rng.random((NEGATIVE_BATCH, problem.graph.n_edges)) - 0.25
    assert (theta[:, structure.edge_of_arc] < 0).any(axis=1).all(), "every instance takes the DAG programme"
    solvers = {
        "batched": lambda t: solve_graph_path_scipy(t, problem),
        "loop": lambda t: plain_scipy_loop(problem, t),
    }
    seconds, costs = {}, {}
    for key, solve in solvers.items():
        costs[key] = (theta * solve(theta)).sum(axis=1)
        seconds[key] = median_seconds(lambda: solve(theta), REPEATS)
    np.testing.assert_allclose(costs["loop"], costs["batched"], rtol=1e-9)
    nonnegative_seconds = median_seconds(lambda: solve_graph_path_scipy(theta + 0.25, problem), REPEATS)
    return {
        "graph": "30x30 grid DAG, negative costs",
        "batch": NEGATIVE_BATCH,
        "batched_ms": 1e3 * seconds["batched"],
        "loop_ms": 1e3 * seconds["loop"],
        "loop_ratio": seconds["loop"] / seconds["batched"],
        "nonnegative_ms": 1e3 * nonnegative_seconds,
    }


def main() -> list[dict[str, float | str]]:
    """Run the benchmark, print the markdown tables, return their rows."""
    rng = np.random.default_rng(0)
    rows = [bench_graph(name, problem, rng) for name, problem in graphs()]
    print(
        "| graph | batch | batched scipy (ms) | one Dijkstra call (ms) | per-instance scipy loop (ms) "
        "| networkx loop (ms) | loop / batched | networkx / batched | one call / batched |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['graph']} | {row['batch']} | {row['batched_ms']:.2f} | {row['one_call_ms']:.2f} "
            f"| {row['loop_ms']:.2f} | {row['networkx_ms']:.2f} | {row['loop_ratio']:.2f}x "
            f"| {row['networkx_ratio']:.1f}x | {row['one_call_ratio']:.2f}x |"
        )
    negative = bench_negative_dag(rng)
    print()
    print(
        "| graph | batch | batched scipy (ms) | per-instance scipy loop (ms) | loop / batched "
        "| same batch, costs >= 0 (ms) |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {negative['graph']} | {negative['batch']} | {negative['batched_ms']:.2f} | {negative['loop_ms']:.2f} "
        f"| {negative['loop_ratio']:.1f}x | {negative['nonnegative_ms']:.2f} |"
    )
    return [*rows, negative]


if __name__ == "__main__":
    main()

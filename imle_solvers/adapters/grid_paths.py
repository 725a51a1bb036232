"""Grid shortest paths: scipy's compiled Dijkstra over a whole batch at once, and
networkx as the reference.

Vertex costs become edge weights on a directed grid graph (the weight of
``u -> v`` is the cost of entering ``v``); the source's own cost is added back.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from ..errors import SolverError
from ..problems import GridShortestPath, NegativeCostWarning
from ._csgraph import batched_predecessors
from .registry import register_solver

@lru_cache(maxsize=64)
def grid_neighbours(rows: int, cols: int, neighbourhood: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR structure ``(indptr, indices)`` of the grid graph, cells numbered row-major."""
    steps = [(-1, 0), (0, -1), (0, 1), (1, 0)]
    if neighbourhood == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    r, c = np.divmod(np.arange(rows * cols), cols)
    targets = []
    for dr, dc in steps:
        rr, cc = r + dr, c + dc
        inside = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
        targets.append(np.where(inside, rr * cols + cc, -1))
    targets = np.stack(targets, axis=1)  # (cells, steps), -1 where off the grid
    valid = targets >= 0
    indptr = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])
    indices = targets[valid]
    return indptr, indices


def nonnegative_costs(costs: np.ndarray, problem: GridShortestPath) -> np.ndarray:
    """Apply the problem's negative-cost policy to a batch ``(N, rows, cols)``."""
    negative = (costs < 0).reshape(len(costs), -1).any(axis=1)
    if not negative.any():
        return costs
    first = int(negative.argmax())
    if problem.negative_costs == "raise":
        raise SolverError(
            f"negative cell cost {costs[first].min():.4g} "
            "(GridShortestPath(negative_costs='raise'))",
            index=first,
            status="negative-costs",
        )
    # A constant text, so Python's default filter shows it once per call site rather
    # than on every training step.
    warnings.warn(
        "negative grid costs were clamped to 0 (GridShortestPath(negative_costs='clamp'))",
        NegativeCostWarning,
        stacklevel=3,
    )
    return np.maximum(costs, 0.0)


@register_solver(GridShortestPath.kind, "scipy", batched=True, priority=10)
def solve_grid_scipy(theta: np.ndarray, problem: GridShortestPath) -> np.ndarray:
    """Batched shortest paths ``(N, rows, cols) -> (N, rows, cols)`` with scipy's Dijkstra.

    A few grids at a time form one block-diagonal graph; a multi-source Dijkstra from
    their top-left cells reaches each bottom-right cell from its own block only
    (:func:`._csgraph.batched_predecessors`). All paths are then traced back at once.
    """
    costs = nonnegative_costs(np.asarray(theta, dtype=np.float64), problem)
    n_batch, cells = len(costs), problem.rows * problem.cols
    indptr, indices = grid_neighbours(problem.rows, problem.cols, problem.neighbourhood)
    # the weight of the arc u -> v is the cost of entering v
    predecessors = batched_predecessors(indptr, indices, costs.reshape(n_batch, cells), indices, source=0)
    mask = np.zeros((n_batch, cells), dtype=theta.dtype)
    batch, cell = np.arange(n_batch), np.full(n_batch, cells - 1)
    while batch.size:
        mask[batch, cell] = 1
        cell = predecessors[batch, cell]
        batch, cell = batch[cell >= 0], cell[cell >= 0]
    return mask.reshape(costs.shape)


@register_solver(GridShortestPath.kind, "networkx", priority=0)
def solve_grid_networkx(theta: np.ndarray, problem: GridShortestPath) -> np.ndarray:
    """One instance ``(rows, cols) -> (rows, cols)`` with networkx's Dijkstra (the reference)."""
    import networkx as nx

    costs = nonnegative_costs(np.asarray(theta, dtype=np.float64)[None], problem)[0].ravel()
    graph = _grid_digraph(problem.rows, problem.cols, problem.neighbourhood)
    path = nx.dijkstra_path(graph, 0, costs.size - 1, weight=lambda u, v, d: costs[v])
    mask = np.zeros(costs.size, dtype=theta.dtype)
    mask[path] = 1
    return mask.reshape(theta.shape)


@lru_cache(maxsize=16)
def _grid_digraph(rows: int, cols: int, neighbourhood: int):
    import networkx as nx

    indptr, indices = grid_neighbours(rows, cols, neighbourhood)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(rows * cols))
    for u in range(rows * cols):
        graph.add_edges_from((u, int(v)) for v in indices[indptr[u] : indptr[u + 1]])
    return graph

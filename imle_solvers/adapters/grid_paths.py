"""Grid shortest paths: scipy's compiled Dijkstra over a whole batch at once, and
networkx as the reference.

Vertex costs become edge weights on a directed grid graph (the weight of
``u -> v`` is the cost of entering ``v``); the source's own cost is added back.

Per-instance data (see :class:`~imle_solvers.problems.GridShortestPath`): a closed cell
costs ``+inf`` to enter, which scipy's Dijkstra never takes (the cell stays unreached)
and networkx's hides (its weight is None); each instance starts at its own source and is
read back from its own target. The negative-cost policy looks at open cells only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
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


def open_cell_costs(costs: np.ndarray, problem: GridShortestPath, closed: np.ndarray | None) -> np.ndarray:
    """``costs`` ``(N, rows, cols)`` with the negative-cost policy applied to the open cells and
    ``+inf`` in the ``closed`` ones (``(N, rows, cols)`` bool, or None: none closed). A closed
    cell's cost means nothing, so it neither raises nor warns."""
    if closed is None:
        return nonnegative_costs(costs, problem)
    costs = nonnegative_costs(np.where(closed, 0.0, costs), problem)
    return np.where(closed, np.inf, costs)


def flat_cells(problem: GridShortestPath, data: Mapping[str, np.ndarray], name: str, n_batch: int) -> np.ndarray:
    """The instances' ``name`` cells (``"source"`` or ``"target"``) as flat row-major
    indices ``(N,)`` int64: ``data[name]`` ``(N, 2)``, or the problem's default for all."""
    if name not in data:
        row, col = problem.default_cells[name]
        return np.full(n_batch, row * problem.cols + col, dtype=np.int64)
    cells = np.asarray(data[name], dtype=np.int64)
    return cells[:, 0] * problem.cols + cells[:, 1]


def trace_paths(predecessors: np.ndarray, targets: np.ndarray, dtype: object) -> np.ndarray:
    """0/1 masks ``(N, cells)`` in ``dtype`` of the paths from each instance's target
    (flat, ``(N,)``) back along ``predecessors`` ``(N, cells)`` (negative at the source).
    All instances step back together, one numpy step per cell of the longest path."""
    mask = np.zeros(predecessors.shape, dtype=dtype)
    batch, cell = np.arange(len(predecessors)), targets
    while batch.size:
        mask[batch, cell] = 1
        cell = predecessors[batch, cell]
        batch, cell = batch[cell >= 0], cell[cell >= 0]
    return mask


def unreached_error(problem: GridShortestPath, source: int, target: int, index: int | None = None) -> SolverError:
    """The failure of an instance whose flat ``target`` cell closed cells cut off from its flat
    ``source`` cell; ``index``: its row within a batched solver's call (None for one instance)."""
    cells = [divmod(int(cell), problem.cols) for cell in (target, source)]
    return SolverError(
        "the target cell {} cannot be reached from the source cell {}: closed cells cut it off".format(*cells),
        index=index,
        status="infeasible",
    )


@register_solver(GridShortestPath.kind, "scipy", batched=True, priority=10)
def solve_grid_scipy(
    theta: np.ndarray, problem: GridShortestPath, data: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """Batched shortest paths ``(N, rows, cols) -> (N, rows, cols)`` with scipy's Dijkstra.

    A few grids at a time form one block-diagonal graph; a multi-source Dijkstra from
    their top-left cells reaches each bottom-right cell from its own block only
    (:func:`._csgraph.batched_predecessors`). All paths are then traced back at once.
    ``data`` (optional): ``source`` and ``target`` ``(N, 2)`` int, ``closed``
    ``(N, rows, cols)`` bool (see :func:`solve_grid_scipy_with_data`).
    """
    if data:
        return solve_grid_scipy_with_data(theta, problem, data)
    costs = nonnegative_costs(np.asarray(theta, dtype=np.float64), problem)
    n_batch, cells = len(costs), problem.rows * problem.cols
    indptr, indices = grid_neighbours(problem.rows, problem.cols, problem.neighbourhood)
    # the weight of the arc u -> v is the cost of entering v
    predecessors = batched_predecessors(indptr, indices, costs.reshape(n_batch, cells), indices, source=0)
    return trace_paths(predecessors, np.full(n_batch, cells - 1), theta.dtype).reshape(costs.shape)


def solve_grid_scipy_with_data(
    theta: np.ndarray, problem: GridShortestPath, data: Mapping[str, np.ndarray]
) -> np.ndarray:
    """As :func:`solve_grid_scipy` with per-instance ``source``/``target`` ``(N, 2)`` and
    ``closed`` ``(N, rows, cols)`` (each optional): closed cells cost ``+inf`` to enter, so
    Dijkstra leaves them unreached. An instance whose target is not reached raises a
    SolverError (status ``"infeasible"``) with its index in ``theta``, the first such one."""
    closed = None if data.get("closed") is None else np.asarray(data["closed"], dtype=bool)
    costs = open_cell_costs(np.asarray(theta, dtype=np.float64), problem, closed)
    n_batch, cells = len(costs), problem.rows * problem.cols
    sources, targets = (flat_cells(problem, data, name, n_batch) for name in ("source", "target"))
    indptr, indices = grid_neighbours(problem.rows, problem.cols, problem.neighbourhood)
    predecessors = batched_predecessors(indptr, indices, costs.reshape(n_batch, cells), indices, source=sources)
    unreached = (predecessors[np.arange(n_batch), targets] < 0) & (targets != sources)
    if unreached.any():
        first = int(unreached.argmax())
        raise unreached_error(problem, sources[first], targets[first], index=first)
    return trace_paths(predecessors, targets, theta.dtype).reshape(costs.shape)


@register_solver(GridShortestPath.kind, "networkx", priority=0)
def solve_grid_networkx(
    theta: np.ndarray, problem: GridShortestPath, data: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """One instance ``(rows, cols) -> (rows, cols)`` with networkx's Dijkstra (the reference).
    ``data`` (optional): this instance's ``source`` and ``target`` ``(2,)`` and ``closed``
    ``(rows, cols)``; a closed cell's arcs are hidden from the search."""
    import networkx as nx

    batch = {name: np.asarray(value)[None] for name, value in (data or {}).items()}  # a batch of one
    closed = batch.get("closed")
    costs = open_cell_costs(np.asarray(theta, dtype=np.float64)[None], problem, closed)[0].ravel()
    source, target = (int(flat_cells(problem, batch, name, 1)[0]) for name in ("source", "target"))
    graph = _grid_digraph(problem.rows, problem.cols, problem.neighbourhood)
    if closed is None:
        weight = lambda u, v, d: costs[v]
    else:  # networkx hides an arc whose weight is None: closed cells cannot be entered
        weight = lambda u, v, d: None if costs[v] == np.inf else costs[v]
    try:
        path = nx.dijkstra_path(graph, source, target, weight=weight)
    except nx.NetworkXNoPath:
        raise unreached_error(problem, source, target) from None
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

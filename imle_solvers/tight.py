"""The constraints binding at a solution, as the CaVE loss needs them (PyEPO's
``optDatasetConstrs``): the normals, in ``<=`` orientation and over theta's entries, of

- an :class:`~imle_solvers.ILP`'s rows active at the solution (``A x <= u`` tight: ``a``;
  ``A x >= l`` tight: ``-a``; an equality both) and its variables' tight bounds (at the
  lower bound ``-e_j``, at the upper ``+e_j``), each instance with its batched parameters;
- a directed :class:`~imle_solvers.GraphShortestPath`'s flow conservation (one equality
  per node: ``+-`` its out-arcs minus its in-arcs) and the arcs' bounds ``0 <= x <= 1``
  (a closed edge's upper bound is 0).

Rows are restricted to theta's entries (an ILP's other variables are not scores) and rows
left all zero are dropped: they generate nothing. A batch zero-pads each instance's rows
to the largest count (PyEPO's ``collate_tight_constraints``): ``(B, R, *shape)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._array import to_numpy
from .errors import InvalidInputError
from .problems import ILP, GraphShortestPath, Problem

__all__ = ["TOLERANCE", "batch_tight_constraints", "tight_constraints"]

# a constraint within this (absolute) of its bound binds (PyEPO's tolerance)
TOLERANCE = 1e-5


def tight_constraints(problem: Problem, solution: Any, tol: float = TOLERANCE, **data: Any) -> np.ndarray:
    """The normals ``(R, *problem.shape)`` (float64) of the constraints binding at one
    instance's ``solution``.

    Args:
        problem: an :class:`~imle_solvers.ILP` or a directed
            :class:`~imle_solvers.GraphShortestPath`.
        solution: the instance's true solution: ``z`` of ``problem.shape``; for an ILP with
            variables beyond theta's, its full solution ``x`` ``(n_variables,)``.
        tol: how close to its bound a constraint binds (absolute).
        data: the instance's data by field name, each of the field's shape (an ILP's
            batched parameters; a shortest path's ``source``, ``target``, ``closed``).

    Raises:
        InvalidInputError: a problem without a linear description here, an undirected
            graph, a solution that is not one of the problem (shape, values), or an ILP
            solution ``z`` that lacks the values of the other variables its rows need.
    """
    if isinstance(problem, ILP):
        return _ilp_rows(problem, solution, tol, data)
    if isinstance(problem, GraphShortestPath):
        return _path_rows(problem, solution, tol, data)
    raise InvalidInputError(
        f"tight_constraints: {type(problem).__name__} has no linear description here (an ILP or a directed "
        "GraphShortestPath has); pass the CaVE loss the tight constraints' normals yourself, (B, R, *shape)")


def batch_tight_constraints(problem: Problem, solutions: Any, tol: float = TOLERANCE, **data: Any) -> np.ndarray:
    """:func:`tight_constraints` of each instance of a batch, zero-padded to one count:
    ``(B, R, *problem.shape)``, ``R`` the largest count (the CaVE loss's ``tight_ctrs``).

    ``solutions``: ``(B, *problem.shape)`` (or an ILP's ``(B, n_variables)``); ``data``: the
    batch's data by name, ``(B, *field.shape)`` each. An error names the batch index."""
    points = np.asarray(to_numpy(solutions), dtype=np.float64)
    host = {name: np.asarray(to_numpy(value)) for name, value in data.items()}
    per_instance = []
    for index, point in enumerate(points):
        try:
            per_instance.append(tight_constraints(problem, point, tol, **{k: v[index] for k, v in host.items()}))
        except InvalidInputError as error:
            raise InvalidInputError(f"batch index {index}: {error}") from None
    count = max((len(rows) for rows in per_instance), default=0)
    padded = np.zeros((len(points), count, *problem.shape))
    for index, rows in enumerate(per_instance):
        padded[index, : len(rows)] = rows
    return padded


def _binding(activity: np.ndarray, lower: np.ndarray, upper: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Where ``lower <= activity <= upper`` binds: at the upper side (normal ``+row``), at
    the lower side (``-row``); both for an equality."""
    at_upper = np.isfinite(upper) & (np.abs(activity - upper) < tol)
    at_lower = np.isfinite(lower) & (np.abs(activity - lower) < tol)
    return at_upper, at_lower


def _bound_rows(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, tol: float) -> np.ndarray:
    """The normals ``(R, n)`` of the bounds ``lower <= x <= upper`` that bind at ``x``
    ``(n,)``: ``+e_j`` at the upper bound, ``-e_j`` at the lower one."""
    at_upper, at_lower = _binding(x, lower, upper, tol)
    eye = np.eye(len(x))
    return np.concatenate([eye[at_upper], -eye[at_lower]])


def _nonzero(rows: np.ndarray) -> np.ndarray:
    """``rows`` without those all zero (+ 0.0: no -0.0 entries)."""
    return rows[np.abs(rows).sum(axis=1) > 0] + 0.0


def _ilp_rows(problem: ILP, solution: Any, tol: float, data: Mapping[str, Any]) -> np.ndarray:
    numbers = problem.numbers(problem.instance_values(data))
    point = np.asarray(to_numpy(solution), dtype=np.float64)
    slots = problem.theta_slots()
    n = problem.n_variables
    if point.shape == tuple(problem.shape) and len(slots) != n:
        others = sorted({problem.entry(j)[0] for j in sorted(set(range(n)) - set(slots.tolist()))})
        raise InvalidInputError(
            f"tight_constraints: {problem.label} has variables beyond theta's ({', '.join(others)}): give the "
            f"full solution x ({n},), not z {tuple(problem.shape)}, so that its rows' activity is known")
    broken = problem.violations(point, tol=tol, **data)  # also refuses a point of another shape
    if broken:
        raise InvalidInputError(f"tight_constraints: the solution is not feasible for {problem.label}: {broken}")
    x = np.zeros(n)
    if point.shape == (n,):
        x = point
    else:
        x[slots] = point.ravel()
    a = problem.constraints.copy()
    a.data = numbers.coefficients
    at_upper, at_lower = _binding(a @ x, numbers.row_lower, numbers.row_upper, tol)
    rows = [a[at_upper][:, slots].toarray(), -a[at_lower][:, slots].toarray()]
    bounds = _bound_rows(x[slots], numbers.lower[slots], numbers.upper[slots], tol)
    return _nonzero(np.concatenate([*rows, bounds])).reshape(-1, *problem.shape)


def _path_rows(problem: GraphShortestPath, solution: Any, tol: float, data: Mapping[str, Any]) -> np.ndarray:
    graph = problem.graph
    if not graph.directed:
        raise InvalidInputError(
            "tight_constraints: the graph of GraphShortestPath is undirected, where an edge's flow has no direction "
            "to conserve; give the problem a directed graph (both arcs of each edge) for CaVE")
    x = np.asarray(to_numpy(solution), dtype=np.float64)
    if x.shape != tuple(problem.shape) or not np.isfinite(x).all():
        raise InvalidInputError(f"tight_constraints: GraphShortestPath takes a finite z of shape {problem.shape}, "
                                f"got shape {x.shape}")
    ends = {name: int(data.get(name, default)) for name, default in problem.default_positions.items()}
    arcs = np.arange(graph.n_edges)
    incidence = np.zeros((graph.n_nodes, graph.n_edges))
    incidence[graph.edges[:, 0], arcs] += 1.0  # out of the tail
    incidence[graph.edges[:, 1], arcs] -= 1.0  # into the head
    supply = np.zeros(graph.n_nodes)
    supply[ends["source"]] += 1.0
    supply[ends["target"]] -= 1.0
    upper = np.where(np.asarray(data.get("closed", np.zeros(graph.n_edges, bool)), dtype=bool), 0.0, 1.0)
    if np.abs(incidence @ x - supply).max(initial=0.0) >= tol or (x < -tol).any() or (x > upper + tol).any():
        raise InvalidInputError("tight_constraints: z is not a path of GraphShortestPath from its source to its "
                                "target over open edges (flow conservation or an edge's bounds fail)")
    # every flow row is an equality: it binds on both sides
    flow = np.concatenate([incidence, -incidence])
    bounds = _bound_rows(x, np.zeros(graph.n_edges), upper, tol)
    return _nonzero(np.concatenate([flow, bounds]))

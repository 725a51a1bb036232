"""Maximum-weight matchings: scipy's and OR-Tools' assignment solvers, networkx's blossom.

A non-perfect bipartite matching is an assignment on the scores ``max(theta, 0)``
with the pairs of score 0 or less dropped afterwards: an optimal matching never
needs them, and any matching of positive pairs extends to a full assignment by
pairs that add 0, so the two optima coincide.

Per-instance data: ``data["allowed"]`` (bool, ``problem.shape``) marks the pairs (or
edges) that may be matched. A perfect matching then uses allowed pairs only, and an
instance that has none raises :class:`SolverError` with ``status="infeasible"``; a
non-perfect one gives the forbidden pairs score 0, which drops them like any pair of
score 0 or less. Without ``data`` (or without ``"allowed"``) the solvers run as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import SolverError
from ..problems import BipartiteMatching, EdgeListGraph, GraphMatching
from .registry import register_solver

# OR-Tools' assignment solver takes int64 costs and multiplies them internally by
# about the number of nodes (cost scaling), so scores are rounded to integers of
# at most 2**53 / n_nodes**2 in magnitude: below float64's resolution for small n,
# and safe from overflow. Pairs whose totals differ by less than that rounding
# (ties, in practice) may be chosen differently from scipy.
_ORTOOLS_COST_BITS = 53


def assignment_scores(theta: np.ndarray, problem: BipartiteMatching) -> np.ndarray:
    """The ``(n_left, n_right)`` scores an assignment solver maximises for ``problem``."""
    scores = np.asarray(theta, dtype=np.float64)
    return scores if problem.perfect else np.maximum(scores, 0.0)


def matching_mask(
    rows: np.ndarray, cols: np.ndarray, theta: np.ndarray, problem: BipartiteMatching
) -> np.ndarray:
    """The ``(n_left, n_right)`` 0/1 matrix of the pairs ``(rows[i], cols[i])``; for a
    non-perfect matching only those of positive score."""
    if not problem.perfect:
        keep = theta[rows, cols] > 0
        rows, cols = rows[keep], cols[keep]
    z = np.zeros(problem.shape, dtype=theta.dtype)
    z[rows, cols] = 1
    return z


def allowed_mask(data: Mapping[str, Any] | None) -> np.ndarray | None:
    """The instance's ``allowed`` mask as a numpy bool array (``problem.shape``), or None
    when no data, or no ``allowed``, was given (every pair or edge may be used)."""
    if data is None or data.get("allowed") is None:
        return None
    return np.asarray(data["allowed"], dtype=bool)


def no_perfect_matching(problem: BipartiteMatching) -> SolverError:
    """The error for an instance whose allowed pairs cannot match the whole smaller side."""
    return SolverError(
        f"no perfect matching of the {min(problem.shape)} vertices of the smaller side uses allowed pairs only",
        status="infeasible",
    )


def allowed_matching_mask(
    rows: np.ndarray, cols: np.ndarray, theta: np.ndarray, problem: BipartiteMatching, allowed: np.ndarray
) -> np.ndarray:
    """:func:`matching_mask` ``(n_left, n_right)`` of the pairs ``(rows[i], cols[i])`` under
    ``allowed`` ``(n_left, n_right)``: a non-perfect matching drops the forbidden pairs;
    a perfect one must match the whole smaller side by allowed pairs, or this raises
    :func:`no_perfect_matching` (the solvers' results are verified, never trusted)."""
    if not problem.perfect:
        keep = allowed[rows, cols]
        return matching_mask(rows[keep], cols[keep], theta, problem)
    if len(rows) != min(problem.shape) or not allowed[rows, cols].all():
        raise no_perfect_matching(problem)
    return matching_mask(rows, cols, theta, problem)


def allowed_assignment_scores(theta: np.ndarray, problem: BipartiteMatching, allowed: np.ndarray) -> np.ndarray:
    """The ``(n_left, n_right)`` scores an assignment solver maximises under ``allowed``:
    forbidden pairs score ``-inf`` in a perfect matching (never chosen), 0 in a
    non-perfect one (chosen only as filler, then dropped)."""
    scores = assignment_scores(theta, problem)
    return np.where(allowed, scores, -np.inf if problem.perfect else 0.0)


@register_solver(BipartiteMatching.kind, "scipy", priority=10)
def solve_bipartite_scipy(
    theta: np.ndarray, problem: BipartiteMatching, data: Mapping[str, Any] | None = None
) -> np.ndarray:
    """One instance ``(n_left, n_right) -> (n_left, n_right)`` with scipy's
    ``linear_sum_assignment`` (exact on floats); ``data["allowed"]`` ``(n_left, n_right)``
    bool restricts the pairs."""
    allowed = allowed_mask(data)
    if allowed is not None:
        return solve_bipartite_scipy_allowed(theta, problem, allowed)
    rows, cols = linear_sum_assignment(assignment_scores(theta, problem), maximize=True)
    return matching_mask(rows, cols, theta, problem)


def solve_bipartite_scipy_allowed(theta: np.ndarray, problem: BipartiteMatching, allowed: np.ndarray) -> np.ndarray:
    """:func:`solve_bipartite_scipy` ``(n_left, n_right) -> (n_left, n_right)`` under
    ``allowed`` ``(n_left, n_right)``: forbidden pairs cost ``-inf``, which scipy never
    uses; it reports 'cost matrix is infeasible' when no assignment avoids them."""
    try:
        rows, cols = linear_sum_assignment(allowed_assignment_scores(theta, problem, allowed), maximize=True)
    except ValueError as error:
        if "infeasible" not in str(error):
            raise
        raise no_perfect_matching(problem) from error
    return allowed_matching_mask(rows, cols, theta, problem, allowed)


@register_solver(BipartiteMatching.kind, "ortools", priority=5, requires=("ortools",), extra="ortools")
def solve_bipartite_ortools(
    theta: np.ndarray, problem: BipartiteMatching, data: Mapping[str, Any] | None = None
) -> np.ndarray:
    """One instance ``(n_left, n_right) -> (n_left, n_right)`` with OR-Tools'
    ``SimpleLinearSumAssignment`` on integer-rounded scores (see ``_ORTOOLS_COST_BITS``);
    ``data["allowed"]`` ``(n_left, n_right)`` bool restricts the pairs.

    The smaller side is padded with dummy vertices whose pairs cost 0, because the
    solver wants a perfect matching of two equal sides.
    """
    allowed = allowed_mask(data)
    if allowed is not None:
        return solve_bipartite_ortools_allowed(theta, problem, allowed)
    from ortools.graph.python import linear_sum_assignment as ortools_lsa

    scores = assignment_scores(theta, problem)
    size = max(problem.shape)
    costs = np.zeros((size, size), dtype=np.int64)
    costs[: problem.n_left, : problem.n_right] = -integer_costs(scores, size)  # a minimiser
    tails, heads = ortools_arcs(size)
    solver = ortools_lsa.SimpleLinearSumAssignment()
    solver.add_arcs_with_cost(tails, heads, costs.ravel())
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise SolverError(f"OR-Tools assignment solver returned {status.name}", status=status.name.lower())
    rows = np.arange(problem.n_left)
    cols = np.array([solver.right_mate(int(i)) for i in rows])
    real = cols < problem.n_right
    return matching_mask(rows[real], cols[real], theta, problem)


def solve_bipartite_ortools_allowed(
    theta: np.ndarray, problem: BipartiteMatching, allowed: np.ndarray
) -> np.ndarray:
    """:func:`solve_bipartite_ortools` ``(n_left, n_right) -> (n_left, n_right)`` under
    ``allowed`` ``(n_left, n_right)``. A perfect matching leaves the forbidden arcs out
    (the dummy vertices keep all theirs, so the square assignment exists exactly when
    the smaller side can be matched by allowed pairs); a non-perfect one keeps them at
    cost 0 and drops them afterwards."""
    from ortools.graph.python import linear_sum_assignment as ortools_lsa

    size = max(problem.shape)
    scores = np.where(allowed, assignment_scores(theta, problem), 0.0)
    costs = np.zeros((size, size), dtype=np.int64)
    costs[: problem.n_left, : problem.n_right] = -integer_costs(scores, size)  # a minimiser
    arcs = np.ones((size, size), dtype=bool)
    if problem.perfect:
        arcs[: problem.n_left, : problem.n_right] = allowed
        # OR-Tools counts the nodes from the arcs: a node without any is no node to it
        if not (arcs.any(axis=0).all() and arcs.any(axis=1).all()):
            raise no_perfect_matching(problem)
    tails, heads = np.nonzero(arcs)
    solver = ortools_lsa.SimpleLinearSumAssignment()
    solver.add_arcs_with_cost(tails, heads, costs[tails, heads])
    status = solver.solve()
    if status == solver.INFEASIBLE:
        raise no_perfect_matching(problem)
    if status != solver.OPTIMAL:
        raise SolverError(f"OR-Tools assignment solver returned {status.name}", status=status.name.lower())
    rows = np.arange(problem.n_left)
    cols = np.array([solver.right_mate(int(i)) for i in rows], dtype=np.int64)
    real = cols < problem.n_right
    return allowed_matching_mask(rows[real], cols[real], theta, problem, allowed)


def integer_costs(scores: np.ndarray, n_nodes: int) -> np.ndarray:
    """``scores`` rounded to int64 after scaling by a power of two (see ``_ORTOOLS_COST_BITS``)."""
    largest = float(np.abs(scores).max(initial=0.0))
    if largest == 0.0:
        return np.zeros(scores.shape, dtype=np.int64)
    bits = _ORTOOLS_COST_BITS - 2 * int(np.ceil(np.log2(n_nodes + 1)))
    exponent = bits - int(np.ceil(np.log2(largest)))
    return np.rint(np.ldexp(scores, exponent)).astype(np.int64)


@lru_cache(maxsize=32)
def ortools_arcs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tails and heads ``(size**2,)`` of the complete bipartite graph, row-major."""
    tails, heads = np.divmod(np.arange(size * size), size)
    return tails, heads


@register_solver(BipartiteMatching.kind, "networkx", priority=0)
def solve_bipartite_networkx(
    theta: np.ndarray, problem: BipartiteMatching, data: Mapping[str, Any] | None = None
) -> np.ndarray:
    """One instance ``(n_left, n_right) -> (n_left, n_right)`` with networkx's blossom
    algorithm on the complete bipartite graph (the reference; pure Python);
    ``data["allowed"]`` ``(n_left, n_right)`` bool restricts the pairs."""
    import networkx as nx

    allowed = allowed_mask(data)
    if allowed is not None:
        return solve_bipartite_networkx_allowed(theta, problem, allowed)
    graph = nx.Graph()  # left vertex i is node i, right vertex j is node n_left + j
    graph.add_weighted_edges_from(
        (i, problem.n_left + j, float(theta[i, j])) for i in range(problem.n_left) for j in range(problem.n_right)
    )
    pairs = [sorted(pair) for pair in nx.max_weight_matching(graph, maxcardinality=problem.perfect)]
    rows = np.array([left for left, _ in pairs], dtype=np.int64)
    cols = np.array([right - problem.n_left for _, right in pairs], dtype=np.int64)
    return matching_mask(rows, cols, theta, problem)


def solve_bipartite_networkx_allowed(
    theta: np.ndarray, problem: BipartiteMatching, allowed: np.ndarray
) -> np.ndarray:
    """:func:`solve_bipartite_networkx` ``(n_left, n_right) -> (n_left, n_right)`` on the
    graph of the pairs that ``allowed`` ``(n_left, n_right)`` keeps. A perfect matching is
    the best of maximum cardinality, which must then cover the smaller side."""
    import networkx as nx

    graph = nx.Graph()  # left vertex i is node i, right vertex j is node n_left + j
    graph.add_weighted_edges_from(
        (i, problem.n_left + j, float(theta[i, j])) for i, j in np.argwhere(allowed).tolist()
    )
    pairs = [sorted(pair) for pair in nx.max_weight_matching(graph, maxcardinality=problem.perfect)]
    rows = np.array([left for left, _ in pairs], dtype=np.int64)
    cols = np.array([right - problem.n_left for _, right in pairs], dtype=np.int64)
    return allowed_matching_mask(rows, cols, theta, problem, allowed)


@register_solver(GraphMatching.kind, "networkx", priority=10)
def solve_graph_matching_networkx(
    theta: np.ndarray, problem: GraphMatching, data: Mapping[str, Any] | None = None
) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)`` with networkx's blossom algorithm; edges
    of score 0 or less, and those that ``data["allowed"]`` ``(n_edges,)`` bool forbids,
    are left out."""
    import networkx as nx

    allowed = allowed_mask(data)
    scores = theta if allowed is None else np.where(allowed, theta, 0)  # forbidden: 0, left out
    graph = nx.Graph()  # built per instance: max_weight_matching reads weights from the graph
    graph.add_weighted_edges_from(
        (u, v, float(w)) for (u, v), w in zip(problem.graph.edges.tolist(), scores) if w > 0
    )
    index = edge_positions(problem.graph)
    z = np.zeros(problem.graph.n_edges, dtype=theta.dtype)
    z[[index[frozenset(pair)] for pair in nx.max_weight_matching(graph)]] = 1
    return z


@lru_cache(maxsize=32)
def edge_positions(graph: EdgeListGraph) -> dict[frozenset[int], int]:
    """``{u, v} -> i`` for the undirected edges ``graph.edges[i] == (u, v)``."""
    return {frozenset(edge): i for i, edge in enumerate(graph.edges.tolist())}

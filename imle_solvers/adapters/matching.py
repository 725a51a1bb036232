"""Maximum-weight matchings: scipy's and OR-Tools' assignment solvers, networkx's blossom.

A non-perfect bipartite matching is an assignment on the scores ``max(theta, 0)``
with the pairs of score 0 or less dropped afterwards: an optimal matching never
needs them, and any matching of positive pairs extends to a full assignment by
pairs that add 0, so the two optima coincide.
"""

from __future__ import annotations

from functools import lru_cache

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


@register_solver(BipartiteMatching.kind, "scipy", priority=10)
def solve_bipartite_scipy(theta: np.ndarray, problem: BipartiteMatching) -> np.ndarray:
    """One instance ``(n_left, n_right) -> (n_left, n_right)`` with scipy's
    ``linear_sum_assignment`` (exact on floats)."""
    rows, cols = linear_sum_assignment(assignment_scores(theta, problem), maximize=True)
    return matching_mask(rows, cols, theta, problem)


@register_solver(BipartiteMatching.kind, "ortools", priority=5, requires=("ortools",), extra="ortools")
def solve_bipartite_ortools(theta: np.ndarray, problem: BipartiteMatching) -> np.ndarray:
    """One instance ``(n_left, n_right) -> (n_left, n_right)`` with OR-Tools'
    ``SimpleLinearSumAssignment`` on integer-rounded scores (see ``_ORTOOLS_COST_BITS``).

    The smaller side is padded with dummy vertices whose pairs cost 0, because the
    solver wants a perfect matching of two equal sides.
    """
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
def solve_bipartite_networkx(theta: np.ndarray, problem: BipartiteMatching) -> np.ndarray:
    """One instance ``(n_left, n_right) -> (n_left, n_right)`` with networkx's blossom
    algorithm on the complete bipartite graph (the reference; pure Python)."""
    import networkx as nx

    graph = nx.Graph()  # left vertex i is node i, right vertex j is node n_left + j
    graph.add_weighted_edges_from(
        (i, problem.n_left + j, float(theta[i, j])) for i in range(problem.n_left) for j in range(problem.n_right)
    )
    pairs = [sorted(pair) for pair in nx.max_weight_matching(graph, maxcardinality=problem.perfect)]
    rows = np.array([left for left, _ in pairs], dtype=np.int64)
    cols = np.array([right - problem.n_left for _, right in pairs], dtype=np.int64)
    return matching_mask(rows, cols, theta, problem)


@register_solver(GraphMatching.kind, "networkx", priority=10)
def solve_graph_matching_networkx(theta: np.ndarray, problem: GraphMatching) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)`` with networkx's blossom algorithm; edges
    of score 0 or less are left out."""
    import networkx as nx

    graph = nx.Graph()  # built per instance: max_weight_matching reads weights from the graph
    graph.add_weighted_edges_from(
        (u, v, float(w)) for (u, v), w in zip(problem.graph.edges.tolist(), theta) if w > 0
    )
    index = edge_positions(problem.graph)
    z = np.zeros(problem.graph.n_edges, dtype=theta.dtype)
    z[[index[frozenset(pair)] for pair in nx.max_weight_matching(graph)]] = 1
    return z


@lru_cache(maxsize=32)
def edge_positions(graph: EdgeListGraph) -> dict[frozenset[int], int]:
    """``{u, v} -> i`` for the undirected edges ``graph.edges[i] == (u, v)``."""
    return {frozenset(edge): i for i, edge in enumerate(graph.edges.tolist())}

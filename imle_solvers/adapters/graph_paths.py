"""Shortest paths on a fixed graph: scipy.sparse.csgraph (compiled) and networkx (the reference).

Both solve the same exact problem (see :class:`~imle_solvers.problems.GraphShortestPath`):
only the *relevant* arcs count, those on some walk from the source to the target,
so a negative cycle elsewhere in the graph changes nothing. The cheapest exact
method that fits is used: Dijkstra for non-negative costs (the scipy backend solves
all such instances of a batch with a few multi-source Dijkstra calls over
block-diagonal graphs of several instances), and
per instance a topological-order dynamic programme when the relevant arcs form a
DAG, and Bellman-Ford otherwise, which finds the negative cycles that make an
instance unbounded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import NegativeCycleError, bellman_ford, breadth_first_order, dijkstra

from ..errors import SolverError
from ..problems import GraphShortestPath, NegativeCostWarning
from ._csgraph import batched_predecessors
from .registry import register_solver

_NO_PREDECESSOR = -9999  # scipy's marker


# The relevant arcs of a DAG grouped by their head's topological generation: per
# generation ``(arcs, heads, starts)``, the arc ids sorted by head, the distinct heads,
# and where each head's run of arcs starts (for ``np.minimum.reduceat``).
TopologicalLevels = tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class PathStructure:
    """What a graph, source and target fix for every instance; built once per process.

    Attributes:
        n_nodes: nodes of the graph.
        source, target: their positions.
        reachable: whether the target can be reached at all.
        tails, heads, edge_of_arc: ``(A,)`` the relevant arcs (an undirected edge
            gives two) and the edge (theta entry) each one walks.
        arc_of_step: ``(tail, head) -> arc id``, to read a path back as arcs.
        csr_order: ``(A,)`` arc ids in CSR order, with ``indptr`` and ``indices``
            the CSR structure of the relevant arcs.
        csr_keys: ``(A,)`` ``tail * n_nodes + head`` of the arcs in CSR order
            (ascending: a step's CSR position is a ``searchsorted`` away).
        dag: the topological levels if the relevant arcs are acyclic, else None.
    """

    n_nodes: int
    source: int
    target: int
    reachable: bool
    tails: np.ndarray
    heads: np.ndarray
    edge_of_arc: np.ndarray
    arc_of_step: dict[tuple[int, int], int]
    csr_order: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    csr_keys: np.ndarray
    dag: TopologicalLevels | None

    def csgraph(self, arc_costs: np.ndarray) -> csr_array:
        """The ``(n_nodes, n_nodes)`` CSR graph of the relevant arcs with costs ``(A,)``.
        Explicit zeros are edges of cost 0 to scipy.sparse.csgraph."""
        return csr_array((arc_costs[self.csr_order], self.indices, self.indptr), shape=(self.n_nodes,) * 2)


@lru_cache(maxsize=32)
def path_structure(problem: GraphShortestPath) -> PathStructure:
    """The :class:`PathStructure` of ``problem`` (cached: problems are hashable)."""
    graph = problem.graph
    n = graph.n_nodes
    source = graph.position(problem.source, "source")
    target = graph.position(problem.target, "target")
    edges = np.asarray(graph.edges, dtype=np.int64).reshape(-1, 2)
    edge_ids = np.arange(len(edges))
    tails, heads, edge_of_arc = edges[:, 0], edges[:, 1], edge_ids
    if not graph.directed:
        back = edges[:, 0] != edges[:, 1]  # a self-loop is one arc, not two
        tails = np.concatenate([tails, edges[back, 1]])
        heads = np.concatenate([heads, edges[back, 0]])
        edge_of_arc = np.concatenate([edge_of_arc, edge_ids[back]])

    forward = csr_array((np.ones(len(tails)), (tails, heads)), shape=(n, n))
    from_source = _reached(forward, source)
    to_target = _reached(forward.T.tocsr(), target)
    relevant = from_source[tails] & to_target[heads]
    tails, heads, edge_of_arc = tails[relevant], heads[relevant], edge_of_arc[relevant]

    csr_order = np.lexsort((heads, tails))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(tails, minlength=n))])
    return PathStructure(
        n_nodes=n,
        source=source,
        target=target,
        reachable=bool(from_source[target]),
        tails=tails,
        heads=heads,
        edge_of_arc=edge_of_arc,
        arc_of_step={(int(u), int(v)): a for a, (u, v) in enumerate(zip(tails, heads))},
        csr_order=csr_order,
        indptr=indptr,
        indices=heads[csr_order],
        csr_keys=tails[csr_order] * n + heads[csr_order],
        dag=_topological_levels(n, tails, heads),
    )


def _reached(graph: csr_array, start: int) -> np.ndarray:
    """``(n,)`` mask of the nodes reachable from ``start``."""
    mask = np.zeros(graph.shape[0], dtype=bool)
    mask[breadth_first_order(graph, start, directed=True, return_predecessors=False)] = True
    return mask


def _topological_levels(n: int, tails: np.ndarray, heads: np.ndarray) -> TopologicalLevels | None:
    """The arcs grouped by topological generation of their heads, or None if they hold a cycle."""
    import networkx as nx

    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    dag.add_edges_from(zip(tails.tolist(), heads.tolist()))
    try:
        generations = list(nx.topological_generations(dag))
    except nx.NetworkXUnfeasible:
        return None
    generation = np.empty(n, dtype=np.int64)
    for g, nodes in enumerate(generations):
        generation[nodes] = g
    levels = []
    for g in range(1, len(generations)):
        arcs = np.flatnonzero(generation[heads] == g)
        if arcs.size == 0:
            continue
        arcs = arcs[np.argsort(heads[arcs], kind="stable")]
        level_heads, starts = np.unique(heads[arcs], return_index=True)
        levels.append((arcs, level_heads, starts))
    return tuple(levels)


def dag_predecessors(structure: PathStructure, arc_costs: np.ndarray) -> np.ndarray:
    """``(n_nodes,)`` predecessor of each node on a cheapest path from the source,
    by dynamic programming in topological order (exact for costs of any sign)."""
    dist = np.full(structure.n_nodes, np.inf)
    dist[structure.source] = 0.0
    predecessors = np.full(structure.n_nodes, _NO_PREDECESSOR)
    for arcs, heads, starts in structure.dag:
        candidates = dist[structure.tails[arcs]] + arc_costs[arcs]
        best = np.minimum.reduceat(candidates, starts)
        counts = np.diff(np.append(starts, len(arcs)))
        # the first arc attaining each head's minimum
        attains = candidates == np.repeat(best, counts)
        first = np.minimum.reduceat(np.where(attains, np.arange(len(arcs)), len(arcs)), starts)
        dist[heads] = best
        predecessors[heads] = structure.tails[arcs[first]]
    return predecessors


def negative_cycle_fallback(problem: GraphShortestPath, arc_costs: np.ndarray) -> np.ndarray:
    """Apply ``problem.negative_cycles`` to an instance whose relevant arcs hold a negative cycle:
    raise, or return the costs clamped at 0 (with a :class:`NegativeCostWarning`)."""
    if problem.negative_cycles == "raise":
        raise SolverError(
            "a negative cycle lies on a walk from source to target, so no cheapest path exists "
            "(GraphShortestPath(negative_cycles='raise'); 'clamp' solves with max(costs, 0) instead)",
            status="unbounded",
        )
    warnings.warn(
        "a negative cycle lies on a walk from source to target: solved with costs clamped to 0 "
        "(GraphShortestPath(negative_cycles='clamp'))",
        NegativeCostWarning,
        stacklevel=3,
    )
    return np.maximum(arc_costs, 0.0)


def path_mask(structure: PathStructure, nodes: list[int], n_edges: int, dtype: Any) -> np.ndarray:
    """``(n_edges,)`` 0/1 mask of the edges walked by the node sequence ``nodes``."""
    arcs = [structure.arc_of_step[step] for step in zip(nodes[:-1], nodes[1:])]
    mask = np.zeros(n_edges, dtype=dtype)
    mask[structure.edge_of_arc[arcs]] = 1
    return mask


def _check_reachable(structure: PathStructure, index: int | None = None) -> None:
    if not structure.reachable:
        raise SolverError("the target cannot be reached from the source", index=index, status="infeasible")


def scipy_predecessors(structure: PathStructure, problem: GraphShortestPath, arc_costs: np.ndarray) -> np.ndarray:
    """``(n_nodes,)`` predecessor of each node on a cheapest path from the source, for
    relevant-arc costs ``(A,)``: Dijkstra, the DAG programme, or Bellman-Ford, as fits."""
    if arc_costs.size == 0 or arc_costs.min() >= 0:
        return _dijkstra_predecessors(structure, arc_costs)
    if structure.dag is not None:
        return dag_predecessors(structure, arc_costs)
    try:
        _, predecessors = bellman_ford(structure.csgraph(arc_costs), indices=structure.source, return_predecessors=True)
    except NegativeCycleError:
        return _dijkstra_predecessors(structure, negative_cycle_fallback(problem, arc_costs))
    return predecessors


def _dijkstra_predecessors(structure: PathStructure, arc_costs: np.ndarray) -> np.ndarray:
    _, predecessors = dijkstra(structure.csgraph(arc_costs), indices=structure.source, return_predecessors=True)
    return predecessors


def solve_graph_path_instance(theta: np.ndarray, problem: GraphShortestPath) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)`` with scipy.sparse.csgraph: Dijkstra, the DAG
    programme or Bellman-Ford, as fits. The batched solver's route for instances with a
    negative relevant cost."""
    structure = path_structure(problem)
    _check_reachable(structure)
    arc_costs = np.asarray(theta, dtype=np.float64)[structure.edge_of_arc]
    predecessors = scipy_predecessors(structure, problem, arc_costs)
    nodes = [structure.target]
    while nodes[-1] != structure.source:
        nodes.append(int(predecessors[nodes[-1]]))
    return path_mask(structure, nodes[::-1], problem.graph.n_edges, theta.dtype)


@register_solver(GraphShortestPath.kind, "scipy", batched=True, priority=10)
def solve_graph_path_scipy(theta: np.ndarray, problem: GraphShortestPath) -> np.ndarray:
    """Batched shortest paths ``(N, n_edges) -> (N, n_edges)`` with scipy.sparse.csgraph.

    The instances whose relevant costs are all non-negative are solved together by
    :func:`batched_dijkstra_masks`; the others one by one by :func:`solve_graph_path_instance`.
    A failure raises for the first failing instance, with its index in ``theta``.
    """
    theta = np.asarray(theta)
    structure = path_structure(problem)
    _check_reachable(structure, index=0)  # the same for every instance: the first one fails
    negative = (np.take(theta, structure.edge_of_arc, axis=1) < 0).any(axis=1)
    if not negative.any():  # the usual batch: no copies
        return batched_dijkstra_masks(structure, theta)
    z = np.zeros_like(theta)
    failure: SolverError | None = None
    nonnegative = np.flatnonzero(~negative)
    if nonnegative.size:
        try:
            z[nonnegative] = batched_dijkstra_masks(structure, theta[nonnegative])
        except SolverError as error:  # its index counts the non-negative instances only
            failure = _indexed(error, int(nonnegative[error.index]))
    for i in np.flatnonzero(negative):
        if failure is not None and failure.index < i:
            break  # as a loop over the instances would, stop at the first failure
        try:
            z[i] = solve_graph_path_instance(theta[i], problem)
        except SolverError as error:
            failure = _indexed(error, int(i))
    if failure is not None:
        raise failure
    return z


def _indexed(error: SolverError, index: int) -> SolverError:
    indexed = SolverError(str(error), index=index, status=error.status)
    indexed.__cause__ = error
    return indexed


def batched_dijkstra_masks(structure: PathStructure, theta: np.ndarray, call_nodes: int | None = None) -> np.ndarray:
    """``(N, n_edges)`` edge masks of cheapest paths for ``N`` instances ``theta``
    ``(N, n_edges)`` whose relevant costs are all non-negative.

    Each scipy call is a multi-source Dijkstra over the block-diagonal graph of several
    instances (about ``call_nodes`` nodes in all; see :func:`._csgraph.batched_predecessors`):
    a block is reached from its own source only, and ties are broken as a call for its
    instance alone breaks them. An instance whose target is not reached (an infinite
    cost cuts it off) raises a SolverError with status ``"infeasible"`` and its index.
    Temporaries stay per call: large fresh arrays cost page faults on every batch.
    """
    n_batch, n = len(theta), structure.n_nodes
    edge_in_csr_order = structure.edge_of_arc[structure.csr_order]
    predecessors = batched_predecessors(
        structure.indptr, structure.indices, theta, edge_in_csr_order, structure.source, call_nodes
    )
    if structure.target != structure.source:
        unreached = np.flatnonzero(predecessors[:, structure.target] < 0)
        if unreached.size:
            raise SolverError(
                "the target cannot be reached from the source", index=int(unreached[0]), status="infeasible"
            )
    # walk every instance's path back from its target at once, an arc per round
    mask = np.zeros_like(theta)
    batch, head = np.arange(n_batch), np.full(n_batch, structure.target)
    while batch.size:
        on_path = head != structure.source
        batch, head = batch[on_path], head[on_path]
        tail = predecessors[batch, head].astype(np.int64)
        position = np.searchsorted(structure.csr_keys, tail * n + head)
        mask[batch, edge_in_csr_order[position]] = 1
        head = tail
    return mask


@register_solver(GraphShortestPath.kind, "networkx", priority=0)
def solve_graph_path_networkx(theta: np.ndarray, problem: GraphShortestPath) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)`` with networkx (the reference): Dijkstra,
    or Bellman-Ford when a relevant arc costs less than 0."""
    import networkx as nx

    structure = path_structure(problem)
    _check_reachable(structure)
    arc_costs = np.asarray(theta, dtype=np.float64)[structure.edge_of_arc]
    graph = relevant_digraph(problem)
    if arc_costs.size and arc_costs.min() < 0:
        try:
            nodes = nx.bellman_ford_path(graph, structure.source, structure.target, weight=_arc_weight(arc_costs))
        except nx.NetworkXUnbounded:
            arc_costs = negative_cycle_fallback(problem, arc_costs)
            nodes = nx.dijkstra_path(graph, structure.source, structure.target, weight=_arc_weight(arc_costs))
    else:
        nodes = nx.dijkstra_path(graph, structure.source, structure.target, weight=_arc_weight(arc_costs))
    return path_mask(structure, nodes, problem.graph.n_edges, theta.dtype)


def _arc_weight(arc_costs: np.ndarray):
    return lambda u, v, data: arc_costs[data["arc"]]


@lru_cache(maxsize=32)
def relevant_digraph(problem: GraphShortestPath) -> Any:
    """A networkx ``DiGraph`` of the relevant arcs; attribute ``"arc"`` is the arc id."""
    import networkx as nx

    structure = path_structure(problem)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(structure.n_nodes))
    graph.add_edges_from((int(u), int(v), {"arc": a}) for a, (u, v) in enumerate(zip(structure.tails, structure.heads)))
    return graph

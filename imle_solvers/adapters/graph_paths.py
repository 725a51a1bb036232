"""Shortest paths on a fixed graph: scipy.sparse.csgraph (compiled) and networkx (the reference).

Both solve the same exact problem (see :class:`~imle_solvers.problems.GraphShortestPath`):
only the *relevant* arcs count, those on some walk from the source to the target,
so a negative cycle elsewhere in the graph changes nothing. The cheapest exact
method that fits is used: Dijkstra for non-negative costs (the scipy backend solves
all such instances of a batch with a few multi-source Dijkstra calls over
block-diagonal graphs of several instances), a topological-order dynamic programme
when the relevant arcs form a DAG (the scipy backend runs it for all such instances
of a batch at once), and per instance Bellman-Ford otherwise, which finds the
negative cycles that make an instance unbounded. Every route ends in predecessor
arrays, read back as edge masks by one vectorised walk (:func:`masks_from_predecessors`).

Per-instance data (``source``, ``target`` node positions and ``closed`` edges, see
:class:`~imle_solvers.problems.GraphShortestPath`): an instance is the problem with its
own source and target on the graph without its closed edges, whose relevant arcs are its
own. The scipy backend solves every instance without a negative cost on an open arc by
one batched Dijkstra over all the graph's arcs (closed ones cost ``+inf``, which scipy
never takes), each from its own source; the others are grouped by their data, and each
group goes the way a batch without data goes, on its own :class:`PathStructure`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import NegativeCycleError, bellman_ford, breadth_first_order, dijkstra

from ..errors import SolverError
from ..problems import EdgeListGraph, GraphShortestPath, NegativeCostWarning
from ._csgraph import batched_predecessors
from .registry import register_solver

_NO_PREDECESSOR = -9999  # scipy's marker


@dataclass(frozen=True, eq=False)
class TopologicalLevel:
    """The relevant arcs entering one topological generation of a DAG, sorted by head;
    stably, so a head's arcs keep their arc order (the first cheapest one wins a tie).

    Attributes:
        arcs, tails: ``(k,)`` the arc ids and their tails.
        heads: ``(h,)`` the generation's distinct heads.
        starts: ``(h,)`` where each head's run of arcs starts (for ``np.minimum.reduceat``).
        run: ``(k,)`` the position in ``heads`` of each arc's head.
    """

    arcs: np.ndarray
    tails: np.ndarray
    heads: np.ndarray
    starts: np.ndarray
    run: np.ndarray


@dataclass(frozen=True, eq=False)
class ArcSet:
    """Arcs of a graph in scipy's CSR form, and how to read steps back as edges.

    Attributes:
        n_nodes, n_edges: nodes and edges (theta entries) of the graph.
        tails, heads, edge_of_arc: ``(A,)`` the arcs (an undirected edge gives two) and
            the edge (theta entry) each one walks.
        csr_order: ``(A,)`` arc ids in CSR order, with ``indptr`` and ``indices``
            the CSR structure of the arcs.
        csr_keys: ``(A,)`` ``tail * n_nodes + head`` of the arcs in CSR order
            (ascending: a step's CSR position is a ``searchsorted`` away).
        edge_in_csr_order: ``(A,)`` ``edge_of_arc[csr_order]``.
    """

    n_nodes: int
    n_edges: int
    tails: np.ndarray
    heads: np.ndarray
    edge_of_arc: np.ndarray
    csr_order: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    csr_keys: np.ndarray
    edge_in_csr_order: np.ndarray

    def csgraph(self, arc_costs: np.ndarray) -> csr_array:
        """The ``(n_nodes, n_nodes)`` CSR graph of the arcs with costs ``(A,)``.
        Explicit zeros are edges of cost 0 to scipy.sparse.csgraph."""
        return csr_array((arc_costs[self.csr_order], self.indices, self.indptr), shape=(self.n_nodes,) * 2)

    def edges_of_steps(self, tails: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """The edge (theta entry) walked by each step ``tails[i] -> heads[i]`` along an arc."""
        return self.edge_in_csr_order[np.searchsorted(self.csr_keys, tails * self.n_nodes + heads)]


def csr_fields(n_nodes: int, tails: np.ndarray, heads: np.ndarray, edge_of_arc: np.ndarray) -> dict[str, Any]:
    """The :class:`ArcSet` fields of the arcs ``tails -> heads`` ``(A,)`` walking ``edge_of_arc``."""
    csr_order = np.lexsort((heads, tails))
    return {
        "tails": tails,
        "heads": heads,
        "edge_of_arc": edge_of_arc,
        "csr_order": csr_order,
        "indptr": np.concatenate([[0], np.cumsum(np.bincount(tails, minlength=n_nodes))]),
        "indices": heads[csr_order],
        "csr_keys": tails[csr_order] * n_nodes + heads[csr_order],
        "edge_in_csr_order": edge_of_arc[csr_order],
    }


@dataclass(frozen=True, eq=False)
class PathStructure(ArcSet):
    """What a graph, source and target (and closed edges) fix for every instance; built
    once per process. Its arcs are the *relevant* ones: on some walk from source to target.

    Attributes (besides :class:`ArcSet`'s):
        source, target: their positions.
        reachable: whether the target can be reached at all.
    """

    source: int
    target: int
    reachable: bool

    @cached_property
    def dag(self) -> tuple[TopologicalLevel, ...] | None:
        """The topological levels if the relevant arcs are acyclic, else None. Built on the
        first negative cost: it takes networkx about as long as the rest of the structure."""
        return _topological_levels(self.n_nodes, self.tails, self.heads)

    @cached_property
    def digraph(self) -> Any:
        """A networkx ``DiGraph`` of the relevant arcs; attribute ``"arc"`` is the arc id."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.n_nodes))
        graph.add_edges_from(
            (u, v, {"arc": a}) for a, (u, v) in enumerate(zip(self.tails.tolist(), self.heads.tolist()))
        )
        return graph


def path_structure(problem: GraphShortestPath) -> PathStructure:
    """The :class:`PathStructure` of ``problem``'s graph, source and target (cached per
    process; the negative-cycle policy does not change it)."""
    return _path_structure(problem.graph, problem.source, problem.target)


@lru_cache(maxsize=32)
def _path_structure(graph: EdgeListGraph, source_label: Any, target_label: Any) -> PathStructure:
    source = graph.position(source_label, "source")
    target = graph.position(target_label, "target")
    return instance_structure(graph, source, target, None)


@lru_cache(maxsize=64)
def instance_structure(graph: EdgeListGraph, source: int, target: int, closed_bits: bytes | None) -> PathStructure:
    """The :class:`PathStructure` of the paths from position ``source`` to ``target`` on
    ``graph`` without the closed edges (``closed_bits``: ``np.packbits`` of the ``(n_edges,)``
    closed mask, hashable for the cache; None: none closed)."""
    tails, heads, edge_of_arc = graph_arcs(graph)
    if closed_bits is not None:
        closed = np.unpackbits(np.frombuffer(closed_bits, dtype=np.uint8), count=graph.n_edges).astype(bool)
        usable = ~closed[edge_of_arc]
        tails, heads, edge_of_arc = tails[usable], heads[usable], edge_of_arc[usable]
    n = graph.n_nodes
    forward = csr_array((np.ones(len(tails)), (tails, heads)), shape=(n, n))
    from_source = _reached(forward, source)
    to_target = _reached(forward.T.tocsr(), target)
    relevant = from_source[tails] & to_target[heads]
    return PathStructure(
        n_nodes=n,
        n_edges=graph.n_edges,
        source=source,
        target=target,
        reachable=bool(from_source[target]),
        **csr_fields(n, tails[relevant], heads[relevant], edge_of_arc[relevant]),
    )


@lru_cache(maxsize=32)
def graph_arcs(graph: EdgeListGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A,)`` tails, heads and walked edge of every arc of ``graph``: its edges in order,
    then for an undirected graph each edge but a self-loop backwards (a self-loop is one arc)."""
    edges = graph.edges
    edge_ids = np.arange(len(edges))
    tails, heads, edge_of_arc = edges[:, 0], edges[:, 1], edge_ids
    if not graph.directed:
        back = edges[:, 0] != edges[:, 1]
        tails = np.concatenate([tails, edges[back, 1]])
        heads = np.concatenate([heads, edges[back, 0]])
        edge_of_arc = np.concatenate([edge_of_arc, edge_ids[back]])
    return tails, heads, edge_of_arc


@lru_cache(maxsize=32)
def all_arcs(graph: EdgeListGraph) -> ArcSet:
    """The :class:`ArcSet` of all of ``graph``'s arcs (for Dijkstra over instances whose
    relevant arcs differ: closed arcs then cost ``+inf``)."""
    return ArcSet(n_nodes=graph.n_nodes, n_edges=graph.n_edges, **csr_fields(graph.n_nodes, *graph_arcs(graph)))


def _reached(graph: csr_array, start: int) -> np.ndarray:
    """``(n,)`` mask of the nodes reachable from ``start``."""
    mask = np.zeros(graph.shape[0], dtype=bool)
    mask[breadth_first_order(graph, start, directed=True, return_predecessors=False)] = True
    return mask


def _topological_levels(n: int, tails: np.ndarray, heads: np.ndarray) -> tuple[TopologicalLevel, ...] | None:
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
        level_heads, starts, run = np.unique(heads[arcs], return_index=True, return_inverse=True)
        levels.append(TopologicalLevel(arcs, tails[arcs], level_heads, starts, run))
    return tuple(levels)


def dag_predecessors(structure: PathStructure, arc_costs: np.ndarray) -> np.ndarray:
    """``(N, n_nodes)`` predecessor of each node on a cheapest path from the source, for
    ``N`` instances of relevant-arc costs ``arc_costs`` ``(N, A)`` (float64, any sign), by
    dynamic programming in topological order: each level's arcs are relaxed at once for
    every instance. Of the arcs attaining a head's minimum, the first in arc order wins."""
    n_batch, n = len(arc_costs), structure.n_nodes
    # node- and arc-major: a level gathers whole rows of N values
    dist = np.full((n, n_batch), np.inf)
    dist[structure.source] = 0.0
    costs = np.ascontiguousarray(arc_costs.T)
    predecessors = np.full((n, n_batch), _NO_PREDECESSOR, dtype=np.int64)
    for level in structure.dag:
        candidates = dist[level.tails] + costs[level.arcs]
        best = np.minimum.reduceat(candidates, level.starts, axis=0)
        # the first arc attaining each head's minimum: the least position among those that do
        positions = np.arange(len(level.arcs))[:, None]
        attaining = np.where(candidates == best[level.run], positions, len(level.arcs))
        first = np.minimum.reduceat(attaining, level.starts, axis=0)
        dist[level.heads] = best
        predecessors[level.heads] = level.tails[first]
    return predecessors.T


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


def _check_reachable(structure: PathStructure, index: int | None = None) -> None:
    if not structure.reachable:
        raise SolverError("the target cannot be reached from the source", index=index, status="infeasible")


# Per-row ends: ``(sources, targets)``, two ``(N,)`` int64 arrays of node positions, where
# instances have their own; None where every row has the structure's.
Ends = tuple[np.ndarray, np.ndarray] | None


def _unreached(structure: ArcSet, predecessors: np.ndarray, ends: Ends = None) -> np.ndarray:
    """``(N,)`` whether each instance's predecessors ``(N, n_nodes)`` miss its target."""
    if ends is not None:
        sources, targets = ends
        return (predecessors[np.arange(len(predecessors)), targets] < 0) & (targets != sources)
    if structure.target == structure.source:
        return np.zeros(len(predecessors), dtype=bool)
    return predecessors[:, structure.target] < 0


def masks_from_predecessors(structure: ArcSet, predecessors: np.ndarray, dtype: Any, ends: Ends = None) -> np.ndarray:
    """``(N, n_edges)`` 0/1 edge masks of the paths from source to target (the structure's,
    or each row's own ``ends``) that the predecessors ``(N, n_nodes)`` (negative: none)
    give. An instance whose target was not reached (an infinite cost cuts it off) raises a
    SolverError with status ``"infeasible"`` and the first such index."""
    unreached = np.flatnonzero(_unreached(structure, predecessors, ends))
    if unreached.size:
        raise SolverError("the target cannot be reached from the source", index=int(unreached[0]), status="infeasible")
    instances, tails, heads = _path_steps(structure, predecessors, ends)
    mask = np.zeros((len(predecessors), structure.n_edges), dtype=dtype)
    mask[instances, structure.edges_of_steps(tails, heads)] = 1
    return mask


def _path_steps(
    structure: ArcSet, predecessors: np.ndarray, ends: Ends = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(S,)`` instance, tail and head of every step on every instance's path, walked back
    from the target (or each row's own, ``ends``) for all instances at once, a step per
    round (the edges are looked up once at the end: per round, numpy's call overhead is
    most of the time)."""
    source, target = (structure.source, structure.target) if ends is None else ends
    instance, head = np.arange(len(predecessors)), np.broadcast_to(target, (len(predecessors),))
    instances, tails, heads = [instance[:0]], [head[:0]], [head[:0]]
    while True:
        on_path = head != (source if ends is None else source[instance])
        if not on_path.any():
            break
        instance, head = instance[on_path], head[on_path]
        tail = predecessors[instance, head]
        instances.append(instance)
        tails.append(tail)
        heads.append(head)
        head = tail
    # int64 before edges_of_steps forms tail * n_nodes + head (scipy's predecessors are int32)
    return np.concatenate(instances), np.concatenate(tails).astype(np.int64), np.concatenate(heads).astype(np.int64)


def _single_dijkstra_predecessors(structure: PathStructure, arc_costs: np.ndarray) -> np.ndarray:
    _, predecessors = dijkstra(structure.csgraph(arc_costs), indices=structure.source, return_predecessors=True)
    return predecessors


def cyclic_predecessors(structure: PathStructure, problem: GraphShortestPath, arc_costs: np.ndarray) -> np.ndarray:
    """``(n_nodes,)`` predecessors for one instance's relevant-arc costs ``(A,)`` on relevant
    arcs with cycles: Bellman-Ford, or the negative-cycle policy when it finds one."""
    try:
        _, predecessors = bellman_ford(structure.csgraph(arc_costs), indices=structure.source, return_predecessors=True)
    except NegativeCycleError:
        return _single_dijkstra_predecessors(structure, negative_cycle_fallback(problem, arc_costs))
    return predecessors


def scipy_predecessors(structure: PathStructure, problem: GraphShortestPath, arc_costs: np.ndarray) -> np.ndarray:
    """``(n_nodes,)`` predecessor of each node on a cheapest path from the source, for
    relevant-arc costs ``(A,)``: Dijkstra, the DAG programme, or Bellman-Ford, as fits."""
    if arc_costs.size == 0 or arc_costs.min() >= 0:
        return _single_dijkstra_predecessors(structure, arc_costs)
    if structure.dag is not None:
        return dag_predecessors(structure, arc_costs[None])[0]
    return cyclic_predecessors(structure, problem, arc_costs)


def solve_graph_path_instance(
    theta: np.ndarray, problem: GraphShortestPath, data: Mapping[str, Any] | None = None
) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)`` with scipy.sparse.csgraph: Dijkstra, the DAG
    programme or Bellman-Ford, as fits (the per-instance reference of the batched solver).
    ``data`` (optional): this instance's ``source``, ``target`` ``()`` and ``closed``
    ``(n_edges,)``."""
    structure = path_structure(problem) if not data else structure_of_instance(problem, data)
    _check_reachable(structure)
    arc_costs = np.asarray(theta, dtype=np.float64)[structure.edge_of_arc]
    predecessors = scipy_predecessors(structure, problem, arc_costs)
    return masks_from_predecessors(structure, predecessors[None], theta.dtype)[0]


@register_solver(GraphShortestPath.kind, "scipy", batched=True, priority=10)
def solve_graph_path_scipy(
    theta: np.ndarray, problem: GraphShortestPath, data: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """Batched shortest paths ``(N, n_edges) -> (N, n_edges)`` with scipy.sparse.csgraph.

    The instances whose relevant costs are all non-negative go through batched Dijkstra
    (:func:`dijkstra_predecessors`); the others through the DAG programme, all at once,
    when the relevant arcs are acyclic, else one by one through Bellman-Ford. One walk
    reads every instance's path back (:func:`masks_from_predecessors`). A failure raises
    for the first failing instance, with its index in ``theta``. ``data`` (optional):
    ``source``, ``target`` ``(N,)`` and ``closed`` ``(N, n_edges)``, see
    :func:`solve_graph_path_scipy_with_data`.
    """
    if data:
        return solve_graph_path_scipy_with_data(np.asarray(theta), problem, data)
    return solve_on_structure(path_structure(problem), problem, np.asarray(theta))


def solve_on_structure(structure: PathStructure, problem: GraphShortestPath, theta: np.ndarray) -> np.ndarray:
    """:func:`solve_graph_path_scipy` for ``theta`` ``(N, n_edges)``, every row of which has
    the source, target and relevant arcs of ``structure``."""
    _check_reachable(structure, index=0)  # the same for every instance: the first one fails
    # not kept alive: a large array held across the Dijkstra calls costs their temporaries
    # fresh pages (measured: 1.3 ms of 11 on a batch of 70 30x30 grids)
    negative = (np.take(theta, structure.edge_of_arc, axis=1) < 0).any(axis=1)
    if not negative.any():  # the usual batch
        return batched_dijkstra_masks(structure, theta)
    predecessors = np.full((len(theta), structure.n_nodes), _NO_PREDECESSOR, dtype=np.int64)
    if not negative.all():
        predecessors[~negative] = dijkstra_predecessors(structure, theta[~negative])
    rows = np.flatnonzero(negative)
    arc_costs = np.take(theta[rows], structure.edge_of_arc, axis=1).astype(np.float64)
    if structure.dag is not None:
        predecessors[rows] = dag_predecessors(structure, arc_costs)
    else:
        _fill_cyclic_rows(structure, problem, rows, arc_costs, predecessors)
    return masks_from_predecessors(structure, predecessors, theta.dtype)


def _fill_cyclic_rows(
    structure: PathStructure,
    problem: GraphShortestPath,
    rows: np.ndarray,
    arc_costs: np.ndarray,
    predecessors: np.ndarray,
) -> None:
    """Fill ``predecessors[rows]`` (ascending; ``arc_costs`` ``(len(rows), A)``) one instance at
    a time by :func:`cyclic_predecessors`, raising a negative-cycle failure with its index.

    As a loop over the instances would, no instance after the first failure runs: rows
    after an unreached target are left unfilled (without predecessors), and
    :func:`masks_from_predecessors` then names the first unreached instance.
    """
    filled = np.ones(len(predecessors), dtype=bool)
    filled[rows] = False
    unreached = np.flatnonzero(_unreached(structure, predecessors) & filled)
    first_failure = unreached[0] if unreached.size else len(predecessors)
    for row, costs in zip(rows, arc_costs):
        if row > first_failure:
            break
        try:
            predecessors[row] = cyclic_predecessors(structure, problem, costs)
        except SolverError as error:  # the negative-cycle policy "raise"
            raise SolverError(str(error), index=int(row), status=error.status) from error
        if _unreached(structure, predecessors[row : row + 1])[0]:
            break


def dijkstra_predecessors(structure: PathStructure, theta: np.ndarray, call_nodes: int | None = None) -> np.ndarray:
    """``(N, n_nodes)`` predecessors for ``N`` instances ``theta`` ``(N, n_edges)`` whose relevant
    costs are all non-negative, by multi-source Dijkstra over block-diagonal graphs of several
    instances (about ``call_nodes`` nodes per call; see :func:`._csgraph.batched_predecessors`):
    a block is reached from its own source only, and ties are broken as a call for its
    instance alone breaks them."""
    return batched_predecessors(
        structure.indptr, structure.indices, theta, structure.edge_in_csr_order, structure.source, call_nodes
    )


def batched_dijkstra_masks(structure: PathStructure, theta: np.ndarray, call_nodes: int | None = None) -> np.ndarray:
    """``(N, n_edges)`` edge masks of cheapest paths for ``N`` instances ``theta``
    ``(N, n_edges)`` whose relevant costs are all non-negative (:func:`dijkstra_predecessors`).
    An instance whose target is not reached (an infinite cost cuts it off) raises a
    SolverError with status ``"infeasible"`` and its index."""
    return masks_from_predecessors(structure, dijkstra_predecessors(structure, theta, call_nodes), theta.dtype)


@register_solver(GraphShortestPath.kind, "networkx", priority=0)
def solve_graph_path_networkx(
    theta: np.ndarray, problem: GraphShortestPath, data: Mapping[str, Any] | None = None
) -> np.ndarray:
    """One instance ``(n_edges,) -> (n_edges,)`` with networkx (the reference): Dijkstra,
    or Bellman-Ford when a relevant arc costs less than 0. ``data`` (optional): this
    instance's ``source``, ``target`` ``()`` and ``closed`` ``(n_edges,)``."""
    import networkx as nx

    structure = path_structure(problem) if not data else structure_of_instance(problem, data)
    _check_reachable(structure)
    arc_costs = np.asarray(theta, dtype=np.float64)[structure.edge_of_arc]
    graph = structure.digraph
    if arc_costs.size and arc_costs.min() < 0:
        try:
            nodes = nx.bellman_ford_path(graph, structure.source, structure.target, weight=_arc_weight(arc_costs))
        except nx.NetworkXUnbounded:
            arc_costs = negative_cycle_fallback(problem, arc_costs)
            nodes = nx.dijkstra_path(graph, structure.source, structure.target, weight=_arc_weight(arc_costs))
    else:
        nodes = nx.dijkstra_path(graph, structure.source, structure.target, weight=_arc_weight(arc_costs))
    steps = np.asarray(nodes, dtype=np.int64)
    mask = np.zeros(problem.graph.n_edges, dtype=theta.dtype)
    mask[structure.edges_of_steps(steps[:-1], steps[1:])] = 1
    return mask


def _arc_weight(arc_costs: np.ndarray):
    return lambda u, v, data: arc_costs[data["arc"]]


# -- per-instance data ----------------------------------------------------------------------


def closed_key(closed: np.ndarray | None) -> bytes | None:
    """One instance's ``(n_edges,)`` closed mask as a hashable key of
    :func:`instance_structure` (None when nothing is closed: the structure without data)."""
    if closed is None or not closed.any():
        return None
    return np.packbits(closed).tobytes()


def structure_of_instance(problem: GraphShortestPath, data: Mapping[str, Any]) -> PathStructure:
    """The :class:`PathStructure` of one instance's ``data``: ``source``, ``target`` ``()``
    node positions and ``closed`` ``(n_edges,)`` bool, each optional."""
    ends = problem.default_positions
    source, target = (int(data[name]) if name in data else ends[name] for name in ("source", "target"))
    closed = data.get("closed")
    closed = None if closed is None else np.asarray(closed, dtype=bool)
    return instance_structure(problem.graph, source, target, closed_key(closed))


def instance_ends(
    problem: GraphShortestPath, data: Mapping[str, np.ndarray], n_batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` int64 sources and targets: ``data``'s, or the problem's for every row."""
    defaults = problem.default_positions

    def end(name: str) -> np.ndarray:
        if name in data:
            return np.asarray(data[name], dtype=np.int64).reshape(n_batch)
        return np.full(n_batch, defaults[name], dtype=np.int64)

    return end("source"), end("target")


def solve_graph_path_scipy_with_data(
    theta: np.ndarray, problem: GraphShortestPath, data: Mapping[str, np.ndarray]
) -> np.ndarray:
    """:func:`solve_graph_path_scipy` with per-instance ``source``, ``target`` ``(N,)`` and
    ``closed`` ``(N, n_edges)`` (each optional).

    The rows without a negative cost on an open arc go through one batched Dijkstra
    (:func:`dijkstra_rows`); the others, grouped by their data, the way a batch without
    data goes (:func:`solve_data_groups`). A failure raises for the first failing row."""
    ends = instance_ends(problem, data, len(theta))
    closed = None if data.get("closed") is None else np.asarray(data["closed"], dtype=bool)
    rows, predecessors = dijkstra_rows(problem, theta, ends, closed)
    row_ends = (ends[0][rows], ends[1][rows])
    arcs = all_arcs(problem.graph)
    unreached = rows[_unreached(arcs, predecessors, row_ends)]
    first_unreached = int(unreached[0]) if unreached.size else len(theta)
    masks = np.zeros(theta.shape, dtype=theta.dtype)
    others = np.setdiff1d(np.arange(len(theta)), rows)
    # as a loop over the rows would, no row after the first failure is solved
    solve_data_groups(problem, theta, others[others < first_unreached], ends, closed, masks)
    if unreached.size:
        raise SolverError("the target cannot be reached from the source", index=first_unreached, status="infeasible")
    masks[rows] = masks_from_predecessors(arcs, predecessors, theta.dtype, row_ends)
    return masks


def dijkstra_rows(
    problem: GraphShortestPath, theta: np.ndarray, ends: tuple[np.ndarray, np.ndarray], closed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``(R,)`` of ``theta`` ``(N, n_edges)`` without a negative cost on an open arc,
    and their predecessors ``(R, n_nodes)`` by one batched Dijkstra over all the graph's
    arcs, each row from its own source (``ends[0]``), its closed arcs at ``+inf`` (never
    taken). Its own relevant arcs (:func:`instance_structure`) would only leave out arcs
    that lead nowhere, not worth building a structure per row for."""
    arcs = all_arcs(problem.graph)
    arc_costs = np.take(theta, arcs.edge_of_arc, axis=1).astype(np.float64)  # (N, A)
    if closed is not None:
        arc_costs[np.take(closed, arcs.edge_of_arc, axis=1)] = np.inf
    rows = np.flatnonzero(~(arc_costs < 0).any(axis=1))
    return rows, batched_predecessors(arcs.indptr, arcs.indices, arc_costs[rows], arcs.csr_order, ends[0][rows])


def solve_data_groups(
    problem: GraphShortestPath,
    theta: np.ndarray,
    rows: np.ndarray,
    ends: tuple[np.ndarray, np.ndarray],
    closed: np.ndarray | None,
    masks: np.ndarray,
) -> None:
    """Fill ``masks[rows]`` (``(N, n_edges)``) by :func:`solve_on_structure`, one call per group
    of rows with the same source, target and closed edges (one :class:`PathStructure`:
    the DAG programme runs for a group at once). Raises the failure of the first failing
    row, with its index in ``theta``."""
    groups: dict[tuple[int, int, bytes | None], list[int]] = {}
    for row in rows.tolist():
        key = (int(ends[0][row]), int(ends[1][row]), closed_key(None if closed is None else closed[row]))
        groups.setdefault(key, []).append(row)
    failures = []
    for key, members in groups.items():
        try:
            masks[members] = solve_on_structure(instance_structure(problem.graph, *key), problem, theta[members])
        except SolverError as error:
            failures.append(SolverError(str(error), index=members[error.index or 0], status=error.status))
    if failures:
        raise min(failures, key=lambda error: error.index)

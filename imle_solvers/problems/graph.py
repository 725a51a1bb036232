"""Problems on a fixed graph whose edge scores come from theta: shortest paths."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, ClassVar, Literal

import numpy as np

from .._registration import register
from ..errors import InvalidInputError
from .base import ContentIdentity, DataField, Problem, Sense

NegativeCyclePolicy = Literal["raise", "clamp"]


@register
@dataclass(frozen=True, eq=False)
class EdgeListGraph(ContentIdentity):
    """A graph as plain, picklable, hashable data: node labels and edges between them.

    Build one with :meth:`from_networkx` (the problems below do it for you).

    Attributes:
        nodes: the node labels, in ``graph.nodes`` order.
        edges: ``(n_edges, 2)`` read-only int64 array of ``(tail, head)`` positions into
            ``nodes``, one row per edge, in ``graph.edges`` order: theta's entry ``i``
            belongs to ``edges[i]``. Any sequence of pairs is accepted and stored so.
        directed: whether an edge goes from tail to head only.
    """

    nodes: tuple[Hashable, ...]
    edges: np.ndarray
    directed: bool
    fingerprint: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # one int64 buffer pickles in microseconds: a tuple of 100k pairs took ~20 ms per
        # pool task. Read-only, since the fingerprint below is taken once.
        edges = _edge_array(self.edges)
        object.__setattr__(self, "edges", edges)
        # repr and bytes, unlike hash(), are the same in every process: workers share cached structures
        digest = hashlib.sha256(repr((self.nodes, self.directed)).encode())
        digest.update(edges.astype("<i8", copy=False).tobytes())
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickle restores the attributes without __post_init__; an unpickled array is writeable
        state["edges"].flags.writeable = False
        self.__dict__.update(state)

    @classmethod
    def from_networkx(cls, graph: Any) -> EdgeListGraph:
        """The edge list of a networkx ``Graph`` or ``DiGraph`` (multigraphs are refused:
        a path or matching would not say which of two parallel edges it takes)."""
        if isinstance(graph, EdgeListGraph):
            return graph
        if not hasattr(graph, "edges") or not hasattr(graph, "is_directed"):
            raise InvalidInputError(f"expected a networkx graph, got {type(graph).__name__}")
        if graph.is_multigraph():
            raise InvalidInputError("multigraphs are not supported: merge parallel edges first")
        nodes = tuple(graph.nodes)
        position = {node: i for i, node in enumerate(nodes)}
        edges = [(position[u], position[v]) for u, v in graph.edges]
        return cls(nodes=nodes, edges=edges, directed=bool(graph.is_directed()))

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def position(self, node: Hashable, role: str) -> int:
        """The position of ``node`` in :attr:`nodes`; ``role`` names it in the error."""
        try:
            return self.nodes.index(node)
        except ValueError:
            raise InvalidInputError(f"{role} {node!r} is not a node of the graph") from None

    def positions(self, nodes: Iterable[Hashable], role: str = "node") -> np.ndarray:
        """``(len(nodes),)`` int64: the position of each node label in :attr:`nodes`
        (a dict lookup each, the index built once per graph); ``role`` names a label
        that is not a node in the error."""
        index = _node_index(self)
        positions = []
        for node in nodes:
            try:
                positions.append(index[node])
            except (KeyError, TypeError):  # TypeError: an unhashable label, a node of no graph
                raise InvalidInputError(f"{role} {node!r} is not a node of the graph") from None
        return np.array(positions, dtype=np.int64)

    def __repr__(self) -> str:
        kind = "directed" if self.directed else "undirected"
        return f"EdgeListGraph({kind}, {self.n_nodes} nodes, {self.n_edges} edges)"


@lru_cache(maxsize=32)
def _node_index(graph: EdgeListGraph) -> dict[Hashable, int]:
    """Each node label's position (kept out of the graph: it would travel in every pickle)."""
    return {node: i for i, node in enumerate(graph.nodes)}


def _edge_array(edges: Any) -> np.ndarray:
    """``edges`` (pairs of node positions) as a fresh read-only ``(n_edges, 2)`` int64 array."""
    array = np.array(edges, dtype=np.int64)
    if array.size == 0:
        array = array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidInputError(f"EdgeListGraph: edges must be (tail, head) pairs, got shape {array.shape}")
    array.flags.writeable = False
    return array


@register
@dataclass(frozen=True)
class GraphShortestPath(Problem):
    """A minimum-cost path from ``source`` to ``target`` in a fixed graph.

    ``theta[i]`` is the cost of edge ``i`` (``graph.edges`` order; an undirected edge
    can be walked both ways at the same cost); ``z`` is the 0/1 mask of the edges on
    a minimum-cost path. Sense ``"min"``.

    Negative costs (perturbation makes them) are solved exactly wherever the minimum
    exists: on a DAG, and wherever no negative cycle lies on a walk from ``source``
    to ``target``. Where one does, the cheapest walk goes round it for ever and the
    instance is unbounded; an undirected edge of negative cost on such a walk is one
    (walk it back and forth). ``negative_cycles`` says what then happens:

    - ``"raise"`` (default): a :class:`~imle_solvers.errors.SolverError` with
      status ``"unbounded"`` naming the instance;
    - ``"clamp"``: the exact minimum-cost path for the costs ``max(theta, 0)``, and a
      :class:`~imle_solvers.problems.NegativeCostWarning` says so.

    A ``target`` that cannot be reached from ``source`` raises a SolverError with
    status ``"infeasible"``.

    Per-instance data (:attr:`instance_fields`, each with the batch axis first): an
    instance may have its own ``source`` and ``target`` (int node *positions* in
    ``graph.nodes`` order, ``()`` each: :meth:`node_positions` maps labels to them) and
    may ``close`` edges (``(n_edges,)`` bool, True: the edge cannot be used). An instance
    is then solved exactly as the problem with its source and target on the graph
    without its closed edges (relevant arcs, negative cycles and their policy included).

    Args:
        graph: a networkx ``Graph`` or ``DiGraph`` (stored as an :class:`EdgeListGraph`).
        source, target: node labels.
        negative_cycles: ``"raise"`` or ``"clamp"``, as above.

    Shapes: theta and z are ``(B, n_edges)``.
    """

    graph: EdgeListGraph
    source: Hashable
    target: Hashable
    negative_cycles: NegativeCyclePolicy = "raise"
    kind: ClassVar[str] = "graph-shortest-path"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "graph", EdgeListGraph.from_networkx(self.graph))
        self.graph.position(self.source, "GraphShortestPath: source")
        self.graph.position(self.target, "GraphShortestPath: target")
        if self.negative_cycles not in ("raise", "clamp"):
            raise InvalidInputError(
                f"GraphShortestPath: negative_cycles must be 'raise' or 'clamp', got {self.negative_cycles!r}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.graph.n_edges,)

    @property
    def summed_scores(self) -> int:
        """A path's cost, and Bellman-Ford's walks of up to ``n_nodes`` steps, add up at most
        ``n_nodes + 1`` edge costs (see :attr:`Problem.summed_scores`)."""
        return self.graph.n_nodes + 1

    @cached_property  # asked several times per layer call
    def instance_fields(self) -> Mapping[str, DataField]:
        return {
            "source": DataField((), "int", "position in graph.nodes of the path's first node; default the source"),
            "target": DataField((), "int", "position in graph.nodes of the path's last node; default the target"),
            "closed": DataField(
                (self.graph.n_edges,), "bool", "True where the edge (graph.edges order) cannot be used"
            ),
        }

    def node_positions(self, labels: Iterable[Hashable]) -> np.ndarray:
        """``(len(labels),)`` int64 positions in ``graph.nodes`` of the node ``labels``: the
        values the ``source`` and ``target`` fields take, e.g.
        ``problem.node_positions([(0, 0), (3, 4)])`` on a grid graph."""
        return self.graph.positions(labels, "GraphShortestPath: node")

    def check_instance_data(self, data: Mapping[str, Any]) -> None:
        """``source`` and ``target`` ``(B,)`` are node positions, ``0 <= p < n_nodes``; the
        error names the first bad batch index."""
        for name in ("source", "target"):
            if name not in data:
                continue
            positions = np.asarray(data[name])
            outside = (positions < 0) | (positions >= self.graph.n_nodes)
            if outside.any():
                index = int(outside.argmax())
                raise InvalidInputError(
                    f"{name}: batch index {index} is {int(positions[index])}, not a node position "
                    f"(0 to {self.graph.n_nodes - 1}; GraphShortestPath.node_positions maps labels to them)"
                )

    @property
    def default_positions(self) -> dict[str, int]:
        """The ``source`` and ``target`` positions of an instance that is not given its own."""
        index = _node_index(self.graph)
        return {"source": index[self.source], "target": index[self.target]}

    @property
    def sense(self) -> Sense:
        return "min"

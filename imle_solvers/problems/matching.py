"""Maximum-weight matchings: bipartite (assignments) and on a general graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import InvalidInputError
from .base import Problem, Sense
from .graph import EdgeListGraph


@dataclass(frozen=True)
class BipartiteMatching(Problem):
    """A maximum-weight matching between ``n_left`` and ``n_right`` vertices.

    ``theta[i, j]`` is the score of matching left vertex ``i`` to right vertex ``j``;
    ``z`` is the 0/1 matrix of the chosen pairs (at most one 1 per row and column).
    Sense ``"max"``.

    - ``perfect=True`` (default): every vertex of the smaller side is matched
      (``min(n_left, n_right)`` pairs, an assignment), whatever the scores' signs;
    - ``perfect=False``: any matching; only pairs of positive score are ever used
      (a pair of score 0 or less adds nothing, and is left out).

    Shapes: theta and z are ``(B, n_left, n_right)``.
    """

    n_left: int
    n_right: int
    perfect: bool = True
    kind: ClassVar[str] = "bipartite-matching"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("n_left", "n_right"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise InvalidInputError(f"BipartiteMatching: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.perfect, bool):
            raise InvalidInputError(f"BipartiteMatching: perfect must be True or False, got {self.perfect!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_left, self.n_right)

    @property
    def sense(self) -> Sense:
        return "max"


@dataclass(frozen=True)
class GraphMatching(Problem):
    """A maximum-weight matching on an undirected graph (not necessarily bipartite).

    ``theta[i]`` is the score of edge ``i`` (``graph.edges`` order); ``z`` is the 0/1
    mask of the matched edges (no two share a vertex), of maximum total score. Only
    edges of positive score are ever used. Sense ``"max"``.

    Args:
        graph: an undirected networkx ``Graph`` (stored as an :class:`EdgeListGraph`).

    Shapes: theta and z are ``(B, n_edges)``.
    """

    graph: EdgeListGraph
    kind: ClassVar[str] = "graph-matching"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "graph", EdgeListGraph.from_networkx(self.graph))
        if self.graph.directed:
            raise InvalidInputError("GraphMatching: the graph must be undirected")
        loops = [i for i, (u, v) in enumerate(self.graph.edges.tolist()) if u == v]
        if loops:
            raise InvalidInputError(f"GraphMatching: edge {loops[0]} is a self-loop, which no matching can use")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.graph.n_edges,)

    @property
    def sense(self) -> Sense:
        return "max"

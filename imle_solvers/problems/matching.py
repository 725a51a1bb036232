"""Maximum-weight matchings: bipartite (assignments) and on a general graph."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._registration import register
from ..errors import InvalidInputError
from .base import DataField, Problem, Sense, checked_int
from .graph import EdgeListGraph


# Matching solvers' sums (potentials, duals, slacks, augmenting paths: networkx's blossom
# doubles the weights, and a slack adds two duals and a doubled weight) stay below this
# many times the largest score per vertex; generous, since scaling by a power of two is exact.
MATCHING_SUM_FACTOR = 8


@register
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

    Per-instance data (``instance_fields``): ``allowed``, ``(B, n_left, n_right)`` bool,
    the pairs that may be matched (True) in each instance; a disallowed pair is never
    matched. With ``perfect=True`` the smaller side must then be matched by allowed pairs
    only: an instance whose allowed pairs admit no such matching makes the solver raise
    :class:`~imle_solvers.errors.SolverError` with ``status="infeasible"``. Without
    ``allowed`` every pair may be matched.

    Shapes: theta and z are ``(B, n_left, n_right)``.
    """

    n_left: int
    n_right: int
    perfect: bool = True
    kind: ClassVar[str] = "bipartite-matching"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("n_left", "n_right"):
            object.__setattr__(self, name, checked_int("BipartiteMatching", name, getattr(self, name)))
        if not isinstance(self.perfect, bool):
            raise InvalidInputError(f"BipartiteMatching: perfect must be True or False, got {self.perfect!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_left, self.n_right)

    @property
    def summed_scores(self) -> int:
        """An assignment's potentials and augmenting paths add up to a few scores per
        vertex (see :attr:`Problem.summed_scores`)."""
        return MATCHING_SUM_FACTOR * (self.n_left + self.n_right)

    @property
    def sense(self) -> Sense:
        return "max"

    @property
    def instance_fields(self) -> Mapping[str, DataField]:
        return {"allowed": DataField(self.shape, "bool", "the pairs (left i, right j) that may be matched")}

    def check_instance_data(self, data: Mapping[str, Any]) -> None:
        """Refuse, for a perfect matching, the instances whose ``allowed`` ``(B, n_left,
        n_right)`` leaves a vertex of the smaller side with no allowed pair, or fewer
        vertices of the other side with an allowed pair than the smaller side has (cheap
        necessary conditions; the solver decides whether a perfect matching exists)."""
        if not self.perfect or "allowed" not in data:
            return
        bad = unmatchable_instances(np.asarray(data["allowed"], dtype=bool))
        if bad.any():
            index = int(bad.argmax())
            reason = unmatchable_reason(np.asarray(data["allowed"][index], dtype=bool))
            raise InvalidInputError(f"allowed: batch index {index} leaves no perfect matching ({reason})")


@register
@dataclass(frozen=True)
class GraphMatching(Problem):
    """A maximum-weight matching on an undirected graph (not necessarily bipartite).

    ``theta[i]`` is the score of edge ``i`` (``graph.edges`` order); ``z`` is the 0/1
    mask of the matched edges (no two share a vertex), of maximum total score. Only
    edges of positive score are ever used. Sense ``"max"``.

    Per-instance data (``instance_fields``): ``allowed``, ``(B, n_edges)`` bool, the edges
    that may be used (True) in each instance; a disallowed edge is never matched. Without
    ``allowed`` every edge may be used.

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
    def summed_scores(self) -> int:
        """The blossom algorithm's duals and slacks add up to a few scores per vertex (see
        :attr:`Problem.summed_scores`)."""
        return MATCHING_SUM_FACTOR * max(self.graph.n_nodes, 1)

    @property
    def sense(self) -> Sense:
        return "max"

    @property
    def instance_fields(self) -> Mapping[str, DataField]:
        return {"allowed": DataField(self.shape, "bool", "the edges (graph.edges order) that may be matched")}


def unmatchable_instances(allowed: np.ndarray) -> np.ndarray:
    """``(B,)`` bool: the instances of ``allowed`` ``(B, n_left, n_right)`` that plainly
    admit no matching of the whole smaller side: one of its vertices has no allowed pair,
    or fewer vertices of the other side than it has any allowed pair. (Necessary
    conditions only; Hall's condition on every subset is left to the solver.)"""
    n_left, n_right = allowed.shape[1:]
    rows, cols = allowed.any(axis=2), allowed.any(axis=1)  # (B, n_left), (B, n_right)
    smaller, larger = (rows, cols) if n_left <= n_right else (cols, rows)
    return ~smaller.all(axis=1) | (larger.sum(axis=1) < smaller.shape[1])


def unmatchable_reason(allowed: np.ndarray) -> str:
    """Why one instance's ``allowed`` ``(n_left, n_right)``, found by
    :func:`unmatchable_instances`, admits no matching of the whole smaller side."""
    n_left, n_right = allowed.shape
    sides = [("left", allowed.any(axis=1)), ("right", allowed.any(axis=0))]
    (side, smaller), (other, larger) = sides if n_left <= n_right else sides[::-1]
    for name, paired in sides:  # with equal sides both are the smaller one
        if paired.size == smaller.size and not paired.all():
            return f"{name} vertex {int(paired.argmin())} has no allowed pair"
    return f"only {int(larger.sum())} {other} vertices have an allowed pair, for {smaller.size} {side} vertices"

"""The travelling salesman problem: a tour through every node of a complete graph."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from .._array import Array
from .._registration import register
from ..errors import InvalidInputError
from .base import Problem, Sense, checked_int


@register
@dataclass(frozen=True)
class TravellingSalesman(Problem):
    """A tour (Hamiltonian cycle) through the ``n`` nodes of a complete undirected graph.

    ``theta[i]`` is the score of undirected edge ``i``, the edges in PyEPO's order
    (:attr:`edges`: ``itertools.combinations(range(n), 2)``, so ``(0, 1), (0, 2), ...,
    (n - 2, n - 1)``); ``z`` is the 0/1 mask of the ``n`` edges of the tour. With the
    default ``objective_sense="min"`` theta are costs (PyEPO's distances) and the tour is
    a shortest one, as :class:`GraphShortestPath` takes costs; ``"max"`` takes scores and
    gives a tour of largest total score. Either way any finite scores, of either sign,
    are solved exactly.

    Args:
        n: the number of nodes, at least 3 (the smallest cycle).
        objective_sense: ``"min"`` (default, theta are costs) or ``"max"``.

    Shapes: theta and z are ``(B, n * (n - 1) / 2)``.
    """

    n: int
    objective_sense: Sense = "min"
    kind: ClassVar[str] = "tsp"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        span = "an integer >= 3 (a tour needs 3 nodes)"
        object.__setattr__(self, "n", checked_int("TravellingSalesman", "n", self.n, minimum=3, span=span))
        if self.objective_sense not in ("max", "min"):
            raise InvalidInputError(
                f"TravellingSalesman: objective_sense must be 'max' or 'min', got {self.objective_sense!r}"
            )

    @property
    def n_edges(self) -> int:
        """``n * (n - 1) / 2``, the length of theta."""
        return self.n * (self.n - 1) // 2

    @property
    def edges(self) -> np.ndarray:
        """``(n_edges, 2)`` read-only int64 ``(i, j)`` node pairs, ``i < j``, in theta's order
        (PyEPO's: ``itertools.combinations(range(n), 2)``)."""
        return complete_graph_edges(self.n)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_edges,)

    @property
    def sense(self) -> Sense:
        return self.objective_sense

    def validate(self, theta: Array, name: str = "theta") -> None:
        """As :meth:`Problem.validate`; a wrong length of theta is worded as edges of ``n`` nodes."""
        if len(theta.shape) == 2 and theta.shape[1] != self.n_edges:
            raise InvalidInputError(
                f"{name}: expected shape (B, {self.n_edges}), one score per edge of the complete graph on "
                f"n={self.n} nodes (n * (n - 1) / 2 edges), got {tuple(theta.shape)}"
            )
        super().validate(theta, name)

    @property
    def summed_scores(self) -> int:
        """A tour's score adds up ``n`` edge scores (see :attr:`Problem.summed_scores`)."""
        return self.n


@lru_cache(maxsize=32)
def complete_graph_edges(n: int) -> np.ndarray:
    """``(n * (n - 1) / 2, 2)`` read-only int64: the pairs ``(i, j)``, ``i < j``, of ``n``
    nodes in ``itertools.combinations`` order (row by row of the upper triangle)."""
    rows, cols = np.triu_indices(n, k=1)
    edges = np.stack([rows, cols], axis=1).astype(np.int64)
    edges.flags.writeable = False
    return edges

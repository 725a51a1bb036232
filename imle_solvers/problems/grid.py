"""Shortest paths through a grid of vertex costs (the Warcraft maps of the paper)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..errors import InvalidInputError
from .base import Problem, Sense

NegativeCostPolicy = Literal["clamp", "raise"]


@dataclass(frozen=True)
class GridShortestPath(Problem):
    """A minimum-cost path from the top-left to the bottom-right cell of a grid.

    ``theta[r, c]`` is the cost of entering cell ``(r, c)``; the cost of a path is
    the sum over all its cells, both endpoints included. Moves go to the 4 or 8
    neighbouring cells. ``z`` is the 0/1 mask of the cells on the path.

    Negative costs: perturbation (noise, or the I-MLE target ``theta + lambda*dL/dz``)
    can push costs below zero, where an undirected grid has negative cycles and
    "shortest simple path" is NP-hard. ``negative_costs`` says what then happens:

    - ``"clamp"`` (default, what the blackbox-differentiation reference does): the
      path is the exact minimum for the costs ``max(theta, 0)``, and a
      :class:`NegativeCostWarning` says so (once per call site, as warnings do);
    - ``"raise"``: a :class:`~imle_solvers.errors.SolverError` naming the instance.

    Shapes: theta and z are ``(B, rows, cols)``.
    """

    rows: int
    cols: int
    neighbourhood: int = 8
    negative_costs: NegativeCostPolicy = "clamp"
    kind: ClassVar[str] = "grid-shortest-path"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise InvalidInputError(f"GridShortestPath: {name} must be a positive integer, got {value!r}")
        if self.neighbourhood not in (4, 8):
            raise InvalidInputError(f"GridShortestPath: neighbourhood must be 4 or 8, got {self.neighbourhood!r}")
        if self.negative_costs not in ("clamp", "raise"):
            raise InvalidInputError(
                f"GridShortestPath: negative_costs must be 'clamp' or 'raise', got {self.negative_costs!r}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, self.cols)

    @property
    def sense(self) -> Sense:
        return "min"

    def path_cost(self, costs, z):
        """Cost of the path(s) ``z`` under ``costs``, both ``(..., rows, cols)``: sum over axes -2, -1."""
        return (costs * z).sum(axis=(-2, -1))


class NegativeCostWarning(UserWarning):
    """Negative costs were clamped to zero before solving a shortest path."""

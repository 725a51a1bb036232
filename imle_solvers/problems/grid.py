"""Shortest paths through a grid of vertex costs (the Warcraft maps of the paper)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .._array import array_namespace
from .._registration import register
from ..errors import InvalidInputError
from .base import DataField, Problem, Sense, checked_int

NegativeCostPolicy = Literal["clamp", "raise"]


@register
@dataclass(frozen=True)
class GridShortestPath(Problem):
    """A minimum-cost path from the top-left to the bottom-right cell of a grid.

    ``theta[r, c]`` is the cost of entering cell ``(r, c)``; the cost of a path is
    the sum over all its cells, both endpoints included. Moves go to the 4 or 8
    neighbouring cells. ``z`` is the 0/1 mask of the cells on the path.

    Per-instance data (:attr:`instance_fields`, each with the batch axis first): an
    instance may start at its own ``source`` and end at its own ``target`` (``(2,)``
    int cells ``(row, col)``), and may ``close`` cells (``(rows, cols)`` bool, True: a
    path cannot enter the cell; its cost is ignored, also by the negative-cost policy).
    A target that closed cells cut off from the source is a solver failure:
    :class:`~imle_solvers.errors.SolverError` with status ``"infeasible"``.

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
            object.__setattr__(self, name, checked_int("GridShortestPath", name, getattr(self, name)))
        if isinstance(self.neighbourhood, bool) or self.neighbourhood not in (4, 8):
            raise InvalidInputError(f"GridShortestPath: neighbourhood must be 4 or 8, got {self.neighbourhood!r}")
        if self.negative_costs not in ("clamp", "raise"):
            raise InvalidInputError(
                f"GridShortestPath: negative_costs must be 'clamp' or 'raise', got {self.negative_costs!r}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, self.cols)

    @property
    def summed_scores(self) -> int:
        """A path's cost adds up at most every cell's (see :attr:`Problem.summed_scores`)."""
        return self.rows * self.cols

    @property
    def sense(self) -> Sense:
        return "min"

    @functools.cached_property  # asked several times per layer call
    def instance_fields(self) -> Mapping[str, DataField]:
        return {
            "source": DataField((2,), "int", "the (row, col) cell the path starts from; default (0, 0)"),
            "target": DataField((2,), "int", "the (row, col) cell the path ends at; default (rows - 1, cols - 1)"),
            "closed": DataField((self.rows, self.cols), "bool", "True where a path cannot enter the cell"),
        }

    @property
    def default_cells(self) -> dict[str, tuple[int, int]]:
        """The ``source`` and ``target`` cells of an instance that is not given its own."""
        return {"source": (0, 0), "target": (self.rows - 1, self.cols - 1)}

    def check_instance_data(self, data: Mapping[str, Any]) -> None:
        """Sources and targets ``(B, 2)`` lie inside the grid, and ``closed`` ``(B, rows, cols)``
        closes neither (the defaults' cells when not given); errors name the first bad index."""
        ends = {name: np.asarray(data[name]) for name in ("source", "target") if name in data}
        for name, cells in ends.items():
            outside = ((cells < 0) | (cells >= (self.rows, self.cols))).any(axis=1)
            if outside.any():
                index = int(outside.argmax())
                raise InvalidInputError(
                    f"{name}: batch index {index} is {_cell(cells[index])}, outside the {self.rows}x{self.cols} grid"
                )
        if "closed" in data:
            self._check_open_ends(np.asarray(data["closed"]), ends)

    def invalid_instances(self, data: Mapping[str, Any]) -> Any:
        """``(B,)`` True where :meth:`check_instance_data` would refuse an instance (an end
        outside the grid, or closed), in the data's own framework (see the base class)."""
        if not data:
            return None
        xp = array_namespace(*data.values())
        cells = xp.reshape(xp.arange(self.rows * self.cols), (1, -1))
        closed = data.get("closed")
        bad = None
        for name, default in self.default_cells.items():
            if name not in data and closed is None:
                continue
            end = data.get(name)
            row, col = (default[0], default[1]) if end is None else (end[:, 0], end[:, 1])
            wrong = None
            if end is not None:
                wrong = (row < 0) | (row >= self.rows) | (col < 0) | (col >= self.cols)
            if closed is not None:  # the end's cell, by comparison: no gather, any framework
                if end is None:  # the default cell, a Python int: compared as a scalar
                    at_end = cells == row * self.cols + col
                else:  # in the ends' own integer dtype (int32 in JAX without x64, or as given)
                    at_end = xp.astype(cells, end.dtype) == xp.reshape(row * self.cols + col, (-1, 1))
                shut = xp.any(at_end & xp.reshape(closed, (closed.shape[0], -1)), axis=1)
                wrong = shut if wrong is None else wrong | shut
            bad = wrong if bad is None else bad | wrong
        return bad

    def _check_open_ends(self, closed: np.ndarray, ends: Mapping[str, np.ndarray]) -> None:
        """Raise if ``closed`` ``(B, rows, cols)`` closes an instance's source or target cell."""
        batch = np.arange(len(closed))
        for name, default in self.default_cells.items():
            cells = ends.get(name, np.broadcast_to(default, (len(closed), 2)))
            shut = closed[batch, cells[:, 0], cells[:, 1]]
            if shut.any():
                index = int(shut.argmax())
                raise InvalidInputError(f"closed: batch index {index} closes its {name} cell {_cell(cells[index])}")

    def path_cost(self, costs, z):
        """Cost of the path(s) ``z`` under ``costs``, both ``(..., rows, cols)``: sum over axes -2, -1."""
        return (costs * z).sum(axis=(-2, -1))


def _cell(cell: np.ndarray) -> tuple[int, ...]:
    """A cell as plain ints, for messages: ``(7, 2)`` rather than ``(np.int64(7), ...)``."""
    return tuple(int(value) for value in cell)


class NegativeCostWarning(UserWarning):
    """Negative costs were clamped to zero before solving a shortest path."""

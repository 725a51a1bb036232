"""What :class:`~.builder.ILPBuilder` collects about batched parameters: their
declarations and, for every number that depends on them, its terms.

The builder keeps each such number's base value (its :class:`~.affine.Affine`
form's constant) where a plain number would go, and hands its terms here, by the
place it sets; :meth:`BatchedTerms.maps` turns them into the sparse maps of
:class:`~imle_solvers.problems.ilp_params.ParameterMaps`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..problems.ilp_params import Parameter, ParameterMaps
from .affine import Affine

Number_ = float | Affine


class _Triplets:
    """COO entries ``(index, parameter entry, coefficient)`` of one map, appended as found."""

    def __init__(self) -> None:
        self.index: list[np.ndarray] = []
        self.entry: list[np.ndarray] = []
        self.value: list[np.ndarray] = []

    def add(self, index: np.ndarray, entry: np.ndarray, value: np.ndarray) -> None:
        self.index.append(np.asarray(index, np.int64))
        self.entry.append(np.asarray(entry, np.int64))
        self.value.append(np.asarray(value, np.float64))

    def matrix(self, rows: int, columns: int) -> sp.csr_array:
        if not self.index:
            return sp.csr_array((rows, columns))
        return sp.csr_array((np.concatenate(self.value), (np.concatenate(self.index), np.concatenate(self.entry))),
                            shape=(rows, columns))


class BatchedTerms:
    """The batched parameters declared so far and the terms of the numbers using them.

    ``p`` is the parameters' entries concatenated in declaration order; a parameter's
    ``start`` is the position of its first entry.
    """

    def __init__(self) -> None:
        self.parameters: list[Parameter] = []
        self.size = 0
        self._maps = {name: _Triplets() for name in ("row_lower", "row_upper", "lower", "upper", "objective")}
        self._coefficients = _Triplets()  # index: the position's number among _positions
        self._positions: list[tuple[int, int]] = []

    def declare(self, parameter: Parameter) -> int:
        """Add ``parameter``; returns its ``start`` in ``p``."""
        start = self.size
        self.parameters.append(parameter)
        self.size += parameter.size
        return start

    def base(self, target: str, index: int, value: Number_) -> float:
        """Record ``value``'s terms at ``index`` of map ``target`` (``"row_lower"``, ...);
        returns its base value."""
        if not isinstance(value, Affine):
            return value
        self._affine(self._maps[target], index, value)
        return value.constant

    def coefficient(self, row: int, column: int, value: Number_) -> float:
        """Record the terms of the coefficient of ``x[column]`` in ``row``; returns its base value."""
        if not isinstance(value, Affine):
            return value
        self._affine(self._coefficients, len(self._positions), value)
        self._positions.append((row, column))
        return value.constant

    def bound(self, side: str, columns: np.ndarray, entries: np.ndarray, coefficients: np.ndarray) -> None:
        """Record ``side`` (``"lower"``/``"upper"``) bound terms: ``columns[i]`` gets
        ``coefficients[i] * p[entries[i]]``."""
        self._maps[side].add(columns, entries, coefficients)

    @staticmethod
    def _affine(triplets: _Triplets, index: int, value: Affine) -> None:
        entries = np.fromiter(value.terms.keys(), np.int64, len(value.terms))
        coefficients = np.fromiter(value.terms.values(), np.float64, len(value.terms))
        triplets.add(np.full(entries.size, index), entries, coefficients)

    def maps(self, m: int, n: int) -> ParameterMaps | None:
        """The maps of a program of ``m`` rows and ``n`` variables (None without parameters)."""
        if not self.parameters:
            return None
        positions = np.asarray(self._positions, np.int64).reshape(-1, 2)
        sizes = {"row_lower": m, "row_upper": m, "lower": n, "upper": n, "objective": n}
        return ParameterMaps(
            tuple(self.parameters), positions[:, 0], positions[:, 1],
            self._coefficients.matrix(len(self._positions), self.size),
            **{name: triplets.matrix(sizes[name], self.size) for name, triplets in self._maps.items()},
        )

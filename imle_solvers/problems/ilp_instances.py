"""One instance's numbers of an ILP with batched parameters, and their checks.

:class:`ParametricParts` gathers, once per program, the base values and the rows of
the maps (``ilp_params.ParameterMaps``) of the numbers that depend on parameters,
stacked (and dense where small): an instance then costs one product and a few
comparisons, tens of microseconds next to a solve's milliseconds. :class:`InstanceValues` is what it gives a solver, the numbers
that may differ from the base (so a cached model rewrites only those); :class:`Numbers`
is a program's numbers in full, for building a model or the plain program of one instance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidInputError
from .ilp_params import ParameterMaps

# SCIP takes any number of this magnitude or more for infinity (its ``numerics/infinity``,
# 1e20 by default), and OR-Tools hands every program CP-SAT cannot take to SCIP: a row
# bound of 1e25 would silently be no bound, a coefficient of 1e25 a solver error. So a
# compiled program's finite numbers (coefficients, bounds, the fixed objective) stay below.
SOLVER_INFINITY = 1e20

# A stacked map with at most this many entries (parametric numbers x parameter entries) is
# kept dense: a dense product of that size costs microseconds, a sparse one's overhead ten.
_DENSE_ENTRIES = 1 << 16


@dataclass(frozen=True)
class InstanceValues:
    """One instance's numbers where they may differ from the ILP's base values.

    Attributes:
        slots, coefficients: ``(K,)`` indices into ``A.data`` and their values.
        rows, row_lower, row_upper: ``(R,)`` rows whose bounds depend on parameters, both bounds.
        columns, lower, upper: ``(V,)`` variables whose bounds do, both bounds (binary ones
            clipped to ``[0, 1]``).
        objective: ``(n,)`` the fixed objective, or None where it does not depend on them.
    """

    slots: np.ndarray
    coefficients: np.ndarray
    rows: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    columns: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    objective: np.ndarray | None


@dataclass(frozen=True)
class Numbers:
    """A program's numbers in full, one instance's or a model's placeholders: ``(nnz,)``
    coefficients (``A.data`` order), ``(m,)`` row bounds, ``(n,)`` variable bounds (binary
    ones clipped to ``[0, 1]``) and ``(n,)`` fixed objective."""

    coefficients: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    objective: np.ndarray


class _Stack:
    """``base + matrix @ p`` for all of a program's parametric numbers at once: ``base``
    ``(k,)``, ``matrix`` ``(k, P)``, dense when small (one product per instance)."""

    __slots__ = ("base", "matrix")

    def __init__(self, base: np.ndarray, matrix: sp.csr_array) -> None:
        self.base = base
        self.matrix = matrix.toarray() if matrix.shape[0] * matrix.shape[1] <= _DENSE_ENTRIES else matrix

    def at(self, p: np.ndarray) -> np.ndarray:
        """The numbers of ``B`` instances, ``p`` ``(B, P)``: a new ``(B, k)`` array."""
        if isinstance(self.matrix, np.ndarray):
            return self.base + p @ self.matrix.T
        return self.base + (self.matrix @ p.T).T


@dataclass(frozen=True, eq=False)
class ParametricParts:
    """An ILP's parametric numbers, gathered once. Built by ``ILP.parametric``.

    They are stacked as ``[coefficients (K) | row lower (R), variable lower (V) | row upper
    (R), variable upper (V) | objective (n, where it depends on parameters)]``, so that an
    instance is one product and one comparison of lower and upper sides.

    Attributes:
        maps: the program's :class:`ParameterMaps`.
        slots: ``(K,)`` the parametric coefficients' indices into ``A.data``.
        rows, columns: ``(R,)`` rows and ``(V,)`` variables whose bounds depend on parameters.
        binary: ``(V,)`` which of those variables are binary (clipped to ``[0, 1]``).
        stack: the stacked numbers' base and map.
        has_objective: whether the fixed objective depends on parameters.
        row_name, entry_name: name a row and a variable entry in errors; ``label`` the program.
    """

    maps: ParameterMaps
    slots: np.ndarray
    rows: np.ndarray
    columns: np.ndarray
    binary: np.ndarray
    stack: _Stack
    has_objective: bool
    row_name: Callable[[int], str]
    entry_name: Callable[[int], str]
    label: str

    @classmethod
    def gather(cls, maps: ParameterMaps, a: sp.csr_array, slots: np.ndarray, row_bounds: tuple[np.ndarray, np.ndarray],
               declared: tuple[np.ndarray, np.ndarray], binary: np.ndarray, objective: np.ndarray,
               row_name: Callable[[int], str], entry_name: Callable[[int], str], label: str) -> ParametricParts:
        """The parts of an ILP: ``declared`` are its variable bounds before binary clipping."""
        rows = _touched(maps.row_lower, maps.row_upper)
        columns = _touched(maps.lower, maps.upper)
        has_objective = bool(maps.objective.nnz)
        objective_rows = np.arange(objective.size if has_objective else 0)
        bases = [a.data[slots], row_bounds[0][rows], declared[0][columns], row_bounds[1][rows], declared[1][columns],
                 objective[objective_rows]]
        matrices = [maps.coefficients, maps.row_lower[rows], maps.lower[columns], maps.row_upper[rows],
                    maps.upper[columns], maps.objective[objective_rows]]
        stack = _Stack(np.concatenate(bases), sp.vstack([sp.csr_array(m) for m in matrices], format="csr"))
        return cls(maps, slots, rows, columns, binary[columns], stack, has_objective, row_name, entry_name, label)

    # -- instances ---------------------------------------------------------------------------
    def instance(self, data: Mapping[str, Any]) -> InstanceValues:
        """One instance's numbers (``data[name]``: its value, of the parameter's shape);
        raises :class:`InvalidInputError` when they make a row's or a variable's bounds
        cross (as a spec with those values would be refused)."""
        # every solve runs this: a dozen numpy calls, on 1-d views of one array
        p = self.maps.vectors(data, None, self.label)
        numbers = self.stack.at(p)[0]
        k, r, v = self.slots.size, self.rows.size, self.columns.size
        low, high = numbers[k:k + r + v], numbers[k + r + v:k + 2 * (r + v)]
        if self._clipped.size:
            low[self._clipped] = np.maximum(low[self._clipped], 0.0)
            high[self._clipped] = np.minimum(high[self._clipped], 1.0)
        fine = ((low <= high) & (low < np.inf) & (high > -np.inf)).all() if r + v else True
        if not fine or (k and not np.isfinite(numbers[:k]).all()) or \
                (self.has_objective and not np.isfinite(numbers[k + 2 * (r + v):]).all()) or \
                not _below_solver_infinity(numbers):
            self._check(*self._evaluate(p), batch=False)  # raises, saying what is wrong
        objective = numbers[k + 2 * (r + v):] if self.has_objective else None
        return InstanceValues(self.slots, numbers[:k], self.rows, low[:r], high[:r], self.columns, low[r:], high[r:],
                              objective)

    @functools.cached_property
    def _clipped(self) -> np.ndarray:
        """Positions, among the lower (or upper) sides of rows then variables, of binary variables'."""
        return self.rows.size + np.flatnonzero(self.binary)

    def check_batch(self, data: Mapping[str, Any]) -> None:
        """The batch's checks (``data``: ``(B, *shape)`` arrays), naming the first bad batch index."""
        batch = next(iter(data.values())).shape[0] if data else 1
        self._check(*self._evaluate(self.maps.vectors(data, batch, self.label)), batch=True)

    def placeholder(self) -> InstanceValues:
        """The numbers a solver model is built with, before any instance writes its own.

        The base values (all parameters zero), except where a solver would refuse them or
        keep them too well: row bounds that cross are moved apart, and parametric variables
        are free (binary ones ``[0, 1]``). A base of ``upper: cap - 8`` would be ``[0, -8]``;
        and SCIP turns an integer variable created within ``[0, 1]`` into a binary one for
        good, which an instance's ``[0, 3]`` could then not widen."""
        values = self.evaluate(np.zeros((1, self.maps.size)))
        return InstanceValues(
            self.slots, values.coefficients[0], self.rows, values.row_lower[0],
            np.maximum(values.row_upper[0], values.row_lower[0]), self.columns,
            np.where(self.binary, 0.0, -np.inf), np.where(self.binary, 1.0, np.inf), None,
        )

    def evaluate(self, p: np.ndarray) -> InstanceValues:
        """The numbers of ``B`` instances, ``p`` ``(B, P)``: each value field ``(B, ...)``
        (views of one new array)."""
        return self._evaluate(p)[0]

    def _evaluate(self, p: np.ndarray) -> tuple[InstanceValues, tuple[np.ndarray, np.ndarray]]:
        """:meth:`evaluate`, and the lower and upper sides of rows and variables side by
        side, ``(B, R + V)`` each (what :meth:`_check` compares)."""
        numbers = self.stack.at(p)
        k, r, v = self.slots.size, self.rows.size, self.columns.size
        low, high = numbers[:, k:k + r + v], numbers[:, k + r + v:k + 2 * (r + v)]  # rows, then variables
        if self._clipped.size:
            low[:, self._clipped] = np.maximum(low[:, self._clipped], 0.0)
            high[:, self._clipped] = np.minimum(high[:, self._clipped], 1.0)
        objective = numbers[:, k + 2 * (r + v):] if self.has_objective else None
        values = InstanceValues(self.slots, numbers[:, :k], self.rows, low[:, :r], high[:, :r],
                                self.columns, low[:, r:], high[:, r:], objective)
        return values, (low, high)

    # -- checks ------------------------------------------------------------------------------
    def _check(self, values: InstanceValues, sides: tuple[np.ndarray, np.ndarray], batch: bool) -> None:
        """Refuse crossing bounds, and numbers too large to be finite (an overflow)."""
        low, high = sides
        # fine where lo <= hi, lo below +inf and hi above -inf (NaN fails all three)
        broken = ~((low <= high) & (low < np.inf) & (high > -np.inf))
        failed = broken.any(axis=1)
        for numbers in (values.coefficients, values.objective):
            if numbers is not None and numbers.size:
                failed |= ~np.isfinite(numbers).all(axis=1)
        solvers_infinite = np.zeros_like(failed)
        for numbers in (values.coefficients, values.objective, low, high):
            if numbers is not None and numbers.size:
                solvers_infinite |= (np.isfinite(numbers) & (np.abs(numbers) >= SOLVER_INFINITY)).any(axis=1)
        failed |= solvers_infinite
        if not failed.any():
            return
        index = int(failed.argmax())
        at = f" at batch index {index}" if batch else ""
        if broken[index].any():
            i = int(broken[index].argmax())
            r = self.rows.size
            what = "constraint" if i < r else "variable"
            name = self.row_name(int(self.rows[i])) if i < r else self.entry_name(int(self.columns[i - r]))
            quantity = "activity" if i < r else "value"
            raise InvalidInputError(
                f"{self.label}: {self._involved(i)}{at}: {what} {name} would need "
                f"{low[index, i]:g} <= {quantity} <= {high[index, i]:g} (its lower bound above its upper bound)")
        if solvers_infinite[index]:
            raise InvalidInputError(
                f"{self.label}: batched parameters {list(self.maps.names)}{at} give a number of magnitude "
                f"{SOLVER_INFINITY:g} or more, which the ILP solvers take for infinity (SCIP's numerics/infinity); "
                "rescale the program")
        raise InvalidInputError(f"{self.label}: batched parameters {list(self.maps.names)}{at} give a number too "
                                "large to be finite")

    def _involved(self, i: int) -> str:
        """``batched parameters 'lo', 'hi'``: those that the bounds of the ``i``-th touched
        row (or, past the rows, variable) use."""
        r = self.rows.size
        maps = (self.maps.row_lower, self.maps.row_upper) if i < r else (self.maps.lower, self.maps.upper)
        index = self.rows[i] if i < r else self.columns[i - r]
        entries = np.union1d(maps[0][[index]].indices, maps[1][[index]].indices)
        owners = np.repeat(np.arange(len(self.maps.parameters)), [p.size for p in self.maps.parameters])
        names = [self.maps.parameters[k].name for k in np.unique(owners[entries])]
        return f"batched parameter{'s' if len(names) != 1 else ''} {', '.join(map(repr, names))}"


def _below_solver_infinity(numbers: np.ndarray) -> bool:
    """Whether no finite number among ``numbers`` reaches what the ILP solvers take for
    infinity (a bound of ``+-inf`` is one; a finite ``1e25`` would silently become one)."""
    magnitude = np.abs(numbers)
    return not ((magnitude >= SOLVER_INFINITY) & (magnitude < np.inf)).any()


def _touched(*maps: sp.csr_array) -> np.ndarray:
    """The rows on which any of ``maps`` has an entry."""
    touched = np.zeros(maps[0].shape[0], dtype=bool)
    for matrix in maps:
        touched |= np.diff(matrix.indptr) > 0
    return np.flatnonzero(touched)

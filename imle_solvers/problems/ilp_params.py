"""Batched (per-instance) parameters of an ILP: one structure, numbers affine in the parameters.

A batched parameter takes one value per instance. It may set constraint
coefficients, row bounds, variable bounds and the fixed objective, never the
program's structure (its variables, its rows, which coefficients may be nonzero).
Each of those numbers is an exact affine function of the flat vector ``p`` (``(P,)``:
the parameters' entries, in declaration order, each row-major)::

    value(instance) = base value (in the ILP) + map @ p(instance)

:class:`ParameterMaps` holds the maps (sparse, canonical, hashed into the ILP's
fingerprint). ``ilp_instances`` evaluates them for instances.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._registration import register
from ..errors import InvalidInputError

MAP_NAMES = ("coefficients", "row_lower", "row_upper", "lower", "upper", "objective")


@register
@dataclass(frozen=True)
class Parameter:
    """A batched parameter: one value of ``shape`` per instance.

    Attributes:
        name: how data name it (``layer(theta, capacity=...)``).
        shape: one instance's shape (``()`` for a scalar).
        default: the value of an instance that is not given one (None: it must be given).
        doc: what it means (shown by ``instance_fields``).
    """

    name: str
    shape: tuple[int, ...] = ()
    default: np.ndarray | None = None
    doc: str = ""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))  # numpy's prod: 0-d shapes give 1


@register
@dataclass(frozen=True, eq=False)
class ParameterMaps:
    """How an ILP's numbers depend on its batched parameters: ``value = base + map @ p``.

    Attributes:
        parameters: the batched parameters; ``p`` is their entries, concatenated.
        coefficient_rows, coefficient_columns: ``(K,)`` positions in ``A`` of the
            coefficients that depend on ``p`` (they are in ``A``'s sparsity pattern, as
            explicit zeros where the base value is 0).
        coefficients: ``(K, P)``; row ``k`` maps ``p`` to the change of coefficient ``k``.
        row_lower, row_upper: ``(m, P)``, changes of the row bounds.
        lower, upper: ``(n, P)``, changes of the variable bounds as declared (a binary
            variable's are then clipped to ``[0, 1]``).
        objective: ``(n, P)``, changes of the fixed objective.

    A map given as None is zero. :meth:`canonical` returns the form an ILP stores: CSR,
    float64, no duplicates nor explicit zeros, positions sorted and unique.
    """

    parameters: tuple[Parameter, ...]
    coefficient_rows: Any = None
    coefficient_columns: Any = None
    coefficients: Any = None
    row_lower: Any = None
    row_upper: Any = None
    lower: Any = None
    upper: Any = None
    objective: Any = None

    @property
    def size(self) -> int:
        """``P``, the length of the flat parameter vector."""
        return sum(p.size for p in self.parameters)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def canonical(self, m: int, n: int, label: str) -> ParameterMaps:
        """The checked canonical form for an ILP of ``m`` rows and ``n`` variables."""
        parameters = tuple(_checked_parameter(p, label) for p in self.parameters)
        if len({p.name for p in parameters}) != len(parameters):
            raise InvalidInputError(f"{label}: duplicate batched parameter names in {[p.name for p in parameters]}")
        size = sum(p.size for p in parameters)
        shapes = {"row_lower": m, "row_upper": m, "lower": n, "upper": n, "objective": n}
        maps = {name: _canonical_map(getattr(self, name), (rows, size), f"{label}: map {name!r}")
                for name, rows in shapes.items()}
        rows, columns, coefficients = _merged_positions(self, m, n, size, label)
        return ParameterMaps(parameters, rows, columns, coefficients, **maps)

    def digest(self) -> bytes:
        """A digest of the parameters' declarations and the maps (not of any instance's values)."""
        h = hashlib.sha256()
        for p in self.parameters:
            h.update(repr((p.name, p.shape, p.default is None)).encode())
            if p.default is not None:
                h.update((p.default + 0.0).tobytes())
        for array in (self.coefficient_rows, self.coefficient_columns):
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        for name in MAP_NAMES:
            matrix = getattr(self, name)
            h.update(repr((name, matrix.shape)).encode())
            for index in (matrix.indptr, matrix.indices):
                h.update(np.ascontiguousarray(index, dtype=np.int64).tobytes())
            h.update((matrix.data + 0.0).tobytes())
        return h.digest()

    # -- the parameter vector of instances ---------------------------------------------------
    def vectors(self, data: Mapping[str, Any], batch: int | None, label: str) -> np.ndarray:
        """``p`` for ``batch`` instances, ``(batch, P)``, or for one instance, ``(1, P)`` when
        ``batch`` is None (``data`` then holds one instance's values, of each parameter's
        shape); a parameter not in ``data`` takes its default."""
        if len(data) > len(self.parameters) or any(name not in self._sizes for name in data):
            unknown = sorted(set(data) - set(self.names))
            raise InvalidInputError(f"{label}: unknown per-instance data {unknown}; the batched parameters are "
                                    f"{list(self.names)}")
        lead = () if batch is None else (batch,)
        parts = []
        for p in self.parameters:
            value = data.get(p.name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != lead + p.shape:
                    raise InvalidInputError(f"{label}: batched parameter {p.name!r} has shape {value.shape}, "
                                            f"expected {lead + p.shape}")
                if batch is None and not np.isfinite(value).all():  # a batch's finiteness the core checks
                    raise InvalidInputError(f"{label}: batched parameter {p.name!r} holds a non-finite value")
            elif p.default is not None:
                value = p.default if batch is None else np.broadcast_to(p.default, lead + p.shape)
            else:
                raise InvalidInputError(f"{label}: batched parameter {p.name!r} has no default; pass it per "
                                        f"instance: layer(theta, {p.name}=...)")
            parts.append(value.reshape((1 if batch is None else batch, self._sizes[p.name])))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts, axis=1) if parts else np.zeros((1 if batch is None else batch, 0))

    @functools.cached_property
    def _sizes(self) -> dict[str, int]:
        return {p.name: p.size for p in self.parameters}



def _checked_parameter(p: Parameter, label: str) -> Parameter:
    shape = tuple(int(d) for d in p.shape)
    if p.default is None:
        return replace(p, shape=shape)
    default = np.array(p.default, dtype=np.float64)
    if default.shape != shape and default.size == int(np.prod(shape, dtype=np.int64)):
        default = default.reshape(shape)  # a scalar read back from a config as (1,), say
    if default.shape != shape:
        raise InvalidInputError(f"{label}: the default of batched parameter {p.name!r} has shape {default.shape}, "
                                f"expected {shape}")
    if not np.isfinite(default).all():
        raise InvalidInputError(f"{label}: the default of batched parameter {p.name!r} must be finite")
    default.flags.writeable = False
    return replace(p, shape=shape, default=default)


def _canonical_map(matrix: Any, shape: tuple[int, int], what: str) -> sp.csr_array:
    if matrix is None:
        return sp.csr_array(shape, dtype=np.float64)
    result = sp.csr_array(matrix, dtype=np.float64, copy=True)
    if result.shape != shape:
        raise InvalidInputError(f"{what} has shape {result.shape}, expected {shape}")
    if not np.isfinite(result.data).all():
        raise InvalidInputError(f"{what} must hold finite numbers")
    result.sum_duplicates()
    result.eliminate_zeros()
    return result


def _merged_positions(maps: ParameterMaps, m: int, n: int, size: int,
                      label: str) -> tuple[np.ndarray, np.ndarray, sp.csr_array]:
    """Coefficient positions sorted and unique (the maps of a repeated position summed),
    without those whose map is zero."""
    rows = np.asarray([] if maps.coefficient_rows is None else maps.coefficient_rows, dtype=np.int64).ravel()
    columns = np.asarray([] if maps.coefficient_columns is None else maps.coefficient_columns, dtype=np.int64).ravel()
    matrix = _canonical_map(maps.coefficients, (rows.size, size), f"{label}: map 'coefficients'")
    if rows.size != columns.size or ((rows < 0) | (rows >= m) | (columns < 0) | (columns >= n)).any():
        raise InvalidInputError(f"{label}: coefficient positions must be {rows.size} (row, column) pairs within "
                                f"({m}, {n})")
    keys, inverse = np.unique(rows * max(n, 1) + columns, return_inverse=True)
    merge = sp.csr_array((np.ones(rows.size), (inverse.ravel(), np.arange(rows.size))), shape=(keys.size, rows.size))
    merged = sp.csr_array(merge @ matrix)
    merged.eliminate_zeros()
    keep = np.diff(merged.indptr) > 0
    keys, merged = keys[keep], sp.csr_array(merged[keep])
    return keys // max(n, 1), keys % max(n, 1), merged


def with_pattern(a: sp.csr_array, rows: np.ndarray, columns: np.ndarray) -> tuple[sp.csr_array, np.ndarray]:
    """``a`` (canonical) with ``(rows, columns)`` added to its sparsity pattern as explicit
    zeros where it has no entry, and the index into its ``data`` of each position."""
    m, n = a.shape
    if rows.size:
        coo = a.tocoo()
        a = sp.csr_array((np.concatenate([coo.data, np.zeros(rows.size)]),
                          (np.concatenate([coo.row, rows]), np.concatenate([coo.col, columns]))), shape=(m, n))
        a.sum_duplicates()  # sorts the indices; keeps the explicit zeros
    entry_rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(a.indptr))
    slots = np.searchsorted(entry_rows * max(n, 1) + a.indices, rows * max(n, 1) + columns)
    return a, slots

"""Integer linear programs whose objective coefficients come (partly) from theta."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidInputError
from .base import ContentIdentity, Problem, Sense

VariableType = Literal["binary", "integer", "continuous"]


@dataclass(frozen=True)
class Variable:
    """A named block of decision variables.

    Attributes:
        name: unique within the program.
        shape: the block's shape; its entries are laid out row-major.
        type: ``"binary"``, ``"integer"`` or ``"continuous"``.
        lower, upper: bounds, scalars or arrays broadcastable to ``shape``
            (binary variables are always within [0, 1]).
    """

    name: str
    shape: tuple[int, ...]
    type: VariableType = "binary"
    lower: float | np.ndarray = 0.0
    upper: float | np.ndarray = np.inf

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat ``(size,)`` lower and upper bounds."""
        lower = np.broadcast_to(np.asarray(self.lower, dtype=np.float64), self.shape).ravel()
        upper = np.broadcast_to(np.asarray(self.upper, dtype=np.float64), self.shape).ravel()
        if self.type == "binary":
            lower, upper = np.maximum(lower, 0.0), np.minimum(upper, 1.0)
        return lower, upper


@dataclass(frozen=True, eq=False)
class ILP(ContentIdentity, Problem):
    r"""An integer linear program ``max/min c^T x  s.t.  row_lower <= A x <= row_upper``.

    ``x`` is the concatenation (in declaration order, each block row-major) of the
    variables' entries. The objective is ``objective`` plus theta on the entries of
    ``theta_variables``; ``z`` is those entries' optimal values.

    Attributes:
        variables: the variable blocks.
        constraints: ``A``, a sparse ``(m, n)`` matrix over the flat ``x``.
        row_lower, row_upper: ``(m,)`` bounds of ``A x`` (-inf / +inf where one-sided;
            equal for an equality).
        theta_variables: names of the variables whose coefficients theta gives.
        objective_sense: ``"max"`` or ``"min"``.
        objective: ``(n,)`` fixed coefficients added to theta's (default zeros).
        constraint_names: ``(m,)`` row names, for reading a model back (a spec names each
            row after its constraint and quantifier values, e.g. ``"ramp[i=0]"``).
        name: the program's name.

    Shapes: theta and z are ``(B, *variable.shape)`` for one theta variable, else
    ``(B, total size)`` over the theta variables in order.
    """

    variables: tuple[Variable, ...]
    constraints: sp.csr_array
    row_lower: np.ndarray
    row_upper: np.ndarray
    theta_variables: tuple[str, ...]
    objective_sense: Sense = "max"
    objective: np.ndarray | None = None
    constraint_names: tuple[str, ...] = ()
    name: str = "ilp"
    fingerprint: str = field(init=False, repr=False)
    kind: ClassVar[str] = "ilp"

    def __post_init__(self) -> None:
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"ILP {self.name!r}: duplicate variable names in {names}")
        unknown = [n for n in self.theta_variables if n not in names]
        if unknown or not self.theta_variables:
            raise InvalidInputError(f"ILP {self.name!r}: theta variables {unknown or '[]'} not among {names}")
        if self.objective_sense not in ("max", "min"):
            raise InvalidInputError(f"ILP {self.name!r}: sense must be 'max' or 'min', got {self.objective_sense!r}")
        n = self.n_variables
        a = sp.csr_array(self.constraints, dtype=np.float64)
        m = a.shape[0]
        if a.shape[1] != n:
            raise InvalidInputError(f"ILP {self.name!r}: constraint matrix has {a.shape[1]} columns, expected {n}")
        row_lower = np.broadcast_to(np.asarray(self.row_lower, np.float64), (m,)).copy()
        row_upper = np.broadcast_to(np.asarray(self.row_upper, np.float64), (m,)).copy()
        objective = np.zeros(n) if self.objective is None else np.asarray(self.objective, np.float64).reshape(n)
        for what, values in (("constraint coefficients", a.data), ("objective", objective)):
            if not np.isfinite(values).all():
                raise InvalidInputError(f"ILP {self.name!r}: {what} must be finite numbers")
        if np.isnan(row_lower).any() or np.isnan(row_upper).any():
            raise InvalidInputError(f"ILP {self.name!r}: row bounds must be numbers or ±inf, not NaN")
        object.__setattr__(self, "constraints", a)
        object.__setattr__(self, "row_lower", row_lower)
        object.__setattr__(self, "row_upper", row_upper)
        object.__setattr__(self, "objective", objective)
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "theta_variables", tuple(self.theta_variables))
        object.__setattr__(self, "fingerprint", self._digest())

    @classmethod
    def from_yaml(cls, path, **params) -> ILP:
        """The ILP of a YAML/JSON spec file (docs/spec.md); ``params`` supply its ``params:``."""
        from ..spec import load_yaml

        return load_yaml(path, **params)

    @classmethod
    def from_dict(cls, spec, **params) -> ILP:
        """The ILP of a spec given as a dict (the YAML's structure)."""
        from ..spec import load_dict

        return load_dict(spec, **params)

    # -- layout -----------------------------------------------------------------
    @property
    def n_variables(self) -> int:
        return sum(v.size for v in self.variables)

    def offsets(self) -> dict[str, int]:
        """Start of each variable block in the flat ``x``."""
        starts, position = {}, 0
        for v in self.variables:
            starts[v.name] = position
            position += v.size
        return starts

    def theta_slots(self) -> np.ndarray:
        """Indices into the flat ``x`` of theta's entries, in theta's row-major order (read-only)."""
        return self._theta_slots

    @functools.cached_property
    def _theta_slots(self) -> np.ndarray:
        # per instance, objective_for and state_from_solution need it: compute it once
        starts, by_name = self.offsets(), {v.name: v for v in self.variables}
        slots = np.concatenate([starts[n] + np.arange(by_name[n].size) for n in self.theta_variables])
        slots.flags.writeable = False
        return slots

    @functools.cached_property
    def _theta_integral(self) -> np.ndarray:
        return self.integrality()[self._theta_slots]

    @property
    def shape(self) -> tuple[int, ...]:
        by_name = {v.name: v for v in self.variables}
        if len(self.theta_variables) == 1:
            return tuple(by_name[self.theta_variables[0]].shape)
        return (sum(by_name[n].size for n in self.theta_variables),)

    @property
    def sense(self) -> Sense:
        return self.objective_sense

    def objective_for(self, theta: np.ndarray) -> np.ndarray:
        """The full ``(n,)`` objective for one instance's ``theta`` (of ``shape``)."""
        c = self.objective.copy()
        c[self.theta_slots()] += np.asarray(theta, dtype=np.float64).ravel()
        return c

    def state_from_solution(self, x: np.ndarray) -> np.ndarray:
        """z (of ``shape``) from a full solution ``x`` ``(n,)``: the theta variables' values,
        the integer ones rounded (solvers return them within a feasibility tolerance)."""
        values = np.asarray(x, dtype=np.float64)[self._theta_slots]
        integral = self._theta_integral
        values[integral] = np.rint(values[integral]) + 0.0  # + 0.0 turns -0.0 into 0.0
        return values.reshape(self.shape)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat ``(n,)`` lower and upper variable bounds."""
        lower, upper = zip(*(v.bounds() for v in self.variables))
        return np.concatenate(lower), np.concatenate(upper)

    def integrality(self) -> np.ndarray:
        """``(n,)`` True where the variable is binary or integer."""
        return np.concatenate([np.full(v.size, v.type != "continuous") for v in self.variables])

    # -- identity: equal programs share cached solver models in each worker ---------
    def _digest(self) -> str:
        h = hashlib.sha256()
        for v in self.variables:
            lower, upper = v.bounds()
            h.update(repr((v.name, tuple(v.shape), v.type)).encode())
            h.update(lower.tobytes() + upper.tobytes())
        a = self.constraints
        for array in (a.indptr, a.indices, a.data, self.row_lower, self.row_upper, self.objective):
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(repr((self.theta_variables, self.objective_sense, a.shape)).encode())
        return h.hexdigest()

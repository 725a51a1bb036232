"""Integer linear programs whose objective coefficients come (partly) from theta."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import numpy as np
import scipy.sparse as sp

from .._registration import register
from .._array import to_numpy
from ..errors import InvalidInputError, MissingDataError, SolverError
from .base import ContentIdentity, DataField, Problem, Sense, checked_int
from .ilp_instances import InstanceValues, Numbers, ParametricParts
from .ilp_params import Parameter, ParameterMaps, with_pattern  # noqa: F401 (Parameter: re-exported)

if TYPE_CHECKING:
    from ..spec.limits import SpecLimits

VariableType = Literal["binary", "integer", "continuous"]
VARIABLE_TYPES: tuple[str, ...] = get_args(VariableType)

# The largest magnitude of a score (theta) and of a fixed objective coefficient: SCIP takes
# 1e20 as infinity and refuses such an objective; CP-SAT scales the objective to integers of
# 2**50, a product with bounds up to 2**40 that must stay finite. An objective coefficient,
# the sum of the two, stays below 2e18.
ILP_SCORE_LIMIT = 1e18


@register
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

    def __post_init__(self) -> None:
        owner = f"Variable {self.name!r}"
        if not isinstance(self.shape, (tuple, list)):
            raise InvalidInputError(f"{owner}: shape must be a tuple of sizes, got {self.shape!r}")
        shape = tuple(checked_int(owner, f"shape[{i}]", d, minimum=0) for i, d in enumerate(self.shape))
        object.__setattr__(self, "shape", shape)
        if self.type not in VARIABLE_TYPES:
            raise InvalidInputError(f"{owner}: type must be one of {list(VARIABLE_TYPES)}, got {self.type!r}")

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


@register
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
        parameters: batched (per-instance) parameters and how the numbers above depend
            on them (:class:`ParameterMaps`), or None. Then ``constraints``, the bounds and
            ``objective`` hold base values (those of all-zero parameters), one instance's
            values are ``base + map @ p``, and :meth:`with_values` gives the plain program
            of one instance. Data name them: ``instance_fields``.

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
    parameters: ParameterMaps | None = None
    fingerprint: str = field(init=False, repr=False)
    kind: ClassVar[str] = "ilp"
    score_limit: ClassVar[float] = ILP_SCORE_LIMIT

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
        a = _canonical(self.constraints)
        m = a.shape[0]
        if a.shape[1] != n:
            raise InvalidInputError(f"ILP {self.name!r}: constraint matrix has {a.shape[1]} columns, expected {n}")
        row_lower = np.broadcast_to(np.asarray(self.row_lower, np.float64), (m,)).copy()
        row_upper = np.broadcast_to(np.asarray(self.row_upper, np.float64), (m,)).copy()
        objective = np.zeros(n) if self.objective is None else np.asarray(self.objective, np.float64).reshape(n)
        for what, values in (("constraint coefficients", a.data), ("objective", objective)):
            if not np.isfinite(values).all():
                raise InvalidInputError(f"ILP {self.name!r}: {what} must be finite numbers")
        if (np.abs(objective) > ILP_SCORE_LIMIT).any():
            raise InvalidInputError(f"ILP {self.name!r}: objective coefficient {objective_beyond(objective):g} is beyond "
                                    f"±{ILP_SCORE_LIMIT:g}, the largest the backends solve (docs/problems.md)")
        if np.isnan(row_lower).any() or np.isnan(row_upper).any():
            raise InvalidInputError(f"ILP {self.name!r}: row bounds must be numbers or ±inf, not NaN")
        if self.parameters is not None:
            maps = self.parameters.canonical(m, n, f"ILP {self.name!r}")
            # the coefficients parameters set belong to the structure, even where their base is 0
            a, _ = with_pattern(a, maps.coefficient_rows, maps.coefficient_columns)
            object.__setattr__(self, "parameters", maps)
        object.__setattr__(self, "constraints", a)
        object.__setattr__(self, "row_lower", row_lower)
        object.__setattr__(self, "row_upper", row_upper)
        object.__setattr__(self, "objective", objective)
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "theta_variables", tuple(self.theta_variables))
        object.__setattr__(self, "fingerprint", self._digest())

    @classmethod
    def from_yaml(cls, path: Any, /, *, limits: SpecLimits | None = None, **params: Any) -> ILP:
        """The ILP of a YAML/JSON spec file (docs/spec.md); ``params`` supply its ``params:``,
        ``limits`` (a :class:`~imle_solvers.spec.SpecLimits`) bound what it may expand to."""
        from ..spec.compiler import compile_spec, read_yaml, split_limits
        from ..spec.limits import ILP_YAML

        params = dict(params)
        chosen = split_limits(limits, params)
        return compile_spec(read_yaml(path, chosen), params, chosen, ILP_YAML)

    @classmethod
    def from_dict(cls, spec: Any, /, *, limits: SpecLimits | None = None, **params: Any) -> ILP:
        """The ILP of a spec given as a dict (the YAML's structure); ``params`` and ``limits``
        as for :meth:`from_yaml`."""
        from ..spec.compiler import compile_spec, split_limits
        from ..spec.limits import ILP_DICT
        from ..spec.source import from_mapping

        params = dict(params)
        chosen = split_limits(limits, params)
        return compile_spec(from_mapping(spec, chosen), params, chosen, ILP_DICT)

    # -- how it reads -------------------------------------------------------------
    @property
    def label(self) -> str:
        """How errors name the program: ``ilp 'rota'``, or ``ilp`` for the default name."""
        return self.kind if self.name == "ilp" else f"{self.kind} {self.name!r}"

    def __repr__(self) -> str:
        """One line, however large the program: ``ILP('rota', max, x: binary (6, 10),
        12 constraints, 96 nonzeros, theta=x)``."""
        shown = [f"{v.name}: {v.type} {tuple(v.shape)}" for v in self.variables[:_REPR_VARIABLES]]
        if len(self.variables) > _REPR_VARIABLES:
            shown.append(f"... {len(self.variables) - _REPR_VARIABLES} more ({self.n_variables} variables in all)")
        rows = self.constraints.shape[0]
        batched = f", batched={', '.join(self.parameters.names)}" if self.parameters is not None else ""
        return (f"ILP({self.name!r}, {self.objective_sense}, {', '.join(shown)}, "
                f"{rows} constraint{'s' if rows != 1 else ''}, {self.constraints.nnz} nonzeros, "
                f"theta={', '.join(self.theta_variables)}{batched})")

    # -- batched parameters: one structure, per-instance numbers -----------------------------
    @property
    def instance_fields(self) -> Mapping[str, DataField]:
        """One float field per batched parameter, of its shape (a batch passes ``(B, *shape)``)."""
        if self.parameters is None:
            return {}
        return {p.name: DataField(p.shape, "float", p.doc or f"batched parameter {p.name!r} of {self.label}")
                for p in self.parameters.parameters}

    def check_instance_data(self, data: Mapping[str, Any]) -> None:
        """Refuse a batch whose parameters make a row's or a variable's bounds cross, or
        that lacks a parameter without default; the error names the parameters and the
        first bad batch index. ``data``: ``(B, *shape)`` arrays of the fields given."""
        if self.parameters is not None:
            self._check_given(data)
            self.parametric.check_batch(data)
        elif data:
            raise InvalidInputError(f"{self.label} has no batched parameters; got data {sorted(data)}")

    def instance_values(self, data: Mapping[str, Any] | None = None) -> InstanceValues | None:
        """One instance's numbers where they depend on the batched parameters (None for a
        program without any). ``data[name]`` is one instance's value, of the parameter's
        shape; a parameter not given takes its default.

        Raises:
            InvalidInputError: a parameter without default is not given, or the values
                make bounds cross.
        """
        if self.parameters is None:
            if data:
                raise InvalidInputError(f"{self.label} has no batched parameters; got data {sorted(data)}")
            return None
        data = data or {}
        self._check_given(data)
        return self.parametric.instance(data)

    def _check_given(self, data: Mapping[str, Any]) -> None:
        """Refuse ``data`` that lack a batched parameter without default: a
        :class:`~imle_solvers.errors.MissingDataError` (whose hint the caller's checks
        re-word for the call made)."""
        missing = [p.name for p in self.parameters.parameters if p.default is None and data.get(p.name) is None]
        if missing:
            from ..instances import missing_data  # instances imports the problems

            some = "s" if len(missing) > 1 else ""
            raise missing_data(f"{self.parametric.label}: batched parameter{some} {', '.join(map(repr, missing))} "
                               f"{'have' if some else 'has'} no default", missing)

    def with_values(self, data: Mapping[str, Any] | None = None) -> ILP:
        """The plain program (no batched parameters) of one instance: ``data`` as for
        :meth:`instance_values`. Solving it gives what solving this program with ``data`` does."""
        values = self.instance_values(data)
        if values is None:
            return self
        numbers = self.numbers(values)
        a = self.constraints.copy()
        a.data = numbers.coefficients
        starts = self.offsets()
        variables = tuple(
            Variable(v.name, v.shape, v.type, numbers.lower[starts[v.name]:starts[v.name] + v.size].reshape(v.shape),
                     numbers.upper[starts[v.name]:starts[v.name] + v.size].reshape(v.shape))
            for v in self.variables
        )
        return ILP(variables, a, numbers.row_lower, numbers.row_upper, self.theta_variables, self.objective_sense,
                   numbers.objective, self.constraint_names, self.name)

    def numbers(self, values: InstanceValues | None = None) -> Numbers:
        """The program's numbers in full (copies) with ``values`` written in: one instance's
        (:meth:`instance_values`), or a model's placeholder (``parametric.placeholder()``);
        the base values without ``values``."""
        lower, upper = self.bounds()
        numbers = Numbers(self.constraints.data.copy(), self.row_lower.copy(), self.row_upper.copy(), lower, upper,
                          self.objective.copy())
        if values is not None:
            numbers.coefficients[values.slots] = values.coefficients
            numbers.row_lower[values.rows], numbers.row_upper[values.rows] = values.row_lower, values.row_upper
            numbers.lower[values.columns], numbers.upper[values.columns] = values.lower, values.upper
            if values.objective is not None:
                numbers.objective[:] = values.objective
        return numbers

    @functools.cached_property
    def parametric(self) -> ParametricParts | None:
        """The numbers that depend on batched parameters, gathered for solvers: which
        coefficients (``slots`` into ``constraints.data``), rows and variables they are
        (None without batched parameters)."""
        if self.parameters is None:
            return None
        _, slots = with_pattern(self.constraints, self.parameters.coefficient_rows, self.parameters.coefficient_columns)
        return ParametricParts.gather(
            self.parameters, self.constraints, slots, (self.row_lower, self.row_upper), self._declared_bounds(),
            np.concatenate([np.full(v.size, v.type == "binary") for v in self.variables]), self.objective,
            self._row_label, self._entry_label, f"ILP {self.name!r}",
        )

    def _declared_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat ``(n,)`` variable bounds as declared, before binary variables' clipping (copies)."""
        lower = [np.broadcast_to(np.asarray(v.lower, np.float64), v.shape).ravel() for v in self.variables]
        upper = [np.broadcast_to(np.asarray(v.upper, np.float64), v.shape).ravel() for v in self.variables]
        return np.concatenate(lower), np.concatenate(upper)

    def _row_label(self, row: int) -> str:
        return repr(self._row_name(row))

    def _entry_label(self, column: int) -> str:
        name, index = self.entry(column)
        return f"{name}{list(index) if index else ''}"

    # -- checking a point ---------------------------------------------------------
    def violations(self, values: Any, /, tol: float = 1e-6, **data: Any) -> Violations:
        """What a point of one instance breaks: constraint rows, variable bounds, integrality.

        Args:
            values: z, the theta variables' values, of shape ``self.shape``; or a full
                solution x of shape ``(n_variables,)``. When both shapes agree (the theta
                variables are all the variables), it is read as z, in theta's order.
            tol: how far a value may stray (absolute) before it counts as a violation.
            data: the instance's batched parameters by name, each of the parameter's
                shape (as for :meth:`instance_values`): the numbers are that instance's.
                A parameter not given takes its declared default; one without default
                must be given (never taken as 0).

        With z alone, the other variables' values are unknown: only the rows whose
        nonzeros all lie on theta variables are checked (``unchecked_rows`` counts the
        others), and only the theta variables' bounds and integrality.

        Returns:
            A :class:`Violations`, falsy when nothing is broken.

        Raises:
            InvalidInputError: a point of another shape or with non-finite values; data
                that lack a parameter without default (a ``MissingDataError``), name an
                unknown one, or make bounds cross.
        """
        from ..instances import missing_data  # instances imports the problems

        try:
            values_of_instance = self.instance_values(data)
        except MissingDataError as error:
            raise missing_data(error.subject, error.fields, "ilp.violations(z, {fields})") from None
        return self._violations(self._point(values, "violations() takes"), self.numbers(values_of_instance), tol)

    def batch_violations(self, values: Any, /, tol: float = 1e-6, **data: Any) -> list[Violations]:
        """:meth:`violations` of each instance of a batch, with its own data.

        Args:
            values: ``(B, *self.shape)`` states z (what a layer or an oracle returns; any
                framework's array), or ``(B, n_variables)`` full solutions.
            tol: as for :meth:`violations`.
            data: the batched parameters by name, ``(B, *shape)`` each, as passed to the
                oracle or the layer; a value of one instance's shape (a Python number for
                a scalar parameter) stands for every instance; one not given takes its
                default.

        Returns:
            ``B`` :class:`Violations`, instance ``i``'s at ``i``, each falsy when nothing is
            broken: ``[v or "feasible" for v in ilp.batch_violations(z, **data)]``.

        Raises:
            InvalidInputError: as :meth:`violations`, naming the batch index of bad data.
        """
        from ..instances import broadcast_data, check_data, check_values, instance, to_host

        points = np.asarray(to_numpy(values), dtype=np.float64)
        if points.ndim == 0:
            raise InvalidInputError(f"{self.label}: batch_violations() takes a batch (B, *shape), got a scalar")
        call = "ilp.batch_violations(z, {fields})"
        data = broadcast_data(self, data, len(points))
        check_data(self, data, len(points), call)
        host = to_host(self, data)
        check_values(self, host, call)  # names the first bad batch index
        return [self._violations(self._point(point, f"batch_violations() takes at batch index {i}"),
                                 self.numbers(self.instance_values(instance(host, i))), tol)
                for i, point in enumerate(points)]

    def _point(self, values: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        """The full ``(n,)`` x of z or x, and ``(n,)`` which of its entries are known."""
        point = np.asarray(to_numpy(values), dtype=np.float64)
        n = self.n_variables
        if point.shape == self.shape:
            known = np.zeros(n, dtype=bool)
            known[self._theta_slots] = True
            x = np.zeros(n)
            x[self._theta_slots] = point.ravel()
        elif point.shape == (n,):
            known, x = np.ones(n, dtype=bool), point
        else:
            raise InvalidInputError(f"{self.label}: {what} z of shape {self.shape} or x of shape "
                                    f"({n},), got {point.shape}")
        if not np.isfinite(point).all():
            raise InvalidInputError(f"{self.label}: {what} finite values")
        return x, known

    def _violations(self, point: tuple[np.ndarray, np.ndarray], numbers: Numbers, tol: float) -> Violations:
        """What ``point`` (x and which entries are known, :meth:`_point`) breaks, under
        one instance's ``numbers``."""
        x, known = point
        a = self.constraints.copy()
        a.data = numbers.coefficients
        # a row can be checked when none of its nonzeros falls on an unknown variable (an
        # instance's coefficient may be 0: only nonzero values count)
        nonzero = a.copy()
        nonzero.data = (numbers.coefficients != 0).astype(np.float64)
        checked = (nonzero @ (~known).astype(np.float64)) == 0
        activity = a @ x
        row_lower, row_upper = numbers.row_lower, numbers.row_upper
        below, above = row_lower - activity, activity - row_upper
        rows = tuple(
            RowViolation(int(i), self._row_name(i), float(activity[i]), float(row_lower[i]),
                         float(row_upper[i]), float(max(below[i], above[i])))
            for i in np.flatnonzero(checked & ((below > tol) | (above > tol)))
        )
        lower, upper = numbers.lower, numbers.upper
        bounds = tuple(
            BoundViolation(*self.entry(j), float(x[j]), float(lower[j]), float(upper[j]),
                           float(max(lower[j] - x[j], x[j] - upper[j])))
            for j in np.flatnonzero(known & ((lower - x > tol) | (x - upper > tol)))
        )
        distance = np.abs(x - np.rint(x))
        integrality = tuple(
            IntegralityViolation(*self.entry(j), float(x[j]), float(distance[j]))
            for j in np.flatnonzero(known & self.integrality() & (distance > tol))
        )
        return Violations(rows, bounds, integrality, int((~checked).sum()))

    def _row_name(self, row: int) -> str:
        return self.constraint_names[row] if row < len(self.constraint_names) else f"row {row}"

    def entry(self, column: int) -> tuple[str, tuple[int, ...]]:
        """The variable and the index within its block of entry ``column`` of the flat x."""
        for v in self.variables:
            if column < v.size:
                return v.name, tuple(int(i) for i in np.unravel_index(column, v.shape)) if v.shape else ()
            column -= v.size
        raise IndexError(f"{self.label} has {self.n_variables} variables")

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
    def binary_states(self) -> bool:  # type: ignore[override]
        """Whether every theta variable is binary, so states hold only zeros and ones."""
        by_name = {v.name: v for v in self.variables}
        return all(by_name[name].type == "binary" for name in self.theta_variables)

    @property
    def sense(self) -> Sense:
        return self.objective_sense

    def objective_for(self, theta: np.ndarray, values: InstanceValues | None = None) -> np.ndarray:
        """The full ``(n,)`` objective for one instance's ``theta`` (of ``shape``) and, with
        batched parameters, its :meth:`instance_values`."""
        if values is not None and values.objective is not None and (np.abs(values.objective) > ILP_SCORE_LIMIT).any():
            raise SolverError(f"the batched parameters set the objective coefficient {objective_beyond(values.objective):g}, "
                              f"beyond ±{ILP_SCORE_LIMIT:g}, the largest the backends solve (docs/problems.md)",
                              status="out-of-range")
        c = (self.objective if values is None or values.objective is None else values.objective).copy()
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
        # Hash what the program means, not how it is stored: the matrix is canonical
        # (see _canonical), index arrays are hashed as int64 whatever scipy chose, shapes
        # as plain ints, and -0.0 as 0.0 (+ 0.0 does that).
        h = hashlib.sha256()
        for v in self.variables:
            lower, upper = v.bounds()
            h.update(repr((v.name, tuple(int(d) for d in v.shape), v.type)).encode())
            h.update((lower + 0.0).tobytes() + (upper + 0.0).tobytes())
        a = self.constraints
        for index in (a.indptr, a.indices):
            h.update(np.ascontiguousarray(index, dtype=np.int64).tobytes())
        for array in (a.data, self.row_lower, self.row_upper, self.objective):
            h.update(np.ascontiguousarray(array + 0.0, dtype=np.float64).tobytes())
        h.update(repr((tuple(self.theta_variables), self.objective_sense, tuple(int(d) for d in a.shape))).encode())
        if self.parameters is not None:  # the structure and the maps; never an instance's values
            h.update(self.parameters.digest())
        return h.hexdigest()


def objective_beyond(objective: np.ndarray) -> float:
    """The first coefficient of ``objective`` ``(n,)`` beyond :data:`ILP_SCORE_LIMIT`."""
    return float(objective[np.argmax(np.abs(objective) > ILP_SCORE_LIMIT)])


_REPR_VARIABLES = 4  # variable blocks a repr lists by name before summing up the rest


def _canonical(matrix: Any) -> sp.csr_array:
    """A float64 CSR copy of any sparse or dense matrix, in one canonical form: indices
    sorted within rows, duplicates summed, explicit zeros removed. Equal matrices then
    have equal arrays, whatever format and index dtype they came in (the fingerprint
    hashes them)."""
    a = sp.csr_array(matrix, dtype=np.float64, copy=True)  # a copy: never modify the caller's
    a.sum_duplicates()  # also sorts the indices
    a.eliminate_zeros()
    return a


@dataclass(frozen=True)
class RowViolation:
    """A constraint row that does not hold: ``lower <= activity <= upper`` is off by ``amount``."""

    row: int
    name: str
    activity: float
    lower: float
    upper: float
    amount: float

    def __str__(self) -> str:
        side = f">= {self.lower:g}" if self.activity < self.lower else f"<= {self.upper:g}"
        return f"{self.name}: activity {self.activity:g}, needs {side} (off by {self.amount:g})"


@dataclass(frozen=True)
class BoundViolation:
    """``variable[index]`` outside ``[lower, upper]`` by ``amount``."""

    variable: str
    index: tuple[int, ...]
    value: float
    lower: float
    upper: float
    amount: float

    def __str__(self) -> str:
        return (f"{self.variable}{list(self.index) if self.index else ''} = {self.value:g} outside "
                f"[{self.lower:g}, {self.upper:g}] (off by {self.amount:g})")


@dataclass(frozen=True)
class IntegralityViolation:
    """An integer or binary ``variable[index]`` whose value is ``distance`` from the nearest integer."""

    variable: str
    index: tuple[int, ...]
    value: float
    distance: float

    def __str__(self) -> str:
        return f"{self.variable}{list(self.index) if self.index else ''} = {self.value:g} is not an integer"


@dataclass(frozen=True)
class Violations:
    """What :meth:`ILP.violations` found; falsy when nothing is broken.

    Attributes:
        rows: the constraint rows that do not hold, in row order.
        bounds: the variable entries outside their bounds (binary: [0, 1]).
        integrality: the binary or integer entries that are not integers.
        unchecked_rows: rows not checked because they involve variables whose values
            were not given (only z was); 0 when a full x was given.
    """

    rows: tuple[RowViolation, ...]
    bounds: tuple[BoundViolation, ...]
    integrality: tuple[IntegralityViolation, ...]
    unchecked_rows: int = 0

    def __bool__(self) -> bool:
        return bool(self.rows or self.bounds or self.integrality)

    def __str__(self) -> str:
        lines = [str(item) for group in (self.rows, self.bounds, self.integrality) for item in group]
        if self.unchecked_rows:
            lines.append(f"({self.unchecked_rows} rows involving non-theta variables not checked)")
        return "\n".join(lines) if lines else "no violations"

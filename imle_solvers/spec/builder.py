"""``ILPBuilder``: an ILP declared step by step in Python. Specs are compiled through it,
so a spec and the same program written with the builder give equal ILPs."""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from ..problems.ilp import ILP, VARIABLE_TYPES, Variable
from ..problems.ilp_params import Parameter
from .affine import Affine
from .batched import BatchedTerms
from .errors import SpecError, field_name
from .clock import time_budget
from .expressions import (
    KEYWORDS,
    Expr,
    ExprError,
    Quantifier,
    Ref,
    TokenBudget,
    parse_expression,
    parse_quantifier,
    parse_relation,
)
from .limits import DEFAULT_LIMITS, PYTHON_BUILDER, SOLVER_INFINITY, Hints, SpecLimits, inexact_integer, inexact_message
from .linear import Evaluator, Expansion, Linear, Tensor, unknown
from .source import KeyPath


T = TypeVar("T")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSET: Any = object()  # add_parameter without a value (None cannot say it: a value is never None)


def _deprecated(message: str) -> None:
    """Warn, at the caller's line, of a deprecated builder call."""
    warnings.warn(message, DeprecationWarning, stacklevel=3)  # past _deprecated and the method


def _names_sets(value: Any) -> bool:
    """Whether ``value`` is a list of names: sets passed where a value goes (the old
    ``add_parameter(name, over)`` order)."""
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) for v in value)


class BuildError(SpecError):
    """A :class:`SpecError` raised by :class:`ILPBuilder`.

    Attributes:
        relative: which argument of the call is at fault, e.g. ``("over", 1)``.
        offset: 0-based position in that argument's string, where it is an expression.
        key: the declared name itself is at fault (a duplicate, a bad name).
    """

    def __init__(self, message: str, relative: KeyPath = (), offset: int | None = None, *, key: bool = False) -> None:
        super().__init__(message, field=field_name(relative) if relative else None,
                         column=None if offset is None else offset + 1)
        self.relative = relative
        self.offset = offset
        self.key = key


def _expression_error(error: ExprError, relative: KeyPath, context: str = "") -> BuildError:
    return BuildError(f"{context}{error.message}", relative, error.offset)


def _timed(method: Callable[..., T]) -> Callable[..., T]:
    """Run a builder method within the spec's time budget (``limits.max_seconds``), its
    own or that of the spec being compiled around it."""

    @functools.wraps(method)
    def timed(self: ILPBuilder, *args: Any, **kwargs: Any) -> T:
        with time_budget(self.limits.max_seconds):
            return method(self, *args, **kwargs)

    return timed


def _beyond_solvers(numbers: Sequence[float | Affine] | np.ndarray) -> float | None:
    """The first finite number (or number of an affine form) of magnitude ``SOLVER_INFINITY``
    or more, which the solvers would take for infinity; None where there is none."""
    if isinstance(numbers, np.ndarray):
        bad = numbers[np.isfinite(numbers) & (np.abs(numbers) >= SOLVER_INFINITY)]
        return float(bad.flat[0]) if bad.size else None
    for number in numbers:
        for part in (number.constant, *number.terms.values()) if isinstance(number, Affine) else (number,):
            if SOLVER_INFINITY <= abs(part) < math.inf:
                return part
    return None


def _too_large(number: float, what: str) -> str:
    return (f"{what} of {number:g}: the ILP solvers take any number of magnitude {SOLVER_INFINITY:g} or more "
            "for infinity (SCIP's numerics/infinity); rescale the program")


def _reserved() -> str:
    return ", ".join(repr(word) for word in sorted(KEYWORDS))


def _row_coefficients(blocks: list[tuple[int, Tensor, np.ndarray]], row: int) -> dict[int, float]:
    """``{column: coefficient}`` of the non-zero entries of row ``row`` of coefficient ``blocks``."""
    coefs: dict[int, float] = {}
    for _, tensor, array in blocks:
        flat = array[row].ravel()
        coefs.update({tensor.start + j: float(flat[j]) for j in np.flatnonzero(flat)})
    return coefs


class ILPBuilder:
    r"""Declare an ILP piece by piece, then :meth:`build` it.

    Example, a knapsack with item values from theta::

        b = ILPBuilder("knapsack")
        b.add_set("items", 4)
        b.add_parameter("weight", [3, 4, 5, 2])
        b.add_variable("x", over=["items"])
        b.add_constraint("sum(i in items) weight[i] * x[i] <= 7", name="capacity")
        b.set_objective("max", theta="x")
        problem = b.build()

    A constraint with ``for_each`` adds one row per assignment of its indices, and
    its ``if`` keeps some of them: "no worker on two consecutive shifts"::

        b.add_constraint("x[w, s] + x[w, s + 1] <= 1",
                         for_each="w in workers, s in shifts if s + 1 < n_shifts", name="rest")

    A parameter is fixed, as ``weight`` above, or with ``batched=True`` (as a spec's
    ``batched: true``) takes one value per instance, given beside theta
    (``layer(theta, capacity=...)``); it may set coefficients, right-hand sides, bounds
    and the fixed objective, never the structure::

        b.add_parameter("capacity", default=7, batched=True)
        b.add_constraint("sum(i in items) weight[i] * x[i] <= capacity", name="capacity")

    Every method checks its arguments at once and raises a :class:`BuildError`
    (a :class:`SpecError`) naming the argument and, in an expression, the column.
    ``limits`` bounds what the program may grow to (:class:`SpecLimits`); a constraint
    whose expansion would pass them is refused before any of its rows is built.
    See ``docs/spec.md`` for the expression grammar.
    """

    def __init__(self, name: str = "ilp", *, limits: SpecLimits | None = None) -> None:
        self.name = name
        self.limits = DEFAULT_LIMITS if limits is None else limits
        if not isinstance(self.limits, SpecLimits):
            raise TypeError(f"limits must be a SpecLimits, got {type(limits).__name__}")
        self._nonzeros = 0
        self._sets: dict[str, int] = {}
        self._tensors: dict[str, Tensor] = {}
        self._variables: list[Variable] = []
        self._columns = 0
        self._rows: list[dict[int, float]] = []
        self._lower: list[float] = []
        self._upper: list[float] = []
        self._row_names: list[str] = []
        self._constraints = 0
        self._objective: tuple[str, tuple[str, ...], dict[int, float]] | None = None
        self._batched = BatchedTerms()
        self._evaluator = Evaluator(self._sets, self._tensors, self.limits, PYTHON_BUILDER)
        self._tokens = TokenBudget.of(self.limits.max_tokens)  # spent by every expression parsed

    @property
    def hints(self) -> Hints:
        """How errors phrase a fix (``for_each=`` here; the spec compiler sets ``for:``)."""
        return self._evaluator.hints

    @hints.setter
    def hints(self, hints: Hints) -> None:
        self._evaluator.hints = hints

    def __repr__(self) -> str:
        return (f"ILPBuilder({self.name!r}, sets={len(self._sets)}, variables={len(self._variables)}, "
                f"rows={len(self._rows)})")

    # -- declarations ------------------------------------------------------------------
    @_timed
    def add_set(self, name: str, size: int | str) -> None:
        """Declare the index set ``{0, ..., size - 1}``.

        ``size`` is an integer, or an expression of numbers and scalar constants or
        parameters declared before, e.g. ``"n_shifts - 1"`` or ``"2 * n"``.
        """
        self._declare(name)
        limit = self.limits.max_entries
        if isinstance(size, str):
            size = self._number(size, (), "a set size")
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 <= size <= limit \
                or not float(size).is_integer():
            if isinstance(size, int) and not isinstance(size, bool) and size.bit_length() > 4000:
                shown = f"an integer of {size.bit_length()} bits"  # repr() of it may exceed Python's digit limit
            else:
                shown = f"{size:g}" if isinstance(size, float) else repr(size)
                shown = shown if len(shown) <= 24 else f"{shown[:12]}...({len(shown)} digits)"
            raise BuildError(f"a set size must be an integer in [0, {limit:,}] (max_entries), got {shown}")
        self._sets[name] = int(size)

    def _number(self, text: str, relative: KeyPath, what: str, *, batched: bool = False) -> float | Affine:
        """The value of an expression of numbers and scalar constants (a set size, a bound);
        with ``batched``, it may depend on batched parameters (an :class:`Affine` form)."""
        self._check_length(text, relative)
        try:
            expr = parse_expression(text, self.limits.max_expression_depth, self._tokens)
            if isinstance(expr, Ref) and expr.indices is None:
                tensor = self._tensors.get(expr.name)
                if tensor is not None and tensor.start is None and tensor.shape != ():
                    raise ExprError(f"{what} {expr.name!r} is not a scalar constant or parameter "
                                    f"(it has shape {tensor.shape})", 0)
            self._check_expansion(None, (expr,), relative, what)
            value = self._evaluator.value(expr, {})
            if isinstance(value, Affine) and not batched:
                self._evaluator.refuse_batched((expr,), what, 0)
        except ExprError as error:
            raise _expression_error(error, relative) from None
        if isinstance(value, Linear):
            raise BuildError(f"{what} cannot depend on variables", relative, 0)
        return value

    def add_parameter(self, name: str, value: Any = _UNSET, over: Sequence[str] | None = None, *,
                      batched: bool | None = None, default: Any = None, description: str = "") -> None:
        """Declare a parameter, as a spec's ``params:`` entry does: fixed, or with
        ``batched=True`` one value per instance.

        Fixed (``batched=False``, the default as in a spec): ``value`` is a number or an
        array, the same for every instance; with ``over`` (set names) its shape is checked
        against them. ``add_parameter("weights", [3, 4, 5], over=["items"])``.

        Per instance (``batched=True``): each instance brings its own value beside theta
        (``layer(theta, capacity=...)``). Its shape is that of the sets in ``over``, else that
        of ``default``, else a scalar; ``default`` is the value of an instance that is not
        given one (None: every instance must be). It may appear in coefficients, right-hand
        sides, variable bounds and the fixed objective, affinely (``cap[i] * x[i]``,
        ``lo + 2 * hi``; not ``cap * cap``), never where it would change the structure
        (a set size, an index, an ``if``). ``add_parameter("capacity", default=10, batched=True)``.

        ``description`` documents a batched parameter (``ILP.instance_fields``); a fixed one
        becomes numbers of the program and keeps none. A call with neither a value nor
        ``batched`` declares a per-instance parameter, as ``add_parameter`` did before it
        took ``batched``; that form is deprecated.
        """
        if batched is None:
            if value is _UNSET:  # the call of before `batched`: per instance
                _deprecated(f"add_parameter({name!r}, ...) without a value declares a per-instance parameter only "
                            f"for compatibility; say so: add_parameter({name!r}, ..., batched=True) (or give "
                            f"the fixed value: add_parameter({name!r}, value))")
            batched = value is _UNSET
        if not isinstance(batched, bool):
            raise BuildError(f"batched must be True or False, got {batched!r}", ("batched",))
        if _names_sets(value):
            raise BuildError(f"a value must be numbers, got the names {list(value)!r}: sets go in over=, as in "
                             f"add_parameter({name!r}, over={list(value)!r}, batched=True)", ("value",))
        if batched:
            if value is not _UNSET:
                raise BuildError(f"a batched parameter takes one value per instance; its default goes in "
                                 f"default=: add_parameter({name!r}, default=..., batched=True)", ("value",))
            self._add_batched(name, over, default, description)
            return
        if default is not None:
            raise BuildError(f"a fixed parameter has one value, given as add_parameter({name!r}, value); "
                             "default= is the per-instance default of batched=True", ("default",))
        if value is _UNSET:
            raise BuildError(f"a fixed parameter needs its value: add_parameter({name!r}, value) "
                             f"(or add_parameter({name!r}, batched=True) for one value per instance)", ("value",))
        self._add_fixed(name, value, over)

    def add_constant(self, name: str, value: Any, over: Sequence[str] | None = None) -> None:
        """Deprecated: :meth:`add_parameter` ``(name, value, over)`` declares the same fixed parameter."""
        _deprecated(f"add_constant is deprecated; write add_parameter({name!r}, value"
                    f"{', over=...' if over is not None else ''}) (fixed, as a spec's params)")
        self._add_fixed(name, value, over)

    def _add_fixed(self, name: str, value: Any, over: Sequence[str] | None) -> None:
        """Declare a number or array; with ``over`` (set names), its shape is checked against them."""
        self._declare(name)
        values = self._values(value)
        if over is None:
            self._tensors[name] = Tensor(values.shape, (None,) * values.ndim, values=values)
            return
        shape = self._shape(over)
        if values.shape != shape:
            raise BuildError(f"dimension mismatch: expected shape {shape} (over {list(over)}), got {values.shape}")
        self._tensors[name] = Tensor(shape, tuple(over), values=values)

    def _add_batched(self, name: str, over: Sequence[str] | None, default: Any, description: str) -> None:
        """Declare a batched parameter (see :meth:`add_parameter`)."""
        self._declare(name)
        values = None if default is None else self._values(default)
        if over is not None:
            shape = self._shape(over)
            if values is not None and values.shape != shape:
                raise BuildError(f"dimension mismatch: expected shape {shape} (over {list(over)}), got {values.shape}",
                                 ("default",))
        else:
            shape = () if values is None else values.shape
        size = math.prod(shape)
        if size > self.limits.max_entries:
            raise BuildError(f"{size:,} entries; the limit is {self.limits.max_entries:,} "
                             f"({self._raise_hint('max_entries', size)})")
        start = self._batched.declare(Parameter(name, shape, values, description))
        axes = tuple(over) if over is not None else (None,) * len(shape)
        self._tensors[name] = Tensor(shape, axes, param=start)

    def _values(self, value: Any) -> np.ndarray:
        """A constant's or a default's numbers, checked."""
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 1024 \
                and inexact_integer(value):
            raise BuildError(inexact_message(str(value)))
        try:
            values = np.array(value, dtype=np.float64)
        except OverflowError:
            raise BuildError("a number is too large to be a float (beyond 1.8e308)") from None
        except (TypeError, ValueError):
            raise BuildError("expected a number or a rectangular array of numbers (are the rows ragged?)") from None
        if values.size > self.limits.max_entries:
            raise BuildError(f"{values.size:,} entries; the limit is {self.limits.max_entries:,} "
                             f"({self._raise_hint('max_entries', values.size)})")
        if not np.all(np.isfinite(values)):
            raise BuildError("values must be finite numbers")
        if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.size:
            with np.errstate(invalid="ignore"):  # 2**63 - 1 rounds to 2**63, past int64: changed too
                changed = values.astype(value.dtype) != value  # an int64 beyond 2**53 that float64 rounds
            if changed.any():
                raise BuildError(inexact_message(str(value.ravel()[np.flatnonzero(changed)[0]])))
        return values

    @_timed
    def add_variable(
        self,
        name: str,
        over: Sequence[str] = (),
        type: str = "binary",
        lower: float | str = 0.0,
        upper: float | str = math.inf,
    ) -> None:
        """Declare a block of variables with one axis per set in ``over`` (none: a scalar).

        ``type`` is ``"binary"``, ``"integer"`` or ``"continuous"``; ``lower`` and
        ``upper`` are numbers, names of constants or batched parameters (scalars or of the
        block's shape), or expressions of numbers and scalar constants or parameters
        (``"n - 1"``, ``"cap + 1"``).
        """
        self._declare(name)
        shape = self._shape(over)
        if type not in VARIABLE_TYPES:
            raise BuildError(f"type must be one of {list(VARIABLE_TYPES)}, got {type!r}", ("type",))
        size = math.prod(shape)
        if self._columns + size > self.limits.max_variables:
            raise BuildError(f"{self._columns + size:,} variables in all; the limit is {self.limits.max_variables:,} "
                             f"({self._raise_hint('max_variables', self._columns + size)})", ("over",))
        (low, low_terms), (high, high_terms) = self._bound(lower, shape, "lower"), self._bound(upper, shape, "upper")
        # where a bound depends on batched parameters, each instance's values are checked instead
        if low_terms is None and high_terms is None and np.any(np.asarray(low) > np.asarray(high)):
            raise BuildError("the lower bound exceeds the upper bound", ("lower",))
        if (low_terms is None and np.any(np.asarray(low) == np.inf)) or \
                (high_terms is None and np.any(np.asarray(high) == -np.inf)):
            raise BuildError("a bound of +inf below or -inf above leaves no value", ("lower",))
        for side, value, terms in (("lower", low, low_terms), ("upper", high, high_terms)):
            number = _beyond_solvers(np.append(np.asarray(value, np.float64).ravel(),
                                               [] if terms is None else terms[2]))
            if number is not None:
                raise BuildError(_too_large(number, "a bound"), (side,))
        for side, terms in (("lower", low_terms), ("upper", high_terms)):
            if terms is not None:
                self._batched.bound(side, self._columns + terms[0], terms[1], terms[2])
        self._tensors[name] = Tensor(shape, tuple(over), start=self._columns)
        self._variables.append(Variable(name, shape, type, low, high))
        self._columns += size

    # -- constraints ---------------------------------------------------------------------
    @_timed
    def add_constraint(
        self,
        constraint: str | Mapping[str, Any],
        *,
        for_each: str | None = None,
        lower: float | Sequence[float] | None = None,
        upper: float | Sequence[float] | None = None,
        name: str | None = None,
    ) -> None:
        """Add constraint rows, from an expression or from coefficients.

        An expression such as ``"sum(i in items) w[i] * x[i] <= cap"`` adds one row,
        or, with ``for_each``, one row per assignment of its indices: ``for_each="g in
        groups, t in slots"`` adds ``|groups| * |slots|`` rows (row-major, named
        ``name[g=0, t=0]``, ...), each with ``g`` and ``t`` bound in the expression;
        ``"... if condition"`` keeps the assignments where the condition holds: comparisons
        joined by ``and``, ``or``, ``not`` and parentheses (``"s in shifts if s + 1 < n_shifts"``,
        ``"i in I, j in J if not (i == j or w[i] > 3)"``). The expansion's size is checked
        against ``limits`` before any row is built.
        A mapping ``{variable: coefficients}`` adds ``lower <= sum <coefficients, x> <= upper``:
        one row where each array has the variable's shape, ``m`` rows where each is
        ``(m, *shape)``; ``lower`` and ``upper`` are scalars or ``(m,)``.
        """
        label = name if name is not None else f"constraints[{self._constraints}]"
        self._constraints += 1
        if isinstance(constraint, str):
            if lower is not None or upper is not None:
                raise BuildError("lower/upper go with coefficients; write the bounds into the expression", ("lower",))
            self._add_expression(constraint, for_each, label)
        else:
            if for_each is not None:
                raise BuildError("for_each goes with an expression, not coefficients", ("for",))
            self._add_coefficients(constraint, lower, upper, label)

    def _add_expression(self, text: str, for_each: str | None, label: str) -> None:
        depth = self.limits.max_expression_depth
        quantifier = None
        if for_each is not None:
            self._check_length(for_each, ("for",))
            try:
                quantifier = parse_quantifier(for_each, depth, self._tokens)
                self._evaluator.expansion(quantifier, ())  # unknown sets: an error at the 'for'
            except ExprError as error:
                raise _expression_error(error, ("for",)) from None
        self._check_length(text, ("expr",))
        try:
            relation = parse_relation(text, depth, self._tokens)
        except ExprError as error:
            raise _expression_error(error, ("expr",)) from None
        what = f"constraint {label!r}" if not label.startswith("constraints[") else label
        self._check_expansion(quantifier, relation.terms, ("expr",), what, rows=True)
        scopes = self._evaluator.scopes(quantifier, {}) if quantifier is not None else iter([{}])
        while True:
            try:  # the filter is evaluated as the assignments are drawn: its errors point at the 'for'
                scope = next(scopes)
            except StopIteration:
                break
            except ExprError as error:
                raise _expression_error(error, ("for",)) from None
            where = ", ".join(f"{index}={value}" for index, (value, _) in scope.items())
            try:
                coefs, low, high = self._evaluator.relation(relation, scope)
            except ExprError as error:
                raise _expression_error(error, ("expr",), f"for {where}: " if where else "") from None
            self._add_row(coefs, low, high, f"{label}[{where}]" if where else label, ("expr",))

    def _check_expansion(self, quantifier: Quantifier | None, terms: tuple[Expr, ...], relative: KeyPath,
                         label: str, *, rows: bool = False) -> Expansion:
        """Refuse, before building anything, an expansion that would pass the limits
        (``rows``: it adds rows, it is a constraint)."""
        try:
            cost = self._evaluator.expansion(quantifier, terms)
        except ExprError as error:
            raise _expression_error(error, relative) from None
        checks = (
            ("max_rows", "rows", len(self._rows), cost.rows if rows else 0,
             ("for",) if quantifier is not None else relative),
            ("max_terms", "terms", self._evaluator.steps, cost.terms, relative),
            ("max_nonzeros", "nonzeros", self._nonzeros, cost.nonzeros if rows else 0, relative),
        )
        for limit_name, what, before, added, where in checks:
            limit = getattr(self.limits, limit_name)
            if added and before + added > limit:
                so_far = f" ({before + added:,} in all)" if before else ""
                if what == "rows":
                    sizes = [self._sets[b.set] for b in quantifier.bindings] if quantifier is not None else []
                    detail = f" ({' x '.join(map(str, sizes))})" if len(sizes) > 1 else ""
                else:
                    detail = f" ({cost.rows:,} rows)" if cost.rows > 1 else ""
                raise BuildError(f"{label} would expand to {added:,} {what}{detail}{so_far}; the limit is "
                                 f"{limit:,} ({self._raise_hint(limit_name, before + added)})", where, 0)
        return cost

    def _raise_hint(self, limit_name: str, needed: int) -> str:
        return "raise it with " + self.hints.limit.format(name=limit_name, value=needed)

    def _check_length(self, text: str, relative: KeyPath) -> None:
        if len(text) > self.limits.max_text_bytes:
            raise BuildError(f"the expression is {len(text):,} characters long; the limit is "
                             f"{self.limits.max_text_bytes:,} (max_text_bytes)", relative)

    def _add_coefficients(self, coefficients: Mapping[str, Any], lower: Any, upper: Any, label: str) -> None:
        blocks = self._coefficient_blocks(coefficients)
        rows = {m for m, _, _ in blocks}
        if len(rows) > 1:
            raise BuildError(f"coefficient arrays disagree on the number of rows: {sorted(rows)}")
        m = rows.pop() if rows else 1
        nonzeros = sum(int(np.count_nonzero(array)) for _, _, array in blocks)
        for limit_name, before, added in (("max_rows", len(self._rows), m), ("max_nonzeros", self._nonzeros, nonzeros)):
            if before + added > getattr(self.limits, limit_name):
                raise BuildError(f"{label} would add {added:,} {limit_name[4:]} ({before + added:,} in all); the "
                                 f"limit is {getattr(self.limits, limit_name):,} "
                                 f"({self._raise_hint(limit_name, before + added)})")
        bounds = []
        for side, value, default in (("lower", lower, -np.inf), ("upper", upper, np.inf)):
            try:
                bounds.append(np.broadcast_to(np.asarray(default if value is None else value, np.float64), (m,)))
            except (TypeError, ValueError, OverflowError):
                raise BuildError(f"{side} must be a scalar or have {m} entries", (side,)) from None
        for r in range(m):
            coefs = _row_coefficients(blocks, r)
            self._add_row(coefs, float(bounds[0][r]), float(bounds[1][r]), f"{label}[{r}]" if m > 1 else label, ())

    def _coefficient_blocks(self, coefficients: Mapping[str, Any]) -> list[tuple[int, Tensor, np.ndarray]]:
        blocks = []
        for variable, value in coefficients.items():
            tensor = self._tensors.get(variable)
            if tensor is None or tensor.start is None:
                raise BuildError(f"unknown variable {variable!r}", (variable,))
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                raise BuildError("coefficients must be a rectangular array of numbers", (variable,)) from None
            if array.shape == tensor.shape:
                array = array[None]
            if array.shape[1:] != tensor.shape:
                raise BuildError(f"dimension mismatch: {variable!r} has shape {tensor.shape}, coefficients "
                                 f"{array.shape}", (variable,))
            blocks.append((array.shape[0], tensor, array))
        return blocks

    def _add_row(self, coefs: dict[int, float], lower: float, upper: float, label: str, relative: KeyPath) -> None:
        if self._batched.parameters:  # numbers may be Affine forms
            self._add_batched_row(coefs, lower, upper, label, relative)
            return
        values = list(coefs.values()) + [lower, upper]
        if any(math.isnan(v) for v in values) or any(math.isinf(v) for v in coefs.values()):
            raise BuildError(f"{label}: coefficients must be finite numbers", relative)
        self._check_magnitudes(coefs, lower, upper, label, relative)
        if lower > upper:
            raise BuildError(f"{label}: the lower bound {lower} exceeds the upper bound {upper}", relative)
        if not any(coefs.values()):
            if lower <= 0.0 <= upper:
                return  # a row without variables that always holds
            raise BuildError(f"{label} can never hold: it has no variables and needs {lower} <= 0 <= {upper}",
                             relative)
        row = {column: coef for column, coef in coefs.items() if coef != 0.0}
        self._rows.append(row)
        self._nonzeros += len(row)  # what the limits count rows and nonzeros against: those built
        self._lower.append(lower)
        self._upper.append(upper)
        self._row_names.append(label)

    def _add_batched_row(self, coefs: dict[int, float | Affine], lower: float | Affine, upper: float | Affine,
                         label: str, relative: KeyPath) -> None:
        """:meth:`_add_row` where numbers may depend on batched parameters: their base values
        go in the row, their terms to the maps; the checks that depend on values are each
        instance's (``ILP.check_instance_data``)."""
        numbers = list(coefs.values()) + [lower, upper]
        if any((not v.finite()) if isinstance(v, Affine) else math.isnan(v) for v in numbers) or \
                any(not isinstance(v, Affine) and math.isinf(v) for v in coefs.values()):
            raise BuildError(f"{label}: coefficients must be finite numbers", relative)
        self._check_magnitudes(coefs, lower, upper, label, relative)
        plain = not isinstance(lower, Affine) and not isinstance(upper, Affine)
        if plain and lower > upper:
            raise BuildError(f"{label}: the lower bound {lower} exceeds the upper bound {upper}", relative)
        row = {column: coef for column, coef in coefs.items() if isinstance(coef, Affine) or coef != 0.0}
        if not row and plain:
            if lower <= 0.0 <= upper:
                return  # a row without variables that always holds
            raise BuildError(f"{label} can never hold: it has no variables and needs {lower} <= 0 <= {upper}",
                             relative)
        # a row without variables whose bounds depend on parameters holds in some instances:
        # it stays, empty, and makes the others infeasible
        index = len(self._rows)
        self._rows.append({column: self._batched.coefficient(index, column, coef) for column, coef in row.items()})
        self._nonzeros += len(row)
        self._lower.append(self._batched.base("row_lower", index, lower))
        self._upper.append(self._batched.base("row_upper", index, upper))
        self._row_names.append(label)

    @staticmethod
    def _check_magnitudes(coefs: Mapping[int, float | Affine], lower: float | Affine, upper: float | Affine,
                          label: str, relative: KeyPath) -> None:
        for what, numbers in (("a coefficient", list(coefs.values())), ("a bound", [lower, upper])):
            number = _beyond_solvers(numbers)
            if number is not None:
                raise BuildError(f"{label}: {_too_large(number, what)}", relative)

    # -- objective ---------------------------------------------------------------------
    @_timed
    def set_objective(self, sense: str, theta: str | Sequence[str], fixed: str | Mapping[str, Any] | None = None) -> None:
        """``sense`` (``"max"`` or ``"min"``) of ``<theta, z> + fixed``.

        ``theta`` names the variable(s) whose coefficients the network gives (z is their
        values); ``fixed`` is an optional linear expression or ``{variable: coefficients}``
        (its constant part does not change the optimum and is dropped).
        """
        if self._objective is not None:
            raise BuildError("the objective is already set", ("objective",))
        if sense not in ("max", "min"):
            raise BuildError(f"sense must be 'max' or 'min', got {sense!r}", ("sense",))
        names = (theta,) if isinstance(theta, str) else tuple(theta)
        if not names or len(set(names)) != len(names):
            raise BuildError(f"theta must name one or more distinct variables, got {list(names)}", ("theta",))
        for position, variable in enumerate(names):
            tensor = self._tensors.get(variable)
            if tensor is None or tensor.start is None:
                where = ("theta",) if isinstance(theta, str) else ("theta", position)
                raise BuildError(unknown(variable, "variable", self._variables_by_name()), where)
        coefs = self._fixed(fixed)
        self._objective = (sense, names, {column: self._batched.base("objective", column, coef)
                                          for column, coef in coefs.items()})

    def _fixed(self, fixed: str | Mapping[str, Any] | None) -> dict[int, float | Affine]:
        if fixed is None:
            return {}
        if isinstance(fixed, str):
            self._check_length(fixed, ("fixed",))
            try:
                expr = parse_expression(fixed, self.limits.max_expression_depth, self._tokens)
            except ExprError as error:
                raise _expression_error(error, ("fixed",)) from None
            self._check_expansion(None, (expr,), ("fixed",), "the fixed objective")
            try:
                value = self._evaluator.value(expr, {})
            except ExprError as error:
                raise _expression_error(error, ("fixed",)) from None
            coefs = value.nonzero() if isinstance(value, Linear) else {}
        else:
            blocks = self._coefficient_blocks(fixed)
            if any(m != 1 for m, _, _ in blocks):
                raise BuildError("fixed coefficients must have each variable's shape", ("fixed",))
            coefs = _row_coefficients(blocks, 0)
        if not all(c.finite() if isinstance(c, Affine) else math.isfinite(c) for c in coefs.values()):
            raise BuildError("coefficients must be finite numbers", ("fixed",))
        number = _beyond_solvers(list(coefs.values()))
        if number is not None:
            raise BuildError(_too_large(number, "a coefficient"), ("fixed",))
        return coefs

    # -- the result ---------------------------------------------------------------------
    @_timed
    def build(self) -> ILP:
        """The :class:`~imle_solvers.ILP` declared so far (the builder can go on afterwards)."""
        if self._objective is None:
            raise BuildError("no objective: call set_objective(sense, theta)", ("objective",))
        sense, theta, fixed = self._objective
        indptr, indices, data = [0], [], []
        for row in self._rows:
            columns = sorted(row)
            indices.extend(columns)
            data.extend(row[c] for c in columns)
            indptr.append(len(indices))
        matrix = sp.csr_array(
            (np.asarray(data, np.float64), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
            shape=(len(self._rows), self._columns),
        )
        objective = np.zeros(self._columns)
        objective[list(fixed)] = list(fixed.values())
        return ILP(
            variables=tuple(self._variables),
            constraints=matrix,
            row_lower=np.asarray(self._lower, np.float64),
            row_upper=np.asarray(self._upper, np.float64),
            theta_variables=theta,
            objective_sense=sense,
            objective=objective,
            constraint_names=tuple(self._row_names),
            name=self.name,
            parameters=self._batched.maps(len(self._rows), self._columns),
        )

    # -- helpers -----------------------------------------------------------------------
    def _declare(self, name: str) -> None:
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or name in KEYWORDS:
            raise BuildError(f"{name!r} is not a valid name (letters, digits, _; not {_reserved()})", key=True)
        if name in self._sets or name in self._tensors:
            raise BuildError(f"the name {name!r} is already declared", key=True)

    def _shape(self, over: Sequence[str]) -> tuple[int, ...]:
        if isinstance(over, str):
            raise BuildError(f"over must be a list of set names, got the string {over!r}", ("over",))
        for position, set_name in enumerate(over):
            if not isinstance(set_name, str):
                raise BuildError(f"over lists names of sets declared with add_set, got {set_name!r}", ("over", position))
            if set_name not in self._sets:
                tensor = self._tensors.get(set_name)
                if tensor is not None and tensor.param is not None:
                    raise BuildError(f"{set_name!r} is a batched parameter, not a set: a batched parameter cannot "
                                     "decide the program's structure (shapes come from sets)", ("over", position))
                raise BuildError(unknown(set_name, "set", self._sets), ("over", position))
        return tuple(self._sets[s] for s in over)

    def _bound(self, bound: float | str, shape: tuple[int, ...], side: str) -> tuple[float | np.ndarray, BoundTerms | None]:
        """A variable block's bound: its (base) value, and where it depends on batched
        parameters, its terms ``(entries within the block, entries of p, coefficients)``."""
        if not isinstance(bound, str):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound != bound:  # NaN
                raise BuildError(f"a bound must be a number or a constant's name, got {bound!r}", (side,))
            try:
                return float(bound), None
            except OverflowError:  # an integer beyond the floats: beyond any variable's range
                return (math.inf if bound > 0 else -math.inf), None
        tensor = self._tensors.get(bound)
        size = math.prod(shape)
        if tensor is None and not _IDENTIFIER.fullmatch(bound):  # an expression such as "n - 1"
            value = self._number(bound, (side,), "a bound", batched=True)
            if not isinstance(value, Affine):
                return float(value), None
            entries = np.fromiter(value.terms.keys(), np.int64, len(value.terms))
            coefficients = np.fromiter(value.terms.values(), np.float64, len(value.terms))
            within = np.repeat(np.arange(size, dtype=np.int64), entries.size)
            return value.constant, (within, np.tile(entries, size), np.tile(coefficients, size))
        if tensor is None or tensor.start is not None:
            raise BuildError(unknown(bound, "constant", self._constants_by_name()), (side,))
        if tensor.shape not in ((), shape):
            raise BuildError(f"dimension mismatch: bound {bound!r} has shape {tensor.shape}, the variable {shape}",
                             (side,))
        if tensor.param is not None:  # a batched parameter: entry j of the block is p[param + j] (or p[param])
            within = np.arange(size, dtype=np.int64)
            entries = tensor.param + (within if tensor.shape else np.zeros(size, np.int64))
            return 0.0, (within, entries, np.ones(size))
        return (tensor.values if tensor.shape else float(tensor.values)), None

    def _variables_by_name(self) -> dict[str, Tensor]:
        return {n: t for n, t in self._tensors.items() if t.start is not None}

    def _constants_by_name(self) -> dict[str, Tensor]:
        return {n: t for n, t in self._tensors.items() if t.start is None}


BoundTerms = tuple[np.ndarray, np.ndarray, np.ndarray]

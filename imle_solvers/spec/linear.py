"""Evaluation of parsed expressions into linear forms over the flat variable vector.

A value is either a number (``float``), a number that depends on batched
parameters (an :class:`~.affine.Affine` form over their entries) or a :class:`Linear`
form, whose coefficients and constant may themselves be such forms. Products of
two linear forms, and division by one, are rejected as non-linear; products of two
parameter-dependent numbers as non-affine; a batched parameter may not decide the
program's structure (an index, a filter). Every index is checked against its axis'
size (an index may run over a set smaller than the axis).

Before a constraint is expanded, :meth:`Evaluator.expansion` computes what it will
cost (rows, terms, nonzeros) from the parsed tree and the set sizes alone, so that
the builder can refuse a hostile spec before doing the work.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .affine import Affine, NonAffine, Overflow, checked
from .clock import CHECK_EVERY, out_of_time
from .expressions import (
    Binary,
    Condition,
    Expr,
    ExprError,
    Filter,
    Logical,
    Negate,
    Not,
    Number,
    Quantifier,
    Ref,
    Relation,
    Sum,
    comparisons,
    start,
)
from .limits import DEFAULT_LIMITS, PYTHON_YAML, Hints, SpecLimits

Number_ = float | Affine  # a number, or one that depends on batched parameters


@dataclass
class Linear:
    """``sum_j coefs[j] * x[j] + constant``; ``x`` is the program's flat variable vector.

    A coefficient or the constant is an :class:`Affine` form where it depends on
    batched parameters (``cap[i] * x[i]``, ``sum(i in I) x[i] <= cap``)."""

    coefs: dict[int, Number_] = field(default_factory=dict)
    constant: Number_ = 0.0

    def add(self, other: Number_ | Linear, scale: float = 1.0) -> Linear:
        """Add ``scale * other`` in place; returns self. Raises :class:`Overflow` where a
        number leaves the finite floats."""
        if isinstance(other, Linear):
            coefs = self.coefs
            for column, coef in other.coefs.items():
                value = coefs.get(column, 0.0)
                value += scale * coef  # an Affine accumulates in place (see Affine)
                coefs[column] = _checked(value)
            self.constant = _checked(self.constant + scale * other.constant)
        else:
            self.constant = _checked(self.constant + scale * other)
        return self

    def scale(self, factor: Number_) -> Linear:
        """Multiply by ``factor`` in place; returns self. Raises :class:`NonAffine` when
        both ``factor`` and a coefficient depend on batched parameters, :class:`Overflow`
        where a number leaves the finite floats."""
        self.coefs = {column: _checked(factor * coef) for column, coef in self.coefs.items()}
        self.constant = _checked(factor * self.constant)
        return self

    def nonzero(self) -> dict[int, Number_]:
        """The coefficients that are not zero (one that depends on parameters never is)."""
        return {column: coef for column, coef in self.coefs.items() if isinstance(coef, Affine) or coef != 0.0}


@dataclass(frozen=True)
class Tensor:
    """A named array that expressions index: a constant, a block of variables, or a
    batched parameter.

    Attributes:
        shape: its shape (``()`` for a scalar).
        over: each axis' index set, or None where any index within range is fine.
        values: the numbers of a constant (None otherwise).
        start: a variable block's first column in the flat vector (None otherwise).
        param: a batched parameter's first entry in the flat parameter vector ``p``
            (None otherwise); its entries read as :class:`Affine` forms.
    """

    shape: tuple[int, ...]
    over: tuple[str | None, ...]
    values: np.ndarray | None = None
    start: int | None = None
    param: int | None = None


Scope = Mapping[str, tuple[int, str]]  # index name -> (value, set name)


@dataclass(frozen=True)
class Expansion:
    """What expanding a constraint costs, computed before expanding it.

    Attributes:
        rows: the number of assignments of its ``for`` (before its ``if`` drops any).
        terms: the evaluation steps of all its rows (filters included).
        nonzeros: the variable references of all its rows, an upper bound of their nonzeros.
    """

    rows: int
    terms: int
    nonzeros: int


def spine(expr: Binary) -> tuple[Expr, list[Binary]]:
    """A left-associated chain ``((a + b) * c) - d`` as ``a`` and its operations in order.

    ``a + b + c + ...`` parses into a tree as deep as it is long; walking its left
    spine in a loop keeps recursion to the nesting the parser has already bounded."""
    chain = []
    node: Expr = expr
    while isinstance(node, Binary):
        chain.append(node)
        node = node.left
    chain.reverse()
    return node, chain


class Evaluator:
    """Evaluates expressions against named ``sets`` (name -> size) and ``tensors``.

    It counts its work and stops with an error past ``limits.max_terms``, so that a
    spec whose expansion was underestimated still fails instead of hanging.
    """

    def __init__(self, sets: Mapping[str, int], tensors: Mapping[str, Tensor],
                 limits: SpecLimits = DEFAULT_LIMITS, hints: Hints = PYTHON_YAML) -> None:
        self.sets = sets
        self.tensors = tensors
        self.limits = limits
        self.hints = hints
        self.steps = 0
        self._indexing: list[tuple[Tensor, int]] = []  # (tensor, axis) of the indices being evaluated

    # -- the cost of an expansion, before it happens ---------------------------------
    def expansion(self, quantifier: Quantifier | None, terms: tuple[Expr, ...]) -> Expansion:
        """Rows, terms and nonzeros of ``terms`` evaluated under every assignment of ``quantifier``."""
        rows = self._assignments(quantifier) if quantifier is not None else 1
        guard = self._filter_cost(quantifier) if quantifier is not None else 0
        work = sum(self._cost(term)[0] for term in terms)
        nonzeros = sum(self._cost(term)[1] for term in terms)
        return Expansion(rows, rows * (guard + work), rows * nonzeros)

    def _assignments(self, quantifier: Quantifier) -> int:
        return math.prod(self._set_size(binding.set, binding.set_offset) for binding in quantifier.bindings)

    def _filter_cost(self, quantifier: Quantifier) -> int:
        """Steps of one evaluation of the filter, every comparison counted (``and`` and
        ``or`` may stop sooner); a comparison that cannot be a filter's is refused here,
        before anything is built, whether or not an evaluation would reach it."""
        steps = 0
        for condition in comparisons(quantifier.condition):
            self._check_comparison(condition)
            steps += self._cost(condition.left)[0] + self._cost(condition.right)[0]
        return steps

    def _check_comparison(self, condition: Condition) -> None:
        """Refuse a filter's comparison that depends on variables or batched parameters:
        a filter decides the rows, which are one for every solution and every instance."""
        sides = (condition.left, condition.right)
        if any(self._first_ref(side, "variable") is not None for side in sides):
            raise ExprError("an 'if' condition compares numbers; it cannot depend on variables", condition.offset)
        if any(self._first_ref(side, "batched") is not None for side in sides):
            self.refuse_batched(sides, "an 'if' condition", condition.offset)

    def _cost(self, expr: Expr) -> tuple[int, int]:
        """``(steps, variable references)`` of one evaluation of ``expr``, as :meth:`value` counts them."""
        if isinstance(expr, Binary):
            first, chain = spine(expr)
            steps, refs = self._cost(first)
            for node in chain:
                right = self._cost(node.right)
                steps, refs = steps + 1 + right[0], refs + right[1]
            return steps, refs
        if isinstance(expr, Number):
            return 1, 0
        if isinstance(expr, Ref):
            tensor = self.tensors.get(expr.name)
            index_steps = sum(self._cost(index)[0] for index in expr.indices or ())
            return 1 + index_steps, int(tensor is not None and tensor.start is not None)
        if isinstance(expr, Negate):
            steps, refs = self._cost(expr.operand)
            return 1 + steps, refs
        assert isinstance(expr, Sum)
        count = self._assignments(expr.quantifier)
        steps, refs = self._cost(expr.body)
        return 1 + count * (self._filter_cost(expr.quantifier) + steps), count * refs

    def _set_size(self, name: str, offset: int) -> int:
        if name not in self.sets:
            raise ExprError(unknown(name, "set", self.sets), offset)
        return self.sets[name]

    # -- evaluation -----------------------------------------------------------------
    def relation(self, relation: Relation, scope: Scope) -> tuple[dict[int, float], float, float]:
        """``(coefficients, lower, upper)`` with ``lower <= coefficients . x <= upper``."""
        values = [self.value(term, scope) for term in relation.terms]
        if len(values) == 2:
            with _overflow_at(relation.offsets[0]):
                difference = _as_linear(values[0]).add(values[1], -1.0)
            bound = -difference.constant + 0.0  # + 0.0: no -0.0 bound
            lower = bound if relation.ops[0] in (">=", "==") else -np.inf
            upper = bound if relation.ops[0] in ("<=", "==") else np.inf
            return difference.nonzero(), lower, upper
        if relation.ops[0] != relation.ops[1] or relation.ops[0] == "==":
            raise ExprError("a chained comparison needs the same direction twice: 'lo <= e <= hi'",
                            relation.offsets[1])
        for position, term in ((0, relation.terms[0]), (2, relation.terms[2])):
            if isinstance(values[position], Linear):
                raise ExprError("in 'lo <= e <= hi' the outer terms must be constants", start(term))
        middle = _as_linear(values[1])
        with _overflow_at(relation.offsets[0]):
            low, high = _checked(values[0] - middle.constant), _checked(values[2] - middle.constant)
        if relation.ops[0] == ">=":
            low, high = high, low
        return middle.nonzero(), low + 0.0, high + 0.0

    def value(self, expr: Expr, scope: Scope) -> Value:
        """Evaluate ``expr`` to a number or a linear form."""
        self._step(expr)
        if isinstance(expr, Number):
            return expr.value
        if isinstance(expr, Ref):
            return self._ref(expr, scope)
        if isinstance(expr, Negate):
            operand = self.value(expr.operand, scope)
            return operand.scale(-1.0) if isinstance(operand, Linear) else -operand
        if isinstance(expr, Sum):
            total = Linear()
            for inner in self.scopes(expr.quantifier, scope):
                body = self.value(expr.body, inner)
                with _overflow_at(expr.offset):
                    total.add(body)
            return total.constant if not total.coefs else total
        self.steps -= 1  # counted per operation below
        first, chain = spine(expr)
        result = self.value(first, scope)
        for node in chain:
            self._step(node)
            right = self.value(node.right, scope)
            with _overflow_at(node.offset):
                result = self._binary(node, result, right)
        return result

    def _step(self, expr: Expr) -> None:
        self.steps += 1
        if self.steps > self.limits.max_terms:
            raise ExprError(f"the spec needs more than {self.limits.max_terms:,} evaluation steps "
                            f"(max_terms); it is too large", start(expr))
        if self.steps % CHECK_EVERY == 0 and (late := out_of_time()) is not None:
            raise ExprError(late, start(expr))

    def scopes(self, quantifier: Quantifier, scope: Scope) -> Iterator[dict[str, tuple[int, str]]]:
        """Every assignment of the bound indices that passes the filter, row-major, each
        extending ``scope``. Lazy: rows are built one at a time, never all listed first."""
        bindings = quantifier.bindings
        sizes = []
        for position, binding in enumerate(bindings):
            size = self._set_size(binding.set, binding.set_offset)
            taken = set(scope) | {b.index for b in bindings[:position]}
            if binding.index in taken or binding.index in self.sets or binding.index in self.tensors:
                raise ExprError(f"index {binding.index!r} is already a name in use", binding.offset)
            sizes.append(range(size))
        for values in itertools.product(*sizes):
            inner = {**scope, **{b.index: (v, b.set) for b, v in zip(bindings, values)}}
            if quantifier.condition is None or self._holds(quantifier.condition, inner):
                yield inner

    def _holds(self, condition: Filter, scope: Scope) -> bool:
        """Whether ``condition`` holds in ``scope``; ``and`` and ``or`` stop at the first
        operand that decides, as in Python (``i == 0 or w[i - 1] > 0`` never reads ``w[-1]``)."""
        if isinstance(condition, Not):
            return not self._holds(condition.operand, scope)
        if isinstance(condition, Logical):
            holds = (self._holds(operand, scope) for operand in condition.operands)
            return all(holds) if condition.op == "and" else any(holds)
        left, right = self.value(condition.left, scope), self.value(condition.right, scope)
        if isinstance(left, (Linear, Affine)) or isinstance(right, (Linear, Affine)):
            self._check_comparison(condition)  # refused before evaluation (expansion); kept for any other path
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right,
                "==": left == right, "!=": left != right}[condition.op]

    def index(self, expr: Expr, scope: Scope) -> int:
        """An index expression's integer value."""
        value = self.value(expr, scope)
        if isinstance(value, Affine):
            self.refuse_batched((expr,), "an index", start(expr))
        if isinstance(value, Linear) or value != int(value):
            raise ExprError("an index must be an integer expression of indices and constants", start(expr))
        return int(value)

    def _ref(self, ref: Ref, scope: Scope) -> Value:
        if ref.name in scope:
            if ref.indices is not None:
                raise ExprError(f"index {ref.name!r} cannot be indexed", ref.offset)
            return float(scope[ref.name][0])
        if ref.name in self.sets:
            raise ExprError(f"{ref.name!r} is a set; bind an index to it with 'sum({ref.name[0]} in {ref.name})' "
                            "or 'for'", ref.offset)
        tensor = self.tensors.get(ref.name)
        if tensor is None:
            raise ExprError(self._unknown_name(ref, scope), ref.offset)
        indices = ref.indices or ()
        if len(indices) != len(tensor.shape):
            axes = f"{len(tensor.shape)} ax{'i' if len(tensor.shape) == 1 else 'e'}s"
            raise ExprError(f"dimension mismatch: {ref.name!r} has {axes} {tensor.shape}, indexed with {len(indices)}",
                            ref.offset)
        position = tuple(self._axis(ref, tensor, axis, index, scope) for axis, index in enumerate(indices))
        if tensor.values is not None:
            return float(tensor.values[position])
        flat = int(np.ravel_multi_index(position, tensor.shape)) if position else 0
        if tensor.param is not None:
            return Affine({tensor.param + flat: 1.0})
        return Linear({tensor.start + flat: 1.0})

    def _unknown_name(self, ref: Ref, scope: Scope) -> str:
        """``unknown name 'i'``, and when ``i`` is used as an index, how to bind it."""
        if ref.indices is None and self._indexing:
            tensor, axis = self._indexing[-1]
            over = tensor.over[axis] or "<set>"
            bind = self.hints.bind.format(index=ref.name, set=over)
            return f"unknown name {ref.name!r}: an index must be bound; did you forget `{bind}`?"
        return unknown(ref.name, "name", {**self.tensors, **scope})

    def _axis(self, ref: Ref, tensor: Tensor, axis: int, expr: Expr, scope: Scope) -> int:
        self._indexing.append((tensor, axis))
        try:
            value = self.index(expr, scope)
        finally:
            self._indexing.pop()
        if not 0 <= value < tensor.shape[axis]:
            over = f" over {tensor.over[axis]!r}" if tensor.over[axis] else ""
            bound = f"; {expr.name!r} ranges over {scope[expr.name][1]!r}" if isinstance(expr, Ref) and expr.name in scope else ""
            raise ExprError(f"index {value} is out of range for axis {axis} of {ref.name!r} "
                            f"(size {tensor.shape[axis]}{over}){bound}", start(expr))
        return value

    def _binary(self, expr: Binary, left: Value, right: Value) -> Value:
        if expr.op in ("+", "-"):
            sign = 1.0 if expr.op == "+" else -1.0
            if not isinstance(left, Linear) and not isinstance(right, Linear):
                return _checked(left + sign * right)
            return _as_linear(left).add(right, sign)
        if isinstance(right, Linear):
            if expr.op == "/":
                raise ExprError("non-linear term: division by an expression with variables", expr.offset)
            if isinstance(left, Linear):
                raise ExprError("non-linear term: a product of two expressions with variables", expr.offset)
            left, right = right, left
        if expr.op == "/":
            if isinstance(right, Affine):
                raise ExprError(f"non-affine term: division by the batched parameter {self._batched(expr.right)!r} "
                                "(a number that changes per instance may multiply, never divide)", expr.offset)
            if right == 0:
                raise ExprError("division by zero", expr.offset)
            right = 1.0 / right
        try:
            return left.scale(right) if isinstance(left, Linear) else _checked(left * right)
        except NonAffine:
            raise ExprError("non-affine term: a product of two expressions with batched parameters (each "
                            "instance's numbers must be affine in its parameters)", expr.offset) from None

    # -- batched parameters may not decide the structure --------------------------------
    def refuse_batched(self, exprs: tuple[Expr, ...], what: str, offset: int) -> None:
        """Raise: ``what`` (a set size, an index, a filter) decides the program's structure,
        which is one for every instance; the error points at the batched parameter."""
        ref = next((r for e in exprs if (r := self._first_ref(e, "batched")) is not None), None)
        name = ref.name if ref is not None else "?"
        raise ExprError(f"{what} cannot depend on the batched parameter {name!r}: it decides the program's "
                        "structure, which every instance shares (a batched parameter may appear in "
                        "coefficients, right-hand sides, bounds and the fixed objective)",
                        ref.offset if ref is not None else offset)

    def _batched(self, expr: Expr) -> str:
        ref = self._first_ref(expr, "batched")
        return ref.name if ref is not None else "?"

    def _first_ref(self, expr: Expr, kind: str) -> Ref | None:
        """The first reference in ``expr`` to a batched parameter (``kind`` "batched") or a
        variable ("variable") (a walk with a stack: the parser bounds nesting, but a flat
        sum is as deep as it is long)."""
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, Ref):
                tensor = self.tensors.get(node.name)
                if tensor is not None and (tensor.param if kind == "batched" else tensor.start) is not None:
                    return node
                stack.extend(reversed(node.indices or ()))
            elif isinstance(node, Binary):
                stack.extend((node.right, node.left))
            elif isinstance(node, Negate):
                stack.append(node.operand)
            elif isinstance(node, Sum):
                stack.append(node.body)
                stack.extend(e for c in reversed(comparisons(node.quantifier.condition)) for e in (c.right, c.left))
        return None


Value = float | Affine | Linear


def _checked(number: Number_) -> Number_:
    """``number``, or :class:`Overflow` where a float is not finite (an :class:`Affine`
    form checks its own arithmetic)."""
    return number if isinstance(number, Affine) else checked(number)


@contextmanager
def _overflow_at(offset: int) -> Iterator[None]:
    """Arithmetic at character ``offset`` that overflows is a located :class:`ExprError`:
    ``x - 1e308 - 1e308 <= 0`` would otherwise become ``x <= inf``."""
    try:
        yield
    except Overflow as error:
        raise ExprError(str(error), offset) from None


def _as_linear(value: Value) -> Linear:
    return value if isinstance(value, Linear) else Linear(constant=value)


def unknown(name: str, what: str, known: Mapping[str, object]) -> str:
    """``unknown set 'itmes' (did you mean 'items'?)``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")

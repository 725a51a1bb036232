"""Evaluation of parsed expressions into linear forms over the flat variable vector.

A value is either a number (``float``) or a :class:`Linear` form. Products of
two forms, and division by a form, are rejected as non-linear; every index is
checked against its axis' size (an index may run over a set smaller than the axis).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from .expressions import Binary, Binding, Expr, ExprError, Negate, Number, Ref, Relation, Sum, start

MAX_STEPS = 20_000_000


@dataclass
class Linear:
    """``sum_j coefs[j] * x[j] + constant``; ``x`` is the program's flat variable vector."""

    coefs: dict[int, float] = field(default_factory=dict)
    constant: float = 0.0

    def add(self, other: float | Linear, scale: float = 1.0) -> Linear:
        """Add ``scale * other`` in place; returns self."""
        if isinstance(other, Linear):
            for column, coef in other.coefs.items():
                self.coefs[column] = self.coefs.get(column, 0.0) + scale * coef
            self.constant += scale * other.constant
        else:
            self.constant += scale * other
        return self

    def scale(self, factor: float) -> Linear:
        """Multiply by ``factor`` in place; returns self."""
        self.coefs = {column: factor * coef for column, coef in self.coefs.items()}
        self.constant *= factor
        return self

    def nonzero(self) -> dict[int, float]:
        """The coefficients that are not zero."""
        return {column: coef for column, coef in self.coefs.items() if coef != 0.0}


@dataclass(frozen=True)
class Tensor:
    """A named array that expressions index: a constant, or a block of variables.

    Attributes:
        shape: its shape (``()`` for a scalar).
        over: each axis' index set, or None where any index within range is fine.
        values: the numbers of a constant (None for variables).
        start: a variable block's first column in the flat vector (None for constants).
    """

    shape: tuple[int, ...]
    over: tuple[str | None, ...]
    values: np.ndarray | None = None
    start: int | None = None


Scope = Mapping[str, tuple[int, str]]  # index name -> (value, set name)


class Evaluator:
    """Evaluates expressions against named ``sets`` (name -> size) and ``tensors``.

    It counts its work and stops with an error past :data:`MAX_STEPS`, so a spec
    with huge sums fails instead of hanging.
    """

    def __init__(self, sets: Mapping[str, int], tensors: Mapping[str, Tensor]) -> None:
        self.sets = sets
        self.tensors = tensors
        self.steps = 0

    def relation(self, relation: Relation, scope: Scope) -> tuple[dict[int, float], float, float]:
        """``(coefficients, lower, upper)`` with ``lower <= coefficients . x <= upper``."""
        values = [self.value(term, scope) for term in relation.terms]
        if len(values) == 2:
            difference = _as_linear(values[0]).add(values[1], -1.0)
            bound = -difference.constant
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
        low, high = values[0] - middle.constant, values[2] - middle.constant
        if relation.ops[0] == ">=":
            low, high = high, low
        return middle.nonzero(), low, high

    def value(self, expr: Expr, scope: Scope) -> float | Linear:
        """Evaluate ``expr`` to a number or a linear form."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ExprError(f"the spec needs more than {MAX_STEPS} evaluation steps; it is too large", start(expr))
        if isinstance(expr, Number):
            return expr.value
        if isinstance(expr, Ref):
            return self._ref(expr, scope)
        if isinstance(expr, Negate):
            operand = self.value(expr.operand, scope)
            return operand.scale(-1.0) if isinstance(operand, Linear) else -operand
        if isinstance(expr, Sum):
            total = Linear()
            for inner in self.scopes(expr.bindings, scope):
                total.add(self.value(expr.body, inner))
            return total.constant if not total.coefs else total
        return self._binary(expr, scope)

    def scopes(self, bindings: tuple[Binding, ...], scope: Scope) -> Iterator[dict[str, tuple[int, str]]]:
        """Every assignment of the bound indices, row-major, each extending ``scope``."""
        sizes = []
        for position, binding in enumerate(bindings):
            if binding.set not in self.sets:
                raise ExprError(unknown(binding.set, "set", self.sets), binding.set_offset)
            taken = set(scope) | {b.index for b in bindings[:position]}
            if binding.index in taken or binding.index in self.sets or binding.index in self.tensors:
                raise ExprError(f"index {binding.index!r} is already a name in use", binding.offset)
            sizes.append(range(self.sets[binding.set]))
        for values in itertools.product(*sizes):
            yield {**scope, **{b.index: (v, b.set) for b, v in zip(bindings, values)}}

    def index(self, expr: Expr, scope: Scope) -> int:
        """An index expression's integer value."""
        value = self.value(expr, scope)
        if isinstance(value, Linear) or value != int(value):
            raise ExprError("an index must be an integer expression of indices and constants", start(expr))
        return int(value)

    def _ref(self, ref: Ref, scope: Scope) -> float | Linear:
        if ref.name in scope:
            if ref.indices is not None:
                raise ExprError(f"index {ref.name!r} cannot be indexed", ref.offset)
            return float(scope[ref.name][0])
        if ref.name in self.sets:
            raise ExprError(f"{ref.name!r} is a set; bind an index to it with 'sum({ref.name[0]} in {ref.name})' "
                            "or 'for'", ref.offset)
        tensor = self.tensors.get(ref.name)
        if tensor is None:
            raise ExprError(unknown(ref.name, "name", {**self.tensors, **scope}), ref.offset)
        indices = ref.indices or ()
        if len(indices) != len(tensor.shape):
            axes = f"{len(tensor.shape)} ax{'i' if len(tensor.shape) == 1 else 'e'}s"
            raise ExprError(f"dimension mismatch: {ref.name!r} has {axes} {tensor.shape}, indexed with {len(indices)}",
                            ref.offset)
        position = tuple(self._axis(ref, tensor, axis, index, scope) for axis, index in enumerate(indices))
        if tensor.values is not None:
            return float(tensor.values[position])
        flat = int(np.ravel_multi_index(position, tensor.shape)) if position else 0
        return Linear({tensor.start + flat: 1.0})

    def _axis(self, ref: Ref, tensor: Tensor, axis: int, expr: Expr, scope: Scope) -> int:
        value = self.index(expr, scope)
        if not 0 <= value < tensor.shape[axis]:
            over = f" over {tensor.over[axis]!r}" if tensor.over[axis] else ""
            bound = f"; {expr.name!r} ranges over {scope[expr.name][1]!r}" if isinstance(expr, Ref) and expr.name in scope else ""
            raise ExprError(f"index {value} is out of range for axis {axis} of {ref.name!r} "
                            f"(size {tensor.shape[axis]}{over}){bound}", start(expr))
        return value

    def _binary(self, expr: Binary, scope: Scope) -> float | Linear:
        left, right = self.value(expr.left, scope), self.value(expr.right, scope)
        if expr.op in ("+", "-"):
            sign = 1.0 if expr.op == "+" else -1.0
            if not isinstance(left, Linear) and not isinstance(right, Linear):
                return left + sign * right
            return _as_linear(left).add(right, sign)
        if isinstance(right, Linear):
            if expr.op == "/":
                raise ExprError("non-linear term: division by an expression with variables", expr.offset)
            if isinstance(left, Linear):
                raise ExprError("non-linear term: a product of two expressions with variables", expr.offset)
            left, right = right, left
        if expr.op == "/":
            if right == 0:
                raise ExprError("division by zero", expr.offset)
            right = 1.0 / right
        return left.scale(right) if isinstance(left, Linear) else left * right


def _as_linear(value: float | Linear) -> Linear:
    return value if isinstance(value, Linear) else Linear(constant=value)


def unknown(name: str, what: str, known: Mapping[str, object]) -> str:
    """``unknown set 'itmes' (did you mean 'items'?)``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")

"""Numbers that depend on batched (per-instance) parameters, as exact affine forms.

A batched parameter has no value when a spec is compiled: each instance brings its
own. Where one appears in a number (a right-hand side, a bound, a coefficient, the
fixed objective), that number is an :class:`Affine` form over the flat vector ``p``
of all batched parameters' entries, ``constant + sum_k terms[k] * p[k]``, and stays
one through the arithmetic of an expression. A product of two such forms, or a
division by one, is not affine: it raises :class:`NonAffine`, which the evaluator
turns into a located error; so does :class:`Overflow`, arithmetic past the finite
floats. The compiled program keeps the forms' coefficients as
sparse maps (``problems.ilp_params``), so every instance's numbers are exact.
"""

from __future__ import annotations

import math


class NonAffine(ArithmeticError):
    """A product of two numbers that both depend on batched parameters (not affine)."""


class Overflow(ArithmeticError):
    """Arithmetic that left the finite floats (``1e308 + 1e308``): once infinite, a number
    never comes back, and a bound of ``inf`` would silently drop a constraint."""


def checked(value: float) -> float:
    """``value``, or :class:`Overflow` where it is not finite."""
    if not math.isfinite(value):
        raise Overflow("the result is too large to be a finite number (beyond 1.8e308)")
    return value


class Affine:
    """``constant + sum_k terms[k] * p[k]``, ``p`` the flat vector of batched parameter entries.

    Arithmetic with floats and other forms gives a new form, or a float once every
    term cancels (so a form always depends on some parameter). ``+=`` adds in place,
    which keeps a long ``sum`` of parameters linear in its length rather than
    quadratic; forms are owned by the expression being evaluated, never shared.
    """

    __slots__ = ("constant", "terms")

    def __init__(self, terms: dict[int, float], constant: float = 0.0) -> None:
        self.terms = terms
        self.constant = constant

    def __repr__(self) -> str:
        return f"Affine({self.terms}, {self.constant})"

    def finite(self) -> bool:
        """Whether every number of the form is finite (arithmetic may overflow)."""
        return math.isfinite(self.constant) and all(math.isfinite(c) for c in self.terms.values())

    # -- arithmetic ---------------------------------------------------------------------
    def __add__(self, other: float | Affine) -> float | Affine:
        result = Affine(dict(self.terms), self.constant)
        return result.__iadd__(other)

    __radd__ = __add__

    def __iadd__(self, other: float | Affine) -> float | Affine:
        if isinstance(other, Affine):
            terms = self.terms
            for k, c in other.terms.items():
                value = checked(terms.get(k, 0.0) + c)
                if value == 0.0:
                    terms.pop(k, None)
                else:
                    terms[k] = value
            self.constant = checked(self.constant + other.constant)
            return self if terms else self.constant
        self.constant = checked(self.constant + other)
        return self

    def __neg__(self) -> Affine:
        return Affine({k: -c for k, c in self.terms.items()}, -self.constant)

    def __sub__(self, other: float | Affine) -> float | Affine:
        return self + (-other)

    def __rsub__(self, other: float) -> float | Affine:
        return (-self) + other

    def __mul__(self, other: float | Affine) -> float | Affine:
        if isinstance(other, Affine):
            raise NonAffine("a product of two expressions with batched parameters")
        terms = {k: product for k, c in self.terms.items() if (product := checked(c * other)) != 0.0}
        constant = checked(self.constant * other)
        return Affine(terms, constant) if terms else constant

    __rmul__ = __mul__

    def __truediv__(self, other: float) -> float | Affine:
        if isinstance(other, Affine):
            raise NonAffine("division by an expression with batched parameters")
        return self * (1.0 / other)


def is_affine(value: object) -> bool:
    """Whether ``value`` depends on batched parameters."""
    return isinstance(value, Affine)

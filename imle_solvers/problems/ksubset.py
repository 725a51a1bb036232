"""The k-subset problem: choose exactly k of n items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import InvalidInputError
from .base import Problem, Sense


@dataclass(frozen=True)
class KSubset(Problem):
    """Exactly ``k`` of ``n`` items: ``z = argmax <z, theta>`` s.t. ``sum(z) == k``.

    The MAP state marks the k largest scores; ties go to the lower index, so the
    result always has exactly k ones.

    Shapes: theta and z are ``(B, n)``; z is 0/1 in theta's dtype.
    """

    n: int
    k: int
    kind: ClassVar[str] = "k-subset"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if int(self.n) != self.n or self.n < 1:
            raise InvalidInputError(f"KSubset: n must be a positive integer, got {self.n!r}")
        if int(self.k) != self.k or not 0 < self.k <= self.n:
            raise InvalidInputError(f"KSubset: k must be in 1..n={self.n}, got {self.k!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def sense(self) -> Sense:
        return "max"

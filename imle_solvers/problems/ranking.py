"""Ranking: the rank of each of n items by its score (InferOpt's ``ranking`` oracle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._registration import register
from .base import Problem, Sense, checked_int


@register
@dataclass(frozen=True)
class Ranking(Problem):
    """The ranks of ``n`` items: ``z = argmax <z, theta>`` over the permutations ``z`` of
    ``(1, 2, ..., n)``, so ``z_i`` is item ``i``'s rank in increasing order of score: the
    lowest score gets rank 1, the highest rank ``n`` (InferOpt's ``ranking(theta)``,
    ``invperm(sortperm(theta))``).

    The state is the vector of ranks rather than a permutation matrix: the objective stays
    linear in ``theta`` (``sum_i theta_i z_i``, maximal for ranks sorted as the scores by
    the rearrangement inequality) at ``n`` entries rather than ``n^2``. Equal scores take
    ranks in index order (the lower index the lower rank), which keeps the state optimal.

    Shapes: theta and z are ``(B, n)``; z holds the ranks ``1..n`` in theta's dtype.
    """

    n: int
    kind: ClassVar[str] = "ranking"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", checked_int("Ranking", "n", self.n))

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def sense(self) -> Sense:
        return "max"

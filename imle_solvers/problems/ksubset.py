"""The k-subset problem: choose exactly k of n items."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._array import array_namespace
from .._registration import register
from ..errors import InvalidInputError
from .base import DataField, Problem, Sense, checked_int


@register
@dataclass(frozen=True)
class KSubset(Problem):
    """Exactly ``k`` of ``n`` items: ``z = argmax <z, theta>`` s.t. ``sum(z) == k``.

    Per-instance data (optional, batch axis first): ``mask`` ``(B, n)`` bool, True where
    an item may be chosen (padding is False); ``k`` ``(B,)`` int, the instance's own k in
    ``1..n``. An instance's ``k_i`` is its ``k``, else ``problem.k``.

    The MAP state marks the ``k_i`` largest scores among the selectable items; ties go
    to the lower index, so the result always has exactly ``k_i`` ones, all of them on
    selectable items.

    Shapes: theta and z are ``(B, n)``; z is 0/1 in theta's dtype.
    """

    n: int
    k: int
    kind: ClassVar[str] = "k-subset"
    binary_states: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", checked_int("KSubset", "n", self.n))
        object.__setattr__(self, "k", checked_int("KSubset", "k", self.k, maximum=self.n, span=f"in 1..n={self.n}"))

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def sense(self) -> Sense:
        return "max"

    @functools.cached_property  # asked several times per layer call
    def instance_fields(self) -> Mapping[str, DataField]:
        return {
            "mask": DataField((self.n,), "bool", "True where an item may be chosen (False: padding)"),
            "k": DataField((), "int", f"how many items the instance chooses, 1..n={self.n}"),
        }

    def invalid_instances(self, data: Mapping[str, Any]) -> Any:
        """``(B,)`` True where an instance's ``k`` is outside ``1..n`` or its mask leaves fewer
        than ``k_i`` selectable items, in the data's framework (see the base class)."""
        k, mask = data.get("k"), data.get("mask")
        bad = None if k is None else (k < 1) | (k > self.n)
        if mask is not None:
            xp = array_namespace(mask)
            # counted in k's own integer dtype: TensorFlow compares equal dtypes only
            selectable = xp.sum(xp.astype(mask, xp.int32 if k is None else k.dtype), axis=1)
            short = selectable < (self.k if k is None else k)
            bad = short if bad is None else bad | short
        return bad

    def check_instance_data(self, data: Mapping[str, Any]) -> None:
        """``k`` must be in ``1..n``, and ``mask`` must leave at least ``k_i`` selectable
        items in each row; the error names the first bad batch index."""
        k = data.get("k")
        if k is not None:
            k = np.asarray(k)
            bad = (k < 1) | (k > self.n)
            if bad.any():
                i = int(bad.argmax())
                raise InvalidInputError(f"k: batch index {i} holds k={int(k[i])}, outside 1..n={self.n}")
        mask = data.get("mask")
        if mask is not None:
            selectable = np.asarray(mask).sum(axis=1)
            need = np.broadcast_to(self.k if k is None else k, selectable.shape)
            short = selectable < need
            if short.any():
                i = int(short.argmax())
                raise InvalidInputError(
                    f"mask: batch index {i} leaves {int(selectable[i])} selectable items, fewer than k={int(need[i])}"
                )

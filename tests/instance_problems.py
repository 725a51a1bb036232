"""A small problem with per-instance data, for the tests of the data's way through the
oracle, the pool and the bindings (importable by the pool's workers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError
from imle_solvers.problems import DataField, Problem


@dataclass(frozen=True)
class PickOne(Problem):
    """One of ``n`` items: the best of ``theta + bonus`` among the ``allowed`` ones (ties to
    the lower index); without data every item is allowed and the bonus is zero."""

    n: int
    kind: ClassVar[str] = "test-pick-one"
    binary_states: ClassVar[bool] = True

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def sense(self) -> str:
        return "max"

    @property
    def instance_fields(self) -> dict[str, DataField]:
        return {"allowed": DataField((self.n,), "bool"), "bonus": DataField((self.n,), "float")}

    def check_instance_data(self, data: dict[str, np.ndarray]) -> None:
        if "allowed" in data:
            empty = ~data["allowed"].any(axis=1)
            if empty.any():
                raise InvalidInputError(f"allowed: batch index {int(empty.argmax())} allows no item")


@dataclass(frozen=True)
class PickOneFixed(PickOne):
    """:class:`PickOne` without per-instance data."""

    @property
    def instance_fields(self) -> dict[str, DataField]:
        return {}


def pick_one(theta: np.ndarray, allowed: Any = True, bonus: Any = 0.0) -> np.ndarray:
    """The reference: one instance's state."""
    scores = np.where(allowed, theta + bonus, -np.inf)
    z = np.zeros_like(theta)
    z[int(np.argmax(scores))] = 1
    return z


@ims.register_solver(PickOne.kind, "python", replace=True)
def solve_pick_one(theta: np.ndarray, problem: PickOne, data: dict[str, np.ndarray] | None = None) -> np.ndarray:
    return pick_one(theta, **(data or {}))


@ims.register_solver(PickOne.kind, "batched", batched=True, priority=-1, replace=True)
def solve_pick_one_batched(theta: np.ndarray, problem: PickOne, data: dict[str, np.ndarray] | None = None) -> np.ndarray:
    data = data or {}
    return np.stack([pick_one(row, **{name: value[i] for name, value in data.items()}) for i, row in enumerate(theta)])


@ims.register_solver(PickOne.kind, "no-data", priority=-2, replace=True)
def solve_pick_one_without_data(theta: np.ndarray, problem: PickOne) -> np.ndarray:
    return pick_one(theta)

"""A user's batched torch function as a problem; its solver is
:func:`imle_solvers.adapters.torch_function.solve_torch_function`.

The problem only holds the function: importing this module does not import torch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..errors import InvalidInputError
from .base import DataField, Problem, Sense, checked_int

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TorchFunctionProblem(Problem):
    """A user's batched torch solver ``fn: (N, *shape) -> (N, *shape)`` as a problem.

    With ``n_jobs=1`` the function receives the scores as they are (on their device);
    on a pool (``n_jobs != 1``), chunks of CPU tensors, so it must then be picklable
    (cloudpickle takes closures and lambdas). Its results are cast to the scores'
    dtype and device, and checked like any solver's (shape; on the host path also
    finite, and zeros and ones when ``binary=True``).

    Attributes:
        fn: the solver, maximising ``<z, theta>`` (or minimising, ``objective_sense="min"``);
            with ``fields``, it is called ``fn(theta, **data)`` for batches that have data.
        event_shape: the per-instance shape of theta and z.
        objective_sense: ``"max"`` or ``"min"``.
        binary: the function's states hold only zeros and ones.
        fields: the per-instance data ``fn`` takes, by name (see docs/instances.md), e.g.
            ``{"mask": DataField((n,), "bool")}``; each arrives as a tensor ``(N, *shape)``
            with ``theta``'s rows.
    """

    fn: Callable[..., torch.Tensor]
    event_shape: tuple[int, ...]
    objective_sense: Sense = "max"
    binary: bool = False
    fields: Mapping[str, DataField] = field(default_factory=dict)
    kind: ClassVar[str] = "torch-function"

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InvalidInputError(f"TorchFunctionProblem: fn must be callable, got {self.fn!r}")
        if self.objective_sense not in ("max", "min"):
            raise InvalidInputError(f"TorchFunctionProblem: sense must be 'max' or 'min', got {self.objective_sense!r}")
        object.__setattr__(self, "event_shape", tuple(
            checked_int("TorchFunctionProblem", f"event_shape[{i}]", n, minimum=0) for i, n in enumerate(self.event_shape)))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.event_shape

    @property
    def sense(self) -> Sense:
        return self.objective_sense

    @property
    def binary_states(self) -> bool:  # type: ignore[override]
        return self.binary

    @property
    def instance_fields(self) -> Mapping[str, DataField]:
        return self.fields

    def __hash__(self) -> int:  # the fields' dict is not hashable; the function and shape suffice
        return hash((self.fn, self.event_shape, self.objective_sense, self.binary, tuple(self.fields)))

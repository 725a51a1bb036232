"""What every problem is: the shape of its scores and states, its sense, and its
input checks. Problems hold no solver code and are plain picklable data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .._array import Array, array_namespace, is_traced, to_numpy
from ..errors import InvalidInputError

Sense = Literal["max", "min"]


DataKind = Literal["bool", "int", "float"]


@dataclass(frozen=True)
class DataField:
    """One named array of per-instance data that a problem takes beside ``theta``.

    A batch passes it with the batch axis first, ``(B, *shape)``; each instance's solves
    (forward, backward, every sample) see that instance's own row. Data carry no gradient.

    Attributes:
        shape: the shape of one instance's value (``()`` for a scalar).
        kind: ``"bool"``, ``"int"`` or ``"float"``: what values it holds (solvers receive
            bool, int64 and float64 arrays on the host; the framework's bool, int64 and the
            scores' dtype in an array-native solver).
        doc: what it means, for error messages and ``describe``.
    """

    shape: tuple[int, ...]
    kind: DataKind
    doc: str = ""


class ContentIdentity:
    """Equality and hash by ``fingerprint``, a digest of the content that is the same in
    every process, so that equal programs or graphs share a solver cache in every worker.
    (Dataclasses using it pass ``eq=False``, or the generated ``__eq__`` replaces this one.)"""

    fingerprint: str

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.fingerprint == self.fingerprint


class Problem:
    """Base class of the problems: ``z = argmax/argmin <z, theta>`` over a feasible set.

    Subclasses are frozen dataclasses that set ``kind`` (the registry key), and
    define ``shape`` (the per-instance shape of theta and of z) and ``sense``.
    Batches are always ``(B, *shape)``.
    """

    kind: ClassVar[str]
    #: MAP states hold only zeros and ones; the oracle checks solvers' results against it
    binary_states: ClassVar[bool] = False
    #: the largest score magnitude the problem's solvers take (their backends' own range,
    #: an ILP's), or None: any finite score. Larger ones are refused, naming the batch index
    score_limit: ClassVar[float | None] = None

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def sense(self) -> Sense:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """How errors name the problem: its kind, and for a named program (an ILP) its name."""
        return self.kind

    @property
    def sign(self) -> int:
        """+1 for a max problem, -1 for a min problem: ``sign * theta`` are scores to maximise."""
        return 1 if self.sense == "max" else -1

    @property
    def instance_fields(self) -> Mapping[str, DataField]:
        """The per-instance data this problem takes, by name (none by default). An instance
        that is not given a field uses the problem's own fixed value."""
        return {}

    def check_instance_data(self, data: Mapping[str, Any]) -> None:
        """Check what the values of a batch's per-instance data mean (a ``k`` in range, a
        mask that leaves a solution), raising :class:`InvalidInputError` that names the
        field and the first bad batch index.

        ``data`` holds numpy arrays ``(B, *field.shape)`` of the fields given, whose
        names, shapes, kinds and finiteness are checked already; it is empty for a batch
        given no data (a problem that needs some says so then)."""

    def invalid_instances(self, data: Mapping[str, Array]) -> Array | None:
        """``(B,)`` bools, True for the instances whose data :meth:`check_instance_data` would
        refuse, computed in the data's own framework (array API) so that a traced or
        on-device batch is checked where it is, and the host asked for the message only
        when one is bad; None where the problem has no such check (its data are then
        checked on the host every step). ``data`` as for :meth:`check_instance_data`, in
        any framework, names, shapes and kinds checked."""
        return None

    @property
    def summed_scores(self) -> int | None:
        """At most how many scores the solvers add up in one sum (a path's cells, with the
        solvers' own intermediate sums: potentials, duals), or None where scores are only
        compared (a top-k). Rows whose largest score times this could overflow are solved
        on scores scaled by a power of two (:func:`~imle_solvers.adapters.exact_scores`),
        which is exact: such a problem takes any finite scores."""
        return None

    def validate(self, theta: Array, name: str = "theta") -> None:
        """Raise :class:`InvalidInputError` unless ``theta`` is a finite ``(B, *shape)`` batch
        within :attr:`score_limit`.

        The message names the first bad batch index and its offending value.
        """
        check_batch(theta, self.shape, name)
        if self.score_limit is not None and not is_traced(theta):
            beyond = first_beyond(to_numpy(theta), self.score_limit)
            if beyond is not None:
                index, value = beyond
                raise InvalidInputError(f"{name}: batch index {index}: {beyond_limit_message(self, value)}")


def check_batch(theta: Array, shape: tuple[int, ...], name: str = "theta") -> None:
    """Check that ``theta`` has shape ``(B, *shape)`` and only finite values."""
    check_batch_shape(tuple(theta.shape), shape, name)
    check_finite(theta, name)


def check_batch_shape(actual: tuple[int | None, ...], shape: tuple[int, ...], name: str = "theta") -> None:
    """Check that ``actual`` is ``(B, *shape)``; B may be None (a traced, unknown batch size)."""
    if len(actual) != len(shape) + 1 or tuple(actual[1:]) != tuple(shape):
        raise InvalidInputError(f"{name}: expected shape (B, {', '.join(map(str, shape))}), got {tuple(actual)}")


def check_finite(values: Array, name: str) -> None:
    """Raise naming the first batch index (leading axis) that holds NaN or infinity.

    One reduction in the common case: the sum of finite values is finite unless it
    overflows, and only then (or when a value is not finite) are the values scanned.
    A traced array (inside ``jax.jit`` or ``tf.function``) has no values to read: the
    bindings check those on the device (their ``validate_args``)."""
    xp = array_namespace(values)
    if values.shape[0] == 0 or is_traced(values):
        return
    with np.errstate(over="ignore", invalid="ignore"):  # large finite scores may sum to inf (or inf - inf): then they are scanned
        if math.isfinite(float(xp.sum(values))):
            return
    bad = to_numpy(xp.reshape(~xp.isfinite(values), (values.shape[0], -1)))
    if not bad.any():
        return
    index = int(bad.any(axis=1).argmax())
    raise non_finite_error(name, index, to_numpy(xp.reshape(values[index], (-1,)))[bad[index].argmax()])


def first_beyond(values: np.ndarray, limit: float) -> tuple[int, float] | None:
    """The first batch index (leading axis) of ``values`` holding a magnitude above ``limit``,
    and that value; None when there is none."""
    flat = values.reshape(len(values), math.prod(values.shape[1:]))  # not (B, -1): B may be 0
    rows = np.abs(flat) > limit
    if not rows.any():
        return None
    index = int(rows.any(axis=1).argmax())
    return index, float(flat[index][rows[index].argmax()])


def beyond_limit_message(problem: Problem, value: float) -> str:
    """Why the score ``value`` is refused (see :attr:`Problem.score_limit`)."""
    return (f"the score {value:g} is beyond ±{problem.score_limit:g}, the largest magnitude {problem.label} "
            "solves (docs/problems.md, 'Score magnitudes')")


def checked_int(owner: str, name: str, value: Any, minimum: int = 1, maximum: int | None = None,
                span: str | None = None) -> int:
    """``value`` as an int in ``minimum..maximum``, for a constructor's argument ``name``.
    Bools are refused (``k=True`` is a mistake, not 1), and so are non-integers and values
    out of range, with an :class:`InvalidInputError` naming ``owner`` and the argument;
    ``span`` words the range (default: "a positive integer" for ``minimum=1``)."""
    span = span or ("a positive integer" if minimum == 1 else f"an integer >= {minimum}")
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{owner}: {name} must be {span}, got {value!r} (a bool, not a number)")
    is_number = isinstance(value, (int, np.integer, float, np.floating))
    if not (is_number and math.isfinite(value) and int(value) == value and minimum <= value
            and (maximum is None or value <= maximum)):
        raise InvalidInputError(f"{owner}: {name} must be {span}, got {value!r}")
    return int(value)


NON_FINITE_MESSAGE = "{name}: batch index {index} holds a non-finite value ({value})"


def non_finite_error(name: str, index: int, value: float) -> InvalidInputError:
    """The error for a non-finite ``value`` at batch index ``index`` of ``name``."""
    return InvalidInputError(NON_FINITE_MESSAGE.format(name=name, index=index, value=value))

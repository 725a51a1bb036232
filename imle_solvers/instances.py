"""Per-instance data: named arrays beside ``theta`` that differ from instance to instance.

A problem fixes what every instance shares (a grid's size, a program's structure) and
declares what may differ (:attr:`~imle_solvers.problems.Problem.instance_fields`: a
k-subset's mask and ``k``, a route's source and target, an ILP's batched parameters).
A batch passes them by name, each with the batch axis first::

    oracle(theta, mask=mask, k=k)      # theta (B, n), mask (B, n) bool, k (B,) int

A value of one instance's shape (a Python number for a scalar field, one mask for all)
stands for every instance: :func:`broadcast_data` repeats it along the batch.

This module is the one place that checks them (:func:`check_data`; their values with
:func:`check_values`, or :func:`invalid_on_device` for traced data), converts them for
a solver (:func:`for_framework`, :func:`to_host`), cuts them into chunks
(:func:`rows`) and gives each solve its instances' rows (:func:`per_instance`): an
estimator's solve of ``N`` rows for ``B`` instances holds ``N / B`` consecutive rows per
instance (the rule :mod:`imle_solvers.failures` relies on too), so each instance's data
are repeated ``N / B`` times. Estimators never see data: every solve they make (forward,
target, every sample) gets its instances' own rows through that wrapper.

Errors say which call to make (``pass it per instance: oracle(theta, capacity=...)``):
each entry point hands the checks its own ``call``, a template such as
:data:`ORACLE_CALL`, and :func:`call_with` writes the fields into it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

from ._array import Array, array_namespace, device, framework_of, is_traced, to_numpy
from .errors import InvalidInputError, MissingDataError, shape_text
from .failures import batch_size
from .problems.base import DataField, Problem, check_finite

InstanceData = Mapping[str, Array]
Result = TypeVar("Result")

__all__ = [
    "LAYER_CALL", "ORACLE_CALL", "InstanceData", "broadcast_data", "call_with", "check_data", "check_values",
    "dtype_name", "for_framework", "missing_data", "per_instance", "repeat_rows", "rows", "to_host",
]

#: How errors name the call that passes data: ``{fields}`` stands for ``name=...`` of each
#: field concerned (:func:`call_with`). A layer's and a loss's calls (the default of the
#: checks), the oracle's; :mod:`imle_solvers.metrics` names each metric's.
LAYER_CALL = "layer(theta, {fields})"
ORACLE_CALL = "oracle(theta, {fields})"

_HOST_DTYPES = {"bool": np.bool_, "int": np.int64, "float": np.float64}


def call_with(call: str, names: Iterable[str]) -> str:
    """``call`` (a template such as :data:`ORACLE_CALL`) with ``{fields}`` written out:
    ``oracle(theta, capacity=..., budget=...)``."""
    return call.format(fields=", ".join(f"{name}=..." for name in names))


def missing_data(subject: str, fields: Iterable[str], call: str = LAYER_CALL) -> MissingDataError:
    """The error for ``fields`` that must be given and were not: ``subject`` (what is
    missing, naming the problem) and the hint ``pass it per instance: <call>``."""
    fields = tuple(fields)
    pronoun = "it" if len(fields) == 1 else "them"
    return MissingDataError(f"{subject}; pass {pronoun} per instance: {call_with(call, fields)}", subject=subject,
                            fields=fields)


def broadcast_data(problem: Problem, data: Mapping[str, Any], batch: Any) -> dict[str, Any]:
    """``data`` without its ``None`` entries, and each value of one instance's shape (a
    field's own shape, no batch axis: a Python number or a 0-d array for a scalar field,
    one mask for all) repeated for the ``batch`` instances, as a read-only view in its own
    framework. Other values, and all of them when ``batch`` is unknown (None, or a
    tensor in a graph), are left for :func:`check_data` to judge."""
    fields = problem.instance_fields
    out = {}
    for name, value in data.items():
        if value is None:
            continue
        if name in fields and isinstance(batch, int) and np.ndim(value) == len(fields[name].shape):
            try:
                value = array_namespace(value).broadcast_to(value, (batch, *fields[name].shape))
            except TypeError:  # a Python number or list
                value = np.broadcast_to(np.asarray(value), (batch, *fields[name].shape))
        out[name] = value
    return out


def check_data(problem: Problem, data: Mapping[str, Any], batch: Any, call: str = LAYER_CALL) -> None:
    """Check the names, shapes and kinds of ``data`` for a batch of ``batch`` instances.

    Raises :class:`InvalidInputError` naming the field: an unknown name (the message
    lists the problem's fields and names ``call``, the entry point's template such as
    :data:`ORACLE_CALL`), a shape other than ``(batch, *field.shape)``, or values of the
    wrong kind (a bool field takes bools only; an int field integers; a float field real
    numbers). ``batch`` may be unknown (None, or a tensor in a graph). A value of one
    instance's shape is :func:`broadcast_data`'s to repeat before."""
    fields = problem.instance_fields
    for name, value in data.items():
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise InvalidInputError(f"{problem.label} takes no per-instance data {name!r}; its fields: {known} "
                                    f"(in {call_with(call, [name])})")
        field = fields[name]
        shape = tuple(getattr(value, "shape", np.shape(value)))
        expected_batch = batch if isinstance(batch, int) else None
        if len(shape) != 1 + len(field.shape) or tuple(shape[1:]) != field.shape or (
            expected_batch is not None and shape[0] is not None and shape[0] != expected_batch
        ):
            expected = shape_text(["B" if expected_batch is None else expected_batch, *field.shape])
            raise InvalidInputError(f"{name}: expected shape {expected} (batch axis first), or "
                                    f"{shape_text(field.shape)} for every instance, got {shape_text(shape)}")
        _check_kind(name, field, value)


def _check_kind(name: str, field: DataField, value: Any) -> None:
    dtype = np.dtype(dtype_name(value))
    accepted = {"bool": "b", "int": "iu", "float": "biuf"}[field.kind]
    if dtype.kind not in accepted:
        described = {"bool": "bools (True/False)", "int": "integers", "float": "real numbers"}[field.kind]
        raise InvalidInputError(f"{name}: expected {described}, got dtype {dtype}")


def dtype_name(value: Any) -> str:
    """The numpy name of ``value``'s dtype, whatever its framework."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return np.asarray(value).dtype.name
    if hasattr(dtype, "as_numpy_dtype"):  # TensorFlow
        return np.dtype(dtype.as_numpy_dtype).name
    return str(dtype).removeprefix("torch.")


def check_values(problem: Problem, data: InstanceData, call: str = LAYER_CALL) -> None:
    """Check what ``data`` hold (finite floats, then the problem's own meaning, see
    :meth:`~imle_solvers.problems.Problem.check_instance_data`, which is asked even without
    data: a problem may need some), naming the first bad batch index; a field that must be
    given and was not is named with ``call`` (as for :func:`check_data`). Reads the
    values (a device synchronisation); traced arrays are skipped."""
    if any(framework_of_or_none(value) and is_traced(value) for value in data.values()):
        return
    host = to_host(problem, data)
    for name, value in host.items():
        if problem.instance_fields[name].kind == "float" and value.shape[0]:
            check_finite(value, name)
    if not host or next(iter(host.values())).shape[0]:
        try:
            problem.check_instance_data(host)  # also without data: a field may have no default
        except MissingDataError as error:
            raise missing_data(error.subject, error.fields, call) from None


def invalid_on_device(problem: Problem, data: InstanceData) -> Array | None:
    """``(B,)`` bools in the data's framework, True for an instance whose data
    :func:`check_values` would refuse (a non-finite float, or the problem's
    :meth:`~imle_solvers.problems.Problem.invalid_instances`); None where the problem
    checks on the host only. A binding that holds traced data asks the host for the
    message only when one is True."""
    bad = problem.invalid_instances(data)
    if bad is None:
        return None
    fields = problem.instance_fields
    for name, value in data.items():
        if fields[name].kind == "float":
            xp = array_namespace(value)
            finite = xp.all(xp.reshape(xp.isfinite(value), (value.shape[0], -1)), axis=1)
            bad = bad | ~finite
    return bad


def to_host(problem: Problem, data: InstanceData) -> dict[str, np.ndarray]:
    """``data`` as numpy arrays of the kinds' host dtypes (bool, int64, float64)."""
    fields = problem.instance_fields
    return {name: np.asarray(to_numpy(value), dtype=_HOST_DTYPES[fields[name].kind]) for name, value in data.items()}


def for_framework(problem: Problem, data: Mapping[str, Any], like: Array) -> dict[str, Array]:
    """``data`` in ``like``'s framework and on its device: bool fields as bool, int fields
    as the framework's default integer (int64; int32 in JAX without x64), float fields in
    ``like``'s dtype."""
    if not data:
        return {}
    xp = array_namespace(like)
    where, own = device(like), framework_of(like)
    fields = problem.instance_fields
    converted = {}
    for name, value in data.items():
        kind = fields[name].kind
        dtype = xp.bool if kind == "bool" else like.dtype if kind == "float" else xp.asarray(0).dtype
        theirs = own if type(value) is type(like) else framework_of_or_none(value)
        if theirs == own:
            converted[name] = value if value.dtype == dtype else xp.astype(value, dtype)
        else:
            converted[name] = xp.asarray(to_numpy(value) if theirs else value, dtype=dtype, device=where)
    return converted


def framework_of_or_none(value: Any) -> str | None:
    """The framework of an array, or None for Python lists and numbers."""
    try:
        return framework_of(value)
    except TypeError:
        return None


def rows(data: InstanceData, start: int, stop: int) -> dict[str, Array]:
    """Rows ``[start, stop)`` of every field."""
    return {name: value[start:stop] for name, value in data.items()}


def instance(data: InstanceData, index: int) -> dict[str, Array]:
    """One instance's values (the batch axis dropped)."""
    return {name: value[index] for name, value in data.items()}


def repeat_rows(x: Array, times: Any) -> Array:
    """``x`` ``(B, ...)`` with each row repeated ``times`` times in place: ``(B * times, ...)``."""
    if isinstance(times, int) and times == 1:
        return x
    return array_namespace(x).repeat(x, times, axis=0)


def per_instance(
    solve: Callable[[Array, InstanceData], Result], data: InstanceData, batch: Any
) -> Callable[[Array], Result]:
    """An estimator's ``solve(x)`` for a batch of ``batch`` instances whose data are
    ``data`` (``batch`` rows each), from ``solve(x, data)``: a call of ``N`` rows gets each
    instance's data repeated ``N / batch`` times (instance-major), so that every row is
    solved with its own instance's data. ``batch`` may be a tensor (a graph's unknown B)."""
    if not data:
        return lambda x: solve(x, {})

    def solve_rows(x: Array) -> Result:
        times = batch_size(x) // batch
        return solve(x, {name: repeat_rows(value, times) for name, value in data.items()})

    return solve_rows

"""Specs (YAML, JSON or a Python dict) compiled into ILPs through :class:`ILPBuilder`.

The steps: read the source keeping positions, check it against the JSON Schema,
then declare everything on a builder in dependency order: constants, scalar
parameters, sets, array parameters, variables, constraints, objective. Every
builder error is re-raised located at the spec entry that caused it. A parameter
declared ``batched: true`` becomes a batched parameter of the ILP (one value per
instance, ``ILPBuilder.add_parameter(..., batched=True)``); a value given at load time is its default.

Every loader takes ``limits=`` (a :class:`SpecLimits`) besides the spec's own
parameters; a spec parameter that happens to be called ``limits`` is still given as
``limits=value``: only a ``SpecLimits`` is taken for the limits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .._files import FileRefused, read_bounded
from ..problems.ilp import ILP
from .builder import BuildError, ILPBuilder
from .clock import out_of_time, time_budget
from .errors import SpecError
from .limits import DEFAULT_LIMITS, PYTHON_DICT, PYTHON_YAML, Hints, SpecLimits
from .schema import check_schema
from .source import KeyPath, Source, from_mapping, from_yaml_text


def split_limits(limits: Any, params: dict[str, Any]) -> SpecLimits:
    """The limits a loader was given; anything but a ``SpecLimits`` (or None) passed as
    ``limits=`` is the spec's own parameter of that name, and goes back into ``params``."""
    if limits is None or isinstance(limits, SpecLimits):
        return limits or DEFAULT_LIMITS
    params["limits"] = limits
    return DEFAULT_LIMITS


def load_yaml(path: str | Path, /, *, limits: SpecLimits | None = None, **params: Any) -> ILP:
    """The ILP of the YAML (or JSON) spec at ``path``; ``params`` supply its ``params:``.

    ``limits`` bounds the spec's size and what it expands to (default ``SpecLimits()``).

    Raises:
        SpecError: anything wrong with the spec, located by file, line, column and field.
    """
    limits = split_limits(limits, params)
    with time_budget(limits.max_seconds):  # one budget for reading and compiling
        return compile_spec(read_yaml(path, limits), params, limits)


def read_yaml(path: str | Path, limits: SpecLimits = DEFAULT_LIMITS) -> Source:
    """The spec at ``path``, read but not yet checked. Only a regular file is read (a pipe
    or a device is refused without waiting on it), and at most ``limits.max_text_bytes``
    of it: one byte more is a refusal."""
    try:
        data = read_bounded(path, limits.max_text_bytes, what="the spec file", limit="max_text_bytes")
        text = data.decode("utf-8")
    except FileRefused as error:
        raise SpecError(error.reason, file=str(path)) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:  # ValueError: a path with a NUL byte
        raise SpecError(f"cannot read the spec: {error}", file=str(path)) from None
    return from_yaml_text(text, str(path), limits)


def load_dict(spec: Mapping[str, Any], /, *, limits: SpecLimits | None = None, **params: Any) -> ILP:
    """The ILP of a spec given as a Python dict (the YAML's structure); ``params`` and
    ``limits`` as for :func:`load_yaml`."""
    limits = split_limits(limits, params)
    with time_budget(limits.max_seconds):
        return compile_spec(from_mapping(spec, limits), params, limits, PYTHON_DICT)


def compile_spec(source: Source, params: Mapping[str, Any], limits: SpecLimits = DEFAULT_LIMITS,
                 hints: Hints = PYTHON_YAML) -> ILP:
    """Check ``source`` against the schema and compile it with ``params``; ``hints`` phrase
    the errors' advice for the caller (Python or the command line)."""
    check_schema(source)
    return compile_checked(source, params, limits=limits, hints=hints)


def compile_checked(source: Source, params: Mapping[str, Any], name: str | None = None, *,
                    limits: SpecLimits = DEFAULT_LIMITS, hints: Hints = PYTHON_YAML) -> ILP:
    """Compile ``source``, already checked against the schema, with ``params``; ``name``
    overrides the spec's own."""
    with time_budget(limits.max_seconds):
        builder = _declare(source, params, name, limits, hints)
        with _located(source, ()):
            return builder.build()


@contextmanager
def _located(source: Source, path: KeyPath, remap: Mapping[KeyPath, KeyPath] | None = None) -> Iterator[None]:
    """Re-raise a :class:`BuildError` at ``path`` plus the argument it names (renamed by ``remap``);
    first, refuse to go on past the time budget (a step without a clock of its own, such as
    the schema check, may have spent it)."""
    late = out_of_time()
    if late is not None:
        raise source.error(late, path)
    try:
        yield
    except BuildError as error:
        relative = (remap or {}).get(error.relative, error.relative)
        raise source.error(error.message, path + relative, error.offset, key=error.key) from None


def _declare(source: Source, supplied: Mapping[str, Any], name: str | None, limits: SpecLimits,
             hints: Hints) -> ILPBuilder:
    tree = source.tree
    builder = ILPBuilder(name or tree.get("name", Path(source.file).stem if source.file else "ilp"), limits=limits)
    builder.hints = hints
    declared = tree.get("params", {})
    unknown = sorted(set(supplied) - set(declared))
    if unknown:
        where = ("params",) if "params" in tree else ()
        raise source.error(f"unknown parameter {unknown[0]!r}; the spec declares {sorted(declared)}", where)
    for name, value in tree.get("constants", {}).items():
        with _located(source, ("constants", name)):
            builder.add_parameter(name, value)
    free = {name: p for name, p in declared.items() if "over" not in p}  # any shape; may size sets
    for name, param in free.items():
        _add_param(source, builder, name, param, supplied, hints)
    for name, size in tree.get("sets", {}).items():
        with _located(source, ("sets", name)):
            builder.add_set(name, size)
    for name, param in declared.items():
        if name not in free:
            _add_param(source, builder, name, param, supplied, hints)
    for name, variable in tree["variables"].items():
        with _located(source, ("variables", name)):
            builder.add_variable(name, **_variable_arguments(variable))
    for position, constraint in enumerate(tree.get("constraints", [])):
        if isinstance(constraint, str):
            with _located(source, ("constraints", position), {("expr",): ()}):
                builder.add_constraint(constraint)
        else:
            with _located(source, ("constraints", position)):
                builder.add_constraint(constraint["expr"], for_each=constraint.get("for"), name=constraint.get("name"))
    objective = tree["objective"]
    with _located(source, ("objective",), {("objective",): ()}):
        builder.set_objective(objective["sense"], objective["theta"], objective.get("fixed"))
    return builder


def _variable_arguments(variable: Mapping[str, Any]) -> dict[str, Any]:
    """A spec's variable entry as :meth:`ILPBuilder.add_variable` keywords (``description`` dropped)."""
    return {key: value for key, value in variable.items() if key != "description"}


def _add_param(source: Source, builder: ILPBuilder, name: str, param: Mapping[str, Any],
               supplied: Mapping[str, Any], hints: Hints) -> None:
    path = ("params", name)
    if name in supplied:
        value, remap = supplied[name], {(): (), ("default",): ()}
        if not _numeric(value):
            raise source.error(f"parameter {name!r} was given a non-numeric value of type {type(value).__name__}",
                               path, key=True)
    elif "default" in param:
        value, remap = param["default"], {(): ("default",)}
    elif param.get("batched"):  # each instance gives its own value
        value, remap = None, {}
    else:
        raise source.error(f"missing parameter {name!r}: supply it with {hints.param.format(name=name)}",
                           path, key=True)
    with _located(source, path, remap):
        if param.get("batched"):  # a value given at load time is the instances' default
            builder.add_parameter(name, over=param.get("over"), default=value, batched=True,
                                  description=param.get("description", ""))
        else:
            builder.add_parameter(name, value, over=param.get("over"))


def _numeric(value: Any) -> bool:
    if isinstance(value, int):  # also one too large for numpy: add_parameter says so
        return True
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError, OverflowError):
        return False

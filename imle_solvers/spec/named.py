"""Named ILPs: ``register_ilp(name, spec)`` once, then ``named_ilp(name, **params)`` anywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace as replace_fields
from pathlib import Path
from typing import Any

from ..errors import UnknownProblemError
from ..problems.ilp import ILP
from .builder import ILPBuilder
from .compiler import compile_checked, read_yaml
from .limits import DEFAULT_LIMITS, SpecLimits, named_hints
from .schema import check_schema
from .source import from_mapping

Factory = Callable[..., ILP]
_NAMED: dict[str, Factory] = {}


def register_ilp(
    name: str,
    spec: str | Path | Mapping[str, Any] | ILPBuilder | ILP | Factory,
    *,
    replace: bool = False,
    limits: SpecLimits | None = None,
) -> None:
    """Register an ILP under ``name``, so that ``named_ilp(name, **params)`` builds it.

    ``spec`` is a path to a YAML/JSON spec, a spec dict, an :class:`ILPBuilder`, a built
    :class:`~imle_solvers.ILP`, or a function ``(**params) -> ILP``. The problem is an
    ordinary ILP (kind ``"ilp"``): ``MAPOracle``, the framework layers and the solver
    registry take it like any built-in problem. A spec is read and checked against
    the schema now; it is compiled with its parameters, within ``limits``, by each
    :func:`named_ilp` call.

    Args:
        replace: replace an ILP already registered as ``name`` (as ``register_solver``'s
            ``replace``).

    Raises:
        ValueError: ``name`` is taken and ``replace`` is False.
        SpecError: the spec is broken.
    """
    if name in _NAMED and not replace:
        raise ValueError(f"an ILP is already registered as {name!r}; pass replace=True to replace it")
    _NAMED[name] = _factory(name, spec, DEFAULT_LIMITS if limits is None else limits)


def named_ilp(name: str, /, **params: Any) -> ILP:
    """The ILP registered as ``name`` (:func:`register_ilp`), built with ``params`` and named ``name``.

    Raises:
        UnknownProblemError: nothing is registered as ``name`` (a ``KeyError``); the
            message lists the registered names.
        SpecError: the parameters do not fit the spec.
    """
    factory = _NAMED.get(name)
    if factory is None:
        raise UnknownProblemError(f"no ILP is registered as {name!r}; registered: {sorted(_NAMED) or 'none'} "
                                  "(register one with register_ilp(name, spec))")
    return factory(**params)


def list_named_ilps() -> list[str]:
    """The names of the registered ILPs, sorted."""
    return sorted(_NAMED)


def unregister_ilp(name: str) -> None:
    """Forget a registered ILP (raises :class:`UnknownProblemError` if there is none)."""
    if _NAMED.pop(name, None) is None:
        raise UnknownProblemError(f"no ILP is registered as {name!r}; registered: {sorted(_NAMED) or 'none'}")


def _factory(name: str, spec: Any, limits: SpecLimits) -> Factory:
    """``(**params) -> ILP`` named ``name``; the work that does not depend on ``params`` is done here, once."""
    if isinstance(spec, (str, Path, Mapping)):
        source = read_yaml(spec, limits) if isinstance(spec, (str, Path)) else from_mapping(spec, limits)
        check_schema(source)
        hints = named_hints(name)
        return lambda **params: compile_checked(source, params, name, limits=limits, hints=hints)
    if isinstance(spec, (ILPBuilder, ILP)):
        problem = _named(spec.build() if isinstance(spec, ILPBuilder) else spec, name)
        return lambda **params: _no_params(problem, params)
    if callable(spec):
        return lambda **params: _named(spec(**params), name)
    raise TypeError(f"expected a spec path, a spec dict, an ILPBuilder, an ILP or a function, got {type(spec).__name__}")


def _named(problem: ILP, name: str) -> ILP:
    if not isinstance(problem, ILP):
        raise TypeError(f"the ILP registered as {name!r} returned an object of type {type(problem).__name__}, not an ILP")
    # replace() rebuilds the program (a matrix copy and its fingerprint): only when needed
    return problem if problem.name == name else replace_fields(problem, name=name)


def _no_params(problem: ILP, params: Mapping[str, Any]) -> ILP:
    if params:
        raise TypeError(f"{problem.name!r} was registered as a built program and takes no parameters, got {sorted(params)}")
    return problem

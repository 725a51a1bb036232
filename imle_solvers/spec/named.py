"""Named ILPs: ``register_ilp(name, spec)`` once, then ``problem(name, **params)`` anywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..problems.ilp import ILP
from .builder import ILPBuilder
from .compiler import compile_checked, read_yaml
from .schema import check_schema
from .source import from_mapping

Factory = Callable[..., ILP]
_NAMED: dict[str, Factory] = {}


def register_ilp(
    name: str,
    spec: str | Path | Mapping[str, Any] | ILPBuilder | ILP | Factory,
    *,
    replace_existing: bool = False,
) -> None:
    """Register an ILP under ``name``, so that ``problem(name, **params)`` builds it.

    ``spec`` is a path to a YAML/JSON spec, a spec dict, an :class:`ILPBuilder`, a built
    :class:`~imle_solvers.ILP`, or a function ``(**params) -> ILP``. The problem is an
    ordinary ILP (kind ``"ilp"``): ``MAPOracle``, the framework layers and the solver
    registry take it like any built-in problem. A spec is read and checked against
    the schema now; it is compiled with its parameters by each :func:`problem` call.

    Raises:
        ValueError: ``name`` is taken and ``replace_existing`` is False.
        SpecError: the spec is broken.
    """
    if name in _NAMED and not replace_existing:
        raise ValueError(f"an ILP is already registered as {name!r}; pass replace_existing=True to replace it")
    _NAMED[name] = _factory(name, spec)


def problem(name: str, **params: Any) -> ILP:
    """The ILP registered as ``name``, built with ``params`` and named ``name``."""
    factory = _NAMED.get(name)
    if factory is None:
        raise KeyError(f"no ILP is registered as {name!r}; registered: {sorted(_NAMED)}")
    return factory(**params)


def list_problems() -> list[str]:
    """The names of the registered ILPs, sorted."""
    return sorted(_NAMED)


def unregister_ilp(name: str) -> None:
    """Forget a registered ILP (raises ``KeyError`` if there is none)."""
    del _NAMED[name]


def _factory(name: str, spec: Any) -> Factory:
    """``(**params) -> ILP`` named ``name``; the work that does not depend on ``params`` is done here, once."""
    if isinstance(spec, (str, Path, Mapping)):
        source = read_yaml(spec) if isinstance(spec, (str, Path)) else from_mapping(spec)
        check_schema(source)
        return lambda **params: compile_checked(source, params, name)
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
    return problem if problem.name == name else replace(problem, name=name)


def _no_params(problem: ILP, params: Mapping[str, Any]) -> ILP:
    if params:
        raise TypeError(f"{problem.name!r} was registered as a built program and takes no parameters, got {sorted(params)}")
    return problem

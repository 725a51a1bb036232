"""The spec's JSON Schema (shipped as ``imle_solvers/schemas/ilp.schema.json``) and
its violations as located :class:`SpecError`\\ s."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from .expressions import KEYWORDS
from .source import Source


def _reserved() -> str:
    return ", ".join(repr(word) for word in sorted(KEYWORDS))


@cache
def ilp_schema() -> dict[str, Any]:
    """The JSON Schema of an ILP spec (draft 2020-12)."""
    return json.loads(resources.files("imle_solvers").joinpath("schemas/ilp.schema.json").read_text("utf-8"))


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = ilp_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_schema(source: Source) -> None:
    """Raise a :class:`SpecError` at the most relevant schema violation of ``source.tree``."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(_without_numeric_arrays(source.tree)))
    if error is None:
        return
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extra = sorted(key for key in error.instance if key not in allowed)
        known = ", ".join(sorted(allowed))
        raise source.error(f"unknown key {extra[0]!r}; expected one of: {known}", path + (extra[0],), key=True)
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        raise source.error(f"{error.instance!r} is not a valid name (letters, digits, _; not {_reserved()})",
                           path + (error.instance,), key=True)
    if error.validator == "not":
        raise source.error(f"{error.instance!r} is a reserved word", path)
    if error.validator == "oneOf":
        forms = " or ".join(_form(option) for option in error.validator_value)
        raise source.error(f"{error.instance!r} is not allowed here; expected {forms}", path)
    raise source.error(error.message, path)


def _form(schema: dict[str, Any]) -> str:
    """A few words for one alternative of a ``oneOf``: its type, or the name it refers to."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return {"identifier": "a name", "expression": "an expression (a string)"}.get(name, name)
    kind = schema.get("type", "value")
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _without_numeric_arrays(tree: Any) -> Any:
    """``tree`` with each constant and parameter default that is an array of numbers replaced
    by the number 0. Both are valid ``tensor``\\ s, so the verdict is the same; but jsonschema
    spends tens of microseconds on each entry of an array (a minute on a million), where
    this check spends tens of nanoseconds."""
    if not isinstance(tree, dict):
        return tree
    view = dict(tree)
    constants = tree.get("constants")
    if isinstance(constants, dict):
        view["constants"] = {name: _compact(value) for name, value in constants.items()}
    params = tree.get("params")
    if isinstance(params, dict):
        view["params"] = {name: {**param, "default": _compact(param["default"])}
                          if isinstance(param, dict) and "default" in param else param
                          for name, param in params.items()}
    return view


def _compact(value: Any) -> Any:
    """0 for a (nested) list of numbers (booleans are not numbers, as for jsonschema), else ``value``."""
    if not isinstance(value, list):
        return value
    stack = [value]
    while stack:
        items = stack.pop()
        for item in items:
            kind = type(item)
            if kind is list:
                stack.append(item)
            elif kind is not int and kind is not float:
                return value
    return 0

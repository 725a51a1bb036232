"""Does a value read from a config fit its dataclass field's annotation?

A config is data from outside: ``{"type": "quantum"}`` for a ``Literal["binary",
"integer", "continuous"]``, NaN or ``[1, 2]`` or ``True`` for an ``int``. The classes'
own checks catch much of it, not all (a constructor that does ``int(n)`` turns NaN
into a ``ValueError``, ``True`` into 1). :func:`mismatch` checks a value against the
forms of annotation the registered classes use (``int``, ``float``, ``bool``, ``str``,
``None``, ``Literal``, unions, ``tuple[X, ...]``, ``list[X]``, classes); any other form
(a ``Callable``, a type variable) is left to the class.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

_SKIP = object()  # an annotation this module does not judge


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """``cls``'s resolved field annotations; empty where they cannot be resolved (a
    user's class annotated with names its module does not define): nothing is checked."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - any failure to resolve means: no annotation to check against
        return {}


def mismatch(value: Any, annotation: Any) -> str | None:
    """None where ``value`` fits ``annotation``; else what was expected, in words."""
    return None if _fits(value, annotation) is not False else describe(annotation)


def _fits(value: Any, annotation: Any) -> bool | object:
    if annotation is Any or isinstance(annotation, typing.TypeVar):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(type(value) is type(option) and value == option for option in typing.get_args(annotation))
    if origin is typing.Union or origin is types.UnionType:
        results = [_fits(value, option) for option in typing.get_args(annotation)]
        return True if any(r is True or r is _SKIP for r in results) else False
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(item, args[0]) is not False for item in value)
        return len(args) == len(value) and all(_fits(item, arg) is not False for item, arg in zip(value, args))
    if origin is list:
        (item_type,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and all(_fits(item, item_type) is not False for item in value)
    if origin is not None:  # dict[...], Callable[...], ...: the class's own checks decide
        return _SKIP
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:  # an int is a float, as in Python's numeric tower
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(annotation, type):
        try:
            return isinstance(value, annotation)
        except TypeError:  # a Protocol that is not runtime-checkable: the class decides
            return _SKIP
    return _SKIP


def describe(annotation: Any) -> str:
    """``int`` -> "an integer", ``Literal["a", "b"]`` -> "one of 'a', 'b'", and so on."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(option) for option in typing.get_args(annotation))
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(describe(option) for option in typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_plural(args[0])}"
        return f"a tuple of {len(args)}"
    if origin is list:
        return f"a list of {_plural((typing.get_args(annotation) or (Any,))[0])}"
    names = {bool: "a boolean", int: "an integer (not a boolean)", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    name = str(getattr(annotation, "__name__", annotation))
    return f"{'an' if name[:1] in 'AEIOUaeiou' else 'a'} {name}"


def _plural(annotation: Any) -> str:
    names = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
    return names.get(annotation, f"{describe(annotation)} values")

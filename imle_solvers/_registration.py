"""The classes a config may name (:mod:`imle_solvers.serialization`), each registered where
it is defined.

This module imports nothing of the library but its errors, so the problem, estimator and
noise modules register their classes at definition (``@register``) without importing
:mod:`imle_solvers.serialization`, which imports them back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from .errors import SerializationError

T = TypeVar("T", bound=type)

_BY_TAG: dict[str, type] = {}
_BY_CLASS: dict[type, str] = {}


def register(cls: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
    """Allow the dataclass ``cls`` in configs, under the tag ``name`` (default: the class's
    name). Usable as a decorator, with or without arguments::

        @imle_solvers.serialization.register
        @dataclass(frozen=True)
        class Knapsack(imle_solvers.Problem):
            weights: np.ndarray
            capacity: float
            kind: ClassVar[str] = "knapsack"

    The class is rebuilt as ``cls(**fields)`` from its ``__init__`` fields (those with
    ``init=False`` are left to ``__post_init__``), so each field must hold a value listed
    in :mod:`imle_solvers.serialization`'s docstring. The module that registers a class
    must be imported before a config naming it is read (e.g. before
    ``keras.models.load_model``).

    Raises:
        SerializationError: ``cls`` is not a dataclass, or the tag is taken by another class.
    """

    def decorate(klass: T) -> T:
        if not (isinstance(klass, type) and dataclasses.is_dataclass(klass)):
            raise SerializationError(f"register: {klass!r} is not a dataclass; only dataclasses can be registered")
        tag = klass.__name__ if name is None else name
        if _BY_TAG.get(tag, klass) is not klass:
            raise SerializationError(
                f"register: the tag {tag!r} is already taken by {qualified(_BY_TAG[tag])}; pass another name="
            )
        _BY_TAG[tag] = klass
        _BY_CLASS[klass] = tag
        return klass

    return decorate if cls is None else decorate(cls)


def registered() -> dict[str, type]:
    """The registered classes by tag (a copy)."""
    return dict(_BY_TAG)


def qualified(cls: type) -> str:
    """``module.QualifiedName`` of ``cls``, for messages."""
    return f"{cls.__module__}.{cls.__qualname__}"

"""A griffe extension (mkdocs.yml: mkdocstrings ``extensions:``): the API tables' parameters
take their type and default from the signature, and a name the signature lacks fails the build.

The docstrings document related parameters together, Google style with several names before
one colon (``noise, noise_temperature, samples: as IMLE.``), and keyword catch-alls as
``**options``. griffe reads such an entry as one parameter called ``"noise,
noise_temperature, samples"``, finds no such name in the signature, and so gives it no
default: the table marks it *required* (issue 23, defect 6). Here each such entry becomes one
row per name, with that name's annotation and default; ``*args`` and ``**kwargs`` show the
empty tuple or dict they default to. An entry that still names no parameter of the signature
is logged as a warning, which ``mkdocs build --strict`` turns into a failure.
"""

from __future__ import annotations

import logging
from typing import Any

import griffe

_LOG = logging.getLogger("mkdocs.plugins.griffe_parameters")
_EMPTY = {griffe.ParameterKind.var_positional: "()", griffe.ParameterKind.var_keyword: "{}"}


class SplitParameters(griffe.Extension):
    """Split multi-name parameter entries and take each name's default from the signature."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None and obj.docstring.parser is not None:
                _fix_sections(obj)


def _objects(obj: griffe.Object):
    """``obj`` and its public members (the API pages' ``filters``), recursively, aliases
    (re-exports) left out; dunders stay (``merge_init_into_class`` shows ``__init__``'s)."""
    yield obj
    for name, member in obj.members.items():
        private = name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
        if not member.is_alias and not private:
            yield from _objects(member)


def _fix_sections(obj: griffe.Object) -> None:
    signature = getattr(obj, "parameters", None)  # functions; classes: their __init__'s
    if signature is None:
        return
    for section in obj.docstring.parsed:  # cached: what mkdocstrings renders later
        if section.kind is not griffe.DocstringSectionKind.parameters:
            continue
        section.value[:] = [row for entry in section.value for row in _rows(obj, signature, entry)]


def _rows(obj: griffe.Object, signature: griffe.Parameters, entry: griffe.DocstringParameter):
    for name in (part.strip() for part in entry.name.split(",")):
        bare = name.lstrip("*")
        if bare not in signature:
            _LOG.warning("%s: docstring parameter %r is not in the signature", obj.path, name)
            continue
        parameter = signature[bare]
        yield griffe.DocstringParameter(
            name=name,
            annotation=entry.annotation if entry.name == name and entry.annotation else parameter.annotation,
            description=entry.description,
            value=parameter.default if parameter.default is not None else _EMPTY.get(parameter.kind),
        )

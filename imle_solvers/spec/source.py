"""A spec's source: its JSON-like tree, and where each entry sits in the text.

YAML is read with PyYAML's *composer* (over libyaml's parser where PyYAML has it;
never a loader that constructs objects), so every node keeps its line and column; the tree is
rebuilt from the nodes by hand. A Python dict goes through the same checks,
without positions. Either way the result holds only dicts with string keys,
lists, strings, finite-or-infinite floats, ints, booleans and None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from .clock import CHECK_EVERY, out_of_time, time_budget
from .errors import Location, SpecError, field_name
from .limits import DEFAULT_LIMITS, SpecLimits, inexact_integer, inexact_message

KeyPath = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True, slots=True)  # slots: a spec holds one per entry, up to max_document_nodes
class Mark:
    """Where a value starts (0-based, as PyYAML counts) and how its scalar was written."""

    line: int
    column: int
    style: str | None = None


@dataclass(frozen=True)
class Source:
    """A spec tree with the positions of its entries.

    Attributes:
        tree: the spec, JSON-like.
        file: the file it came from, or None.
        marks: path -> where the value at that path starts.
        key_marks: path -> where the key naming that path starts.
        lines: the source text's lines (empty for a dict).
    """

    tree: Any
    file: str | None = None
    marks: dict[KeyPath, Mark] = field(default_factory=dict)
    key_marks: dict[KeyPath, Mark] = field(default_factory=dict)
    lines: tuple[str, ...] = ()

    def locate(self, path: KeyPath, offset: int | None = None, *, key: bool = False) -> Location:
        """The location of the value at ``path`` (of its key when ``key``), or of the
        ``offset``-th character of that string value, falling back on the nearest
        enclosing entry that has a position."""
        mark = self.key_marks.get(path) if key else None
        depth = len(path)
        while mark is None and depth >= 0:
            mark = self.marks.get(path[:depth])
            if mark is None:
                depth -= 1
        if mark is None:
            return Location(self.file)
        if offset is None or depth != len(path):
            return Location(self.file, mark.line + 1, mark.column + 1)
        return self._inside(mark, self._lookup(path), offset)

    def error(self, message: str, path: KeyPath, offset: int | None = None, *, key: bool = False) -> SpecError:
        """A :class:`SpecError` for the entry at ``path``."""
        where = self.locate(path, offset, key=key)
        return SpecError(message, field=field_name(path), file=where.file, line=where.line, column=where.column)

    def _lookup(self, path: KeyPath) -> Any:
        value = self.tree
        for part in path:
            value = value[part]
        return value

    def _inside(self, mark: Mark, text: Any, offset: int) -> Location:
        """Position of character ``offset`` of a scalar string written at ``mark``."""
        if not isinstance(text, str):
            return Location(self.file, mark.line + 1, mark.column + 1)
        newlines = text.count("\n", 0, offset)
        if mark.style in (None, '"', "'") and "\n" not in text:
            quote = 0 if mark.style is None else 1
            return Location(self.file, mark.line + 1, mark.column + 1 + quote + offset)
        if mark.style == "|" and mark.line + 1 < len(self.lines):
            first = self.lines[mark.line + 1]
            indent = len(first) - len(first.lstrip(" "))
            column = offset - (text.rfind("\n", 0, offset) + 1)
            return Location(self.file, mark.line + 2 + newlines, indent + column + 1)
        return Location(self.file, mark.line + 1, mark.column + 1)


# libyaml (C) scans, parses and composes a 10 MB spec in a fraction of a second, where
# PyYAML's pure-Python loader takes tens of seconds. It refuses nesting past 1000 levels
# itself, so its (C) recursion is bounded; max_document_depth is then _NodeReader's check.
_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))
_LIBYAML_DEPTH = 1000
_MARKED_ITEMS = 256  # a list this long or shorter keeps the position of each of its scalars


class _Composer(yaml.SafeLoader):
    """PyYAML's pure-Python composer (where libyaml is missing), refusing to nest past
    ``max_depth``: ``[[[[...`` a few thousand deep would otherwise exhaust Python's stack."""

    def __init__(self, text: str, max_depth: int) -> None:
        super().__init__(text)
        self.max_depth = max_depth
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        self.depth += 1
        self.nodes += 1
        if self.depth > self.max_depth:
            mark = self.peek_event().start_mark
            raise SpecError(f"the spec is nested more than {self.max_depth} levels deep (max_document_depth)",
                            line=mark.line + 1, column=mark.column + 1)
        if self.nodes % CHECK_EVERY == 0 and (late := out_of_time()) is not None:
            mark = self.peek_event().start_mark
            raise SpecError(late, line=mark.line + 1, column=mark.column + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def from_yaml_text(text: str, file: str | None = None, limits: SpecLimits = DEFAULT_LIMITS) -> Source:
    """Parse YAML text into a :class:`Source`; any YAML problem is a located :class:`SpecError`."""
    with time_budget(limits.max_seconds):
        return _from_yaml_text(text, file, limits)


def _from_yaml_text(text: str, file: str | None, limits: SpecLimits) -> Source:
    if len(text) > limits.max_text_bytes:
        raise SpecError(f"the spec is {len(text):,} characters long; the limit is {limits.max_text_bytes:,} "
                        "(max_text_bytes)", file=file)
    try:
        composer = yaml.CSafeLoader(text) if _LIBYAML else _Composer(text, limits.max_document_depth)
        try:
            node = composer.get_single_node()
        except SpecError as error:
            raise SpecError(error.message, file=file, line=error.line, column=error.column) from None
        finally:
            composer.dispose()
        if node is None:
            raise SpecError("the spec is empty", file=file, line=1, column=1)
        reader = _NodeReader(file, limits)
        tree = reader.read(node, ())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        if "maximum nesting depth" in str(error.problem):  # libyaml's own bound, 1000 levels
            depth = min(limits.max_document_depth, _LIBYAML_DEPTH)
            raise SpecError(f"the spec is nested more than {depth} levels deep "
                            f"({'max_document_depth' if depth < _LIBYAML_DEPTH else 'libyaml'})",
                            file=file, line=mark.line + 1 if mark else None,
                            column=mark.column + 1 if mark else None) from None
        problem = " ".join(p for p in (error.context, error.problem) if p)
        raise SpecError(
            f"YAML syntax: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as error:  # reader errors (bad characters) carry no mark
        raise SpecError(f"YAML syntax: {error}", file=file) from None
    except RecursionError:  # only when max_document_depth is set above what Python's stack allows
        raise SpecError("the spec is nested too deeply for Python's recursion limit", file=file) from None
    return Source(tree, file, reader.marks, reader.key_marks, tuple(text.splitlines()))


def from_mapping(spec: Mapping[str, Any], limits: SpecLimits = DEFAULT_LIMITS) -> Source:
    """A :class:`Source` from a Python dict (numpy arrays and tuples become lists)."""
    if not isinstance(spec, Mapping):
        raise SpecError(f"a spec is a mapping, got {type(spec).__name__}")
    try:
        with time_budget(limits.max_seconds):
            return Source(_plain(spec, (), 0, [0], limits))
    except RecursionError:  # only when max_document_depth is set above what Python's stack allows
        raise SpecError("the spec is nested too deeply for Python's recursion limit") from None


class _NodeReader:
    """Rebuilds the tree from composed nodes, recording each entry's mark."""

    def __init__(self, file: str | None, limits: SpecLimits) -> None:
        self.file = file
        self.limits = limits
        self.marks: dict[KeyPath, Mark] = {}
        self.key_marks: dict[KeyPath, Mark] = {}
        self.constructor = yaml.SafeLoader("")
        self.nodes = 0

    def _fail(self, message: str, node: yaml.Node, path: KeyPath) -> SpecError:
        mark = node.start_mark
        return SpecError(message, field=field_name(path), file=self.file, line=mark.line + 1, column=mark.column + 1)

    def _too_deep(self, node: yaml.Node) -> SpecError:
        """Located by line and column alone: the field's path would be as long as the nesting."""
        mark = node.start_mark
        return SpecError(f"the spec is nested more than {self.limits.max_document_depth} levels deep "
                         "(max_document_depth)", file=self.file, line=mark.line + 1, column=mark.column + 1)

    def read(self, node: yaml.Node, path: KeyPath, keep_mark: bool = True) -> Any:
        self.nodes += 1
        if self.nodes > self.limits.max_document_nodes:
            raise self._fail(f"the spec is too large (aliases?): more than {self.limits.max_document_nodes:,} "
                             "entries (max_document_nodes)", node, path)
        # depth as a composer counts it: the root is 1, a collection's keys and items one more
        if len(path) + 1 > self.limits.max_document_depth:
            raise self._too_deep(node)
        if self.nodes % CHECK_EVERY == 0 and (late := out_of_time()) is not None:
            raise self._fail(late, node, path)
        if keep_mark or not isinstance(node, yaml.ScalarNode):
            self.marks[path] = Mark(node.start_mark.line, node.start_mark.column, getattr(node, "style", None) or None)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise self._fail(f"YAML tag {node.tag!r} is not allowed", node, path)
            result: dict[str, Any] = {}
            if node.value and len(path) + 2 > self.limits.max_document_depth:
                raise self._too_deep(node.value[0][0])
            for key_node, value_node in node.value:
                key = self._scalar(key_node, path)
                if not isinstance(key, str):
                    raise self._fail(f"keys must be strings, got {key!r}", key_node, path)
                if key in result:
                    raise self._fail(f"duplicate key {key!r}", key_node, path + (key,))
                self.key_marks[path + (key,)] = Mark(key_node.start_mark.line, key_node.start_mark.column)
                result[key] = self.read(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self._fail(f"YAML tag {node.tag!r} is not allowed", node, path)
            # the entries of a long list (data) keep no mark of their own: a million of them
            # would take a few hundred MB; an error there points at the list
            keep = len(node.value) <= _MARKED_ITEMS
            return [self.read(item, path + (i,), keep) for i, item in enumerate(node.value)]
        value = self._scalar(node, path)
        return _check_scalar(value, lambda message: self._fail(message, node, path))

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self._fail("keys must be strings", node, path)
        # the tag's own constructor, straight (construct_object's bookkeeping doubles the time
        # of a long array); an unknown tag goes the long way, to PyYAML's own error
        construct = self.constructor.yaml_constructors.get(node.tag)
        try:
            if construct is None:
                return self.constructor.construct_object(node)
            return construct(self.constructor, node)
        except ValueError as error:  # int() of more digits than Python converts (4300 by default)
            raise self._fail(f"cannot read the number: {error}", node, path) from None


_LARGEST = 2 ** 1024  # beyond the largest float: no use in a program, and slow to print


def _check_scalar(value: Any, fail: Callable[[str], SpecError]) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -_LARGEST < value < _LARGEST:
        raise fail(f"an integer of {value.bit_length()} bits is too large (beyond 1.8e308)")
    if isinstance(value, int) and not isinstance(value, bool) and inexact_integer(value):
        raise fail(inexact_message(str(value)))
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise fail("NaN is not allowed")
        return value
    raise fail(f"expected a number, string, boolean or null, got {type(value).__name__}")


def _plain(value: Any, path: KeyPath, depth: int, count: list[int], limits: SpecLimits) -> Any:
    """A dict's tree as plain JSON-like data, checked as YAML's is."""
    count[0] += 1
    if count[0] % CHECK_EVERY == 0 and (late := out_of_time()) is not None:
        raise SpecError(late, field=field_name(path))
    if depth > limits.max_document_depth or count[0] > limits.max_document_nodes:
        raise SpecError(f"the spec is nested too deeply or too large: more than {limits.max_document_depth} "
                        f"levels (max_document_depth) or {limits.max_document_nodes:,} entries "
                        "(max_document_nodes)", field=field_name(path))
    if isinstance(value, np.ndarray):
        if value.size > limits.max_document_nodes:  # before tolist() makes a Python object of each
            raise SpecError(f"an array of {value.size:,} entries; the limit is {limits.max_document_nodes:,} "
                            "(max_document_nodes)", field=field_name(path))
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SpecError(f"keys must be strings, got {key!r}", field=field_name(path))
            result[key] = _plain(item, path + (key,), depth + 1, count, limits)
        return result
    if isinstance(value, (list, tuple)):
        return [_plain(item, path + (i,), depth + 1, count, limits) for i, item in enumerate(value)]
    if isinstance(value, str) and len(value) > limits.max_text_bytes:
        raise SpecError(f"a string of {len(value):,} characters; the limit is {limits.max_text_bytes:,} "
                        "(max_text_bytes)", field=field_name(path))

    def fail(message: str) -> SpecError:
        return SpecError(message, field=field_name(path))

    return _check_scalar(value, fail)

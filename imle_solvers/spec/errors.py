"""The one error of the spec layer, and where in a source it points."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Location:
    """A place in a spec's source: 1-based ``line`` and ``column`` (None where unknown)."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file or "<spec>"] + [str(n) for n in (self.line, self.column) if n is not None]
        return ":".join(parts)


class SpecError(InvalidInputError):
    """A spec that cannot become an ILP: ``file:line:column: field: message``.

    Attributes:
        message: what is wrong, alone.
        file, line, column: where (1-based; None where unknown, e.g. a Python dict).
        field: the path of the offending entry, e.g. ``constraints[0].expr``.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.file = file
        self.line = line
        self.column = column
        where = str(Location(file, line, column))
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def __reduce__(self):  # keep the location across process boundaries
        return (_rebuild, (self.message, self.field, self.file, self.line, self.column))


def _rebuild(message: str, field: str | None, file: str | None, line: int | None, column: int | None) -> SpecError:
    return SpecError(message, field=field, file=file, line=line, column=column)


def field_name(path: tuple[str | int, ...]) -> str:
    """``("constraints", 0, "expr") -> "constraints[0].expr"``; the empty path is ``<root>``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"

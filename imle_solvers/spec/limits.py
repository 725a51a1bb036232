"""The limits that keep a broken or hostile spec from hanging or exhausting memory,
in one place, and how an error phrases its advice for each entry point."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import InvalidInputError


@dataclass(frozen=True)
class SpecLimits:
    """How large a spec may be and what it may expand to; anything larger is a :class:`SpecError`.

    The expansion of a constraint is computed from its parsed text and the set sizes
    *before* any row is built, so a spec asking for billions of rows is refused in
    milliseconds. Pass ``limits=SpecLimits(max_rows=...)`` to the loaders, the
    builder, ``ILP.from_yaml``/``from_dict`` and ``register_ilp``, or
    ``--limit max_rows=N`` to ``imle-solvers validate``/``solve``.

    Attributes:
        max_text_bytes: size of a spec file (bytes) or of any one string in a dict or
            builder call (characters).
        max_document_depth: nesting of mappings and lists in the document.
        max_document_nodes: entries in the document, counting each alias expansion.
        max_expression_depth: nesting of parentheses, unary signs, ``not`` operators, ``sum``
            bodies and index brackets in one expression.
        max_entries: the size of one set, and the entries of one constant or parameter array.
        max_variables: variables in all (the length of the flat ``x``).
        max_rows: constraint rows in all; a constraint's rows are the product of its
            ``for`` sets' sizes (an upper bound when an ``if`` filter drops some).
        max_nonzeros: constraint coefficients in all, counted as the variable references
            each row expands to (an upper bound of the matrix's nonzeros).
        max_terms: evaluation work in all: every number, name and operator of an
            expression counts 1, times the product of the sizes of the ``sum``\\ s and
            the ``for`` around it (filters included).
        max_tokens: numbers, names and operators written in all the spec's expressions
            together: parsing is bounded by this before any of it is expanded (a
            200,000-term sum written out is 1,000,000 tokens).
        max_seconds: wall-clock seconds to read and compile one spec (``inf``: no limit);
            the one limit that depends on the machine, a backstop for what the others
            admit on a slow or busy one.
    """

    max_text_bytes: int = 10_000_000
    max_document_depth: int = 64
    max_document_nodes: int = 1_000_000
    max_expression_depth: int = 100
    max_entries: int = 5_000_000
    max_variables: int = 5_000_000
    max_rows: int = 1_000_000
    max_nonzeros: int = 10_000_000
    max_terms: int = 20_000_000
    max_tokens: int = 1_000_000
    max_seconds: float = 120.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "max_seconds":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                    raise InvalidInputError(f"SpecLimits.max_seconds must be a positive number of seconds "
                                            f"(inf: no limit), got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"SpecLimits.{item.name} must be a non-negative integer, got {value!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The limits' names, in declaration order."""
        return tuple(item.name for item in fields(cls))


DEFAULT_LIMITS = SpecLimits()

from ..problems.ilp_instances import SOLVER_INFINITY  # noqa: E402  (defined beside the checks of instances)
_EXACT = 2 ** 53  # every integer up to this is a float64; beyond it, only some are


def inexact_integer(value: int) -> bool:
    """Whether float64, which every number of a program becomes, would change ``value``."""
    return abs(value) > _EXACT and int(float(value)) != value


def inexact_message(text: str) -> str:
    """Why an integer written in a spec is refused."""
    return (f"the integer {text} has no exact float64 (the numbers of a program are float64: beyond 2**53 "
            "only some integers are); write a number float64 holds")


@dataclass(frozen=True)
class Hints:
    """How an error's advice names the fix, for the caller that will read it.

    Each is a ``str.format`` template: ``param`` gets ``name`` (a missing parameter),
    ``limit`` gets ``name`` and ``value`` (a limit to raise), ``bind`` gets ``index``
    and ``set`` (an index used without being bound).
    """

    param: str = "load_yaml(path, {name}=...)"
    limit: str = "limits=SpecLimits({name}={value})"
    bind: str = "for: {index} in {set}"


PYTHON_YAML = Hints()
PYTHON_DICT = Hints(param="load_dict(spec, {name}=...)")
PYTHON_BUILDER = Hints(param="add_parameter({name!r}, ...)", bind='for_each="{index} in {set}"')
CLI = Hints(param="--param {name}=VALUE", limit="--limit {name}={value}")


def named_hints(registered: str) -> Hints:
    """Hints for a spec compiled by ``named_ilp(registered, ...)``."""
    return Hints(param=f"named_ilp({registered!r}, {{name}}=...)")
ILP_YAML = Hints(param="ILP.from_yaml(path, {name}=...)")
ILP_DICT = Hints(param="ILP.from_dict(spec, {name}=...)")

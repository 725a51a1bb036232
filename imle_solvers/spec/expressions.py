"""The expression language of specs: a tokenizer and a recursive-descent parser.

Grammar (``docs/spec.md`` explains it with examples)::

    constraint := expr relation expr [relation expr]
    relation   := "<=" | ">=" | "==" | "="
    bindings   := binding ("," binding)* ["if" condition]
    binding    := NAME "in" NAME
    condition  := conjunct ("or" conjunct)*
    conjunct   := negation ("and" negation)*
    negation   := "not" negation | "(" condition ")" | comparison
    comparison := expr ("<" | "<=" | ">" | ">=" | "==" | "!=") expr
    expr       := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("+" | "-") unary | primary
    primary    := NUMBER | "(" expr ")" | "sum" "(" bindings ")" term
                | NAME ["[" expr ("," expr)* "]"]

``sum`` takes the *term* after it, as in AMPL: ``sum(i in I) w[i] * x[i] + 1``
adds 1 once. An ``if`` after the bindings (of a ``for`` or a ``sum``) keeps only the
assignments for which the condition holds: ``s in shifts if s + 1 < n``; ``not`` binds
tighter than ``and``, which binds tighter than ``or``, as in Python. A ``(`` where a
condition starts opens a condition when a comparison, ``and``, ``or`` or ``not`` stands
at its own level (``(i < 2 or i > 5) and j != i``), else an expression (``(i + 1) * 2
< n``): one pass over the tokens decides, with no backtracking. The
parser only builds a tree; nothing is evaluated here, and nothing is ever
evaluated as Python. Its recursion is bounded by ``max_depth`` levels of nesting,
so that a hostile expression gets an error rather than Python's recursion limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Union

from .clock import CHECK_EVERY, out_of_time
from .limits import inexact_integer, inexact_message


class ExprError(Exception):
    """A problem at character ``offset`` (0-based) of an expression."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class Token(NamedTuple):  # a tuple: a spec may hold millions, and they are made fast
    kind: str  # "number", "name", "op", "end"
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    offset: int


@dataclass(frozen=True, slots=True)
class Ref:
    """``name`` or ``name[i, j]``; ``indices`` is None without brackets."""

    name: str
    indices: tuple[Expr, ...] | None
    offset: int


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # "+", "-", "*", "/"
    left: Expr
    right: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Binding:
    """``index in set``; ``offset`` is the index's position, ``set_offset`` the set's."""

    index: str
    set: str
    offset: int
    set_offset: int


@dataclass(frozen=True, slots=True)
class Condition:
    """``left op right``, a comparison of numbers (no variables) in an ``if`` filter."""

    left: Expr
    op: str  # "<", "<=", ">", ">=", "==", "!="
    right: Expr
    offset: int  # the operator's


@dataclass(frozen=True, slots=True)
class Not:
    """``not operand``."""

    operand: Filter
    offset: int  # where the 'not' is


@dataclass(frozen=True, slots=True)
class Logical:
    """``operands[0] op operands[1] op ...``: all of them hold (``and``) or one does (``or``)."""

    op: str  # "and", "or"
    operands: tuple[Filter, ...]
    offset: int  # the first operator's


Filter = Union[Condition, Not, Logical]


@dataclass(frozen=True, slots=True)
class Quantifier:
    """``i in I, j in J if condition``: the assignments of the bound indices, row-major,
    for which ``condition`` holds (None: all of them)."""

    bindings: tuple[Binding, ...]
    condition: Filter | None = None


def comparisons(condition: Filter | None) -> list[Condition]:
    """The comparisons of a filter, left to right (a walk with a stack: an ``and`` chain is
    flat, but a hostile filter may be long)."""
    found, stack = [], [] if condition is None else [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, Condition):
            found.append(node)
        elif isinstance(node, Not):
            stack.append(node.operand)
        else:
            stack.extend(reversed(node.operands))
    return found


@dataclass(frozen=True, slots=True)
class Sum:
    quantifier: Quantifier
    body: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Relation:
    """``terms[0] ops[0] terms[1] (ops[1] terms[2])``."""

    terms: tuple[Expr, ...]
    ops: tuple[str, ...]
    offsets: tuple[int, ...]


Expr = Union[Number, Ref, Negate, Binary, Sum]

MAX_NESTING = 100  # the default of SpecLimits.max_expression_depth
KEYWORDS = frozenset({"sum", "in", "if", "and", "or", "not"})
_LOGICAL = frozenset({"and", "or", "not"})
_INSTEAD = {"&": "and", "|": "or", "!": "not"}  # what a programmer may type for the words
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
_TOKEN = re.compile(
    r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|[-+*/()\[\],:=<>])"
    r"|(?P<space>\s+)"
    r"|(?P<bad>.)",
    re.DOTALL,
)
RELATIONS = ("<=", ">=", "==", "=")


@dataclass(slots=True)
class TokenBudget:
    """The tokens a spec's expressions may still hold (``SpecLimits.max_tokens``): each
    :func:`tokenize` spends its own, so parsing is bounded before anything is built."""

    left: int
    total: int

    @classmethod
    def of(cls, max_tokens: int) -> TokenBudget:
        return cls(max_tokens, max_tokens)


def tokenize(text: str, budget: TokenBudget | None = None) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token, spending ``budget`` (None:
    no limit); past it, or past the spec's time budget, an error at the token reached."""
    tokens: list[Token] = []
    append = tokens.append
    limit = len(text) + 1 if budget is None else budget.left
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "space":
            continue
        if kind == "bad":
            instead = _INSTEAD.get(match.group())
            hint = f" (a condition says {instead!r})" if instead else ""
            raise ExprError(f"unexpected character {match.group()!r}{hint}", match.start())
        count = len(tokens)
        if count >= limit:
            assert budget is not None
            raise ExprError(f"more than {budget.total:,} tokens (numbers, names, operators) in the spec's "
                            "expressions (max_tokens); write long sums with sum(...) over sets", match.start())
        if count % CHECK_EVERY == CHECK_EVERY - 1 and (late := out_of_time()) is not None:
            raise ExprError(late, match.start())
        append(Token(kind, match.group(), match.start()))
    if budget is not None:
        budget.left -= len(tokens)
    append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, max_depth: int = MAX_NESTING, budget: TokenBudget | None = None) -> None:
        self.tokens = tokenize(text, budget)
        self.position = 0
        self.depth = 0
        self.max_depth = max_depth
        self.expressions = 0
        self._logical_groups: set[int] | None = None  # see logical_group

    @property
    def token(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.token
        self.position += 1
        return token

    def accept(self, *texts: str) -> Token | None:
        if self.token.kind == "op" and self.token.text in texts:
            return self.advance()
        return None

    def expect(self, text: str) -> Token:
        token = self.accept(text)
        if token is None:
            raise ExprError(f"expected {text!r}, found {self._describe(self.token)}", self.token.offset)
        return token

    def name(self, what: str) -> Token:
        token = self.token
        if token.kind != "name" or token.text in KEYWORDS:
            raise ExprError(f"expected {what}, found {self._describe(token)}", token.offset)
        return self.advance()

    def finish(self) -> None:
        if self.token.kind != "end":
            raise ExprError(f"unexpected {self._describe(self.token)}", self.token.offset)

    @staticmethod
    def _describe(token: Token) -> str:
        return "the end" if token.kind == "end" else repr(token.text)

    # -- grammar -----------------------------------------------------------------
    def relation(self) -> Relation:
        terms, ops, offsets = [self.expr()], [], []
        while self.token.kind == "op" and self.token.text in ("<=", ">=", "==", "=", "<", ">", "!="):
            token = self.advance()
            if token.text not in RELATIONS:
                raise ExprError(f"{token.text!r} is not allowed; use <=, >= or ==", token.offset)
            ops.append("==" if token.text == "=" else token.text)
            offsets.append(token.offset)
            terms.append(self.expr())
        if not ops:
            raise ExprError(f"expected a comparison (<=, >=, ==), found {self._describe(self.token)}", self.token.offset)
        if len(ops) > 2:
            raise ExprError("at most two comparisons, as in 'lo <= expr <= hi'", offsets[2])
        return Relation(tuple(terms), tuple(ops), tuple(offsets))

    def quantifier(self) -> Quantifier:
        result = [self.binding()]
        while self.accept(","):
            result.append(self.binding())
        condition = self.condition() if self.keyword("if") else None
        return Quantifier(tuple(result), condition)

    def keyword(self, word: str) -> Token | None:
        if self.token.kind == "name" and self.token.text == word:
            return self.advance()
        return None

    def condition(self) -> Filter:
        return self.logical("or", self.conjunct)

    def conjunct(self) -> Filter:
        return self.logical("and", self.negation)

    def logical(self, word: str, operand: Callable[[], Filter]) -> Filter:
        """``operand (word operand)*``, flat: a chain of a thousand ``or`` is one node."""
        first = operand()
        token = self.keyword(word)
        if token is None:
            return first
        operands = [first, operand()]
        while self.keyword(word):
            operands.append(operand())
        return Logical(word, tuple(operands), token.offset)

    def negation(self) -> Filter:
        token = self.keyword("not")
        if token is not None:
            with self.nested(token.offset):
                return Not(self.negation(), token.offset)
        token = self.token
        if token.kind == "op" and token.text == "(" and self.logical_group(self.position):
            self.advance()
            with self.nested(token.offset):
                inner = self.condition()
            self.expect(")")
            after = self.token
            if after.kind == "op" and after.text not in (")", ","):  # ',': the error after the filter
                raise ExprError(f"a condition in parentheses is true or false, not a number: it cannot be followed "
                                f"by {after.text!r}; compare numbers inside it", after.offset)
            return inner
        return self.comparison()

    def comparison(self) -> Condition:
        left = self.expr()
        token = self.token
        if token.kind != "op" or token.text not in COMPARISONS + ("=",):
            raise ExprError(f"expected a comparison (<, <=, >, >=, ==, !=) in the 'if' condition, "
                            f"found {self._describe(token)}", token.offset)
        self.advance()
        condition = Condition(left, "==" if token.text == "=" else token.text, self.expr(), token.offset)
        after = self.token
        if after.kind == "op" and after.text in COMPARISONS + ("=",):
            raise ExprError(f"a comparison cannot be chained in a condition; join two with 'and', as in "
                            f"'a {token.text} b and b {after.text} c'", after.offset)
        return condition

    def logical_group(self, position: int) -> bool:
        """Whether the ``(`` at token ``position`` opens a condition rather than an
        expression: a comparison, ``and``, ``or`` or ``not`` stands at its own level, or a
        group directly inside it is one. Found for every ``(`` in one pass over the tokens,
        the first time a condition starts with one."""
        if self._logical_groups is None:
            found: set[int] = set()
            stack: list[int] = []  # positions of the open groups; -1 for a '[' or the '(' of a sum
            for at, token in enumerate(self.tokens):
                if token.kind == "op" and token.text in ("(", "["):
                    before = self.tokens[at - 1] if at else None
                    call = token.text == "[" or (before is not None and before.kind == "name" and before.text == "sum")
                    stack.append(-1 if call else at)
                elif token.kind == "op" and token.text in (")", "]"):
                    closed = stack.pop() if stack else -1
                    if closed in found and stack and stack[-1] >= 0:
                        found.add(stack[-1])  # '((i < 2))': the outer group holds a condition too
                elif stack and stack[-1] >= 0 and ((token.kind == "op" and token.text in COMPARISONS + ("=",))
                                                   or (token.kind == "name" and token.text in _LOGICAL)):
                    found.add(stack[-1])
            self._logical_groups = found
        return position in self._logical_groups

    def binding(self) -> Binding:
        index = self.name("an index name")
        if not (self.token.kind == "name" and self.token.text == "in"):
            raise ExprError(f"expected 'in', found {self._describe(self.token)}", self.token.offset)
        self.advance()
        set_name = self.name("a set name")
        return Binding(index.text, set_name.text, index.offset, set_name.offset)

    def nested(self, offset: int) -> _Parser:
        """One level deeper into the expression, for a ``with`` block: refused past
        ``max_depth``, so that a hostile spec gets an error rather than Python's recursion
        limit. (The parser is its own context manager: a generator-based one costs a
        microsecond a level, for every term of a long sum.)"""
        self.depth += 1
        if self.depth > self.max_depth:
            raise ExprError(f"the expression is nested more than {self.max_depth} levels deep "
                            "(max_expression_depth)", offset)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self.depth -= 1

    def expr(self) -> Expr:
        self.expressions += 1
        if self.expressions % CHECK_EVERY == 0 and (late := out_of_time()) is not None:
            raise ExprError(late, self.token.offset)
        with self.nested(self.token.offset):
            node = self.term()
            while (token := self.accept("+", "-")) is not None:
                node = Binary(token.text, node, self.term(), token.offset)
        return node

    def term(self) -> Expr:
        node = self.unary()
        while (token := self.accept("*", "/")) is not None:
            node = Binary(token.text, node, self.unary(), token.offset)
        return node

    def unary(self) -> Expr:
        token = self.accept("+", "-")
        if token is None:
            return self.primary()
        with self.nested(token.offset):
            operand = self.unary()
        return operand if token.text == "+" else Negate(operand, token.offset)

    def primary(self) -> Expr:
        token = self.token
        if token.kind == "number":
            self.advance()
            value = float(token.text)
            if not math.isfinite(value):
                raise ExprError(f"the number {token.text} is too large", token.offset)
            if token.text.isdigit() and len(token.text) > 15 and inexact_integer(int(token.text)):
                raise ExprError(inexact_message(token.text), token.offset)
            return Number(value, token.offset)
        if self.accept("("):
            node = self.expr()
            self.expect(")")
            return node
        if token.kind == "name" and token.text == "sum":
            self.advance()
            self.expect("(")
            with self.nested(token.offset):  # a condition holds expressions
                quantifier = self.quantifier()
            self.expect(")")
            with self.nested(token.offset):
                body = self.term()
            return Sum(quantifier, body, token.offset)
        name = self.name("a number, a name, 'sum' or '('")
        if not self.accept("["):
            return Ref(name.text, None, name.offset)
        with self.nested(name.offset):
            indices = [self.expr()]
            while self.accept(","):
                indices.append(self.expr())
        self.expect("]")
        return Ref(name.text, tuple(indices), name.offset)


def start(expr: Expr) -> int:
    """The offset of the first character of ``expr`` (a binary node's own offset is its operator's)."""
    while isinstance(expr, Binary):
        expr = expr.left
    return expr.offset


def _parse(text: str, rule: str, max_depth: int, budget: TokenBudget | None):
    parser = _Parser(text, max_depth, budget)
    try:
        result = getattr(parser, rule)()
    except RecursionError:  # only when max_depth is set above what Python's stack allows
        raise ExprError("the expression is nested too deeply for Python's recursion limit", 0) from None
    parser.finish()
    return result


def parse_relation(text: str, max_depth: int = MAX_NESTING, budget: TokenBudget | None = None) -> Relation:
    """Parse a constraint such as ``sum(i in items) w[i] * x[i] <= capacity``."""
    return _parse(text, "relation", max_depth, budget)


def parse_expression(text: str, max_depth: int = MAX_NESTING, budget: TokenBudget | None = None) -> Expr:
    """Parse a linear expression such as ``sum(j in jobs) cost[j] * y[j]``."""
    return _parse(text, "expr", max_depth, budget)


def parse_quantifier(text: str, max_depth: int = MAX_NESTING, budget: TokenBudget | None = None) -> Quantifier:
    """Parse quantifiers such as ``g in groups, t in slots if t > 0``."""
    return _parse(text, "quantifier", max_depth, budget)

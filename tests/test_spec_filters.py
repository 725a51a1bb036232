"""``if`` filters with ``and``, ``or``, ``not`` and parentheses: the rows kept are exactly
those for which the same condition holds in Python (whose ``not`` > ``and`` > ``or``
precedence the grammar shares), and what stays unsupported is refused, located."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from imle_solvers.spec import ILPBuilder, SpecError, SpecLimits, load_dict, load_yaml
from imle_solvers.spec.expressions import ExprError, parse_quantifier

W = [3, 0, 2, 5, 1]  # a constant over I, read by conditions as w[i]
SIZES = {"I": len(W), "J": 4}


def _spec(for_: str, expr: str = "x[i, j] <= 1", **extra) -> dict:
    return {"constants": {"w": W, "n": 3}, "sets": dict(SIZES), "variables": {"x": {"over": ["I", "J"]}},
            "constraints": [{"name": "keep", "for": for_, "expr": expr}], "objective": {"sense": "max", "theta": "x"},
            **extra}


def _kept(condition: str) -> list[tuple[int, int]]:
    """The ``(i, j)`` that a spec's ``for: i in I, j in J if condition`` keeps, read from its row names."""
    ilp = load_dict(_spec(f"i in I, j in J if {condition}"))
    return [tuple(int(part.split("=")[1]) for part in name[5:-1].split(", ")) for name in ilp.constraint_names]


def _brute_force(condition: str) -> list[tuple[int, int]]:
    """The same condition evaluated by Python itself over every assignment, row-major."""
    code = compile(condition, "<condition>", "eval")
    return [(i, j) for i, j in itertools.product(range(SIZES["I"]), range(SIZES["J"]))
            if eval(code, {"__builtins__": {}}, {"i": i, "j": j, "w": W, "n": 3})]


ATOMS = ["i < 2", "j >= 2", "i == j", "w[i] > 1", "i + j != 3", "(i + 1) * 2 <= n + j", "w[i] - j == 0",
         "j != 0", "i > n"]


def _random_condition(rng: random.Random, depth: int = 0) -> str:
    """A condition of atoms joined by and/or, some negated, some parenthesised: written
    flat, so that precedence decides how it groups."""
    parts = []
    for position in range(rng.randint(1, 4)):
        if depth < 2 and rng.random() < 0.3:
            part = f"({_random_condition(rng, depth + 1)})"
        else:
            part = rng.choice(ATOMS)
        part = "not " * rng.choice([0, 0, 1, 2]) + part
        parts.append(part if position == 0 else f"{rng.choice(['and', 'or'])} {part}")
    return " ".join(parts)


@pytest.mark.parametrize("condition", [
    "i < 2 or j == 3",
    "not i < 2",
    "not (i < 2 or j == 3)",
    "i < 2 or j == 3 and w[i] > 1",           # and binds tighter: i < 2 or (j == 3 and w[i] > 1)
    "(i < 2 or j == 3) and w[i] > 1",
    "not i < 2 and j == 3",                   # not binds tighter: (not i < 2) and j == 3
    "not not i < 2",
    "((i < 2))",
    "(i + 1) * 2 <= n + j or not (w[i] > 1 and (j == 0 or j == 2))",
    "i < 2 and j < 2 and i != j or i > 3",
])
def test_a_filter_keeps_what_python_keeps(condition):
    assert _kept(condition) == _brute_force(condition)


def test_random_filters_keep_what_python_keeps():
    rng = random.Random(20)
    for _ in range(150):
        condition = _random_condition(rng)
        assert _kept(condition) == _brute_force(condition), condition


def test_a_sum_filter_and_the_builder_take_the_same_conditions():
    b = ILPBuilder("filters")
    b.add_set("I", len(W))
    b.add_parameter("w", W, over=["I"])
    b.add_variable("x", over=["I"])
    b.add_constraint("sum(i in I if not (w[i] == 0 or i == 4)) x[i] <= 2", name="some")
    b.add_constraint("x[i] <= 0", for_each="i in I if i == 0 or not w[i] > 1", name="off")
    b.set_objective("max", theta="x")
    ilp = b.build()
    assert ilp.constraints.toarray()[0].tolist() == [1.0 if not (w == 0 or i == 4) else 0.0 for i, w in enumerate(W)]
    assert ilp.constraint_names[1:] == tuple(f"off[i={i}]" for i, w in enumerate(W) if i == 0 or not w > 1)


def test_or_and_and_stop_at_the_operand_that_decides():
    # w[i - 1] at i = 0 would be out of range: the first operand decides first
    assert _kept("i == 0 or w[i - 1] > 1") == [(i, j) for i in range(5) for j in range(4) if i == 0 or W[i - 1] > 1]
    assert _kept("i > 0 and w[i - 1] > 1") == [(i, j) for i in range(5) for j in range(4) if i > 0 and W[i - 1] > 1]


def test_a_parenthesised_expression_is_still_an_expression():
    assert _kept("(i + j) * 2 < n") == _brute_force("(i + j) * 2 < n")
    assert _kept("(sum(k in J if k < j or k == 3) w[k]) > 4") == \
        [(i, j) for i in range(5) for j in range(4) if sum(W[k] for k in range(4) if k < j or k == 3) > 4]


@pytest.mark.parametrize(("for_", "at", "message"), [
    # what stays unsupported, each at its place in the 'for' text (``at``: the text there; "": the end)
    ("i in I, j in J if i >= 0 or x[i, j] > 0", "> 0",
     "an 'if' condition compares numbers; it cannot depend on variables"),   # even where 'or' never reaches it
    ("i in I, j in J if not sum(k in J) x[i, k] >= 1", ">= 1",
     "an 'if' condition compares numbers; it cannot depend on variables"),
    ("i in I, j in J if 0 < i < 3", "< 3",
     "a comparison cannot be chained in a condition; join two with 'and', as in 'a < b and b < c'"),
    ("i in I, j in J if (i < 2) + 1 > 0", "+ 1",
     "a condition in parentheses is true or false, not a number: it cannot be followed by '+'; "
     "compare numbers inside it"),
    ("i in I, j in J if i < 2 || j > 1", "||", "unexpected character '|' (a condition says 'or')"),
    ("i in I, j in J if i < 2 && j > 1", "&&", "unexpected character '&' (a condition says 'and')"),
    ("i in I, j in J if !(i < 2)", "!", "unexpected character '!' (a condition says 'not')"),
    ("i in I, j in J if i < 2 or", "", "expected a number, a name, 'sum' or '(', found the end"),
    ("i in I, j in J if not", "", "expected a number, a name, 'sum' or '(', found the end"),
    ("i in I, j in J if (i < 2 or j > 1", "", "expected ')', found the end"),
    ("i in I, j in J if i or j", "or", "expected a comparison (<, <=, >, >=, ==, !=) in the 'if' condition, "
                                       "found 'or'"),
])
def test_what_stays_unsupported_is_refused_where_it_is_written(tmp_path, for_, at, message):
    path = tmp_path / "filters.yaml"
    prefix = "  - for: "
    path.write_text("sets: {I: 5, J: 4}\n"
                    "variables:\n"
                    "  x: {over: [I, J]}\n"
                    "constraints:\n"
                    f"{prefix}{for_}\n"
                    "    expr: x[i, j] <= 1\n"
                    "objective: {sense: max, theta: x}\n")
    column = len(prefix) + (for_.rindex(at) if at else len(for_)) + 1
    with pytest.raises(SpecError) as info:
        load_yaml(path)
    error = info.value
    assert (error.line, error.column, error.field, error.message) == (5, column, "constraints[0].for", message)
    assert str(error) == f"{path}:5:{column}: constraints[0].for: {message}"


def test_a_batched_parameter_in_any_operand_is_refused_at_its_name():
    for_each = "i in I if i == 0 or not cap > i"
    b = ILPBuilder()
    b.add_parameter("cap", default=2, batched=True)
    b.add_set("I", 5)
    b.add_variable("x", over=["I"])
    with pytest.raises(SpecError) as info:
        b.add_constraint("x[i] <= 1", for_each=for_each)
    assert (info.value.field, info.value.column) == ("for", for_each.index("cap") + 1)
    assert info.value.message.startswith("an 'if' condition cannot depend on the batched parameter 'cap'")


@pytest.mark.parametrize("word", ["or", "not"])
def test_the_new_words_are_reserved(word):
    with pytest.raises(SpecError, match=f"'{word}' is not a valid name"):
        load_dict({**_spec("i in I, j in J"), "sets": {**SIZES, word: 2}})
    with pytest.raises(SpecError, match=f"'{word}' is not a valid name"):
        ILPBuilder().add_set(word, 2)


def test_the_limits_hold_for_the_new_grammar():
    # nesting: 'not' and parentheses count as levels, an error rather than Python's recursion limit
    for text in ("i in I if " + "not " * 5000 + "i < 1", "i in I if " + "(" * 5000 + "i < 1" + ")" * 5000):
        with pytest.raises(ExprError, match="nested more than 100 levels deep"):
            parse_quantifier(text)
    with pytest.raises(SpecError, match=r"nested more than 3 levels deep \(max_expression_depth\)"):
        load_dict(_spec("i in I, j in J if not not not not i < 1"), limits=SpecLimits(max_expression_depth=3))
    # a long 'or' chain is flat: one level, however long, and its tokens count against max_tokens
    chain = " or ".join(f"i == {k}" for k in range(2000))
    assert len(_kept(chain)) == 20
    with pytest.raises(SpecError, match=r"more than 5,000 tokens .*\(max_tokens\)"):
        load_dict(_spec(f"i in I, j in J if {chain}"), limits=SpecLimits(max_tokens=5000))
    # every comparison counts in the estimate (an upper bound where 'or' stops sooner), before any row is built
    with pytest.raises(SpecError, match=r"constraint 'keep' would expand to [\d,]+ terms") as info:
        load_dict(_spec(f"i in I, j in J if {chain}"), limits=SpecLimits(max_terms=10_000))
    assert info.value.field == "constraints[0].expr"
    # the time budget stops a filter's evaluation too, at the 'for'
    builder = ILPBuilder(limits=SpecLimits(max_seconds=1e-9))
    builder.add_set("I", 10_000)
    builder.add_variable("x", over=["I"])
    with pytest.raises(SpecError, match=r"took more than 1e-09 s \(max_seconds\)") as info:
        builder.add_constraint("x[i] <= 1", for_each="i in I if i < 0 or not (i > 5000 and i != 7000)")
    assert info.value.field == "for"


def test_the_schema_reserves_the_parsers_words():
    from imle_solvers.spec.expressions import KEYWORDS
    from imle_solvers.spec.schema import ilp_schema

    assert set(ilp_schema()["$defs"]["identifier"]["not"]["enum"]) == KEYWORDS


def test_filters_of_the_examples_still_load():
    ilp = load_yaml(Path(__file__).resolve().parents[1] / "examples" / "specs" / "rota.yaml")
    names = [n for n in ilp.constraint_names if n.startswith("rest")]
    assert names and np.all(ilp.row_upper[[ilp.constraint_names.index(n) for n in names]] == 1)

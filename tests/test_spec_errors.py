"""Broken specs: a corpus where each file says where its error is, targeted cases,
and a fuzzer of random spec trees (a SpecError or a model, nothing else, no hang)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imle_solvers.problems.ilp import ILP
from imle_solvers.spec import ILPBuilder, SpecError, load_dict, load_yaml
from imle_solvers.spec.compiler import compile_spec
from imle_solvers.spec.source import from_yaml_text

BROKEN = sorted((Path(__file__).parent / "specs_broken").glob("*.yaml"))
EXPECT = re.compile(r"# expect: line (\d+), column (\d+)(?:, field (\S+))?, message (.+)")


def test_the_corpus_is_large_enough():
    assert len(BROKEN) >= 30


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_each_broken_spec_fails_where_it_says(path: Path):
    match = EXPECT.fullmatch(path.read_text().splitlines()[0])
    assert match, f"{path.name}: first line must be '# expect: line L, column C[, field F], message M'"
    line, column, field, message = int(match[1]), int(match[2]), match[3], match[4]
    with pytest.raises(SpecError) as info:
        load_yaml(path)
    error = info.value
    assert (error.file, error.line, error.column, error.field) == (str(path), line, column, field)
    assert message in error.message
    assert str(error).startswith(f"{path}:{line}:{column}: ")


def test_errors_in_a_dict_name_the_field():
    spec = {"variables": {"x": {"over": ["items"]}}, "objective": {"sense": "max", "theta": "x"}}
    with pytest.raises(SpecError, match="unknown set 'items'") as info:
        load_dict(spec)
    assert (info.value.field, info.value.line, info.value.file) == ("variables.x.over[0]", None, None)
    with pytest.raises(SpecError, match="keys must be strings"):
        load_dict({"variables": {1: {}}, "objective": {"sense": "max", "theta": "x"}})
    with pytest.raises(SpecError, match="a spec is a mapping"):
        load_dict(["variables"])  # type: ignore[arg-type]


def test_builder_errors_name_the_argument_and_column():
    b = ILPBuilder()
    b.add_set("items", 3)
    b.add_variable("x", over=["items"])
    with pytest.raises(SpecError) as info:
        b.add_constraint("sum(i in items) x[i] * x[i] <= 1")
    assert (info.value.field, info.value.column) == ("expr", 22)
    with pytest.raises(SpecError, match="already declared"):
        b.add_variable("x")
    with pytest.raises(SpecError, match="unknown set"):
        b.add_constraint("x[g] <= 1", for_each="g in groups")
    with pytest.raises(SpecError, match="dimension mismatch"):
        b.add_constraint({"x": [1, 2]}, upper=1)
    with pytest.raises(SpecError, match="no objective"):
        b.build()
    with pytest.raises(SpecError, match="over lists names of sets declared with add_set, got 3") as info:
        b.add_variable("y", over=(3,))
    assert info.value.field == "over[0]"
    with pytest.raises(SpecError, match="coefficients must be finite") as info:
        b.set_objective("max", "x", fixed={"x": [np.inf, 1.0, np.nan]})
    assert info.value.field == "fixed"
    with pytest.raises(SpecError, match="coefficients must be finite"):
        b.set_objective("max", "x", fixed={"x": [1.0, np.nan, 0.0]})  # a NaN alone, not only inf


def test_a_huge_sum_is_refused_not_run(monkeypatch):
    import imle_solvers.spec.linear as linear

    monkeypatch.setattr(linear, "MAX_STEPS", 10_000)
    spec = {"sets": {"a": 1000}, "variables": {"x": {"over": ["a"]}}, "objective": {"sense": "max", "theta": "x"},
            "constraints": ["sum(i in a) sum(j in a) x[i] <= 1"]}
    with pytest.raises(SpecError, match="too large"):
        load_dict(spec)


def test_an_alias_bomb_is_refused():
    text = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        text += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    with pytest.raises(SpecError, match="too deeply or too large"):
        compile_spec(from_yaml_text(text, "bomb.yaml"), {})


# -- the fuzzer -------------------------------------------------------------------------

GOOD = ["x", "y", "items", "slots", "w", "cap"]
GOOD_NAMES = st.sampled_from(GOOD)
NAMES = st.sampled_from(GOOD * 8 + ["i", "j", "sum", "in", "2x", ""])  # mostly valid names
TOKENS = st.sampled_from(["x", "y", "w", "cap", "i", "j", "items", "slots", "sum", "(", ")", "[", "]", ",", "in",
                          "+", "-", "*", "/", "<=", ">=", "==", "<", "0", "1", "2.5", "1e400", ":", "@", " "])
EXPRESSIONS = st.one_of(
    st.lists(TOKENS, max_size=14).map(" ".join),
    st.sampled_from(["sum(i in items) w[i] * x[i] <= cap", "x[i] + y <= 1", "sum(i in items) x[i] == 2",
                     "0 <= x[0] - x[1] <= 1", "x[i + 1] >= x[i]", "x[i] * x[i] <= 1"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 6), st.floats(allow_nan=False, width=32), NAMES,
                    EXPRESSIONS)
JUNK = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                        st.dictionaries(NAMES, children, max_size=4)), max_leaves=12)
TENSORS = st.one_of(st.integers(-2, 5), st.lists(st.integers(-2, 5), max_size=4),
                    st.lists(st.lists(st.integers(0, 3), max_size=3), max_size=3))
VARIABLES = st.fixed_dictionaries({}, optional={
    "over": st.lists(NAMES, max_size=2), "type": st.sampled_from(["binary", "integer", "continuous", "bool"]),
    "lower": st.one_of(st.integers(-2, 2), NAMES), "upper": st.one_of(st.integers(-2, 4), NAMES)})
CONSTRAINTS = st.one_of(EXPRESSIONS, st.fixed_dictionaries(
    {"expr": EXPRESSIONS}, optional={"for": st.sampled_from(["i in items", "i in slots, j in items", "i items", "q in nowhere", "x in items"]),
                                     "name": NAMES}))
SPECS = st.fixed_dictionaries(
    {
        "sets": st.dictionaries(NAMES, st.one_of(st.integers(-1, 4), NAMES), max_size=3),
        "variables": st.dictionaries(NAMES, VARIABLES, min_size=1, max_size=3),
        "objective": st.fixed_dictionaries({"sense": st.sampled_from(["max", "min"]), "theta": GOOD_NAMES},
                                           optional={"fixed": EXPRESSIONS}),
    },
    optional={
        "constants": st.dictionaries(NAMES, TENSORS, max_size=3),
        "params": st.dictionaries(NAMES, st.fixed_dictionaries({}, optional={
            "over": st.lists(NAMES, max_size=2), "default": TENSORS}), max_size=2),
        "constraints": st.lists(CONSTRAINTS, max_size=4),
        "name": JUNK,
    },
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _loads_or_spec_error(load) -> None:
    try:
        assert isinstance(load(), ILP)
    except SpecError as error:
        assert error.message and str(error)


@FUZZ
@given(SPECS)
def test_random_spec_trees_load_or_raise_a_spec_error(spec):
    _loads_or_spec_error(lambda: load_dict(spec))
    text = yaml.safe_dump(spec)
    _loads_or_spec_error(lambda: compile_spec(from_yaml_text(text, "fuzz.yaml"), {}))


@FUZZ
@given(JUNK)
def test_random_trees_of_any_shape_are_spec_errors(tree):
    _loads_or_spec_error(lambda: load_dict(tree) if isinstance(tree, dict) else load_dict({"spec": tree}))


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("abx:{}[]-,&*!|>'\" \n\t#0123456789.%@")), max_size=80))
def test_random_text_is_a_spec_error(text):
    _loads_or_spec_error(lambda: compile_spec(from_yaml_text(text, "fuzz.yaml"), {}))

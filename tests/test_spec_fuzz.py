"""Fuzzing the spec loader: whatever it is fed (random spec trees, random YAML text,
random bytes, valid specs with random edits), it returns an ILP or raises a
SpecError, never another exception, and never hangs.

The default run draws a few hundred examples of each (a few seconds); the slow
versions (``-m slow``) draw 10,000 of each.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imle_solvers.problems.ilp import ILP
from imle_solvers.spec import ILPBuilder, SpecError, SpecLimits, load_dict, load_yaml
from imle_solvers.spec.compiler import compile_spec
from imle_solvers.spec.source import from_yaml_text

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples" / "specs").glob("*.yaml"))
# small limits: a random spec that would be large is refused quickly, which is also under test
LIMITS = SpecLimits(max_rows=2_000, max_terms=200_000, max_nonzeros=20_000, max_entries=10_000,
                    max_variables=10_000)

# -- strategies: structurally plausible specs, most of them broken in some way ------------

GOOD = ["x", "y", "items", "slots", "w", "cap", "n"]
GOOD_NAMES = st.sampled_from(GOOD)
NAMES = st.sampled_from(GOOD * 40 + ["i", "j", "sum", "in", "if", "and", "2x", "", "x y"])  # mostly valid
TOKENS = st.sampled_from(
    ["x", "y", "w", "cap", "n", "i", "j", "items", "slots", "sum", "(", ")", "[", "]", ",", "in", "if", "and",
     "+", "-", "*", "/", "<=", ">=", "==", "=", "<", ">", "!=", "0", "1", "2.5", "1e400", "1e300", ":", "@", " "])
EXPRESSIONS = st.one_of(
    st.lists(TOKENS, max_size=16).map(" ".join),
    st.sampled_from([
        "sum(i in items) w[i] * x[i] <= cap", "x[i] + y <= 1", "sum(i in items) x[i] == 2", "0 <= x[0] - x[1] <= 1",
        "x[i + 1] >= x[i]", "x[i] * x[i] <= 1", "sum(i in items if i > 0) x[i] <= n", "x[i] + x[j] <= 1",
        "sum(i in items, j in slots if i != j) x[i] >= 1", "1e300 * 1e300 * x[0] <= 1", "x[0] / 0 <= 1",
        "((((x[0])))) <= 1", "-(-(-x[0])) >= -1", "x[n - 1] <= cap / 2", "x[0.5] <= 1", "x[-1] <= 1",
    ]),
    st.integers(1, 300).map(lambda k: " + ".join(["x[0]"] * k) + " <= 1"),  # long flat chains
    st.integers(1, 300).map(lambda k: "(" * k + "x[0]" + ")" * k + " <= 1"),  # deep nesting
)
FOR = st.one_of(
    st.sampled_from(["i in items", "i in slots, j in items", "i items", "q in nowhere", "x in items",
                     "i in items if i + 1 < n", "i in items, j in items if i < j and j != 2", "i in items if",
                     "i in items if x[i] > 0", "i in items if w[i] >= cap", "i in items, i in slots", ""]),
    st.lists(TOKENS, max_size=8).map(" ".join),
)
SIZES = st.one_of(st.integers(0, 4), st.integers(-1, 5), NAMES, st.sampled_from(["n - 1", "2 * n", "n / 2", "n * n * n * n", "x",
                                                               "w", "w[0]", "cap + 0.5", "1e400", "-n", "n -"]))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 6), st.floats(allow_nan=False, width=32), NAMES,
                    EXPRESSIONS)
JUNK = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                        st.dictionaries(NAMES, children, max_size=4)), max_leaves=12)
TENSORS = st.one_of(st.integers(-2, 5), st.lists(st.integers(-2, 5), max_size=4),
                    st.lists(st.lists(st.integers(0, 3), max_size=3), max_size=3), st.just(10 ** 400))
BOUNDS = st.one_of(st.integers(-2, 4), st.floats(allow_nan=False), NAMES, st.sampled_from(["n - 1", "-n", "x", "w"]))
VARIABLES = st.fixed_dictionaries({}, optional={
    "over": st.lists(st.sampled_from(["items", "slots"]) | NAMES, max_size=3),
    "type": st.sampled_from(["binary"] * 3 + ["integer", "continuous", "bool"]),
    "lower": BOUNDS, "upper": BOUNDS})
CONSTRAINTS = st.one_of(EXPRESSIONS, st.fixed_dictionaries(
    {"expr": EXPRESSIONS}, optional={"for": FOR, "name": NAMES, "description": st.text(max_size=5) | JUNK}))
SPEC_NAMES = st.one_of(GOOD_NAMES, st.text(max_size=8), JUNK)
SPECS = st.fixed_dictionaries(
    {
        "sets": st.dictionaries(st.sampled_from(["items", "slots"]) | NAMES, SIZES, max_size=3),
        "variables": st.dictionaries(st.sampled_from(["x", "y"]) | NAMES, VARIABLES, min_size=1, max_size=3),
        "objective": st.fixed_dictionaries({"sense": st.sampled_from(["max", "min"]), "theta": GOOD_NAMES},
                                           optional={"fixed": EXPRESSIONS}),
    },
    optional={
        "constants": st.dictionaries(st.sampled_from(["n", "cap", "w"]) | NAMES, TENSORS, max_size=3),
        "params": st.dictionaries(NAMES, st.fixed_dictionaries({}, optional={
            "over": st.lists(NAMES, max_size=2), "default": TENSORS}), max_size=3),
        "constraints": st.lists(CONSTRAINTS, max_size=4),
        "name": SPEC_NAMES,
    },
)
YAML_TEXT = st.text(alphabet=st.sampled_from(list("abx:{}[]-,&*!|>'\" \n\t#0123456789.%@?")), max_size=120)


@st.composite
def edited_examples(draw) -> bytes:
    """A valid example spec with a few random byte edits (deletions, insertions, replacements)."""
    data = bytearray(draw(st.sampled_from(EXAMPLES)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["delete", "insert", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b"[", b"{", b"-", b"*", b"\n  ", b": ",
                                                                           b"if ", b"999999", b"sum(", b"9" * 5000]))
        if kind == "delete":
            del data[position:position + len(chunk)]
        elif kind == "insert":
            data[position:position] = chunk
        else:
            data[position:position + len(chunk)] = chunk
    return bytes(data)


# -- the property ---------------------------------------------------------------------


def loads_or_spec_error(load) -> None:
    """``load()`` gives an ILP or raises a SpecError with a message; anything else fails the test."""
    try:
        result = load()
    except SpecError as error:
        assert error.message and str(error)
        return
    assert isinstance(result, ILP)


def check_tree(spec) -> None:
    loads_or_spec_error(lambda: load_dict(spec, limits=LIMITS))
    try:
        text = yaml.safe_dump(spec)
    except yaml.YAMLError:  # 10**400 and friends: not every tree can be written as YAML
        return
    loads_or_spec_error(lambda: compile_spec(from_yaml_text(text, "fuzz.yaml", LIMITS), {}, LIMITS))


def check_text(text: str) -> None:
    loads_or_spec_error(lambda: compile_spec(from_yaml_text(text, "fuzz.yaml", LIMITS), {}, LIMITS))


def check_bytes(data: bytes, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_bytes(data)
    loads_or_spec_error(lambda: load_yaml(path, limits=LIMITS))


def check_builder(expression: str, for_each: str | None) -> None:
    b = ILPBuilder(limits=LIMITS)
    b.add_set("items", 3)
    b.add_parameter("n", 3)
    b.add_parameter("w", [1, 2, 3])
    b.add_variable("x", over=["items"])
    b.add_variable("y", type="integer", upper=4)
    loads_or_spec_error(lambda: (b.add_constraint(expression, for_each=for_each), b.set_objective("max", "x"),
                                 b.build())[-1])


def fuzz(examples: int) -> settings:
    # no example database: several engineers run these tests at once in one checkout
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


SHORT, LONG = 200, 10_000


@fuzz(SHORT)
@given(SPECS)
def test_random_spec_trees_load_or_raise_a_spec_error(spec):
    check_tree(spec)


@pytest.mark.slow
@fuzz(LONG)
@given(SPECS)
def test_10000_random_spec_trees_load_or_raise_a_spec_error(spec):
    check_tree(spec)


@fuzz(SHORT)
@given(JUNK)
def test_random_trees_of_any_shape_are_spec_errors(tree):
    loads_or_spec_error(lambda: load_dict(tree) if isinstance(tree, dict) else load_dict({"spec": tree}))


@fuzz(SHORT)
@given(YAML_TEXT)
def test_random_yaml_text_is_a_spec_error(text):
    check_text(text)


@fuzz(SHORT)
@given(st.binary(max_size=300) | edited_examples())
def test_random_bytes_load_or_raise_a_spec_error(tmp_path_factory, data):
    check_bytes(data, tmp_path_factory)


@pytest.mark.slow
@fuzz(LONG)
@given(st.binary(max_size=300) | edited_examples())
def test_10000_random_byte_strings_load_or_raise_a_spec_error(tmp_path_factory, data):
    check_bytes(data, tmp_path_factory)


@fuzz(SHORT)
@given(EXPRESSIONS, st.none() | FOR)
def test_random_builder_constraints_add_rows_or_raise_a_spec_error(expression, for_each):
    check_builder(expression, for_each)


def test_the_crashes_the_fuzzer_found_are_spec_errors():
    """Inputs that once escaped as other exceptions (RecursionError, OverflowError)."""
    flat = {"variables": {"x": {}}, "objective": {"sense": "max", "theta": "x"},
            "constraints": [" + ".join(["x"] * 3000) + " <= 1"]}
    assert load_dict(flat).constraints.toarray().tolist() == [[3000.0]]  # long, not deep: it compiles
    for text in ("[" * 3000, "a: " + "{b: " * 3000, "- " * 3000 + "x"):
        with pytest.raises(SpecError, match="nested more than 64 levels deep"):
            from_yaml_text(text, "deep.yaml")
    overflow = {"sets": {"a": 10 ** 400}, "variables": {"x": {"upper": 10 ** 400}},
                "objective": {"sense": "max", "theta": "x"}}
    with pytest.raises(SpecError, match=r"sets.a: an integer of 1329 bits is too large \(beyond 1.8e308\)"):
        load_dict(overflow)
    with pytest.raises(SpecError, match="variables.x.upper: an integer of 1329 bits is too large"):
        load_dict({**overflow, "sets": {}})
    with pytest.raises(SpecError, match="sets.a: an integer of 16610 bits is too large"):
        load_dict({**overflow, "sets": {"a": -10 ** 5000}})  # more digits than Python prints by default
    with pytest.raises(SpecError, match=r"fuzz.yaml:1:4: a: cannot read the number: Exceeds the limit"):
        from_yaml_text("a: " + "9" * 5000, "fuzz.yaml")
    with pytest.raises(SpecError, match="params.p: a number is too large to be a float"):
        load_dict({**overflow, "sets": {}, "variables": {"x": {}}, "params": {"p": {}}}, p=10 ** 400)
    b = ILPBuilder()
    with pytest.raises(SpecError, match=r"a set size must be an integer in \[0, 5,000,000\] \(max_entries\), "
                                        r"got 100000000000\.\.\.\(401 digits\)"):
        b.add_set("a", 10 ** 400)
    with pytest.raises(SpecError, match="too large to be a finite number"):
        load_dict({"sets": {"a": 3}, "variables": {"x": {"over": ["a"]}}, "objective": {"sense": "max", "theta": "x"},
                   "constraints": ["x[1e300 * 1e300] <= 1"]})
    with pytest.raises(SpecError, match="too large to be a finite number"):
        load_dict({"variables": {"x": {}}, "objective": {"sense": "max", "theta": "x"},
                   "constraints": ["x <= 1e300 * 1e300"]})
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_yaml("nul\0byte.yaml")

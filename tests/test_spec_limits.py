"""Spec limits: a hostile spec is refused before it is expanded, located and with the
count and the limit; every limit can be raised from every entry point."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import imle_solvers as ims
from imle_solvers.cli import main
from imle_solvers.problems.ilp import ILP
from imle_solvers.spec import ILPBuilder, SpecError, SpecLimits, load_dict, load_yaml, named_ilp, register_ilp
from imle_solvers.spec import unregister_ilp
from imle_solvers.spec.source import from_yaml_text

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "specs"
BOMB = ROOT / "tests" / "specs_broken" / "too_many_rows.yaml"  # 400^3 rows, each a 400-term sum


def small(**constraints):
    """A one-set, one-variable spec with the given constraints."""
    return {"sets": {"a": 10}, "variables": {"x": {"over": ["a"]}}, "objective": {"sense": "max", "theta": "x"},
            "constraints": list(constraints.values())}


def test_the_64_million_row_spec_is_refused_at_once_in_little_memory():
    load_yaml(SPECS / "knapsack.yaml")  # imports and caches warm, so that only the refusal is timed
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_yaml(BOMB)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"refusing took {elapsed:.2f} s"
    assert info.value.message == ("constraint 'triples' would expand to 64,000,000 rows (400 x 400 x 400); the "
                                  "limit is 1,000,000 (raise it with limits=SpecLimits(max_rows=64000000))")
    assert (info.value.line, info.value.column, info.value.field) == (8, 10, "constraints[0].for")
    tracemalloc.start()
    try:
        with pytest.raises(SpecError):
            load_yaml(BOMB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"refusing allocated {peak / 1e6:.1f} MB"
    # past the rows, its terms are refused as early: 64e6 rows x (400 sum terms + the rest)
    with pytest.raises(SpecError, match=r"would expand to 77,184,000,000 terms \(64,000,000 rows\)") as info:
        load_yaml(BOMB, limits=SpecLimits(max_rows=10**9))
    assert info.value.field == "constraints[0].expr"


def test_the_command_line_refuses_it_and_names_its_own_option():
    result = CliRunner().invoke(main, ["validate", str(BOMB)])
    assert result.exit_code == 1
    assert "would expand to 64,000,000 rows (400 x 400 x 400); the limit is 1,000,000 (raise it with " \
           "--limit max_rows=64000000)" in result.output
    lowered = CliRunner().invoke(main, ["validate", str(SPECS / "timetabling.yaml"), "--limit", "max_rows=10"])
    assert lowered.exit_code == 1
    assert "constraint 'no_clash' would expand to 9 rows (3 x 3) (16 in all); the limit is 10" in lowered.output
    raised = CliRunner().invoke(main, ["validate", str(SPECS / "timetabling.yaml"), "-l", "max_rows=16",
                                       "--limit", "max_nonzeros=1_000"])
    assert raised.exit_code == 0, raised.output
    for bad, message in (("max_row=3", "NAME one of max_text_bytes, "), ("max_rows=many", "expected a whole number"),
                         ("max_rows=-1", "must be a non-negative integer")):
        result = CliRunner().invoke(main, ["validate", str(SPECS / "knapsack.yaml"), "--limit", bad])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize(
    ("limits", "constraints", "field", "message"),
    [
        (SpecLimits(max_rows=15), {"c0": {"for": "i in a", "expr": "x[i] <= 1"},
                                   "c1": {"for": "i in a", "expr": "x[i] >= 0", "name": "again"}},
         "constraints[1].for", "constraint 'again' would expand to 10 rows (20 in all); the limit is 15 "
                               "(raise it with limits=SpecLimits(max_rows=20))"),
        (SpecLimits(max_nonzeros=50), {"c0": {"for": "i in a", "expr": "sum(j in a) x[j] <= 9"}},
         "constraints[0].expr", "constraints[0] would expand to 100 nonzeros (10 rows); the limit is 50 "
                                "(raise it with limits=SpecLimits(max_nonzeros=100))"),
        (SpecLimits(max_terms=30), {"c0": "sum(i in a) 2 * x[i] <= 1"},
         "constraints[0]", "constraints[0] would expand to 42 terms; the limit is 30 "
                           "(raise it with limits=SpecLimits(max_terms=42))"),
        (SpecLimits(max_expression_depth=3), {"c0": "((x[0])) <= 1"}, "constraints[0]",
         "the expression is nested more than 3 levels deep (max_expression_depth)"),
        (SpecLimits(max_text_bytes=20), {"c0": "x[0] + x[1] + x[2] + x[3] <= 1"}, "constraints[0]",
         "a string of 30 characters; the limit is 20 (max_text_bytes)"),
    ],
    ids=["rows", "nonzeros", "terms", "expression-depth", "text"],
)
def test_each_expansion_limit_names_the_constraint_the_count_and_the_limit(limits, constraints, field, message):
    spec = small(**constraints)
    with pytest.raises(SpecError) as info:
        load_dict(spec, limits=limits)
    assert (info.value.field, info.value.message) == (field, message)
    assert isinstance(load_dict(spec), ILP)  # the defaults take it


def test_size_limits_on_sets_arrays_variables_and_documents():
    spec = {"sets": {"a": 10}, "constants": {"w": list(range(5))}, "variables": {"x": {"over": ["a", "a"]}},
            "objective": {"sense": "max", "theta": "x"}}
    assert load_dict(spec).shape == (10, 10)
    cases = [
        (SpecLimits(max_entries=9), "sets.a", "a set size must be an integer in [0, 9] (max_entries), got 10"),
        (SpecLimits(max_entries=10, max_variables=99), "variables.x.over",
         "100 variables in all; the limit is 99 (raise it with limits=SpecLimits(max_variables=100))"),
        (SpecLimits(max_document_nodes=8), "constants.w[3]",
         "the spec is nested too deeply or too large: more than 64 levels (max_document_depth) or 8 entries "
         "(max_document_nodes)"),
        (SpecLimits(max_document_depth=2), "constants.w[0]", "the spec is nested too deeply or too large: more than 2 "
                                                     "levels (max_document_depth) or 1,000,000 entries "
                                                     "(max_document_nodes)"),
    ]
    for limits, field, message in cases:
        with pytest.raises(SpecError) as info:
            load_dict(spec, limits=limits)
        assert (info.value.field, info.value.message) == (field, message)
    big = {**spec, "constants": {"w": list(range(11))}}  # constants come first: they may size sets
    with pytest.raises(SpecError, match=r"constants.w: 11 entries; the limit is 10 \(raise it with limits=SpecLimits\(max_entries=11"):
        load_dict(big, limits=SpecLimits(max_entries=10, max_variables=100))


def test_text_and_nesting_limits_of_yaml(tmp_path):
    path = tmp_path / "knapsack.yaml"
    path.write_bytes((SPECS / "knapsack.yaml").read_bytes())
    size = path.stat().st_size
    assert isinstance(load_yaml(path, limits=SpecLimits(max_text_bytes=size)), ILP)
    with pytest.raises(SpecError) as info:
        load_yaml(path, limits=SpecLimits(max_text_bytes=size - 1))
    assert info.value.message == f"the spec file is {size:,} bytes; the limit is {size - 1:,} (max_text_bytes)"
    assert info.value.file == str(path)
    with pytest.raises(SpecError) as info:
        from_yaml_text("a:\n  b:\n    c: [1]\n", "deep.yaml", SpecLimits(max_document_depth=3))
    assert info.value.message == "the spec is nested more than 3 levels deep (max_document_depth)"
    assert (info.value.file, info.value.line, info.value.column) == ("deep.yaml", 3, 5)  # the key 'c', 4 deep
    # a deeply nested expression or document is an error, never Python's RecursionError
    with pytest.raises(SpecError, match="nested more than 100 levels deep"):
        load_dict(small(c="(" * 5000 + "x[0]" + ")" * 5000 + " <= 1"))
    with pytest.raises(SpecError, match="nested more than 100 levels deep"):
        load_dict(small(c="-" * 5000 + "x[0] <= 1"))
    with pytest.raises(SpecError, match="nested more than 100 levels deep"):
        load_dict(small(c="x[" * 5000 + "0" + "]" * 5000 + " <= 1"))
    with pytest.raises(SpecError, match="nested more than 64 levels deep"):
        from_yaml_text("[" * 20_000)
    nested: list = []
    deepest = nested
    for _ in range(5000):
        deepest.append([])
        deepest = deepest[0]
    with pytest.raises(SpecError, match="nested too deeply"):
        load_dict({"constants": {"c": nested}, "variables": {"x": {}}, "objective": {"sense": "max", "theta": "x"}})


def test_a_long_flat_expression_is_not_deep():
    terms = 3_000  # one level of nesting, whatever its length (a tree 3,000 deep once hit the recursion limit)
    ilp = load_dict(small(c=" + ".join(f"x[{i % 10}]" for i in range(terms)) + " <= 1"))
    assert ilp.constraints.toarray().tolist() == [[terms / 10] * 10]


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_estimate_is_never_below_the_work_done(path):
    """The smallest ``max_terms`` that loads a spec, less one, is refused by the estimate made
    before expanding, not by the step counter that backs it: the estimate bounds the work."""
    low, high = 0, 1_000_000
    while low < high:  # the smallest max_terms that loads the spec
        middle = (low + high) // 2
        try:
            load_yaml(path, limits=SpecLimits(max_terms=middle))
            high = middle
        except SpecError:
            low = middle + 1
    assert 0 < low < 1_000_000
    with pytest.raises(SpecError, match="would expand to .* terms") as info:
        load_yaml(path, limits=SpecLimits(max_terms=low - 1))
    assert "evaluation steps" not in info.value.message


def test_limits_reach_every_entry_point(tmp_path):
    strict = SpecLimits(max_rows=1)
    tree = yaml.safe_load((SPECS / "timetabling.yaml").read_text())
    loaders = [
        lambda limits: load_yaml(SPECS / "timetabling.yaml", limits=limits),
        lambda limits: load_dict(tree, limits=limits),
        lambda limits: ILP.from_yaml(SPECS / "timetabling.yaml", limits=limits),
        lambda limits: ILP.from_dict(tree, limits=limits),
    ]
    for load in loaders:
        assert load(None).constraints.shape == (16, 12)
        with pytest.raises(SpecError, match="would expand to 4 rows"):
            load(strict)
    register_ilp("strict-timetable", SPECS / "timetabling.yaml", limits=strict)
    try:
        with pytest.raises(SpecError, match="would expand to 4 rows"):
            named_ilp("strict-timetable")
    finally:
        unregister_ilp("strict-timetable")
    b = ILPBuilder("strict", limits=strict)
    b.add_set("a", 2)
    b.add_variable("x", over=["a"])
    b.add_constraint("x[0] <= 1")
    with pytest.raises(SpecError) as info:
        b.add_constraint("x[i] <= 1", for_each="i in a", name="each")
    assert info.value.message == ("constraint 'each' would expand to 2 rows (3 in all); the limit is 1 "
                                  "(raise it with limits=SpecLimits(max_rows=3))")
    assert (info.value.field, info.value.column) == ("for", 1)
    with pytest.raises(SpecError, match="would add 2 rows"):
        b.add_constraint({"x": [[1, 0], [0, 1]]}, upper=1)
    assert ims.SpecLimits is SpecLimits
    with pytest.raises(TypeError, match="limits must be a SpecLimits, got dict"):
        ILPBuilder(limits={"max_rows": 1})  # type: ignore[arg-type]


def test_a_spec_parameter_called_limits_is_still_a_parameter():
    spec = {"params": {"limits": {}}, "variables": {"x": {"type": "integer"}}, "constraints": ["x <= limits"],
            "objective": {"sense": "max", "theta": "x"}}
    assert load_dict(spec, limits=3).row_upper.tolist() == [3.0]
    assert ILP.from_dict(spec, limits=4).row_upper.tolist() == [4.0]
    with pytest.raises(SpecError, match="missing parameter 'limits'"):
        load_dict(spec, limits=SpecLimits())


def test_spec_limits_are_checked_and_listed():
    assert SpecLimits.names()[:2] == ("max_text_bytes", "max_document_depth")
    assert SpecLimits().max_rows == 1_000_000 and SpecLimits().max_terms == 20_000_000
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="SpecLimits.max_rows must be a non-negative integer"):
            SpecLimits(max_rows=bad)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        SpecLimits().max_rows = 3  # type: ignore[misc]

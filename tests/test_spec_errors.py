"""Broken specs: a corpus where each file says where its error is, and targeted cases.
(The fuzzers are in test_spec_fuzz.py, the limits in test_spec_limits.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from imle_solvers.spec import ILPBuilder, SpecError, SpecLimits, load_dict, load_yaml
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


def test_a_huge_sum_is_refused_not_run():
    spec = {"sets": {"a": 1000}, "variables": {"x": {"over": ["a"]}}, "objective": {"sense": "max", "theta": "x"},
            "constraints": ["sum(i in a) sum(j in a) x[i] <= 1"]}
    with pytest.raises(SpecError) as info:
        load_dict(spec, limits=SpecLimits(max_terms=10_000))
    assert info.value.message == ("constraints[0] would expand to 2,001,002 terms; the limit is 10,000 "
                                  "(raise it with limits=SpecLimits(max_terms=2001002))")
    assert info.value.field == "constraints[0]"


def test_an_alias_bomb_is_refused():
    text = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        text += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    with pytest.raises(SpecError, match=r"too large \(aliases\?\): more than 1,000,000 entries \(max_document_nodes\)"):
        compile_spec(from_yaml_text(text, "bomb.yaml"), {})

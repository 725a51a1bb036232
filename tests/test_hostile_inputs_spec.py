"""Issue 19, the spec's part: numbers a spec compiles to are finite and within what the
solvers represent, located when they are not."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from imle_solvers.spec import ILPBuilder, SpecError, SpecLimits, load_dict
from imle_solvers.spec.source import from_yaml_text
from imle_solvers.spec.compiler import compile_spec


def one_constraint(constraint: str, **variable) -> dict:
    return {"sets": {"I": 2}, "variables": {"x": {"over": ["I"], **variable}},
            "constraints": [constraint], "objective": {"sense": "max", "theta": "x"}}


YAML = """\
sets: {I: 2}
variables:
  x: {over: [I]}
constraints:
  - "x[0] - 1e308 - 1e308 + 1e308 + 1e308 <= 0.5"
objective: {sense: max, theta: x}
"""


def test_an_overflowing_intermediate_is_refused_where_it_happens():
    # once compiled to x[0] <= inf, both backends answered x0 = 1
    with pytest.raises(SpecError) as info:
        compile_spec(from_yaml_text(YAML, "over.yaml"), {})
    error = info.value
    assert (error.file, error.line, error.field) == ("over.yaml", 5, "constraints[0]")
    assert error.column == YAML.splitlines()[4].index("- 1e308 + ") + 1  # the second "-": -1e308 - 1e308
    assert error.message == "the result is too large to be a finite number (beyond 1.8e308)"


@pytest.mark.parametrize("constraint", [
    "x[0] * 1e300 * 1e300 <= 1",                       # a coefficient, by a product
    "sum(i in I) 1e308 * x[0] + x[1] <= 1",            # a coefficient, by a sum
    "x[0] / 5e-324 <= 1",                              # a division by a tiny number
    "1e308 <= x[0] - 1e308 <= 1e308",                  # a chained bound
    "x[0] + 1e308 + 1e308 >= 0",                       # a constant, left of the relation
])
def test_every_route_to_a_non_finite_number_is_refused(constraint):
    with pytest.raises(SpecError, match=r"constraints\[0\]: the result is too large to be a finite number"):
        load_dict(one_constraint(constraint))


def test_a_batched_parameter_overflowing_is_refused():
    spec = one_constraint("x[0] * p * 1e300 * 1e300 <= 1")
    spec["params"] = {"p": {"batched": True, "default": 1.0}}
    with pytest.raises(SpecError, match="too large to be a finite number"):
        load_dict(spec)
    spec = one_constraint("x[0] <= p + 1e308 + 1e308")
    spec["params"] = {"p": {"batched": True, "default": 1.0}}
    with pytest.raises(SpecError, match="too large to be a finite number"):
        load_dict(spec)


@pytest.mark.parametrize("spec, field, what", [
    (one_constraint("x[0] <= 1e25"), r"constraints\[0\]", "a bound of 1e\\+25"),
    (one_constraint("x[0] >= -1e20"), r"constraints\[0\]", "a bound of -1e\\+20"),
    (one_constraint("3e20 * x[0] <= 1"), r"constraints\[0\]", "a coefficient of 3e\\+20"),
    (one_constraint("x[0] <= 1", upper=1e22), "variables.x.upper", "a bound of 1e\\+22"),
    (one_constraint("x[0] <= 1", lower="-2e21"), "variables.x.lower", "a bound of -2e\\+21"),
    ({**one_constraint("x[0] <= 1"), "objective": {"sense": "max", "theta": "x", "fixed": "1e30 * x[1]"}},
     "objective.fixed", "a coefficient of 1e\\+30"),
])
def test_numbers_the_solvers_take_for_infinity_are_refused(spec, field, what):
    # SCIP (behind OR-Tools too) reads any magnitude >= 1e20 as infinite: a silent change
    with pytest.raises(SpecError, match=rf"{field}: .*{what}: the ILP solvers take any number of magnitude "
                                        r"1e\+20 or more for infinity"):
        load_dict(spec)


def test_infinite_bounds_and_large_finite_ones_below_the_solvers_infinity_still_compile():
    ilp = load_dict(one_constraint("x[0] <= 9.9e19", type="integer", upper=float("inf")))
    assert ilp.row_upper.tolist() == [9.9e19]
    assert ilp.variables[0].upper == float("inf")


@pytest.mark.parametrize("where", ["expression", "constant", "yaml"])
def test_integers_float64_would_round_are_refused(where):
    big = 2 ** 53 + 1
    if where == "expression":
        with pytest.raises(SpecError, match=rf"constraints\[0\]: the integer {big} has no exact float64"):
            load_dict(one_constraint(f"x[0] <= {big}"))
    elif where == "constant":
        with pytest.raises(SpecError, match=f"the integer {big} has no exact float64"):
            ILPBuilder().add_parameter("c", np.array([1, big]))
        with pytest.raises(SpecError, match=f"the integer {big} has no exact float64"):
            ILPBuilder().add_parameter("c", big)
    else:
        with pytest.raises(SpecError, match=rf"s.yaml:1:4: n: the integer {big} has no exact float64"):
            from_yaml_text(f"n: {big}\n", "s.yaml")
    assert load_dict(one_constraint(f"x[0] <= {2 ** 60}")).row_upper.tolist() == [2.0 ** 60]  # exact: fine


# -- parsing is bounded: tokens and time (item 16) ------------------------------------------------

def flat_sum(terms: int) -> dict:
    return {"sets": {"I": terms}, "variables": {"x": {"over": ["I"]}}, "objective": {"sense": "max", "theta": "x"},
            "constraints": [" + ".join(f"x[{i}]" for i in range(terms)) + " <= 1"]}


def test_a_long_flat_sum_is_refused_by_its_tokens_where_they_run_out():
    spec = flat_sum(300)  # 5 tokens a term: 1,500 tokens less one "+", and "<=", "1"
    assert load_dict(spec, limits=SpecLimits(max_tokens=1501)).constraints.nnz == 300
    text = f"sets: {{I: 300}}\nvariables: {{x: {{over: [I]}}}}\nobjective: {{sense: max, theta: x}}\n" \
           f"constraints:\n  - \"{spec['constraints'][0]}\"\n"
    with pytest.raises(SpecError) as info:
        compile_spec(from_yaml_text(text, "flat.yaml"), {}, SpecLimits(max_tokens=1000))
    assert info.value.message == ("more than 1,000 tokens (numbers, names, operators) in the spec's expressions "
                                  "(max_tokens); write long sums with sum(...) over sets")
    assert (info.value.field, info.value.line) == ("constraints[0]", 5)
    assert info.value.column == text.splitlines()[4].index("x[200]") + 1  # the 1,001st token


def test_tokens_are_counted_over_all_the_expressions():
    spec = flat_sum(100)
    spec["constraints"] = spec["constraints"] * 3  # 502 tokens each
    load_dict(spec, limits=SpecLimits(max_tokens=3 * 502))
    with pytest.raises(SpecError, match="max_tokens") as info:
        load_dict(spec, limits=SpecLimits(max_tokens=2 * 502 + 10))
    assert info.value.field == "constraints[2]"


def test_tokens_limit_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from imle_solvers.cli import main

    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump(flat_sum(300)))
    result = CliRunner().invoke(main, ["validate", str(path), "--limit", "max_tokens=1000"])
    assert result.exit_code == 1 and "(max_tokens)" in result.output
    assert CliRunner().invoke(main, ["validate", str(path), "--limit", "max_seconds=inf"]).exit_code == 0
    bad = CliRunner().invoke(main, ["validate", str(path), "--limit", "max_seconds=soon"])
    assert bad.exit_code == 2 and "max_seconds: expected a number of seconds" in bad.output


@pytest.mark.parametrize("where", ["tokens", "evaluation", "yaml nodes", "dict nodes"])
def test_a_spec_past_its_time_budget_is_refused_where_it_stopped(where):
    # a budget that is spent at the first look at the clock: which check sees it is what is tested
    limits = SpecLimits(max_seconds=1e-9)
    message = r"took more than 1e-09 s \(max_seconds\)"
    if where in ("tokens", "evaluation"):
        builder = ILPBuilder(limits=limits)  # a compiled spec checks the clock between entries, too
        builder.add_set("I", 10_000)
        builder.add_variable("x", over=["I"])
        constraint = flat_sum(1000)["constraints"][0] if where == "tokens" else "sum(i in I) x[i] <= 1"
        with pytest.raises(SpecError, match=message) as info:
            builder.add_constraint(constraint)
        assert info.value.field == "expr" and info.value.column > 1
    elif where == "yaml nodes":
        text = "constants:\n  c: [" + ", ".join(["1"] * 10_000) + "]\n"
        with pytest.raises(SpecError, match=message) as info:
            from_yaml_text(text, "slow.yaml", limits)
        assert (info.value.file, info.value.line) == ("slow.yaml", 2)
    else:
        with pytest.raises(SpecError, match=message):
            load_dict({"constants": {"c": [1.0] * 10_000}}, limits=limits)


def test_max_seconds_must_be_a_positive_number():
    for value in (0, -1, "1", True, float("nan")):
        with pytest.raises(ValueError, match="SpecLimits.max_seconds must be a positive number of seconds"):
            SpecLimits(max_seconds=value)
    assert SpecLimits(max_seconds=float("inf")).max_seconds == float("inf")


def test_the_pure_python_yaml_composer_bounds_depth_too(monkeypatch):
    import imle_solvers.spec.source as source

    monkeypatch.setattr(source, "_LIBYAML", False)  # PyYAML without libyaml
    with pytest.raises(SpecError, match="nested more than 64 levels deep") as info:
        from_yaml_text("a: " + "[" * 3000, "deep.yaml")
    assert (info.value.line, info.value.column) == (1, 4 + 63)
    assert from_yaml_text("a: [1, {b: 2}]\n").tree == {"a": [1, {"b": 2}]}


def test_numeric_arrays_skip_the_schema_check_and_keep_its_verdict():
    from imle_solvers.spec.schema import check_schema
    from imle_solvers.spec.source import from_mapping

    good = {"constants": {"c": [[1, 2.5], [3, 4]]}, "params": {"p": {"default": [1, 2]}},
            "variables": {"x": {}}, "objective": {"sense": "max", "theta": "x"}}
    check_schema(from_mapping(good))
    for broken, field in (({"c": [[1, "a"]]}, "constants.c[0][1]"), ({"c": [1, True]}, "constants.c[1]")):
        with pytest.raises(SpecError) as info:
            check_schema(from_mapping({**good, "constants": broken}))
        assert info.value.field == field


def test_a_step_without_a_clock_of_its_own_is_caught_at_the_next_entry():
    # the schema check (jsonschema) cannot be interrupted; the next declaration refuses to go on
    with pytest.raises(SpecError, match=r"took more than 1e-09 s \(max_seconds\)") as info:
        load_dict(flat_sum(10), limits=SpecLimits(max_seconds=1e-9))
    assert info.value.field == "sets.I"

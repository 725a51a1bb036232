"""Issue 19, the spec's part: numbers a spec compiles to are finite and within what the
solvers represent, located when they are not."""

from __future__ import annotations

import numpy as np
import pytest

from imle_solvers.spec import ILPBuilder, SpecError, load_dict
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
            ILPBuilder().add_constant("c", np.array([1, big]))
        with pytest.raises(SpecError, match=f"the integer {big} has no exact float64"):
            ILPBuilder().add_constant("c", big)
    else:
        with pytest.raises(SpecError, match=rf"s.yaml:1:4: n: the integer {big} has no exact float64"):
            from_yaml_text(f"n: {big}\n", "s.yaml")
    assert load_dict(one_constraint(f"x[0] <= {2 ** 60}")).row_upper.tolist() == [2.0 ** 60]  # exact: fine

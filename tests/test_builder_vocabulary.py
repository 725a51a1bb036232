"""The builder says fixed and per-instance parameters as a spec does: ``add_parameter(name,
value)`` is fixed (``batched=False``, the default), ``add_parameter(name, ...,
batched=True)`` takes one value per instance; the old calls still work and warn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imle_solvers import MAPOracle
from imle_solvers.spec import ILPBuilder, SpecError, load_dict

WEIGHTS = [3, 4, 5, 2, 6, 1]
SPEC = {
    "name": "knapsack",
    "params": {"capacity": {"batched": True, "default": 10}, "weights": {"over": ["items"], "default": WEIGHTS}},
    "sets": {"items": 6},
    "variables": {"x": {"over": ["items"], "type": "binary"}},
    "constraints": [{"name": "capacity", "expr": "sum(i in items) weights[i] * x[i] <= capacity"}],
    "objective": {"sense": "max", "theta": "x"},
}


def _knapsack(declare) -> ILPBuilder:
    """The knapsack of SPEC, its two parameters declared by ``declare(builder)``."""
    b = ILPBuilder("knapsack")
    b.add_set("items", 6)
    declare(b)
    b.add_variable("x", over=["items"], type="binary")
    b.add_constraint("sum(i in items) weights[i] * x[i] <= capacity", name="capacity")
    b.set_objective("max", theta="x")
    return b.build()


def _new(b: ILPBuilder) -> None:
    b.add_parameter("capacity", default=10, batched=True)     # params: capacity: {batched: true, default: 10}
    b.add_parameter("weights", WEIGHTS, over=["items"])        # params: weights: {over: [items], default: ...}


def _old(b: ILPBuilder) -> None:
    b.add_parameter("capacity", default=10)
    b.add_constant("weights", WEIGHTS, over=["items"])


def test_the_new_words_build_the_program_of_the_spec():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new calls warn of nothing
        ilp = _knapsack(_new)
    spec = load_dict(SPEC)
    assert ilp.fingerprint == spec.fingerprint
    assert list(ilp.instance_fields) == ["capacity"]  # weights is fixed, as in the spec
    theta = np.array([[5.0, 4, 3, 2, 1, 1], [1.0, 1, 1, 1, 1, 9]])
    z = MAPOracle(ilp, backend="ortools")(theta, capacity=np.array([10.0, 7.0]))
    assert (z @ np.array(WEIGHTS) <= [10, 7]).all()


def test_batched_false_is_the_default_and_may_be_said():
    b = ILPBuilder()
    b.add_parameter("n", 3)
    b.add_parameter("m", 4, batched=False)
    b.add_set("I", "n * m")
    b.add_variable("x", over=["I"])
    b.set_objective("max", theta="x")
    ilp = b.build()
    assert ilp.shape == (12,) and ilp.instance_fields == {}


def test_the_old_calls_still_work_and_name_the_new_one():
    with pytest.warns(DeprecationWarning) as record:
        ilp = _knapsack(_old)
    assert ilp.fingerprint == _knapsack(_new).fingerprint
    messages = [str(w.message) for w in record]
    assert messages == [
        "add_parameter('capacity', ...) without a value declares a per-instance parameter only for compatibility; "
        "say so: add_parameter('capacity', ..., batched=True) (or give the fixed value: "
        "add_parameter('capacity', value))",
        "add_constant is deprecated; write add_parameter('weights', value, over=...) (fixed, as a spec's params)",
    ]
    assert all(w.filename == __file__ for w in record)  # each points at the caller's line
    with pytest.warns(DeprecationWarning, match=r"write add_parameter\('n', value\) \(fixed"):
        ILPBuilder().add_constant("n", 3)


@pytest.mark.parametrize(("call", "field", "message"), [
    (lambda b: b.add_parameter("cap", 10, batched=True), "value",
     "a batched parameter takes one value per instance; its default goes in default=: "
     "add_parameter('cap', default=..., batched=True)"),
    (lambda b: b.add_parameter("cap", default=10, batched=False), "default",
     "a fixed parameter has one value, given as add_parameter('cap', value); default= is the per-instance "
     "default of batched=True"),
    (lambda b: b.add_parameter("cap", batched=False), "value",
     "a fixed parameter needs its value: add_parameter('cap', value) (or add_parameter('cap', batched=True) "
     "for one value per instance)"),
    (lambda b: b.add_parameter("cap", ["items"]), "value",   # the old positional order, (name, over)
     "a value must be numbers, got the names ['items']: sets go in over=, as in "
     "add_parameter('cap', over=['items'], batched=True)"),
    (lambda b: b.add_parameter("cap", default=1, batched="yes"), "batched", "batched must be True or False, got 'yes'"),
])
def test_a_contradictory_call_names_the_argument(call, field, message):
    b = ILPBuilder()
    b.add_set("items", 3)
    with pytest.raises(SpecError) as info:
        call(b)
    assert (info.value.field, info.value.message) == (field, message)


def test_a_batched_parameter_keeps_its_description():
    b = ILPBuilder()
    b.add_parameter("cap", default=2.0, batched=True, description="seats left")
    b.add_variable("x")
    b.add_constraint("x <= cap")
    b.set_objective("max", theta="x")
    assert b.build().instance_fields["cap"].doc.startswith("seats left")

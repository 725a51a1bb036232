"""ILP.violations and ILP.batch_violations on programs with batched parameters: each
instance's own numbers (its data, else the declared defaults), never zeros."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError, MissingDataError

SPECS = Path(__file__).parents[1] / "examples" / "specs"

# Valid per-instance data of each shipped spec with batched parameters, by spec name: a new
# such spec must add its own here (test_every_shipped_spec_with_batched_parameters_is_covered).
SPEC_DATA = {
    "rota_weekly": lambda problem, rng, b: {
        "available": (rng.random((b, *problem.shape)) < 0.8).astype(np.float64),
    },
}


def shipped_batched_specs() -> dict[str, ims.ILP]:
    """Every shipped spec (with its defaults) that declares batched parameters."""
    programs = {}
    for path in sorted(SPECS.glob("*.yaml")):
        try:
            program = ims.ILP.from_yaml(path)
        except ims.InvalidInputError:  # a spec of another problem kind, or one that needs params
            continue
        if program.instance_fields:
            programs[program.name] = program
    return programs


def test_every_shipped_spec_with_batched_parameters_is_covered():
    assert set(shipped_batched_specs()) == set(SPEC_DATA)


def instance(data: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {name: value[i] for name, value in data.items()}


@pytest.mark.parametrize("name", sorted(SPEC_DATA))
def test_shipped_specs_optimal_states_are_feasible_and_agree_with_the_plain_program(name):
    pytest.importorskip("ortools")
    problem = shipped_batched_specs()[name]
    rng = np.random.default_rng(0)
    batch = 4
    data = SPEC_DATA[name](problem, rng, batch)
    theta = rng.normal(size=(batch, *problem.shape))
    z = ims.MAPOracle(problem, backend="ortools")(theta, **data)
    assert not any(problem.batch_violations(z, **data))  # optimal states: feasible, each under its own data
    # hand-made points break rows: the same as the plain program of each instance says
    points = (rng.random((batch, *problem.shape)) < 0.5).astype(np.float64)
    found = problem.batch_violations(points, **data)
    assert any(found)
    for i in range(batch):
        plain = problem.with_values(instance(data, i))
        assert problem.violations(points[i], **instance(data, i)) == plain.violations(points[i]) == found[i]
        assert problem.violations(z[i], **instance(data, i)) == plain.violations(z[i])


def test_the_issues_wrong_answer_a_default_is_used_not_zero():
    """The report: an optimal state read against parameters taken as 0."""
    spec = {
        "name": "depot",
        "params": {"capacity": {"batched": True, "default": 2}, "open": {"over": ["arcs"], "batched": True,
                                                                         "default": [1, 1, 0]}},
        "sets": {"arcs": 3},
        "variables": {"x": {"over": ["arcs"], "type": "binary", "upper": "open"}},
        "constraints": [{"name": "capacity", "expr": "sum(a in arcs) x[a] <= capacity"}],
        "objective": {"sense": "max", "theta": "x"},
    }
    depot = ims.ILP.from_dict(spec)
    z = np.array([1.0, 1.0, 0.0])
    assert not depot.violations(z)  # the defaults: capacity 2, arcs 0 and 1 open
    assert str(depot.violations(z, capacity=1.0)) == "capacity: activity 2, needs <= 1 (off by 1)"
    assert str(depot.violations(z, open=np.array([1.0, 0.0, 1.0]))) == "x[1] = 1 outside [0, 0] (off by 1)"
    assert depot.violations(z) == depot.with_values().violations(z)


# -- brute force: every 0/1 point of a small program --------------------------------------------

TINY = {
    "name": "tiny",
    "params": {
        "cap": {"batched": True},                                         # no default: must be given
        "w": {"over": ["items"], "batched": True, "default": [1, 2, 3, 1]},
        "hi": {"batched": True, "default": 1},
    },
    "sets": {"items": 4},
    "variables": {"x": {"over": ["items"], "type": "binary"}, "y": {"type": "integer", "upper": "hi + 1"}},
    "constraints": [
        {"name": "budget", "expr": "sum(i in items) w[i] * x[i] <= cap"},
        {"name": "some", "expr": "sum(i in items) x[i] + y >= 1"},
        {"name": "first", "expr": "x[0] <= hi"},
    ],
    "objective": {"sense": "max", "theta": "x"},
}


def feasible(x: np.ndarray, y: float, cap: float, w: np.ndarray, hi: float) -> bool:
    """The program written out by hand."""
    return bool(w @ x <= cap and x.sum() + y >= 1 and x[0] <= hi and 0 <= y <= hi + 1)


def test_violations_agree_with_brute_force_feasibility():
    tiny = ims.ILP.from_dict(TINY)
    rng = np.random.default_rng(3)
    points = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    for _ in range(12):
        cap, w, hi = float(rng.integers(0, 6)), rng.integers(0, 4, size=4).astype(float), float(rng.integers(0, 2))
        for x, y in itertools.product(points, [0.0, 1.0, 2.0, 3.0]):
            full = np.append(x, y)
            expected = feasible(x, y, cap, w, hi)
            assert bool(tiny.violations(full, cap=cap, w=w, hi=hi)) == (not expected), (x, y, cap, w, hi)
        # the batched form: all 16 z at once, the scalars broadcast to the batch
        found = tiny.batch_violations(points, cap=cap, w=w, hi=hi)
        for x, violations in zip(points, found):
            # z alone checks the rows on x only: budget and first (some involves y)
            expected = bool(w @ x <= cap and x[0] <= hi)
            assert bool(violations) == (not expected) and violations.unchecked_rows == 1


def test_defaults_stand_in_for_parameters_not_given():
    tiny = ims.ILP.from_dict(TINY)
    x = np.array([1.0, 1.0, 0.0, 0.0, 0.0])  # weight 3 under the default w
    assert not tiny.violations(x, cap=3.0) and tiny.violations(x, cap=2.0)
    assert tiny.violations(x, cap=3.0, w=np.array([1.0, 3.0, 0.0, 0.0])).rows[0].name == "budget"


def test_an_instance_coefficient_of_zero_leaves_the_row_checkable_from_z():
    mixed = {"name": "mixed", "expr": "sum(i in items) x[i] + w[0] * y <= cap"}
    tiny = ims.ILP.from_dict({**TINY, "constraints": [mixed]})
    z = np.ones(4)
    # w[0] = 1 puts y (unknown from z) in the row; w[0] = 0 takes it out
    assert tiny.violations(z, cap=2.0).unchecked_rows == 1 and not tiny.violations(z, cap=2.0)
    found = tiny.violations(z, cap=2.0, w=np.array([0.0, 2.0, 3.0, 1.0]))
    assert found.unchecked_rows == 0 and str(found) == "mixed: activity 4, needs <= 2 (off by 2)"
    assert found == tiny.with_values({"cap": 2.0, "w": np.array([0.0, 2.0, 3.0, 1.0])}).violations(z)


# -- errors -------------------------------------------------------------------------------------

def test_a_parameter_without_default_must_be_given_naming_the_call():
    tiny = ims.ILP.from_dict(TINY)
    with pytest.raises(MissingDataError, match=r"^ILP 'tiny': batched parameter 'cap' has no default; pass it per "
                                               r"instance: ilp\.violations\(z, cap=\.\.\.\)$"):
        tiny.violations(np.zeros(4))
    with pytest.raises(MissingDataError, match=r"pass it per instance: ilp\.batch_violations\(z, cap=\.\.\.\)$"):
        tiny.batch_violations(np.zeros((2, 4)), w=np.ones((2, 4)))
    with pytest.raises(MissingDataError) as caught:
        tiny.violations(np.zeros(4), cap=None)  # None is not a value
    assert caught.value.fields == ("cap",)


def test_batched_errors_name_the_field_and_the_batch_index():
    tiny = ims.ILP.from_dict(TINY)
    z = np.zeros((3, 4))
    with pytest.raises(InvalidInputError, match=r"^cap: expected shape \(3,\) \(batch axis first\), or \(\) for every "
                                                r"instance, got \(2,\)$"):
        tiny.batch_violations(z, cap=np.ones(2))
    with pytest.raises(InvalidInputError, match=r"takes no per-instance data 'capacity'; its fields: cap, hi, w "
                                                r"\(in ilp\.batch_violations\(z, capacity=\.\.\.\)\)"):
        tiny.batch_violations(z, capacity=1.0)
    with pytest.raises(InvalidInputError, match=r"batched parameter 'hi' at batch index 1: variable y would need "
                                                r"0 <= value <= -1"):
        tiny.batch_violations(z, cap=1.0, hi=np.array([0.0, -2.0, 0.0]))
    with pytest.raises(InvalidInputError, match=r"batch_violations\(\) takes at batch index 0 z of shape \(4,\)"):
        tiny.batch_violations(np.zeros((3, 3)), cap=1.0)
    with pytest.raises(InvalidInputError, match=r"takes a batch"):
        tiny.batch_violations(np.float64(0.0), cap=1.0)


def test_a_program_without_batched_parameters_takes_no_data():
    plain = ims.ILP.from_dict({k: v for k, v in TINY.items() if k != "params"} | {
        "constraints": [{"name": "some", "expr": "sum(i in items) x[i] >= 1"}],
        "variables": {"x": {"over": ["items"], "type": "binary"}}})
    assert plain.violations(np.zeros(4)) and not plain.violations(np.ones(4))
    assert [bool(v) for v in plain.batch_violations(np.eye(4)[[0, 1]] * [[1], [0]])] == [False, True]
    with pytest.raises(InvalidInputError, match=r"has no batched parameters; got data \['cap'\]"):
        plain.violations(np.zeros(4), cap=1.0)


def test_the_missing_data_error_survives_pickling():
    error = MissingDataError("ILP 'x': batched parameter 'cap' has no default; ...", subject="ILP 'x': ...",
                             fields=("cap",))
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.subject, again.fields) == (str(error), error.subject, error.fields)
    assert isinstance(again, InvalidInputError)

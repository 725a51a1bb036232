"""ILP specs: the example specs solved on OR-Tools and SCIP against brute force, the
same program from YAML, JSON, a dict and the builder, parameters, named problems."""

from __future__ import annotations

import itertools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.optimize import Bounds, LinearConstraint, milp

import imle_solvers as ims
from imle_solvers.problems.ilp import ILP
from imle_solvers.spec import ILPBuilder, SpecError, list_problems, load_dict, load_yaml, problem, register_ilp
from imle_solvers.spec import unregister_ilp
from example_scripts import load_example

SPECS = Path(__file__).resolve().parents[1] / "examples" / "specs"
EXAMPLES = sorted(SPECS.glob("*.yaml"))
BACKENDS = ["ortools", "scip"]


def brute_force(ilp: ILP, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The optimum and an optimal z, by enumerating every integer point of the (finite) box."""
    lower, upper = ilp.bounds()
    assert ilp.integrality().all() and np.isfinite(lower).all() and np.isfinite(upper).all()
    points = np.array(list(itertools.product(*(range(int(lo), int(hi) + 1) for lo, hi in zip(lower, upper)))))
    activity = points @ ilp.constraints.toarray().T
    feasible = np.all((activity >= ilp.row_lower - 1e-9) & (activity <= ilp.row_upper + 1e-9), axis=1)
    values = ilp.sign * (points[feasible] @ ilp.objective_for(theta))
    best = int(values.argmax())
    return ilp.sign * values[best], points[feasible][best][ilp.theta_slots()].reshape(ilp.shape)


def test_there_is_an_example_of_each_kind():
    names = {p.stem for p in EXAMPLES}
    assert {"knapsack", "multi_knapsack", "ksubset_groups", "assignment", "shortest_path", "timetabling"} <= names


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_specs_match_brute_force(path: Path, backend: str):
    ilp = load_yaml(path)
    rng = np.random.default_rng(len(path.stem))
    theta = rng.uniform(0.1, 1.0, size=(4, *ilp.shape))  # positive: costs of the path problem stay positive
    z = ims.MAPOracle(ilp, backend=backend)(theta)
    assert z.shape == theta.shape
    for instance, state in zip(theta, z):
        optimum, expected = brute_force(ilp, instance)
        # every example's variables are all theta variables, so z is the whole solution
        assert ilp.theta_slots().size == ilp.n_variables
        activity = ilp.constraints @ state.ravel()
        assert np.all(activity >= ilp.row_lower - 1e-6) and np.all(activity <= ilp.row_upper + 1e-6)
        assert ilp.objective_for(instance) @ state.ravel() == pytest.approx(optimum, abs=1e-6)
        np.testing.assert_array_equal(state, expected)  # continuous random scores: a unique optimum


def knapsack_by_builder(weights=(3, 4, 5, 2, 6, 1), capacity=10) -> ILPBuilder:
    b = ILPBuilder("knapsack")
    b.add_constant("n_items", len(weights))
    b.add_set("items", "n_items")
    b.add_constant("weights", list(weights), over=["items"])
    b.add_constant("capacity", capacity)
    b.add_variable("x", over=["items"], type="binary")
    b.add_constraint("sum(i in items) weights[i] * x[i] <= capacity", name="capacity")
    b.set_objective("max", theta="x")
    return b


def timetabling_by_builder() -> ILPBuilder:
    b = ILPBuilder("timetabling")
    for name, size in (("events", 4), ("slots", 3), ("students", 3)):
        b.add_set(name, size)
    b.add_constant("rooms", 2)
    enrolled = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]])
    b.add_constant("enrolled", enrolled)
    b.add_variable("x", over=["events", "slots"])
    # the same rows, written as coefficient arrays instead of expressions
    once = np.zeros((4, 4, 3))
    for e in range(4):
        once[e, e, :] = 1
    b.add_constraint({"x": once}, lower=1, upper=1, name="scheduled_once")
    b.add_constraint("sum(e in events) x[e, t] <= rooms", for_each="t in slots", name="rooms")
    clash = np.zeros((3, 3, 4, 3))
    for s, t in itertools.product(range(3), range(3)):
        clash[s, t, :, t] = enrolled[s]
    b.add_constraint({"x": clash.reshape(9, 4, 3)}, upper=1, name="no_clash")
    b.set_objective("max", theta="x", fixed={"x": np.tile(-0.1 * np.arange(3), (4, 1))})
    return b


@pytest.mark.parametrize(("stem", "builder"), [("knapsack", knapsack_by_builder), ("timetabling", timetabling_by_builder)])
def test_yaml_dict_json_and_builder_give_the_same_model(stem, builder, tmp_path):
    from_yaml = load_yaml(SPECS / f"{stem}.yaml")
    tree = yaml.safe_load((SPECS / f"{stem}.yaml").read_text())
    as_json = tmp_path / f"{stem}.json"
    as_json.write_text(json.dumps(tree, indent=1))
    models = [from_yaml, load_dict(tree), load_yaml(as_json), builder().build()]
    assert len({m.fingerprint for m in models}) == 1
    assert all(m == from_yaml for m in models)
    np.testing.assert_array_equal(models[3].constraints.toarray(), from_yaml.constraints.toarray())
    np.testing.assert_array_equal(models[3].objective, from_yaml.objective)


@pytest.mark.skipif(not hasattr(ILP, "from_yaml"), reason="ILP.from_yaml/from_dict classmethods not added yet")
def test_ilp_classmethods_are_the_loaders():
    tree = yaml.safe_load((SPECS / "knapsack.yaml").read_text())
    assert ILP.from_yaml(SPECS / "knapsack.yaml", capacity=7) == load_dict(tree, capacity=7)
    assert ILP.from_dict(tree) == load_yaml(SPECS / "knapsack.yaml")


def test_different_programs_differ():
    assert load_yaml(SPECS / "knapsack.yaml") != knapsack_by_builder(capacity=9).build()
    assert load_yaml(SPECS / "knapsack.yaml", capacity=9) == knapsack_by_builder(capacity=9).build()


def test_parameters_supplied_at_load_time():
    weights = [5, 1, 1, 1, 1, 2, 2, 9]
    ilp = load_yaml(SPECS / "knapsack.yaml", n_items=8, weights=np.array(weights), capacity=4)
    assert ilp.shape == (8,)
    np.testing.assert_array_equal(ilp.constraints.toarray(), [weights])
    assert ilp.row_upper.tolist() == [4.0]
    assert ilp == knapsack_by_builder(weights, 4).build()


def test_a_parameter_of_the_wrong_length_is_a_dimension_mismatch():
    with pytest.raises(SpecError, match="dimension mismatch") as info:
        load_yaml(SPECS / "knapsack.yaml", weights=[1, 2, 3])
    assert info.value.field == "params.weights" and info.value.line == 8


def test_a_missing_parameter_names_itself_and_its_line():
    spec = {"params": {"w": {}}, "variables": {"x": {}}, "objective": {"sense": "max", "theta": "x"},
            "constraints": ["w * x <= 1"]}
    with pytest.raises(SpecError, match="missing parameter 'w'") as info:
        load_dict(spec)
    assert info.value.field == "params.w"
    assert load_dict(spec, w=2).constraints.toarray().tolist() == [[2.0]]
    with pytest.raises(SpecError, match="unknown parameter 'v'"):
        load_dict(spec, w=2, v=1)


def test_expression_features():
    b = ILPBuilder("features")
    b.add_set("t", 4)
    b.add_constant("hi", [3, 3, 2, 5])
    b.add_variable("y", over=["t"], type="integer", lower=-1, upper="hi")
    b.add_variable("s", type="continuous", lower=0, upper=10)
    b.add_set("t2", 3)
    b.add_constraint("y[i + 1] - y[i] >= -1", for_each="i in t2", name="ramp")
    b.add_constraint("-4 <= (y[0] + y[3]) / 2 - s <= 4 * 2", name="chain")
    b.add_constraint("sum(i in t) i * y[i] = 2 * s", name="weighted")
    b.set_objective("max", theta=["y", "s"], fixed="3 * s + 7")
    ilp = b.build()
    assert ilp.shape == (5,)
    np.testing.assert_array_equal(
        ilp.constraints.toarray(),
        [[-1, 1, 0, 0, 0], [0, -1, 1, 0, 0], [0, 0, -1, 1, 0], [0.5, 0, 0, 0.5, -1], [0, 1, 2, 3, -2]],
    )
    assert ilp.row_lower.tolist() == [-1, -1, -1, -4, 0] and ilp.row_upper.tolist()[3:] == [8, 0]
    assert ilp.objective.tolist() == [0, 0, 0, 0, 3]
    assert ilp.constraint_names[:2] == ("ramp[i=0]", "ramp[i=1]")
    lower, upper = ilp.bounds()
    assert lower.tolist() == [-1, -1, -1, -1, 0] and upper.tolist() == [3, 3, 2, 5, 10]
    reference = milp(-ilp.objective, constraints=LinearConstraint(ilp.constraints, ilp.row_lower, ilp.row_upper),
                     integrality=ilp.integrality(), bounds=Bounds(lower, upper))
    for backend in BACKENDS:
        z = ims.MAPOracle(ilp, backend=backend)(np.zeros((1, 5)))  # the fixed part alone: max 3 s
        assert 3 * z[0, 4] == pytest.approx(-reference.fun)


def test_rows_without_variables_that_hold_are_dropped_and_those_that_fail_are_errors():
    b = ILPBuilder()
    b.add_set("i", 2)
    b.add_constant("m", [[1, 0], [0, 0]])
    b.add_variable("x", over=["i"])
    b.add_constraint("sum(j in i) m[g, j] * x[j] <= 1", for_each="g in i")
    b.set_objective("max", "x")
    assert b.build().constraints.shape == (1, 2)
    with pytest.raises(SpecError, match="can never hold"):
        b.add_constraint("sum(j in i) m[g, j] * x[j] >= 1", for_each="g in i")


def test_spec_errors_keep_their_location_through_pickle():
    error = SpecError("bad", field="constraints[0].expr", file="a.yaml", line=3, column=7)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.file, copy.line, copy.column, str(copy)) == (
        "constraints[0].expr", "a.yaml", 3, 7, "a.yaml:3:7: constraints[0].expr: bad")
    assert isinstance(copy, ims.InvalidInputError)


@pytest.fixture
def registered():
    names = []

    def register(name, spec):
        register_ilp(name, spec)
        names.append(name)

    yield register
    for name in names:
        unregister_ilp(name)


def test_registered_problems_from_every_kind_of_source(registered):
    registered("ks-path", SPECS / "knapsack.yaml")
    registered("ks-dict", yaml.safe_load((SPECS / "knapsack.yaml").read_text()))
    registered("ks-builder", knapsack_by_builder())
    registered("ks-ilp", knapsack_by_builder().build())
    registered("ks-function", lambda capacity=10: knapsack_by_builder(capacity=capacity).build())
    names = ("ks-path", "ks-dict", "ks-builder", "ks-ilp", "ks-function")
    made = [problem(name) for name in names]
    assert len({m.fingerprint for m in made}) == 1
    assert [m.name for m in made] == list(names)
    assert problem("ks-path", capacity=3).name == "ks-path"
    registered("not-an-ilp", lambda: knapsack_by_builder())
    with pytest.raises(TypeError, match="'not-an-ilp' returned an object of type ILPBuilder, not an ILP"):
        problem("not-an-ilp")
    assert {"ks-path", "ks-ilp"} <= set(list_problems())
    assert problem("ks-path", capacity=3) == problem("ks-function", capacity=3)
    with pytest.raises(ValueError, match="already registered"):
        register_ilp("ks-path", SPECS / "knapsack.yaml")
    with pytest.raises(KeyError, match="ks-path"):
        problem("no-such-problem")
    with pytest.raises(TypeError, match="takes no parameters"):
        problem("ks-ilp", capacity=3)


def test_registering_a_broken_spec_fails_at_once(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("variables: {x: {}}\nobjective: {sense: maximise, theta: x}\n")
    with pytest.raises(SpecError) as info:
        register_ilp("broken", broken)
    assert info.value.line == 2 and "broken" not in list_problems()


def test_a_registered_problem_trains_in_the_torch_layer(registered):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    registered("groups", SPECS / "ksubset_groups.yaml")
    ilp = problem("groups", k=3, m=1)
    layer = IMLELayer(ilp, ims.IMLE(noise=ims.SumOfGamma(k=3), lambda_=10.0), backend="ortools", seed=0)
    theta = torch.randn(2, 9, requires_grad=True)
    z = layer(theta)
    assert z.shape == (2, 9) and torch.all(z.sum(dim=1) == 3)
    member = np.repeat(np.eye(3), 3, axis=1)
    assert np.all(member @ z.detach().numpy().T <= 1)
    (z * torch.arange(9.0)).sum().backward()
    assert theta.grad is not None and theta.grad.shape == (2, 9)


def test_the_schema_in_docs_is_the_shipped_one():
    from imle_solvers.spec import ilp_schema

    docs = Path(__file__).resolve().parents[1] / "docs" / "ilp.schema.json"
    assert json.loads(docs.read_text()) == ilp_schema()


def test_the_knapsack_example_lowers_the_held_out_regret(capsys):
    before, after = load_example("knapsack_from_spec").main(epochs=3)
    assert after < before / 2
    assert "held-out regret after training" in capsys.readouterr().out

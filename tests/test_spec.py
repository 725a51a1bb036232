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
from imle_solvers.spec import ILPBuilder, SpecError, list_named_ilps, load_dict, load_yaml, named_ilp, register_ilp
from imle_solvers.spec import UnknownProblemError, unregister_ilp
from imle_solvers.spec.compiler import compile_spec
from imle_solvers.spec.source import from_yaml_text
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
    assert {"knapsack", "multi_knapsack", "ksubset_groups", "assignment", "shortest_path", "timetabling",
            "rota"} <= names


# sizes at which brute force is quick, for examples that are large by default
SMALL = {"rota_weekly": {"n_workers": 2, "n_days": 2, "max_shifts": 2}}


def example_data(ilp: ims.ILP, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-instance values of the example's batched parameters (a 0/1 table with one 0 per
    instance: the rota's availability, which keeps every instance feasible)."""
    data = {}
    for name, field in ilp.instance_fields.items():
        table = np.ones((4, *field.shape))
        table.reshape(4, -1)[np.arange(4), rng.integers(0, int(np.prod(field.shape)), 4)] = 0
        data[name] = table
    return data


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_specs_match_brute_force(path: Path, backend: str):
    ilp = load_yaml(path, **SMALL.get(path.stem, {}))
    rng = np.random.default_rng(len(path.stem))
    theta = rng.uniform(0.1, 1.0, size=(4, *ilp.shape))  # positive: costs of the path problem stay positive
    data = example_data(ilp, rng)
    z = ims.MAPOracle(ilp, backend=backend)(theta, **data)
    assert z.shape == theta.shape
    for i, (instance, state) in enumerate(zip(theta, z)):
        ilp_i = ilp.with_values({name: value[i] for name, value in data.items()})
        optimum, expected = brute_force(ilp_i, instance)
        # every example's variables are all theta variables, so z is the whole solution
        assert ilp_i.theta_slots().size == ilp_i.n_variables
        activity = ilp_i.constraints @ state.ravel()
        assert np.all(activity >= ilp_i.row_lower - 1e-6) and np.all(activity <= ilp_i.row_upper + 1e-6)
        assert ilp_i.objective_for(instance) @ state.ravel() == pytest.approx(optimum, abs=1e-6)
        np.testing.assert_array_equal(state, expected)  # continuous random scores: a unique optimum


def knapsack_by_builder(weights=(3, 4, 5, 2, 6, 1), capacity=10) -> ILPBuilder:
    b = ILPBuilder("knapsack")
    b.add_parameter("n_items", len(weights))
    b.add_set("items", "n_items")
    b.add_parameter("weights", list(weights), over=["items"])
    b.add_parameter("capacity", capacity)
    b.add_variable("x", over=["items"], type="binary")
    b.add_constraint("sum(i in items) weights[i] * x[i] <= capacity", name="capacity")
    b.set_objective("max", theta="x")
    return b


def timetabling_by_builder() -> ILPBuilder:
    b = ILPBuilder("timetabling")
    for name, size in (("events", 4), ("slots", 3), ("students", 3)):
        b.add_set(name, size)
    b.add_parameter("rooms", 2)
    enrolled = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]])
    b.add_parameter("enrolled", enrolled)
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
    b.add_parameter("hi", [3, 3, 2, 5])
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
    b.add_parameter("m", [[1, 0], [0, 0]])
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
    made = [named_ilp(name) for name in names]
    assert len({m.fingerprint for m in made}) == 1
    assert [m.name for m in made] == list(names)
    assert named_ilp("ks-path", capacity=3).name == "ks-path"
    registered("not-an-ilp", lambda: knapsack_by_builder())
    with pytest.raises(TypeError, match="'not-an-ilp' returned an object of type ILPBuilder, not an ILP"):
        named_ilp("not-an-ilp")
    assert {"ks-path", "ks-ilp"} <= set(list_named_ilps())
    assert named_ilp("ks-path", capacity=3) == named_ilp("ks-function", capacity=3)
    with pytest.raises(ValueError, match="already registered as 'ks-path'; pass replace=True"):
        register_ilp("ks-path", SPECS / "knapsack.yaml")
    with pytest.raises(TypeError, match="takes no parameters"):
        named_ilp("ks-ilp", capacity=3)


def test_an_unknown_name_is_a_typed_error_listing_the_registered_ones(registered):
    registered("ks-a", SPECS / "knapsack.yaml")
    registered("ks-b", SPECS / "knapsack.yaml")
    with pytest.raises(UnknownProblemError) as info:
        named_ilp("ks-c")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ims.ImleSolversError)
    message = str(info.value)  # not KeyError's quoted repr
    assert message.startswith("no ILP is registered as 'ks-c'; registered: [")
    assert "'ks-a', 'ks-b'" in message
    with pytest.raises(UnknownProblemError, match="no ILP is registered as 'ks-c'"):
        unregister_ilp("ks-c")


def test_named_ilp_replace(registered):
    registered("ks-r", SPECS / "knapsack.yaml")
    with pytest.raises(ValueError, match="pass replace=True"):
        register_ilp("ks-r", lambda: knapsack_by_builder(capacity=3).build())
    register_ilp("ks-r", lambda: knapsack_by_builder(capacity=3).build(), replace=True)
    assert named_ilp("ks-r").row_upper.tolist() == [3.0]
    register_ilp("ks-r", SPECS / "knapsack.yaml", replace=True)
    assert named_ilp("ks-r").row_upper.tolist() == [10.0]
    assert ims.named_ilp is named_ilp and ims.UnknownProblemError is UnknownProblemError
    assert ims.list_named_ilps() == list_named_ilps()
    # a spec parameter called "name" does not collide with the registered name
    spec = {"params": {"name": {"default": 1}}, "variables": {"x": {}}, "constraints": ["x <= name"],
            "objective": {"sense": "max", "theta": "x"}}
    registered("named-param", spec)
    assert named_ilp("named-param", name=0).row_upper.tolist() == [0.0]


def test_registering_a_broken_spec_fails_at_once(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("variables: {x: {}}\nobjective: {sense: maximise, theta: x}\n")
    with pytest.raises(SpecError) as info:
        register_ilp("broken", broken)
    assert info.value.line == 2 and "broken" not in list_named_ilps()


def test_a_registered_problem_trains_in_the_torch_layer(registered):
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    registered("groups", SPECS / "ksubset_groups.yaml")
    ilp = named_ilp("groups", k=3, m=1)
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


# -- the language: arithmetic sizes, filtered bindings, bound expressions ---------------

def rota_is_feasible(x: np.ndarray, days: int, per_day: int, cover: int, max_shifts: int) -> bool:
    """The rota's rules, written directly (not through the spec) for the brute force."""
    shifts = days * per_day
    if np.any(x.sum(axis=0) < cover) or np.any(x.sum(axis=1) > max_shifts):
        return False
    if np.any(x.reshape(x.shape[0], days, per_day).sum(axis=2) > 1):
        return False
    return not np.any(x[:, : shifts - 1] + x[:, 1:] > 1)  # two consecutive shifts


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_rota_example_matches_a_brute_force_of_its_rules(backend):
    sizes = {"n_workers": 2, "n_days": 3, "shifts_per_day": 2, "cover": 1, "max_shifts": 3}
    ilp = load_yaml(SPECS / "rota.yaml", **sizes)
    assert ilp.shape == (2, 6) and ilp.name == "rota"
    names = ilp.constraint_names
    # 'rest' has a row for s = 0..4 only: the filter dropped s = 5, which has no next shift
    assert [n for n in names if n.startswith("rest[w=0")] == [f"rest[w=0, s={s}]" for s in range(5)]
    points = np.array(list(itertools.product([0, 1], repeat=12)), dtype=float)
    rules = np.array([rota_is_feasible(p.reshape(2, 6), 3, 2, 1, 3) for p in points])
    assert 0 < rules.sum() < len(points)
    # the compiled rows accept exactly the points the rules accept
    assert all(bool(ilp.violations(p.reshape(2, 6))) == (not ok) for p, ok in zip(points, rules))
    theta = np.random.default_rng(7).normal(size=(3, 2, 6))
    z = ims.MAPOracle(ilp, backend=backend)(theta)
    for instance, state in zip(theta, z):
        best = (points[rules] @ instance.ravel()).max()
        assert instance.ravel() @ state.ravel() == pytest.approx(best)
        assert rota_is_feasible(state, 3, 2, 1, 3)


def test_set_sizes_and_bounds_may_be_arithmetic_on_parameters():
    spec = {
        "params": {"n": {}},
        "sets": {"items": "n", "pairs": "n - 1", "doubled": "2 * n", "halved": "n / 2", "both": "(n + 1) * 2 - n"},
        "variables": {"x": {"over": ["items"]}, "y": {"over": ["doubled"], "type": "integer", "lower": "-n",
                                                       "upper": "n / 2 + 1"}},
        "constraints": [{"for": "i in pairs", "expr": "x[i] + x[i + 1] <= 1"}],
        "objective": {"sense": "max", "theta": ["x", "y"]},
    }
    ilp = load_dict(spec, n=4)
    assert [v.shape for v in ilp.variables] == [(4,), (8,)]
    assert ilp.constraints.shape == (3, 12)
    lower, upper = ilp.bounds()
    assert lower[4:].tolist() == [-4] * 8 and upper[4:].tolist() == [3] * 8
    with pytest.raises(SpecError, match=r"a set size must be an integer in \[0, 5,000,000\] \(max_entries\), got 2.5") as info:
        load_dict(spec, n=5)
    assert info.value.field == "sets.halved"
    with pytest.raises(SpecError, match="got -1") as info:
        load_dict(spec, n=0)
    assert info.value.field == "sets.pairs"
    broken = "params: {n: {}}\nsets:\n  items: n - x\nvariables: {x: {}}\nobjective: {sense: max, theta: x}\n"
    with pytest.raises(SpecError, match="unknown name 'x'") as info:
        compile_spec(from_yaml_text(broken, "broken.yaml"), {"n": 4})
    assert (info.value.field, info.value.line, info.value.column) == ("sets.items", 3, 14)


def test_filters_keep_the_assignments_where_every_condition_holds():
    b = ILPBuilder("filters")
    b.add_set("n", 4)
    b.add_parameter("w", [0, 2, 0, 3])
    b.add_variable("x", over=["n", "n"])
    b.add_constraint("x[i, j] + x[j, i] <= 1", for_each="i in n, j in n if i < j and j != 3", name="pair")
    b.add_constraint("sum(j in n if w[j] > 0) x[i, j] >= 1", for_each="i in n if i = 0", name="some")
    b.add_constraint("sum(i in n, j in n if i == j) x[i, j] == 2", name="diagonal")
    b.set_objective("max", theta="x")
    ilp = b.build()
    assert ilp.constraint_names == ("pair[i=0, j=1]", "pair[i=0, j=2]", "pair[i=1, j=2]", "some[i=0]", "diagonal")
    dense = ilp.constraints.toarray().reshape(5, 4, 4)
    assert dense[0][0, 1] == dense[0][1, 0] == 1 and dense[0].sum() == 2
    np.testing.assert_array_equal(dense[3], [[0, 1, 0, 1]] + [[0] * 4] * 3)  # w[j] > 0: j = 1, 3
    np.testing.assert_array_equal(dense[4], np.eye(4))
    with pytest.raises(SpecError, match="an 'if' condition compares numbers; it cannot depend on variables") as info:
        b.add_constraint("x[i, i] <= 1", for_each="i in n if x[i, i] > 0")
    assert (info.value.field, info.value.column) == ("for", 19)
    with pytest.raises(SpecError, match=r"expected a comparison \(<, <=, >, >=, ==, !=\) in the 'if' condition") as info:
        b.add_constraint("x[i, i] <= 1", for_each="i in n if i")
    assert info.value.column == 12
    with pytest.raises(SpecError, match="'if' is not a valid name"):
        b.add_set("if", 2)


def test_an_unbound_index_asks_whether_a_for_was_forgotten():
    spec = {"sets": {"items": 3}, "variables": {"x": {"over": ["items"]}}, "constraints": ["x[i] <= 1"],
            "objective": {"sense": "max", "theta": "x"}}
    with pytest.raises(SpecError) as info:
        load_dict(spec)
    assert info.value.message == "unknown name 'i': an index must be bound; did you forget `for: i in items`?"
    assert info.value.field == "constraints[0]"  # (a dict has no lines; the corpus checks the column)
    b = ILPBuilder()
    b.add_set("items", 3)
    b.add_parameter("w", [[1, 2, 3]])
    b.add_variable("x", over=["items"])
    with pytest.raises(SpecError, match=r'did you forget `for_each="i in items"`\?'):
        b.add_constraint("sum(j in items) x[i] <= 1")
    with pytest.raises(SpecError, match=r'did you forget `for_each="k in <set>"`\?'):  # w's axes have no set
        b.add_constraint("w[0, k] * x[0] <= 1")
    with pytest.raises(SpecError) as info:
        b.add_constraint("x[0] + y <= 1")
    assert info.value.message == "unknown name 'y'"  # not an index: no such hint


def test_the_builder_section_of_the_docs_runs_as_written():
    text = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text()
    section = text.split("## The builder", 1)[1]
    code = section.split("```python", 1)[1].split("\n", 1)[1].split("```", 1)[0]  # the fence may say exec="on"
    namespace: dict = {}
    exec(code, {"ILPBuilder": ILPBuilder, "np": np}, namespace)  # the docs' own example
    ilp = namespace["rota"]
    assert ilp.shape == (2, 4) and ilp.constraints.shape[0] == 4 + 2 * 3
    rest = [name for name in ilp.constraint_names if name.startswith("rest")]
    assert rest == [f"rest[w={w}, s={s}]" for w in range(2) for s in range(3)]
    z = ims.MAPOracle(ilp, backend="ortools")(np.ones((1, 2, 4)))[0]
    assert np.all(z[:, :-1] + z[:, 1:] <= 1) and np.all(z.sum(axis=0) >= 1)


def test_hints_name_the_entry_point_for_a_missing_parameter(tmp_path):
    path = tmp_path / "needs.yaml"
    path.write_text("params:\n  cap: {}\nvariables:\n  x: {}\nconstraints: [x <= cap]\n"
                    "objective: {sense: max, theta: x}\n")
    cases = [
        (lambda: load_yaml(path), "load_yaml(path, cap=...)"),
        (lambda: ILP.from_yaml(path), "ILP.from_yaml(path, cap=...)"),
        (lambda: load_dict(yaml.safe_load(path.read_text())), "load_dict(spec, cap=...)"),
        (lambda: ILP.from_dict(yaml.safe_load(path.read_text())), "ILP.from_dict(spec, cap=...)"),
    ]
    for load, hint in cases:
        with pytest.raises(SpecError) as info:
            load()
        assert info.value.message == f"missing parameter 'cap': supply it with {hint}"
    register_ilp("needs-cap", path)
    try:
        with pytest.raises(SpecError, match=r"supply it with named_ilp\('needs-cap', cap=...\)$"):
            named_ilp("needs-cap")
    finally:
        unregister_ilp("needs-cap")
    from click.testing import CliRunner

    from imle_solvers.cli import main

    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"error: {path}:2:3: params.cap: missing parameter 'cap': supply it with --param cap=VALUE" in result.output

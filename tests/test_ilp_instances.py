"""Batched (per-instance) ILP parameters: specs and the builder declare them, each backend
solves instance by instance on one cached model that only rewrites what changed, and
every instance's result equals solving the plain program of its values (``with_values``)
and brute force on tiny programs. Specs that would let a batched parameter decide the
structure, or be non-affine in it, are refused where they say so."""

from __future__ import annotations

import itertools
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest

import imle_solvers as ims

from imle_solvers import InvalidInputError, SolverError
from imle_solvers.adapters import resolve_solver
from imle_solvers.problems import ILP
from imle_solvers.problems.base import DataField
from imle_solvers.spec import ILPBuilder, SpecError, load_dict, load_yaml

BACKENDS = ["ortools", "scip", "highs"]
MODULES = {"ortools": "ortools", "scip": "pyscipopt", "highs": "scipy"}


def solver(backend: str):
    pytest.importorskip(MODULES[backend])
    return resolve_solver("ilp", backend).solve


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def brute_force(problem: ILP, theta: np.ndarray) -> tuple[float | None, np.ndarray]:
    """The optimal objective over every integer point within the bounds (None: infeasible)
    and the optimal points ``(k, n)``. The programs here have theta on every variable."""
    lower, upper = problem.bounds()
    ranges = [range(int(np.ceil(lo)), int(np.floor(hi)) + 1) for lo, hi in zip(lower, upper)]
    points = np.array(list(itertools.product(*ranges)), dtype=np.float64).reshape(-1, problem.n_variables)
    activity = points @ problem.constraints.toarray().T
    feasible = ((activity >= problem.row_lower - 1e-9) & (activity <= problem.row_upper + 1e-9)).all(axis=1)
    if not feasible.any():
        return None, points[:0]
    values = problem.sign * (points[feasible] @ problem.objective_for(theta))
    best = values.max()
    return float(problem.sign * best), points[feasible][values >= best - 1e-9]


def solve_or_status(solve, theta: np.ndarray, problem: ILP, **options) -> np.ndarray | str:
    try:
        return solve(theta, problem, **options)
    except SolverError as error:
        return error.status


def check_against_plain(backend: str, problem: ILP, theta: np.ndarray, data: dict) -> None:
    """One instance: through ``data`` on the batched program, as the plain program of its
    values, and by brute force — equal objectives, equal states where the optimum is unique."""
    solve = solver(backend)
    plain = problem.with_values(data)
    assert plain.parameters is None
    got = solve_or_status(solve, theta, problem, data=data)
    expected = solve_or_status(solve, theta, plain)
    best, optima = brute_force(plain, theta)
    if best is None:
        assert got == expected == "infeasible", (got, expected, data)
        return
    assert not isinstance(got, str), (got, data)
    costs = plain.objective_for(theta)
    assert costs @ got.ravel() == pytest.approx(best, abs=1e-6), data
    assert costs @ expected.ravel() == pytest.approx(best, abs=1e-6)
    assert not plain.violations(got), data
    if len(optima) == 1:  # a unique optimum: the very same state
        np.testing.assert_array_equal(got.ravel(), optima[0])
        np.testing.assert_array_equal(got, expected)


def reuse_order(rng: np.random.Generator, count: int, length: int = 24) -> list[int]:
    """Instance indices that alternate, repeat and come back (0, 1, 0, 0, 2, 1, ...), so a
    cached model is rewritten both ways and sometimes not at all."""
    return [0, 1, 0, 0] + rng.integers(0, count, size=length - 4).tolist()


# -- a knapsack with a batched capacity --------------------------------------------------------

KNAPSACK = """
    name: knapsack
    params:
      weights: {over: [items], default: [3, 4, 5, 2, 6, 1, 4, 3]}
      capacity: {batched: true, default: 10}
    sets:
      items: 8
    variables:
      x: {over: [items], type: binary}
    constraints:
      - name: capacity
        expr: sum(i in items) weights[i] * x[i] <= capacity
    objective:
      sense: max
      theta: x
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batched_capacity_matches_the_plain_knapsack_of_each_value(backend, tmp_path, rng):
    knapsack = load_yaml(write(tmp_path, KNAPSACK))
    assert knapsack.instance_fields == {"capacity": DataField((), "float", "batched parameter 'capacity' of ilp "
                                                                          "'knapsack'")}
    capacities = [3.0, 17.0, 8.5, 0.0, 11.0, 28.0, 5.0]
    thetas = rng.normal(size=(len(capacities), 8))
    for i in reuse_order(rng, len(capacities)):
        check_against_plain(backend, knapsack, thetas[i], {"capacity": np.float64(capacities[i])})


def test_one_instance_is_the_plain_program_of_its_values(tmp_path):
    """with_values gives the very program a spec with that capacity fixed compiles to."""
    knapsack = load_yaml(write(tmp_path, KNAPSACK))
    fixed = load_yaml(write(tmp_path, KNAPSACK.replace("{batched: true, default: 10}", "{default: 10}"), "f.yaml"),
                      capacity=13)
    assert knapsack.with_values({"capacity": 13.0}) == fixed
    assert knapsack.with_values() == load_yaml(write(tmp_path, KNAPSACK.replace("batched: true, ", ""), "d.yaml"))
    assert knapsack != fixed and knapsack.parameters is not None


def test_the_fingerprint_covers_structure_maps_and_defaults_not_instances(tmp_path):
    knapsack = load_yaml(write(tmp_path, KNAPSACK))
    assert load_yaml(write(tmp_path, KNAPSACK, "again.yaml")) == knapsack
    assert load_yaml(write(tmp_path, KNAPSACK), capacity=12) != knapsack  # another default
    doubled = KNAPSACK.replace("<= capacity", "<= 2 * capacity")
    assert load_yaml(write(tmp_path, doubled, "doubled.yaml")) != knapsack  # another map
    copy = pickle.loads(pickle.dumps(knapsack))
    assert copy == knapsack and copy.parameters.names == ("capacity",)
    knapsack.instance_values({"capacity": 4.0})  # gathers the parametric parts: still picklable
    assert pickle.loads(pickle.dumps(knapsack)) == knapsack


@pytest.mark.parametrize("backend", BACKENDS)
def test_instances_rewrite_one_cached_model(backend, tmp_path, rng):
    from imle_solvers.adapters import ilp_highs, ilp_ortools, ilp_scip

    knapsack = load_yaml(write(tmp_path, KNAPSACK.replace("name: knapsack", "name: reused")))
    cached = {"ortools": ilp_ortools.cp_sat_model, "scip": ilp_scip.scip_model, "highs": ilp_highs.highs_model}[backend]
    solve = solver(backend)
    solve(rng.normal(size=8), knapsack, data={"capacity": np.float64(5.0)})
    misses = cached.cache_info().misses
    for capacity in [9.0, 2.0, 9.0, 30.0, 0.0]:
        solve(rng.normal(size=8), knapsack, data={"capacity": np.float64(capacity)})
    assert cached.cache_info().misses == misses  # one model, rewritten


# -- batched right-hand sides, bounds, coefficients and fixed objective ------------------------

MIXED = """
    name: mixed
    params:
      a: {over: [rows, items], batched: true}
      lo: {over: [rows], batched: true, default: [0, 0]}
      hi: {over: [rows], batched: true}
      ub: {over: [items], batched: true, default: [2, 2, 2, 2]}
      bonus: {batched: true, default: 0}
    sets:
      items: 4
      rows: 2
    variables:
      y: {over: [items], type: integer, upper: ub}
    constraints:
      - name: band
        for: r in rows
        expr: lo[r] <= sum(i in items) a[r, i] * y[i] <= hi[r]
      - name: total
        expr: sum(i in items) y[i] <= 2 * hi[0] - lo[1] + 1
      - name: never_below
        expr: 0 <= bonus + 3
    objective:
      sense: max
      theta: y
      fixed: bonus * y[0] - 0.5 * bonus * y[1] + 2 * y[3]
"""


def mixed_instance(rng: np.random.Generator, fractional: bool) -> dict[str, np.ndarray]:
    a = rng.integers(-1, 4, size=(2, 4)).astype(np.float64)
    if fractional:  # CP-SAT cannot take this instance: OR-Tools routes it to SCIP
        a += rng.choice([0.0, 0.5, 0.25], size=a.shape)
    lo = rng.integers(-3, 1, size=2).astype(np.float64)
    return {
        "a": a, "lo": lo, "hi": lo + rng.integers(0, 7, size=2),
        "ub": rng.integers(0, 4, size=4).astype(np.float64),
        "bonus": np.float64(rng.normal() * 2 if rng.random() < 0.8 else -5.0),  # -5: 'never_below' fails
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_rows_bounds_coefficients_and_objective_match_the_plain_program(backend, tmp_path, rng):
    from imle_solvers.adapters.ilp_ortools import cp_sat_takes

    mixed = load_yaml(write(tmp_path, MIXED))
    assert set(mixed.instance_fields) == {"a", "lo", "hi", "ub", "bonus"}
    instances = [mixed_instance(rng, fractional=i % 3 == 2) for i in range(9)]
    assert not cp_sat_takes(mixed.instance_values(instances[2]))  # some instances leave CP-SAT
    assert cp_sat_takes(mixed.instance_values(instances[0]))
    thetas = rng.normal(size=(len(instances), 4))
    for i in reuse_order(rng, len(instances), 40):
        check_against_plain(backend, mixed, thetas[i], instances[i])


# -- a rota with a batched availability table ------------------------------------------------

ROTA = """
    name: rota
    params:
      available: {over: [workers, shifts], batched: true}
      cover: {batched: true, default: 1}
    sets:
      workers: 3
      shifts: 4
    variables:
      x: {over: [workers, shifts], type: binary, upper: available}
    constraints:
      - name: covered
        for: s in shifts
        expr: sum(w in workers) x[w, s] >= cover
      - name: rest
        for: w in workers, s in shifts if s + 1 < 4
        expr: x[w, s] + x[w, s + 1] <= 1
      - name: workload
        for: w in workers
        expr: sum(s in shifts) x[w, s] <= 2
    objective:
      sense: max
      theta: x
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rota_with_a_batched_availability_table_matches_the_plain_rota(backend, tmp_path, rng):
    rota = load_yaml(write(tmp_path, ROTA))
    tables = [(rng.random((3, 4)) < 0.8).astype(np.float64) for _ in range(6)]
    tables[3][:, 2] = 0.0  # nobody can take shift 2: infeasible
    covers = [1.0, 1.0, 2.0, 1.0, 0.0, 1.0]
    thetas = rng.normal(size=(len(tables), 3, 4))
    for i in reuse_order(rng, len(tables)):
        check_against_plain(backend, rota, thetas[i], {"available": tables[i], "cover": np.float64(covers[i])})


# -- what a batched parameter may not do ---------------------------------------------------------

BASE = """
    name: refused
    params:
      n: {batched: true, default: 3}
      cap: {batched: true, default: 5}
      w: {over: [items], batched: true, default: [1, 2, 3, 4]}
    sets:
      items: 4
    variables:
      x: {over: [items], type: binary}
    constraints:
      - name: c
        expr: sum(i in items) w[i] * x[i] <= cap
    objective: {sense: max, theta: x}
"""

REFUSED = {
    "set size": (("items: 4", "items: 2 * n"), "a set size cannot depend on the batched parameter 'n'"),
    "over": (("x: {over: [items]", "x: {over: [cap]"), "'cap' is a batched parameter, not a set"),
    "index": (("w[i] * x[i] <= cap", "w[i] * x[i] + x[n] <= cap"),
              "an index cannot depend on the batched parameter 'n'"),
    "product": (("w[i] * x[i] <= cap", "w[i] * x[i] <= cap * n"),
                "non-affine term: a product of two expressions with batched parameters"),
    "product in a coefficient": (("w[i] * x[i] <= cap", "w[i] * cap * x[i] <= 3"),
                                 "non-affine term: a product of two expressions with batched parameters"),
    "division": (("w[i] * x[i] <= cap", "x[i] / cap <= 3"), "division by the batched parameter 'cap'"),
    "filter": (("    expr: sum", "    for: j in items if w[j] > 1\n    expr: x[j] + sum"),
               "an 'if' condition cannot depend on the batched parameter 'w'"),
    "sum filter": (("sum(i in items)", "sum(i in items if w[i] > 1)"),
                   "an 'if' condition cannot depend on the batched parameter 'w'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_batched_parameter_deciding_structure_or_non_affine_is_refused_at_its_line(case, tmp_path):
    (old, new), message = REFUSED[case]
    text = textwrap.dedent(BASE).replace(old, new)
    assert text != textwrap.dedent(BASE)
    path = write(tmp_path, text)
    marker = new.strip().splitlines()[0]
    line = next(number for number, content in enumerate(path.read_text().splitlines(), 1) if marker in content)
    with pytest.raises(SpecError) as error:
        load_yaml(path)
    assert message in error.value.message
    assert error.value.line == line and str(error.value).startswith(f"{path}:{line}:")


def test_the_builder_declares_batched_parameters_as_the_spec_does(tmp_path):
    b = ILPBuilder("knapsack")
    b.add_set("items", 8)
    b.add_parameter("weights", [3, 4, 5, 2, 6, 1, 4, 3], over=["items"])
    b.add_parameter("capacity", default=10, batched=True)
    b.add_variable("x", over=["items"], type="binary")
    b.add_constraint("sum(i in items) weights[i] * x[i] <= capacity", name="capacity")
    b.set_objective("max", theta="x")
    assert b.build() == load_yaml(write(tmp_path, KNAPSACK))

    b = ILPBuilder("mixed")  # in a spec's order: parameters without 'over' before the sets
    b.add_parameter("bonus", default=0, batched=True)
    b.add_set("items", 4)
    b.add_set("rows", 2)
    b.add_parameter("a", over=["rows", "items"], batched=True)
    b.add_parameter("lo", over=["rows"], default=[0, 0], batched=True)
    b.add_parameter("hi", over=["rows"], batched=True)
    b.add_parameter("ub", over=["items"], default=[2, 2, 2, 2], batched=True)
    b.add_variable("y", over=["items"], type="integer", upper="ub")
    b.add_constraint("lo[r] <= sum(i in items) a[r, i] * y[i] <= hi[r]", for_each="r in rows", name="band")
    b.add_constraint("sum(i in items) y[i] <= 2 * hi[0] - lo[1] + 1", name="total")
    b.add_constraint("0 <= bonus + 3", name="never_below")
    b.set_objective("max", theta="y", fixed="bonus * y[0] - 0.5 * bonus * y[1] + 2 * y[3]")
    assert b.build() == load_yaml(write(tmp_path, MIXED))


def test_the_builder_refuses_structure_from_a_batched_parameter():
    b = ILPBuilder("refused")
    b.add_parameter("n", default=3, batched=True)
    with pytest.raises(SpecError, match="a set size cannot depend on the batched parameter 'n'") as error:
        b.add_set("items", "n + 1")
    assert error.value.column == 1
    b.add_set("items", 4)
    with pytest.raises(SpecError, match="'n' is a batched parameter, not a set"):
        b.add_variable("x", over=["n"])
    with pytest.raises(SpecError, match="dimension mismatch"):
        b.add_parameter("w", over=["items"], default=[1, 2], batched=True)


def test_a_dict_spec_and_a_load_time_default(rng):
    spec = {
        "params": {"capacity": {"batched": True}},
        "sets": {"items": 3},
        "variables": {"x": {"over": ["items"]}},
        "constraints": ["sum(i in items) x[i] <= capacity"],
        "objective": {"sense": "max", "theta": "x"},
    }
    without = load_dict(spec)
    assert without.parameters.parameters[0].default is None
    with pytest.raises(InvalidInputError, match=r"ILP 'ilp': batched parameter 'capacity' has no default; pass it "
                                                r"per instance: layer\(theta, capacity=\.\.\.\)"):
        without.with_values()
    two = load_dict(spec, capacity=2)  # a value given at load time is the default
    assert two.with_values().row_upper.tolist() == [2.0]
    assert two.with_values({"capacity": 1.0}).row_upper.tolist() == [1.0]


# -- errors of instances ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_missing_batched_parameter_without_default_is_a_clear_error(backend, tmp_path):
    rota = load_yaml(write(tmp_path, ROTA))
    message = r"ILP 'rota': batched parameter 'available' has no default; pass it per instance: " \
              r"layer\(theta, available=\.\.\.\)"
    solve = solver(backend)
    with pytest.raises(InvalidInputError, match=message):
        solve(np.zeros((3, 4)), rota)
    with pytest.raises(InvalidInputError, match=message):
        solve(np.zeros((3, 4)), rota, data={"cover": np.float64(1.0)})
    with pytest.raises(InvalidInputError, match=message):
        rota.check_instance_data({"cover": np.ones(5)})


def test_batch_checks_name_the_parameters_and_the_first_bad_index(tmp_path):
    mixed = load_yaml(write(tmp_path, MIXED))
    batch = 5
    data = {"a": np.ones((batch, 2, 4)), "hi": np.full((batch, 2), 4.0), "lo": np.zeros((batch, 2))}
    mixed.check_instance_data(data)
    data["lo"][3, 1] = 6.0  # row band[r=1]: 6 <= ... <= 4
    data["lo"][4, 0] = 9.0
    with pytest.raises(InvalidInputError, match=r"ILP 'mixed': batched parameters 'lo', 'hi' at batch index 3: "
                                                r"constraint 'band\[r=1\]' would need 6 <= activity <= 4"):
        mixed.check_instance_data(data)
    data["lo"][3, 1] = 0.0
    data["ub"] = np.full((batch, 4), 2.0)
    data["ub"][1, 2] = -1.0  # y[2] in [0, -1]
    with pytest.raises(InvalidInputError, match=r"batched parameter 'ub' at batch index 1: variable y\[2\] would "
                                                r"need 0 <= value <= -1"):
        mixed.check_instance_data(data)
    with pytest.raises(InvalidInputError, match=r"unknown per-instance data \['c'\]"):
        mixed.check_instance_data({**data, "c": np.ones(batch)})


def test_a_program_without_batched_parameters_takes_no_data(tmp_path):
    plain = load_yaml(write(tmp_path, KNAPSACK.replace("batched: true, ", "")))
    assert plain.instance_fields == {} and plain.instance_values() is None
    with pytest.raises(InvalidInputError, match="has no batched parameters"):
        plain.check_instance_data({"capacity": np.ones(2)})


# -- time limits ----------------------------------------------------------------------------------

def hard_knapsack(rng: np.random.Generator, items: int = 100, rows: int = 8) -> ILP:
    """A multi-dimensional knapsack with batched capacities, too large to prove optimal in
    50 ms, where both backends find feasible points at once."""
    b = ILPBuilder("hard")
    b.add_set("items", items)
    b.add_set("rows", rows)
    b.add_parameter("use", rng.integers(1, 100, size=(rows, items)), over=["rows", "items"])
    b.add_parameter("capacity", over=["rows"], batched=True)
    b.add_variable("x", over=["items"], type="binary")
    b.add_constraint("sum(i in items) use[r, i] * x[i] <= capacity[r]", for_each="r in rows", name="capacity")
    b.set_objective("max", theta="x")
    return b.build()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_time_limit_incumbent_respects_the_instances_parameters(backend, rng):
    problem = hard_knapsack(rng)
    solve = solver(backend)
    theta = rng.uniform(1, 2, size=problem.shape)
    incumbents = 0
    for scale in [12.0, 3.0, 12.0, 3.0]:  # room for about 15, 3, 15, 3 items: a stale capacity shows
        capacity = np.full(8, 50.0 * scale)
        plain = problem.with_values({"capacity": capacity})
        # a loaded machine may find no point at all in 50 ms: then a longer limit, still short
        # of proving the large capacity optimal
        for time_limit in (0.05, 0.2, 1.0):
            try:
                z = solve(theta, problem, data={"capacity": capacity}, time_limit=time_limit)
            except SolverError as error:
                assert error.status == "time-limit"
                z = error.incumbent
                if z is None:  # no point found in time: try a longer limit
                    continue
                incumbents += 1
            break
        if z is None:
            continue
        assert z.shape == problem.shape
        assert not plain.violations(z)  # feasible for this instance's capacities
    assert incumbents  # the large capacity is never proven optimal within 50 ms


def test_the_docs_examples_run_as_written(tmp_path):
    text = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text()
    section = text.split("## Per-instance parameters", 1)[1].split("\n## ", 1)[0]
    spec = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    knapsack = load_yaml(write(tmp_path, spec, "knapsack.yaml"))
    assert {name: field.shape for name, field in knapsack.instance_fields.items()} == {"weights": (6,), "capacity": ()}
    code = section.split("**The builder.**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, {"ILPBuilder": ILPBuilder}, namespace)  # noqa: S102 (the docs' own example)
    built = namespace["knapsack"]
    assert set(built.instance_fields) == {"capacity"}
    assert built.with_values({"capacity": 12.0}).row_upper.tolist() == [12.0]
    assert knapsack.with_values() == built.with_values()  # the defaults agree


def test_a_hand_built_program_with_maps_is_canonical_and_equals_the_builders():
    """Maps given by hand: repeated positions are summed, a parametric coefficient whose
    base is 0 stays in the sparsity pattern, and the program equals the builder's."""
    import scipy.sparse as sp

    from imle_solvers.problems import Variable
    from imle_solvers.problems.ilp import Parameter, ParameterMaps

    maps = ParameterMaps(
        (Parameter("w", (3,), default=np.zeros(3)),),
        coefficient_rows=[0, 0, 0, 0], coefficient_columns=[1, 0, 1, 2],
        coefficients=sp.csr_array(np.array([[0, 0.5, 0], [1, 0, 0], [0, 0.5, 0], [0, 0, 1]])),
    )
    by_hand = ILP(variables=(Variable("x", (3,), "binary"),), constraints=np.array([[1.0, 0.0, 2.0]]),
                  row_lower=-np.inf, row_upper=4.0, theta_variables=("x",), parameters=maps)
    assert by_hand.constraints.nnz == 3  # x[1]'s coefficient is 0 at w = 0, yet in the pattern
    assert by_hand.parameters.coefficient_columns.tolist() == [0, 1, 2]
    b = ILPBuilder()
    b.add_set("items", 3)
    b.add_parameter("c", [1, 0, 2], over=["items"])
    b.add_parameter("w", over=["items"], default=[0, 0, 0], batched=True)
    b.add_variable("x", over=["items"], type="binary")
    b.add_constraint("sum(i in items) (c[i] + w[i]) * x[i] <= 4")
    b.set_objective("max", theta="x")
    assert b.build() == by_hand
    plain = by_hand.with_values({"w": np.array([2.0, 3.0, -1.0])})
    np.testing.assert_array_equal(plain.constraints.toarray(), [[3.0, 3.0, 1.0]])


def test_an_ilp_with_batched_parameters_saves_and_loads_as_a_config():
    from imle_solvers import serialization

    problem = ims.ILP.from_yaml(Path(__file__).parents[1] / "examples" / "specs" / "rota_weekly.yaml")
    again = serialization.from_config(serialization.to_config(problem))
    assert again == problem and again.instance_fields == problem.instance_fields


def test_a_missing_parameter_without_default_is_an_input_error_not_a_solver_failure():
    problem = ims.ILP.from_yaml(Path(__file__).parents[1] / "examples" / "specs" / "rota_weekly.yaml")
    with pytest.raises(InvalidInputError, match=r"batched parameter 'available' has no default"):
        ims.MAPOracle(problem, on_failure="skip")(np.zeros((2, *problem.shape)))

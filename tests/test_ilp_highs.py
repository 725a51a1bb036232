"""The HiGHS backend (``scipy.optimize.milp``): the three ILP backends agree on optima and
statuses of random mixed programs; scores of any scale give the exact optimum; HiGHS's
statuses (infeasible, unbounded even where its presolve cannot tell them apart, refused
numbers, time limits and their incumbents); one cached model that threads share.

The brute-force and batched-parameter checks of every backend, HiGHS included, are in
``test_ilp.py`` and ``test_ilp_instances.py``."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import LinearConstraint, milp

import imle_solvers as ims
from imle_solvers import SolverError
from imle_solvers.adapters import list_solvers, resolve_solver
from imle_solvers.adapters.ilp_highs import highs_model
from imle_solvers.failures import Status
from imle_solvers.problems import ILP, Variable

BACKENDS = ["ortools", "scip", "highs"]


def outcome(backend: str, theta: np.ndarray, problem: ILP, **options) -> np.ndarray | str:
    """The state, or the status of the solver's failure."""
    try:
        return resolve_solver(problem.kind, backend).solve(theta, problem, **options)
    except SolverError as error:
        return error.status


def mixed_program(rng: np.random.Generator) -> ILP:
    """Binary, integer and continuous variables (all of them theta's) under random rows
    with fractional coefficients: OR-Tools hands these to SCIP, so three solvers meet."""
    n_binary, n_integer, n_continuous = int(rng.integers(1, 4)), int(rng.integers(0, 3)), int(rng.integers(0, 3))
    n, m = n_binary + n_integer + n_continuous, int(rng.integers(1, 4))
    a = rng.integers(-3, 4, size=(m, n)) + rng.choice([0.0, 0.5, 0.25], size=(m, n))
    middle = a.sum(axis=1) * rng.uniform(0.2, 0.6)
    return ILP(
        variables=(Variable("x", (n_binary,), "binary"), Variable("y", (n_integer,), "integer", -2, 3),
                   Variable("w", (n_continuous,), "continuous", 0.0, 2.5)),
        constraints=sp.csr_array(a),
        row_lower=middle - rng.uniform(0, 3, size=m),
        row_upper=middle + rng.uniform(0, 3, size=m),
        theta_variables=("x", "y", "w"),
        objective_sense=str(rng.choice(["max", "min"])),
    )


def test_three_backends_agree_on_optima_and_statuses_of_random_mixed_programs(rng):
    statuses = []
    for _ in range(60):
        problem = mixed_program(rng)
        theta = rng.normal(size=problem.shape)
        results = {backend: outcome(backend, theta, problem) for backend in BACKENDS}
        kinds = {backend: r if isinstance(r, str) else "optimal" for backend, r in results.items()}
        assert len(set(kinds.values())) == 1, kinds
        statuses.append(kinds["highs"])
        if kinds["highs"] == "optimal":
            values = {backend: float(theta @ z) for backend, z in results.items()}
            assert values["highs"] == pytest.approx(values["scip"], abs=1e-6), values
            assert values["highs"] == pytest.approx(values["ortools"], abs=1e-6), values
            assert not problem.violations(results["highs"])
    assert statuses.count("optimal") >= 20 and "infeasible" in statuses  # both kinds of answer are exercised


def knapsack(weights: np.ndarray, capacity: float) -> ILP:
    return ILP(variables=(Variable("x", (len(weights),), "binary"),), constraints=sp.csr_array(weights[None, :]),
               row_lower=-np.inf, row_upper=capacity, theta_variables=("x",), name="knapsack")


@pytest.mark.parametrize("scale", [1e-12, 1e-6, 1.0, 1e9, 1e17])
def test_scores_of_any_scale_give_the_exact_optimum(scale, rng):
    """HiGHS's tolerances are absolute (about 1e-6): unscaled, scores of 1e-12 would let it
    stop at its first feasible point."""
    weights = rng.integers(1, 20, size=10).astype(float)
    problem = knapsack(weights, weights.sum() / 3)
    subsets = np.array(list(itertools.product([0, 1], repeat=10)), dtype=float)
    feasible = subsets[subsets @ weights <= weights.sum() / 3]
    solve = resolve_solver(problem.kind, "highs").solve
    for theta in rng.uniform(0.1, 1.0, size=(5, 10)) * scale:
        values = feasible @ theta
        assert np.sort(values)[-2] < values.max() * (1 - 1e-9)  # a unique optimum
        np.testing.assert_array_equal(solve(theta, problem), feasible[values.argmax()])


def test_unbounded_is_told_from_infeasible_where_presolve_cannot():
    # y is an unbounded integer: rewarding it is unbounded
    problem = ILP(variables=(Variable("x", (1,), "binary"), Variable("y", (1,), "integer", 0, np.inf)),
                  constraints=sp.csr_array(np.array([[1.0, -1.0]])), row_lower=-np.inf, row_upper=1.0,
                  theta_variables=("x", "y"))
    raw = milp([-1.0, -1.0], integrality=[1, 1], bounds=(0, [1, np.inf]),
               constraints=LinearConstraint(problem.constraints, -np.inf, 1.0))
    assert raw.status == 4  # HiGHS alone says "unbounded or infeasible": the path under test
    assert outcome("highs", np.array([1.0, 1.0]), problem) == "unbounded"
    infeasible = ILP(variables=problem.variables, constraints=sp.csr_array(np.array([[2.0, -2.0]])),
                     row_lower=1.0, row_upper=1.0, theta_variables=("x", "y"))  # 2 (x - y) = 1: no integers
    assert outcome("highs", np.array([1.0, 1.0]), infeasible) == "infeasible"


def test_a_coefficient_beyond_highs_range_is_a_refused_model_not_infeasible():
    problem = knapsack(np.array([1e16, 1.0, 1.0]), 5.0)
    with pytest.raises(SolverError, match="HiGHS refused the program") as error:
        resolve_solver(problem.kind, "highs").solve(np.ones(3), problem)
    assert error.value.status == "model-invalid"
    assert resolve_solver(problem.kind, "scip").solve(np.ones(3), problem).tolist() == [0.0, 1.0, 1.0]


def hard_knapsack(rng: np.random.Generator) -> tuple[ILP, np.ndarray]:
    """300 items, 8 rows: no backend proves it optimal in a fraction of a second."""
    weights = rng.integers(1000, 100000, size=(8, 300))
    builder = ims.ILPBuilder("hard knapsack")
    builder.add_set("items", 300)
    builder.add_variable("x", over=["items"])
    for row in range(8):
        builder.add_constraint({"x": weights[row]}, upper=weights[row].sum() / 3, name=f"capacity{row}")
    builder.set_objective("max", theta="x")
    return builder.build(), weights


def test_a_time_limit_gives_feasible_incumbents_through_the_oracle(rng):
    problem, weights = hard_knapsack(rng)
    theta = rng.uniform(1, 100, size=(3, 300))
    oracle = ims.MAPOracle(problem, backend="highs", time_limit=0.3, on_failure="incumbent")
    z, status = oracle.solve(theta)
    assert set(status.tolist()) <= {Status.OK, Status.INCUMBENT}
    assert (status == Status.INCUMBENT).any()  # 300 items are never proven optimal in 0.3 s
    for row in range(3):
        assert (weights @ z[row] <= weights.sum(axis=1) / 3 + 1e-6).all(), "the incumbent is feasible"
    skipped = ims.MAPOracle(problem, backend="highs", time_limit=1e-3, on_failure="skip")
    _, status = skipped.solve(theta[:2])
    assert status.tolist() == [Status.FAILED, Status.FAILED] and skipped.failures == {"time-limit": 2}


def test_an_incumbent_is_a_state_of_theta_variables_in_their_shape(rng):
    """The incumbent HiGHS hands back is a full x: the state is its theta variables' part,
    here a (2, 150) block beside a variable that theta does not score."""
    weights = rng.integers(1000, 100000, size=(8, 300)).astype(float)
    problem = ILP(variables=(Variable("x", (2, 150), "binary"), Variable("slack", (1,), "continuous", 0.0, 1.0)),
                  constraints=sp.csr_array(np.hstack([weights, np.ones((8, 1))])), row_lower=-np.inf,
                  row_upper=weights.sum(axis=1) / 3, theta_variables=("x",))
    with pytest.raises(SolverError) as error:
        resolve_solver(problem.kind, "highs").solve(rng.uniform(1, 100, size=(2, 150)), problem, time_limit=0.3)
    assert error.value.status == "time-limit"
    incumbent = error.value.incumbent
    assert incumbent is not None and incumbent.shape == (2, 150)
    assert (weights @ incumbent.ravel() <= weights.sum(axis=1) / 3 + 1e-6).all()


def test_threads_share_one_read_only_model(rng):
    builder = ims.ILPBuilder("batched")
    builder.add_set("items", 8)
    builder.add_parameter("weights", [3, 4, 5, 2, 6, 1, 4, 3], over=["items"])
    builder.add_parameter("capacity", batched=True)  # one per instance
    builder.add_variable("x", over=["items"], type="binary")
    builder.add_constraint("sum(i in items) weights[i] * x[i] <= capacity", name="capacity")
    builder.set_objective("max", theta="x")
    problem = builder.build()
    solve = resolve_solver(problem.kind, "highs").solve
    thetas, capacities = rng.normal(size=(40, 8)), rng.integers(0, 25, size=40).astype(float)

    def one(i: int) -> np.ndarray:
        return solve(thetas[i], problem, data={"capacity": np.float64(capacities[i])})

    alone = [one(i) for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(one, range(40)))
    for i in range(40):
        np.testing.assert_array_equal(together[i], alone[i])
        plain = problem.with_values({"capacity": np.float64(capacities[i])})
        np.testing.assert_array_equal(alone[i], resolve_solver(plain.kind, "scip").solve(thetas[i], plain))
    built = highs_model(problem)
    assert not built.a.data.flags.writeable and not built.row_upper.flags.writeable


def test_highs_needs_nothing_beyond_scipy_and_comes_last_for_auto():
    entries = [e for e in list_solvers("ilp") if e.backend in BACKENDS]
    assert [e.backend for e in entries] == BACKENDS
    highs = resolve_solver("ilp", "highs")
    assert highs.installed and highs.requires == () and highs.time_limit and highs.takes_data

"""ILP adapters (OR-Tools: CP-SAT and SCIP through pywraplp; PySCIPOpt; HiGHS) against
enumeration, against each other and against the assignment solver; failures and
time limits."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from imle_solvers import InvalidInputError, MAPOracle, SolverError
from imle_solvers.adapters import resolve_solver
from imle_solvers.adapters.ilp_ortools import cp_sat_compatible, cp_sat_model
from imle_solvers.problems import ILP, Variable

BACKENDS = ["ortools", "scip", "highs"]


def enumerate_optimum(problem: ILP, theta: np.ndarray) -> float | None:
    """The optimal objective over every integer point within the bounds (None: infeasible)."""
    lower, upper = problem.bounds()
    costs = problem.objective_for(theta)
    a = problem.constraints.toarray()
    best = None
    for x in itertools.product(*(range(int(lo), int(hi) + 1) for lo, hi in zip(lower, upper))):
        activity = a @ np.array(x)
        if (activity >= problem.row_lower - 1e-9).all() and (activity <= problem.row_upper + 1e-9).all():
            value = problem.sign * (costs @ np.array(x))
            best = value if best is None else max(best, value)
    return None if best is None else problem.sign * best


def objective_of(problem: ILP, theta: np.ndarray, z: np.ndarray) -> float:
    """The objective of ``z`` when theta's variables are the only ones (as in these programs)."""
    return float(problem.objective_for(theta) @ theta_to_x(problem, z))


def theta_to_x(problem: ILP, z: np.ndarray) -> np.ndarray:
    x = np.zeros(problem.n_variables)
    x[problem.theta_slots()] = z.ravel()
    return x


def random_program(rng: np.random.Generator, integral: bool) -> ILP:
    """A few binary and small-integer variables under random two-sided rows; with
    ``integral=False`` the coefficients are fractional, which CP-SAT cannot take."""
    n_binary, n_integer, m = int(rng.integers(2, 5)), int(rng.integers(0, 3)), int(rng.integers(1, 4))
    a = rng.integers(-3, 4, size=(m, n_binary + n_integer)).astype(float)
    if not integral:
        a += rng.uniform(-0.5, 0.5, size=a.shape).round(2)
    middle = a.sum(axis=1) * rng.uniform(0.2, 0.6)
    variables = (Variable("x", (n_binary,), "binary"), Variable("y", (n_integer,), "integer", 0, 2))
    return ILP(
        variables=variables,
        constraints=sp.csr_array(a),
        row_lower=middle - rng.uniform(1, 3, size=m),
        row_upper=middle + rng.uniform(0, 3, size=m),
        theta_variables=("x", "y"),
        objective_sense=str(rng.choice(["max", "min"])),
    )


@pytest.mark.parametrize("integral", [True, False])
def test_random_programs_match_enumeration_on_both_backends(integral, rng):
    solved = 0
    for _ in range(25):
        problem = random_program(rng, integral)
        assert cp_sat_compatible(problem) == integral
        theta = rng.normal(size=problem.shape)
        optimum = enumerate_optimum(problem, theta)
        for backend in BACKENDS:
            solve = resolve_solver(problem.kind, backend).solve
            if optimum is None:
                with pytest.raises(SolverError) as error:
                    solve(theta, problem)
                assert error.value.status == "infeasible"
            else:
                assert objective_of(problem, theta, solve(theta, problem)) == pytest.approx(optimum, abs=1e-9)
        solved += optimum is not None
    assert solved >= 10  # the sample exercises optima, not just infeasibility


def knapsack(weights: np.ndarray, capacity: float) -> ILP:
    """``max theta @ x`` subject to ``weights @ x <= capacity``, x binary."""
    return ILP(
        variables=(Variable("x", (len(weights),), "binary"),),
        constraints=sp.csr_array(weights[None, :]),
        row_lower=-np.inf,
        row_upper=capacity,
        theta_variables=("x",),
        name="knapsack",
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_knapsack_matches_brute_force(backend, rng):
    weights = rng.integers(1, 20, size=10).astype(float)
    problem = knapsack(weights, weights.sum() / 3)
    subsets = np.array(list(itertools.product([0, 1], repeat=10)), dtype=float)
    feasible = subsets[subsets @ weights <= weights.sum() / 3]
    theta = rng.normal(size=(6, 10)) + 0.5
    z = MAPOracle(problem, backend=backend)(theta)  # one cached model, six objectives
    for row in range(6):
        assert theta[row] @ z[row] == pytest.approx((feasible @ theta[row]).max())
        assert weights @ z[row] <= weights.sum() / 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_k_subset_with_group_constraints_matches_brute_force(backend, rng):
    # 9 items in 3 groups of 3: exactly 4 items, at most 2 from any group
    groups = np.repeat(np.arange(3), 3)
    rows = np.vstack([np.ones(9), np.eye(3)[groups].T])
    problem = ILP(
        variables=(Variable("x", (9,), "binary"),),
        constraints=sp.csr_array(rows),
        row_lower=np.array([4.0, -np.inf, -np.inf, -np.inf]),
        row_upper=np.array([4.0, 2.0, 2.0, 2.0]),
        theta_variables=("x",),
        constraint_names=("k", "group 0", "group 1", "group 2"),
    )
    subsets = [
        s for s in itertools.combinations(range(9), 4) if np.bincount(groups[list(s)], minlength=3).max() <= 2
    ]
    for theta in rng.normal(size=(5, 9)):
        z = resolve_solver(problem.kind, backend).solve(theta, problem)
        assert z.sum() == 4 and np.bincount(groups, weights=z).max() <= 2
        assert theta @ z == pytest.approx(max(theta[list(s)].sum() for s in subsets))


@pytest.mark.parametrize("backend", BACKENDS)
def test_assignment_ilp_matches_linear_sum_assignment(backend, rng):
    # a 2-D theta variable: z comes back in its shape
    n = 4
    x = np.arange(n * n).reshape(n, n)
    rows = np.zeros((2 * n, n * n))
    for i in range(n):
        rows[i, x[i, :]] = 1
        rows[n + i, x[:, i]] = 1
    problem = ILP(
        variables=(Variable("x", (n, n), "binary"),),
        constraints=sp.csr_array(rows),
        row_lower=1.0,
        row_upper=1.0,
        theta_variables=("x",),
        objective_sense="min",
    )
    for theta in rng.normal(size=(4, n, n)):
        z = resolve_solver(problem.kind, backend).solve(theta, problem)
        assert z.shape == (n, n)
        r, c = linear_sum_assignment(theta)
        assert (theta * z).sum() == pytest.approx(theta[r, c].sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_continuous_variables_and_fixed_objective(backend, rng):
    # max theta @ x + 0.5 y  s.t.  sum(x) + y <= 3,  y in [0, 1.5] continuous
    problem = ILP(
        variables=(Variable("x", (4,), "binary"), Variable("y", (1,), "continuous", 0.0, 1.5)),
        constraints=sp.csr_array(np.ones((1, 5))),
        row_lower=-np.inf,
        row_upper=3.0,
        theta_variables=("x",),
        objective=np.array([0, 0, 0, 0, 0.5]),
    )
    assert not cp_sat_compatible(problem)
    for theta in rng.normal(size=(5, 4)):
        best = max(
            theta @ np.array(x) + 0.5 * min(1.5, 3 - sum(x))
            for x in itertools.product([0, 1], repeat=4)
            if sum(x) <= 3
        )
        z = resolve_solver(problem.kind, backend).solve(theta, problem)
        assert theta @ z + 0.5 * min(1.5, 3 - z.sum()) == pytest.approx(best)


@pytest.mark.parametrize("backend", BACKENDS)
def test_infeasible_program_names_the_instance(backend):
    problem = knapsack(np.ones(3), capacity=-1.0)  # no subset weighs less than 0
    with pytest.raises(SolverError) as error:
        MAPOracle(problem, backend=backend)(np.ones((4, 3)))
    assert error.value.index == 0 and error.value.status == "infeasible"
    assert "instance 0" in str(error.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unbounded_instance_in_the_middle_of_a_batch_names_its_index(backend):
    # y is an unbounded integer: any instance that rewards it is unbounded
    problem = ILP(
        variables=(Variable("x", (2,), "binary"), Variable("y", (1,), "integer", 0, np.inf)),
        constraints=sp.csr_array(np.array([[1.0, 1.0, 0.0]])),
        row_lower=-np.inf,
        row_upper=1.0,
        theta_variables=("x", "y"),
    )
    theta = np.tile([1.0, 2.0, -1.0], (5, 1))
    theta[2, 2] = 0.5
    with pytest.raises(SolverError) as error:
        MAPOracle(problem, backend=backend)(theta)
    assert error.value.index == 2 and error.value.status == "unbounded"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"objective": [0.0, np.nan, 0.0]}, "objective must be finite"),
        ({"objective": [np.inf, 0.0, 0.0]}, "objective must be finite"),
        ({"constraints": sp.csr_array([[1.0, np.inf, 1.0]])}, "constraint coefficients must be finite"),
        ({"row_upper": [np.nan]}, "row bounds must be numbers or ±inf, not NaN"),
        ({"constraints": sp.csr_array(np.ones((1, 4)))}, "constraint matrix has 4 columns, expected 3"),
        ({"theta_variables": ("y",)}, r"theta variables \['y'\] not among \['x'\]"),
        ({"objective_sense": "maximise"}, "sense must be 'max' or 'min'"),
    ],
)
def test_a_malformed_program_is_refused_when_built(change, message):
    program = {
        "variables": (Variable("x", (3,), "binary"),),
        "constraints": sp.csr_array(np.ones((1, 3))),
        "row_lower": [-np.inf],
        "row_upper": [2.0],
        "theta_variables": ("x",),
        "name": "bad",
    }
    with pytest.raises(InvalidInputError, match=f"ILP 'bad': {message}"):
        ILP(**{**program, **change})


def market_split(rng: np.random.Generator, m: int = 4, n: int = 40) -> ILP:
    """Cornuejols-Dawande market split: equality knapsacks that branch and bound cannot crack quickly."""
    a = rng.integers(0, 100, size=(m, n)).astype(float)
    return ILP(
        variables=(Variable("x", (n,), "binary"),),
        constraints=sp.csr_array(a),
        row_lower=np.floor(a.sum(axis=1) / 2),
        row_upper=np.floor(a.sum(axis=1) / 2),
        theta_variables=("x",),
        name="market split",
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_limit_without_optimum_says_so(backend, rng):
    problem = market_split(rng)
    solve = resolve_solver(problem.kind, backend).solve
    with pytest.raises(SolverError) as error:
        solve(rng.normal(size=problem.shape), problem, time_limit=0.05)
    assert error.value.status == "time-limit"


def test_equal_programs_share_one_cached_model(rng):
    weights = rng.integers(1, 9, size=6).astype(float)
    first, second = knapsack(weights, 10.0), knapsack(weights.copy(), 10.0)
    assert first is not second and first == second
    solve = resolve_solver(ILP.kind, "ortools").solve
    solve(np.ones(6), first)
    hits = cp_sat_model.cache_info().hits
    solve(np.ones(6), second)
    assert cp_sat_model.cache_info().hits == hits + 1


def test_auto_backend_is_ortools():
    assert resolve_solver(ILP.kind).backend == "ortools"


CTRL_C_AFTER_SOLVING = """
import os, signal, sys, time
import numpy as np
import imle_solvers as ims
problem = ims.ILP((ims.Variable("x", (5,)),), np.ones((1, 5)), -np.inf, 2.0, ("x",))
ims.MAPOracle(problem, backend=sys.argv[1])(np.random.default_rng(0).random((2, 5)))
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_after_solving_is_still_a_keyboard_interrupt(backend):
    """A solver's own SIGINT handler must not outlive the solve (CP-SAT's killed the process)."""
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_AFTER_SOLVING, backend], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "KeyboardInterrupt", result.stderr[-2000:]


# -- identity, repr, label, violations ---------------------------------------------------

def test_equal_matrices_in_any_storage_give_equal_programs():
    dense = np.array([[3.0, 0.0, 4.0], [0.0, 1.0, 2.0]])

    def program(matrix) -> ILP:
        return ILP(variables=(Variable("x", (3,), "binary"),), constraints=matrix, row_lower=-np.inf,
                   row_upper=[5.0, 2.0], theta_variables=("x",))

    base = sp.csr_array(dense)
    int32 = sp.csr_array((base.data, base.indices.astype(np.int32), base.indptr.astype(np.int32)), shape=(2, 3))
    int64 = sp.csr_array((base.data, base.indices.astype(np.int64), base.indptr.astype(np.int64)), shape=(2, 3))
    # row 0 stored with its columns reversed, one entry split in two duplicates and an explicit zero
    unsorted = sp.csr_array((np.array([4.0, 1.0, 2.0, 0.0, 1.0, 2.0]), np.array([2, 0, 0, 1, 1, 2]),
                             np.array([0, 4, 6])), shape=(2, 3))
    assert not unsorted.has_canonical_format
    coo = sp.coo_array(dense)
    programs = [program(m) for m in (base, int32, int64, unsorted, coo, dense, sp.csc_matrix(dense))]
    assert len({p.fingerprint for p in programs}) == 1
    assert all(p == programs[0] and hash(p) == hash(programs[0]) for p in programs)
    assert len({p for p in programs}) == 1
    for p in programs:
        assert p.constraints.has_canonical_format and p.constraints.nnz == 4
    assert not unsorted.has_canonical_format and unsorted.nnz == 6  # the caller's matrix is left alone
    assert program(sp.csr_array(dense * [[1], [2]])) != programs[0]
    signed = ILP(variables=(Variable("x", (3,), "binary"),), constraints=base, row_lower=-0.0,
                 row_upper=[5.0, 2.0], theta_variables=("x",), objective=[-0.0, 0.0, 0.0])
    zero = ILP(variables=(Variable("x", (3,), "binary"),), constraints=base, row_lower=0.0,
               row_upper=[5.0, 2.0], theta_variables=("x",))
    assert signed == zero


def test_repr_is_one_short_line_and_label_names_the_program():
    from imle_solvers.spec import load_yaml

    rota = load_yaml("examples/specs/rota.yaml", n_workers=60, n_days=25, max_shifts=20)
    text = repr(rota)
    assert "\n" not in text and len(text) < 120, text
    assert text == (f"ILP('rota', max, x: binary (60, 50), {rota.constraints.shape[0]} constraints, "
                    f"{rota.constraints.nnz} nonzeros, theta=x)")
    many = ILP(variables=tuple(Variable(f"v{i}", (2,), "integer", 0, 3) for i in range(6)),
               constraints=sp.csr_array((0, 12)), row_lower=[], row_upper=[], theta_variables=("v0", "v5"))
    assert repr(many) == ("ILP('ilp', max, v0: integer (2,), v1: integer (2,), v2: integer (2,), v3: integer (2,), "
                          "... 2 more (12 variables in all), 0 constraints, 0 nonzeros, theta=v0, v5)")
    assert rota.label == "ilp 'rota'" and many.label == "ilp"


def small_program() -> ILP:
    """x binary (3,), theta; y integer in [0, 4], not theta; rows on x alone and on x and y."""
    a = np.array([[1.0, 1.0, 1.0, 0.0],     # x0 + x1 + x2 <= 2
                  [1.0, 0.0, 0.0, -1.0],    # x0 - y >= 0
                  [0.0, 1.0, -1.0, 0.0]])   # x1 - x2 == 0
    return ILP(variables=(Variable("x", (3,), "binary"), Variable("y", (), "integer", 0, 4)),
               constraints=sp.csr_array(a), row_lower=[-np.inf, 0.0, 0.0], row_upper=[2.0, np.inf, 0.0],
               theta_variables=("x",), constraint_names=("most_two", "y_needs_x0", "tied"), name="small")


def test_violations_of_a_full_solution():
    problem = small_program()
    assert not problem.violations([1, 0, 0, 1]) and not problem.violations([0, 1, 1, 0])
    found = problem.violations([1, 1, 1, 1])
    assert bool(found) and found.unchecked_rows == 0
    assert [(r.name, r.activity, r.lower, r.upper, r.amount) for r in found.rows] == [
        ("most_two", 3.0, -np.inf, 2.0, 1.0)]
    found = problem.violations([0, 1, 0, 5.5])
    assert [(r.row, r.name, r.amount) for r in found.rows] == [(1, "y_needs_x0", 5.5), (2, "tied", 1.0)]
    assert [(b.variable, b.index, b.value, b.lower, b.upper, b.amount) for b in found.bounds] == [
        ("y", (), 5.5, 0.0, 4.0, 1.5)]
    assert [(i.variable, i.index, i.value, i.distance) for i in found.integrality] == [("y", (), 5.5, 0.5)]
    assert str(found).splitlines() == [
        "y_needs_x0: activity -5.5, needs >= 0 (off by 5.5)",
        "tied: activity 1, needs <= 0 (off by 1)",
        "y = 5.5 outside [0, 4] (off by 1.5)",
        "y = 5.5 is not an integer",
    ]
    binary = problem.violations([0.5, -1, 0, 0])
    assert [(b.variable, b.index, b.amount) for b in binary.bounds] == [("x", (1,), 1.0)]
    assert [(i.variable, i.index) for i in binary.integrality] == [("x", (0,))]
    assert not problem.violations([1, 0, 0, 1 + 1e-9], tol=1e-6)  # within the tolerance
    assert problem.violations([1, 0, 0, 1 + 1e-9], tol=1e-12).rows[0].name == "y_needs_x0"


def test_violations_of_z_check_only_what_z_decides():
    problem = small_program()
    found = problem.violations(np.array([1.0, 1.0, 1.0]))  # z: the theta variable x alone
    # 'y_needs_x0' involves y, whose value z does not give: not checked
    assert found.unchecked_rows == 1
    assert [r.name for r in found.rows] == ["most_two"]
    assert not problem.violations(np.array([0.0, 1.0, 1.0])) and problem.violations([0, 1, 1]).unchecked_rows == 1
    assert [r.name for r in problem.violations([1, 0, 1]).rows] == ["tied"]
    assert "(1 rows involving non-theta variables not checked)" in str(problem.violations([1, 1, 1]))
    with pytest.raises(InvalidInputError, match=r"ilp 'small': violations\(\) takes z of shape \(3,\) or x of "
                                                r"shape \(4,\), got \(2,\)"):
        problem.violations([1, 0])
    with pytest.raises(InvalidInputError, match="finite"):
        problem.violations([np.nan, 0, 0])


def test_violations_agree_with_enumeration_on_random_programs(rng):
    for _ in range(10):
        problem = random_program(rng, integral=True)
        lower, upper = problem.bounds()
        a = problem.constraints.toarray()
        for x in itertools.product(*(range(int(lo), int(hi) + 1) for lo, hi in zip(lower, upper))):
            activity = a @ np.array(x)
            feasible = (activity >= problem.row_lower - 1e-9).all() and (activity <= problem.row_upper + 1e-9).all()
            assert bool(problem.violations(np.array(x, dtype=float))) == (not feasible)

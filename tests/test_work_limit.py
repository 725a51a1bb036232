"""``work_limit``: deterministic limits (CP-SAT's deterministic seconds, SCIP's and HiGHS's nodes) that
stop a solver at the same point in the process and on a loaded pool, run after run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.adapters import unregister_solver
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.failures import Status
from imle_solvers.options import OracleOptions

pytest.importorskip("ortools")
pytest.importorskip("pyscipopt")

# one unit of each backend's work: a 60-item, 5-row knapsack that neither solves to a
# proven optimum within it (checked below: the test would prove nothing otherwise)
SMALL_WORK = {"ortools": 0.02, "scip": 20, "highs": 20}


def knapsack(continuous: bool = False) -> ims.ILP:
    """A multi-dimensional knapsack of 60 items and 5 rows (hard enough to need branching);
    ``continuous``: plus a continuous variable, which sends it past CP-SAT to SCIP."""
    rng = np.random.default_rng(0)
    a = rng.integers(5, 40, size=(5, 60)).astype(float)
    variables = [ims.Variable("x", (60,))]
    if continuous:
        variables.append(ims.Variable("y", (1,), type="continuous", upper=1.0))
        a = np.hstack([a, np.full((5, 1), 0.5)])
    return ims.ILP(tuple(variables), a, -np.inf, a[:, :60].sum(axis=1) / 3, ("x",), name="knapsack")


def scores(b: int = 4) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(10, 60, size=(b, 60)) + rng.normal(size=(b, 60))


def assert_feasible(problem: ims.ILP, z: np.ndarray) -> None:
    a = problem.constraints.toarray()[:, :60]
    assert (z @ a.T <= problem.row_upper[None] + 1e-9).all()


def test_a_backend_without_a_work_limit_refuses_one_by_name():
    with pytest.raises(InvalidInputError) as error:
        ims.MAPOracle(ims.KSubset(n=5, k=2), backend="numpy", work_limit=1.0)
    message = str(error.value)
    assert "backend 'numpy' for 'k-subset' has no deterministic work limit" in message
    assert "work_limit=1.0 cannot be honoured" in message and "time_limit=" in message
    ilp = ims.MAPOracle(knapsack(), backend="scip", work_limit=3)
    assert ilp.work_limit == 3.0 and "work_limit=3.0" in repr(ilp)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "10"])
def test_a_work_limit_is_a_positive_finite_number(value):
    with pytest.raises(InvalidInputError, match="work_limit must be a positive finite number or None"):
        ims.MAPOracle(knapsack(), backend="ortools", work_limit=value)


def test_the_option_travels_with_the_layer_options_and_their_config():
    options = OracleOptions(backend="ortools", work_limit=0.5)
    assert options.config()["work_limit"] == 0.5 and OracleOptions(**options.config()) == options
    assert options.oracle(knapsack()).work_limit == 0.5
    # unset, it is left out: a config saved before the option existed still round-trips
    assert "work_limit" not in OracleOptions().config() and OracleOptions(**OracleOptions().config()) == OracleOptions()


RECEIVED: list[float | None] = []


def solve_recording(theta: np.ndarray, problem, work_limit: float | None = None) -> np.ndarray:
    RECEIVED.append(work_limit)
    z = np.zeros_like(theta)
    z[np.argsort(-theta)[: problem.k]] = 1
    return z


def test_a_solver_registered_with_work_limit_gets_it_per_instance():
    ims.register_solver("k-subset", "recording", work_limit=True)(solve_recording)
    try:
        RECEIVED.clear()
        oracle = ims.MAPOracle(ims.KSubset(n=4, k=1), backend="recording", work_limit=7)
        oracle(np.eye(4)[:3])
        assert RECEIVED == [7.0, 7.0, 7.0]
        RECEIVED.clear()
        ims.MAPOracle(ims.KSubset(n=4, k=1), backend="recording")(np.eye(4)[:2])
        assert RECEIVED == [None, None]  # no limit: the keyword's default
    finally:
        unregister_solver("k-subset", "recording")


@pytest.mark.parametrize("backend", ["ortools", "scip", "highs"])
def test_a_work_limit_stops_the_solver_with_a_feasible_incumbent(backend):
    problem, theta = knapsack(), scores()
    oracle = ims.MAPOracle(problem, backend=backend, work_limit=SMALL_WORK[backend], on_failure="incumbent")
    z, status = oracle.solve(theta)
    assert (status == Status.INCUMBENT).any()  # the limit bites (else this test would prove nothing)
    assert set(status.tolist()) <= {Status.OK, Status.INCUMBENT}
    assert {error.status for error in oracle.last_failures} == {"work-limit"}
    unit = "deterministic seconds" if backend == "ortools" else f"({SMALL_WORK[backend]} nodes)"
    assert all(unit in str(error) for error in oracle.last_failures)
    assert_feasible(problem, z)
    optimum = ims.MAPOracle(problem, backend=backend)(theta)
    gap = np.sum(theta * optimum, axis=1) - np.sum(theta * z, axis=1)
    assert (gap >= -1e-6).all() and (gap[status == Status.INCUMBENT] >= 0).all()
    with pytest.raises(SolverError, match=r"instance \d+ .*within work_limit="):
        ims.MAPOracle(problem, backend=backend, work_limit=SMALL_WORK[backend])(theta)


def test_the_ortools_scip_route_counts_nodes_whatever_was_solved_before():
    problem, theta = knapsack(continuous=True), scores()  # a continuous variable: OR-Tools solves it with SCIP
    oracle = ims.MAPOracle(problem, backend="ortools", work_limit=10, on_failure="incumbent")
    z, status = oracle.solve(theta)
    assert (status == Status.INCUMBENT).sum() >= 2 and (status != Status.FAILED).all()
    assert all("SCIP (OR-Tools)" in str(e) and "(10 nodes)" in str(e) for e in oracle.last_failures)
    assert_feasible(problem, z)
    # the node limit is reset for a call without one (the model is cached and reused) ...
    unlimited = ims.MAPOracle(problem, backend="ortools", on_failure="incumbent")
    assert unlimited.solve(theta[:1])[1] == Status.OK
    # ... and what that call left in SCIP does not change where the limit stops it
    again = oracle.solve(theta)
    np.testing.assert_array_equal(again[1], status)
    np.testing.assert_array_equal(again[0], z)
    backwards = oracle.solve(theta[::-1])
    np.testing.assert_array_equal(backwards[1][::-1], status)
    np.testing.assert_array_equal(backwards[0][::-1], z)


@pytest.fixture
def busy_core():
    """A process that keeps one core busy while the test runs: load on the pool's workers."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("backend", ["ortools", "scip", "highs"])
def test_work_limited_results_are_the_same_in_process_and_on_a_loaded_pool_run_after_run(backend, busy_core):
    problem, theta = knapsack(), scores()
    options = {"backend": backend, "work_limit": SMALL_WORK[backend], "on_failure": "incumbent"}
    z, status = ims.MAPOracle(problem, **options).solve(theta)
    assert (status == Status.INCUMBENT).any() and (status == Status.OK).any()
    # what earlier solves left in the cached model counts for nothing: an unlimited solve of
    # instance 0 (SCIP would start from its optimum), the instances in another order
    ims.MAPOracle(problem, backend=backend).solve(theta[:1])
    backwards = ims.MAPOracle(problem, **options).solve(theta[::-1])
    np.testing.assert_array_equal(backwards[1][::-1], status)
    np.testing.assert_array_equal(backwards[0][::-1], z)
    with ims.MAPOracle(problem, n_jobs=2, chunk_size=1, **options) as pooled:
        for _ in range(2):
            again, again_status = pooled.solve(theta)
            np.testing.assert_array_equal(again_status, status)
            np.testing.assert_array_equal(again, z)

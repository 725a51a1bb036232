"""Portfolio: SCIP's allocations keep the constraints and match an independent SLSQP solve,
the sense is a maximum, bad covariances are refused, and PyEPO's data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.optimize import minimize

import imle_solvers as ims
from imle_solvers import SolverError
from imle_solvers.errors import InvalidInputError

pytest.importorskip("pyscipopt")


def slsqp_optimum(returns: np.ndarray, problem: ims.Portfolio) -> float:
    """The best expected return by scipy's SLSQP (an independent local method: the problem
    is convex, so its local optimum is the optimum)."""
    m, covariance, budget = problem.n_assets, problem.covariance, problem.risk_level
    result = minimize(
        lambda x: -returns @ x, np.full(m, 1 / m), jac=lambda x: -returns, method="SLSQP", bounds=[(0, 1)] * m,
        constraints=[
            {"type": "eq", "fun": lambda x: x.sum() - 1, "jac": lambda x: np.ones(m)},
            # divided by the budget, as the risk is about 1e-5: SLSQP's tolerances are absolute
            {"type": "ineq", "fun": lambda x: 1 - x @ covariance @ x / budget,
             "jac": lambda x: -2 * covariance @ x / budget},
        ],
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    # SLSQP may stop at the optimum saying its line search cannot improve (status 8): the
    # point is then checked for feasibility like any other
    assert result.success or result.status == 8, result.message
    assert abs(result.x.sum() - 1) < 1e-9 and result.x @ covariance @ result.x <= budget * (1 + 1e-8)
    return float(returns @ result.x)


def assert_feasible(x: np.ndarray, problem: ims.Portfolio) -> None:
    assert x.min() >= 0 and x.max() <= 1
    assert x.sum() == pytest.approx(1, abs=1e-9)
    assert x @ problem.covariance @ x <= problem.risk_level * (1 + 1e-5)


def random_covariance(rng: np.random.Generator, m: int) -> np.ndarray:
    loadings = rng.normal(size=(m, 2)) * 0.01
    return loadings @ loadings.T + np.diag(rng.uniform(1e-5, 1e-4, m))


@pytest.mark.parametrize("m", [4, 8])
def test_allocations_keep_the_constraints_and_match_slsqp_on_pyepo_data(m):
    covariance, _, returns = ims.data.portfolio_data(4, 3, m, deg=2, seed=m)
    problem = ims.Portfolio(covariance)
    returns = returns.astype(np.float64)
    z = ims.MAPOracle(problem)(returns)
    for row, x in zip(returns, z):
        assert_feasible(x, problem)
        assert row @ x == pytest.approx(slsqp_optimum(row, problem), rel=1e-5)


def test_allocations_match_slsqp_on_random_covariances_and_returns_of_both_signs(rng):
    problem = ims.Portfolio(random_covariance(rng, 6), gamma=0.8)
    returns = rng.normal(0, 0.05, size=(4, 6))
    z = ims.MAPOracle(problem)(returns)
    for row, x in zip(returns, z):
        assert_feasible(x, problem)
        assert row @ x == pytest.approx(slsqp_optimum(row, problem), rel=1e-5)


def test_the_sense_is_a_maximum(rng):
    problem = ims.Portfolio(random_covariance(rng, 5), gamma=1e6)  # a budget that binds nothing
    assert problem.sense == "max"
    returns = rng.normal(size=(3, 5))
    z = ims.MAPOracle(problem)(returns)
    np.testing.assert_allclose(z, np.eye(5)[returns.argmax(axis=1)], atol=1e-7)  # all on the best asset


def test_a_budget_below_the_least_risk_is_infeasible(rng):
    problem = ims.Portfolio(random_covariance(rng, 4), gamma=1e-6)
    with pytest.raises(SolverError, match="risk budget") as caught:
        ims.MAPOracle(problem)(rng.normal(size=(2, 4)))
    assert caught.value.status == "infeasible" and caught.value.index == 0


def test_problems_are_values(rng):
    covariance = random_covariance(rng, 4)
    problem = ims.Portfolio(covariance)
    assert problem == ims.Portfolio(covariance.copy()) and hash(problem) == hash(ims.Portfolio(covariance.copy()))
    assert problem != ims.Portfolio(covariance, gamma=1.0)
    assert pickle.loads(pickle.dumps(problem)) == problem and not problem.covariance.flags.writeable
    assert problem.risk_level == pytest.approx(2.25 * covariance.mean())


@pytest.mark.parametrize(
    "covariance, gamma, words",
    [
        (np.ones((2, 3)), 1.0, r"square \(m, m\) matrix, m >= 1, got shape \(2, 3\)"),
        ([[1.0, 0.5], [0.0, 1.0]], 1.0, "symmetric"),
        ([[1.0, 2.0], [2.0, 1.0]], 1.0, "positive semi-definite .*-1"),
        ([[1.0, np.nan], [np.nan, 1.0]], 1.0, "non-finite"),
        (np.eye(2), -1.0, "gamma must be a finite number >= 0"),
    ],
)
def test_bad_covariances_and_gammas_are_refused(covariance, gamma, words):
    with pytest.raises(InvalidInputError, match=words):
        ims.Portfolio(covariance, gamma=gamma)


def test_portfolio_data_is_pyepos():
    portfolio = pytest.importorskip("pyepo.data.portfolio")
    for args in [(10, 5, 6, 1, 1.0, 135), (7, 3, 9, 4, 0.5, 3), (4, 2, 3, 2, 0.0, 0)]:
        for ours, theirs in zip(ims.data.portfolio_data(*args), portfolio.genData(*args)):
            assert ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours, theirs)


def test_scores_beyond_scips_range_are_refused_naming_the_instance(rng):
    problem = ims.Portfolio(random_covariance(rng, 3))
    with pytest.raises(InvalidInputError, match="batch index 1"):
        ims.MAPOracle(problem)(np.array([[0.1, 0.2, 0.3], [0.1, 1e19, 0.3]]))

"""``data.knn_robust_targets``: PyEPO's ``optDatasetKNN`` (the kNN-robust targets of
Schutte et al. 2024) value for value, by its definition on a small case, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers import data
from imle_solvers.errors import InvalidInputError


def test_small_case_by_definition():
    """Three instances on a line, k=1: each mixes with its one nearest neighbour."""
    problem = ims.KSubset(n=3, k=1)
    oracle = ims.MAPOracle(problem)
    x = np.array([[0.0], [1.0], [3.0]])
    c = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0]])
    costs, solutions, objectives = data.knn_robust_targets(x, c, oracle, k=1, weight=0.25)
    neighbour = [1, 0, 1]  # 0 <-> 1 at distance 1; 2's nearest is 1 (distance 2)
    expected_costs = 0.25 * c + 0.75 * c[neighbour]
    np.testing.assert_allclose(costs, expected_costs)
    expected_states = np.eye(3)[expected_costs.argmax(1)]  # one item: the largest mixed score
    np.testing.assert_array_equal(solutions, expected_states)
    np.testing.assert_allclose(objectives[:, 0], expected_costs.max(1))


def test_average_of_several_neighbours_solutions():
    """k=2 averages two solutions: the targets leave the vertices."""
    oracle = ims.MAPOracle(ims.KSubset(n=2, k=1))
    x = np.array([[0.0], [1.0], [-1.0]])
    c = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    _, solutions, _ = data.knn_robust_targets(x, c, oracle, k=2, weight=0.0)
    np.testing.assert_allclose(solutions[0], [0.5, 0.5])  # its neighbours prefer different items


def test_the_same_arrays_as_pyepo():
    pytest.importorskip("torch")
    pyepo_dataset = pytest.importorskip("pyepo.data.dataset")
    from pyepo.model.ort import shortestPathModel

    x, c = data.shortest_path_data(60, 5, (3, 3), deg=2, noise_width=0.5, seed=3)
    theirs = pyepo_dataset.optDatasetKNN(shortestPathModel((3, 3)), x, c, k=5, weight=0.5)
    oracle = ims.MAPOracle(data.shortest_path_problem((3, 3)))
    costs, solutions, objectives = data.knn_robust_targets(x, c, oracle, k=5, weight=0.5)
    np.testing.assert_array_equal(costs.astype(np.float32), theirs.costs.numpy())
    np.testing.assert_array_equal(solutions.astype(np.float32), theirs.sols.numpy())
    np.testing.assert_allclose(objectives, theirs.objs.numpy(), rtol=1e-6)


@pytest.mark.parametrize(("k", "weight", "match"), [(0, 0.5, "k must be"), (3, 0.5, "k must be"),
                                                    (True, 0.5, "k must be"), (1, 1.5, "weight must be")])
def test_bad_arguments_are_refused(k, weight, match):
    oracle = ims.MAPOracle(ims.KSubset(n=2, k=1))
    with pytest.raises(InvalidInputError, match=match):
        data.knn_robust_targets(np.zeros((3, 1)), np.zeros((3, 2)), oracle, k=k, weight=weight)


def test_mismatched_shapes_are_refused():
    oracle = ims.MAPOracle(ims.KSubset(n=2, k=1))
    with pytest.raises(InvalidInputError, match=r"x \(N, p\) and c \(N, d\)"):
        data.knn_robust_targets(np.zeros((3, 1)), np.zeros((4, 2)), oracle)

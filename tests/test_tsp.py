"""TravellingSalesman: CP-SAT's tours against enumeration of every tour, the tour's shape,
PyEPO's edge order and data, input errors, and I-MLE's gradient through the torch layer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers.errors import InvalidInputError

from fixed_noise import FixedNoise  # tests/fixed_noise.py

def brute_force_best(theta: np.ndarray, n: int, sign: int) -> float:
    """The best tour score over all ``(n - 1)! / 2`` tours (node 0 first, one direction)."""
    index = {edge: i for i, edge in enumerate(itertools.combinations(range(n), 2))}
    scores = []
    for rest in itertools.permutations(range(1, n)):
        if rest[0] > rest[-1]:
            continue  # the same tour walked backwards
        tour = (0, *rest)
        scores.append(sum(theta[index[tuple(sorted((tour[i], tour[(i + 1) % n])))]] for i in range(n)))
    return sign * max(sign * s for s in scores)


def assert_hamiltonian_cycle(z: np.ndarray, n: int) -> None:
    """``z`` ``(n (n - 1) / 2,)`` marks ``n`` edges forming one cycle through all ``n`` nodes."""
    assert set(np.unique(z)) <= {0.0, 1.0}
    edges = np.array(list(itertools.combinations(range(n), 2)))[z == 1]
    assert len(edges) == n
    assert (np.bincount(edges.ravel(), minlength=n) == 2).all(), "every node has two tour edges"
    neighbours = {node: set() for node in range(n)}
    for i, j in edges.tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)
    seen, node = {0}, 0
    while True:  # walk the cycle from node 0: it must visit every node before it closes
        unseen = neighbours[node] - seen
        if not unseen:
            break
        node = min(unseen)
        seen.add(node)
    assert len(seen) == n, "one cycle, not several subtours"


@pytest.mark.parametrize("backend", ["ortools", "held-karp"])
@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("sense", ["min", "max"])
def test_tours_match_enumeration_of_every_tour(rng, backend, n, sense):
    if backend == "ortools":
        pytest.importorskip("ortools")
    problem = ims.TravellingSalesman(n, sense)
    theta = rng.normal(size=(6, problem.n_edges))  # both signs
    z = ims.MAPOracle(problem, backend=backend)(theta)
    for row, tour in zip(theta, z):
        assert_hamiltonian_cycle(tour, n)
        assert row @ tour == pytest.approx(brute_force_best(row, n, problem.sign), abs=1e-12)


@pytest.mark.parametrize("n", [9, 12])
def test_held_karp_and_cp_sat_agree_beyond_enumeration(rng, n):
    pytest.importorskip("ortools")
    problem = ims.TravellingSalesman(n)
    theta = rng.normal(size=(4, problem.n_edges))
    by_cp_sat = ims.MAPOracle(problem, backend="ortools")(theta)
    by_held_karp = ims.MAPOracle(problem, backend="held-karp")(theta)
    for row, a, b in zip(theta, by_cp_sat, by_held_karp):
        assert_hamiltonian_cycle(b, n)
        assert row @ a == pytest.approx(row @ b, abs=1e-12)


def test_held_karp_refuses_tours_beyond_its_tables():
    with pytest.raises(ims.SolverError, match="up to 16 nodes, got n=17.*ortools") as caught:
        ims.MAPOracle(ims.TravellingSalesman(17), backend="held-karp")(np.zeros((1, 136)))
    assert caught.value.status == "too-large"


def test_sense_decides_the_direction(rng):
    costs = rng.random((4, 15))
    shortest = ims.MAPOracle(ims.TravellingSalesman(6))(costs)
    longest = ims.MAPOracle(ims.TravellingSalesman(6, "max"))(costs)
    assert ((costs * shortest).sum(1) < (costs * longest).sum(1)).all()
    np.testing.assert_array_equal(ims.MAPOracle(ims.TravellingSalesman(6, "max"))(-costs), shortest)


def test_a_triangle_has_one_tour():
    z = ims.MAPOracle(ims.TravellingSalesman(3))(np.array([[5.0, -1.0, 2.0]]))
    np.testing.assert_array_equal(z, [[1, 1, 1]])


def test_pyepo_sized_tours_are_cycles_on_pyepo_data():
    pytest.importorskip("ortools")
    _, costs = ims.data.tsp_data(3, 5, 15, deg=4, noise_width=0.5)
    z = ims.MAPOracle(ims.TravellingSalesman(15))(costs)
    assert z.dtype == costs.dtype
    for tour in z:
        assert_hamiltonian_cycle(tour, 15)


def test_edges_are_pyepos_order():
    problem = ims.TravellingSalesman(6)
    assert problem.edges.tolist() == [list(e) for e in itertools.combinations(range(6), 2)]
    assert problem.shape == (15,) and problem.sense == "min" and not problem.edges.flags.writeable


@pytest.mark.parametrize("n, words", [(2, "n must be an integer >= 3"), (True, "a bool"), (4.5, "n must be")])
def test_bad_node_counts_are_refused(n, words):
    with pytest.raises(InvalidInputError, match=words):
        ims.TravellingSalesman(n)


def test_a_bad_sense_is_refused():
    with pytest.raises(InvalidInputError, match="objective_sense must be 'max' or 'min', got 'maximise'"):
        ims.TravellingSalesman(5, "maximise")


def test_a_wrong_number_of_scores_names_the_edges():
    with pytest.raises(InvalidInputError, match=r"expected shape \(B, 10\), one score per edge .* n=5 nodes.*\(2, 9\)"):
        ims.MAPOracle(ims.TravellingSalesman(5))(np.zeros((2, 9)))


def test_tsp_data_is_pyepos():
    tsp = pytest.importorskip("pyepo.data.tsp")
    for args in [(10, 5, 6, 1, 0.0, 135), (7, 3, 9, 4, 0.5, 3), (4, 2, 3, 2, 0.2, 0)]:
        for ours, theirs in zip(ims.data.tsp_data(*args), tsp.genData(*args)):
            assert ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours, theirs)


def test_imle_gradient_through_the_torch_layer_is_the_formula(rng):
    torch = pytest.importorskip("torch")
    problem, lam = ims.TravellingSalesman(6), 3.0
    costs, g = rng.random((4, 15)), rng.normal(size=(4, 15))
    eps = rng.gumbel(size=(4, 1, 1, 15))
    layer = ims.torch.IMLELayer(problem, ims.IMLE(FixedNoise(eps), lambda_=lam), noise_source="numpy")
    theta = torch.tensor(costs, requires_grad=True)
    z = layer(theta)
    z.backward(torch.tensor(g))

    # costs: perturbed by -eps, target costs + lambda * g; the gradient (z' - z) / lambda
    solve = ims.MAPOracle(problem)
    expected_z = solve(costs - eps[:, 0, 0])
    target = solve(costs + lam * g - eps[:, 0, 0])
    np.testing.assert_array_equal(z.detach().numpy(), expected_z)
    np.testing.assert_allclose(theta.grad.numpy(), (target - expected_z) / lam)
    assert (target != expected_z).any(), "the target moved: the check is not of a zero gradient"


def test_huge_scores_give_the_tours_of_the_same_scores_scaled_down(rng):
    problem = ims.TravellingSalesman(7)
    theta = rng.uniform(-1, 1, size=(4, problem.n_edges)) * 1.7e308  # a tour's sum would overflow
    oracle = ims.MAPOracle(problem)
    np.testing.assert_array_equal(oracle(theta), oracle(np.ldexp(theta, -1000)))


def test_a_work_limit_stops_cp_sat_naming_the_instance():
    pytest.importorskip("ortools")
    _, costs = ims.data.tsp_data(2, 5, 25, deg=4, noise_width=0.5)
    with pytest.raises(ims.SolverError, match="instance 0.*work_limit=0.001") as caught:
        ims.MAPOracle(ims.TravellingSalesman(25), work_limit=1e-3)(costs)
    assert caught.value.status == "work-limit"

"""PyEPO's data generators and the decision-focused metrics (imle_solvers.data, .metrics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers import data as D
from imle_solvers import metrics as M

# -- reference values ---------------------------------------------------------------------

# pyepo.data.shortestpath.genData(2, 3, (2, 2), deg=2, noise_width=0.5, seed=7), PyEPO 2.2.7
SP_X = [[-0.6254289739667597, -0.17154826119572117, 0.5052993741967516],
        [-0.261356415191647, -0.2427490786725466, -1.4532414124907906]]
SP_C = [[1.1000481843948364, 0.3864096701145172, 0.7154769897460938, 1.325036883354187],
        [0.5472046136856079, 0.3848702907562256, 1.0487830638885498, 0.2627633213996887]]
# pyepo.data.knapsack.genData(2, 3, 4, dim=2, deg=2, noise_width=0.5, seed=7), PyEPO 2.2.7
KS_W = [[4.75, 4.96, 3.25, 3.67], [5.11, 7.07, 4.03, 6.48]]
KS_X = [[0.5692717781791206, -0.20413854614001992, 0.883571109145039],
        [-0.8365442640594435, 0.645055011875167, -0.45006902922127706]]
KS_C = [[3, 8, 8, 6], [4, 3, 3, 2]]


def reference_shortest_path(n, p, grid, deg, e, seed):
    """PyEPO's formula written out, row by row as its first releases did."""
    rnd = np.random.RandomState(seed)
    d = (grid[0] - 1) * grid[1] + (grid[1] - 1) * grid[0]
    b = rnd.binomial(1, 0.5, (d, p))
    x = rnd.normal(0, 1, (n, p))
    c = np.zeros((n, d))
    for i in range(n):
        row = ((b @ x[i]) / np.sqrt(p) + 3) ** deg + 1
        c[i] = row / 3.5**deg * rnd.uniform(1 - e, 1 + e, d)
    return x, c


def reference_knapsack(n, p, m, dim, deg, e, seed):
    rnd = np.random.RandomState(seed)
    w = rnd.choice(np.arange(300, 800), size=(dim, m)) / 100
    b = rnd.binomial(1, 0.5, (m, p))
    x = rnd.normal(0, 1, (n, p))
    c = np.zeros((n, m))
    for i in range(n):
        row = 5 * (((b @ x[i]) / np.sqrt(p) + 3) ** deg + 1) / 3.5**deg
        c[i] = np.ceil(row * rnd.uniform(1 - e, 1 + e, m))
    return w, x, c


# -- generators -----------------------------------------------------------------------------

def test_shortest_path_data_pinned_values():
    x, c = D.shortest_path_data(2, 3, (2, 2), deg=2, noise_width=0.5, seed=7)
    assert x.shape == (2, 3) and x.dtype == np.float64
    assert c.shape == (2, 4) and c.dtype == np.float32
    np.testing.assert_array_equal(x, SP_X)
    np.testing.assert_array_equal(c, np.asarray(SP_C, dtype=np.float32))


def test_knapsack_data_pinned_values():
    w, x, c = D.knapsack_data(2, 3, 4, dim=2, deg=2, noise_width=0.5, seed=7)
    assert (w.shape, x.shape, c.shape) == ((2, 4), (2, 3), (2, 4))
    assert c.dtype == np.float32
    np.testing.assert_array_equal(w, KS_W)
    np.testing.assert_array_equal(x, KS_X)
    np.testing.assert_array_equal(c, KS_C)


@pytest.mark.parametrize("args", [(20, 5, (5, 5), 4, 0.5, 135), (6, 2, (3, 4), 1, 0.0, 1), (9, 4, (2, 6), 6, 0.3, 0)])
def test_shortest_path_data_follows_the_formula(args):
    n, p, grid, deg, e, seed = args
    x, c = D.shortest_path_data(n, p, grid, deg=deg, noise_width=e, seed=seed)
    rx, rc = reference_shortest_path(*args)
    np.testing.assert_array_equal(x, rx)
    np.testing.assert_allclose(c, rc, rtol=1e-6)
    assert c.shape == (n, len(D.grid_arcs(grid)))
    if e == 0 and deg == 1:  # noiseless, degree 1: costs (B x / sqrt(p) + 4) / 3.5 exactly
        assert np.all(c > 0)


@pytest.mark.parametrize("args", [(20, 5, 32, 2, 4, 0.5, 135), (5, 3, 7, 1, 1, 0.0, 2)])
def test_knapsack_data_follows_the_formula(args):
    w, x, c = D.knapsack_data(*args[:3], dim=args[3], deg=args[4], noise_width=args[5], seed=args[6])
    rw, rx, rc = reference_knapsack(*args)
    np.testing.assert_array_equal(w, rw)
    np.testing.assert_array_equal(x, rx)
    np.testing.assert_array_equal(c, rc)
    assert np.all((w >= 3) & (w < 8)) and np.all(c == np.round(c))


def test_generators_leave_the_global_random_state_alone():
    np.random.seed(0)
    expected = np.random.rand()
    np.random.seed(0)
    D.shortest_path_data(3, 2, seed=1)
    D.knapsack_data(3, 2, 4, seed=1)
    assert np.random.rand() == expected


def test_generators_refuse_bad_arguments():
    with pytest.raises(ValueError):
        D.shortest_path_data(3, 2, deg=0)
    with pytest.raises(ValueError):
        D.knapsack_data(3, 2, 4, noise_width=-0.1)


def test_grid_arcs_in_pyepo_order():
    # nodes 0 1 2 / 3 4 5: row 0 right, row 0 down, row 1 right
    assert D.grid_arcs((2, 3)).tolist() == [[0, 1], [1, 2], [0, 3], [1, 4], [2, 5], [3, 4], [4, 5]]
    arcs = D.grid_arcs((5, 5))
    assert arcs.shape == (40, 2)
    assert arcs[:9].tolist() == [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [1, 6], [2, 7], [3, 8], [4, 9]]
    assert arcs[-4:].tolist() == [[20, 21], [21, 22], [22, 23], [23, 24]]


def monotone_paths(grid):
    """Every path from node 0 to the last over grid_arcs, as 0/1 arc masks (brute force)."""
    arcs = D.grid_arcs(grid).tolist()
    target = grid[0] * grid[1] - 1
    paths = []

    def walk(node, used):
        if node == target:
            mask = np.zeros(len(arcs))
            mask[used] = 1
            paths.append(mask)
        for k, (tail, head) in enumerate(arcs):
            if tail == node:
                walk(head, used + [k])

    walk(0, [])
    return np.array(paths)


def test_shortest_path_problem_matches_brute_force():
    problem = D.shortest_path_problem((3, 3))
    assert problem.shape == (12,) and problem.sense == "min"
    paths = monotone_paths((3, 3))
    assert len(paths) == 6
    _, c = D.shortest_path_data(30, 5, (3, 3), deg=4, noise_width=0.5, seed=11)
    z = ims.MAPOracle(problem)(c.astype(np.float64))
    np.testing.assert_allclose((z * c).sum(1), (c @ paths.T).min(1), rtol=1e-6)
    assert any((z[0] == path).all() for path in paths)


def brute_force_knapsack(values, weights, capacity):
    best = -np.inf
    for bits in itertools.product([0, 1], repeat=len(values)):
        z = np.array(bits, dtype=float)
        if np.all(weights @ z <= capacity + 1e-9):
            best = max(best, values @ z)
    return best


def test_knapsack_problem_matches_brute_force():
    pytest.importorskip("ortools")
    w, _, c = D.knapsack_data(12, 5, 8, dim=2, deg=2, noise_width=0.5, seed=5)
    oracle = ims.MAPOracle(D.knapsack_problem(w, 10))
    z = oracle(c.astype(np.float64))
    assert np.all(z @ w.T <= 10 + 1e-9)
    np.testing.assert_allclose((z * c).sum(1), [brute_force_knapsack(ci, w, 10) for ci in c])
    caps = np.array([[6.0, 7.5], [12.0, 9.0], [3.0, 20.0]])  # per-instance capacities, (B, dim)
    z = oracle(c[:3].astype(np.float64), capacity=caps)
    np.testing.assert_allclose((z * c[:3]).sum(1), [brute_force_knapsack(c[i], w, caps[i]) for i in range(3)])


# -- metrics ---------------------------------------------------------------------------------

@pytest.fixture
def grid3():
    problem = D.shortest_path_problem((3, 3))
    _, c = D.shortest_path_data(25, 5, (3, 3), deg=2, noise_width=0.5, seed=3)
    return ims.MAPOracle(problem), c.astype(np.float64), monotone_paths((3, 3))


def test_regret_zero_for_the_true_costs(grid3):
    oracle, c, _ = grid3
    assert M.regret(oracle, c, c) == 0.0
    assert M.normalized_regret(oracle, c, c) == 0.0
    assert M.unambiguous_regret(oracle, c, c) == pytest.approx(0.0, abs=1e-12)
    assert M.cost_accuracy(oracle, c, c) == 1.0 and M.exact_match(oracle, c, c) == 1.0


def test_normalized_regret_of_a_bad_prediction(grid3):
    oracle, c, paths = grid3
    costs = c @ paths.T  # (B, 6): every path's true cost
    shortest, longest = costs.min(1), costs.max(1)
    # -c: the oracle takes the longest path (the grid graph is acyclic)
    per_instance = M.regret(oracle, -c, c, reduction="none")
    np.testing.assert_allclose(per_instance, longest - shortest)
    assert M.regret(oracle, -c, c) == pytest.approx((longest - shortest).mean())
    assert M.regret(oracle, -c, c, reduction="sum") == pytest.approx((longest - shortest).sum())
    expected = (longest - shortest).sum() / (shortest.sum() + 1e-8)
    assert M.normalized_regret(oracle, -c, c) == pytest.approx(expected)
    assert M.normalized_regret(oracle, -c, c, true_optimum=shortest) == pytest.approx(expected)
    assert M.cost_accuracy(oracle, -c, c) == 0.0 and M.exact_match(oracle, -c, c) == 0.0


def test_cost_accuracy_and_exact_match_by_hand(grid3):
    oracle, c, paths = grid3
    pred = c.copy()
    pred[:5] = -c[:5]  # 5 of 25 instances take the longest path
    assert M.cost_accuracy(oracle, pred, c) == pytest.approx(20 / 25)
    assert M.exact_match(oracle, pred, c) == pytest.approx(20 / 25)
    # a state that ties with the optimum counts for cost-accuracy, not for exact match
    tied = np.ones((1, 12))
    tied_true = np.ones((1, 12))
    picked = oracle(tied)[0]
    gold = np.array([next(path for path in paths if not (path == picked).all())])  # another optimal path
    assert M.cost_accuracy(oracle, tied, tied_true) == 1.0
    assert M.exact_match(oracle, tied, tied_true, true_solution=gold) == 0.0
    assert M.exact_match(oracle, tied, tied_true, true_solution=picked[None]) == 1.0


def test_unambiguous_regret_takes_the_worst_tie(grid3):
    oracle, c, paths = grid3
    costs = c @ paths.T
    ones = np.ones_like(c)  # every path has 4 arcs: all six tie
    worst = costs.max(1) - costs.min(1)
    np.testing.assert_allclose(M.unambiguous_regret(oracle, ones, c, reduction="none"), worst)
    assert M.unambiguous_regret(oracle, ones, c) == pytest.approx(worst.sum() / (costs.min(1).sum() + 1e-8))
    # within the tolerance still a tie; beyond it, not
    nudged = ones + 1e-8 * np.arange(12)
    np.testing.assert_allclose(M.unambiguous_regret(oracle, nudged, c, reduction="none"), worst)
    assert np.all(M.unambiguous_regret(oracle, nudged, c, reduction="none", tolerance=1e-10) <= worst)
    # without ties it is the regret
    pred = c + np.random.default_rng(0).normal(0, 0.3, c.shape)
    np.testing.assert_allclose(M.unambiguous_regret(oracle, pred, c, reduction="none"),
                               M.regret(oracle, pred, c, reduction="none"), atol=1e-9)


def test_max_problem_senses_and_ties():
    oracle = ims.MAPOracle(ims.KSubset(n=4, k=2))
    true = np.array([[4.0, 1.0, 3.0, 2.0], [1.0, 2.0, 3.0, 10.0]])
    pred = np.array([[1.0, 4.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    # instance 0 takes items 1 and 3 (value 3) where 0 and 2 give 7; instance 1 is all ties
    optimum = np.array([7.0, 13.0])
    np.testing.assert_allclose(M.optimal_values(oracle, true), optimum)
    realised = (oracle(pred) * true).sum(1)
    np.testing.assert_allclose(M.regret(oracle, pred, true, reduction="none"), optimum - realised)
    assert M.regret(oracle, pred, true, reduction="none")[0] == 4.0
    # the worst tie of instance 1 is items 0 and 1 (value 3): regret 10
    np.testing.assert_allclose(M.unambiguous_regret(oracle, pred, true, reduction="none"), [4.0, 10.0])
    assert M.unambiguous_regret(oracle, pred, true) == pytest.approx(14.0 / (20.0 + 1e-8))
    assert M.regret(oracle, true, true) == 0.0
    assert M.regret(oracle, -true, true, reduction="none").tolist() == [7.0 - 3.0, 13.0 - 3.0]


def test_max_problem_knapsack_with_per_instance_capacity():
    pytest.importorskip("ortools")
    w, _, c = D.knapsack_data(6, 5, 6, dim=1, deg=2, noise_width=0.5, seed=9)
    c = c.astype(np.float64)
    oracle = ims.MAPOracle(D.knapsack_problem(w, 20))
    caps = np.array([[5.0], [8.0], [11.0], [14.0], [17.0], [25.0]])
    optimum = np.array([brute_force_knapsack(c[i], w, caps[i]) for i in range(6)])
    np.testing.assert_allclose(M.optimal_values(oracle, c, capacity=caps), optimum)
    pred = c[::-1].copy()
    realised = (oracle(pred, capacity=caps) * c).sum(1)
    np.testing.assert_allclose(M.regret(oracle, pred, c, reduction="none", capacity=caps), optimum - realised)
    assert M.regret(oracle, c, c, capacity=caps) == 0.0


def test_evaluate_agrees_and_takes_torch():
    torch = pytest.importorskip("torch")
    oracle = ims.MAPOracle(D.shortest_path_problem())
    _, c = D.shortest_path_data(16, 5, deg=4, noise_width=0.5, seed=1)
    pred = torch.tensor(c + np.random.default_rng(1).normal(0, 1, c.shape), requires_grad=True)
    result = M.evaluate(oracle, pred, c)
    assert result["regret"] == pytest.approx(M.regret(oracle, pred, c))
    assert result["normalized_regret"] == pytest.approx(M.normalized_regret(oracle, pred, c))
    assert result["unambiguous_regret"] == pytest.approx(M.unambiguous_regret(oracle, pred, c))
    assert result["cost_accuracy"] == M.cost_accuracy(oracle, pred, c)
    assert result["exact_match"] == M.exact_match(oracle, pred, c)
    assert 0 < result["normalized_regret"] and 0 <= result["cost_accuracy"] < 1


def test_metrics_refuse_bad_input(grid3):
    oracle, c, _ = grid3
    with pytest.raises(ims.InvalidInputError):
        M.regret(oracle, c, c, reduction="median")
    with pytest.raises(ims.InvalidInputError):
        M.regret(oracle, c, c, true_optimum=np.zeros(3))
    with pytest.raises(ims.InvalidInputError):
        M.unambiguous_regret(oracle, c, c, tolerance=0.0)


# -- against PyEPO itself, where it is installed -----------------------------------------------

def test_against_pyepo():
    pyepo = pytest.importorskip("pyepo")
    pytest.importorskip("ortools")
    from pyepo.metric import calRegret, calUnambRegret
    from pyepo.model.ort import knapsackModel, shortestPathModel

    for args in [(50, 5, (5, 5), 4, 0.5, 135), (7, 3, (2, 3), 1, 0.0, 1)]:
        ours = D.shortest_path_data(*args[:3], deg=args[3], noise_width=args[4], seed=args[5])
        theirs = pyepo.data.shortestpath.genData(*args[:3], deg=args[3], noise_width=args[4], seed=args[5])
        for a, b in zip(ours, theirs):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert D.grid_arcs(args[2]).tolist() == [list(a) for a in shortestPathModel(args[2]).arcs]
    ours = D.knapsack_data(20, 5, 32, dim=2, deg=4, noise_width=0.5, seed=135)
    theirs = pyepo.data.knapsack.genData(20, 5, 32, dim=2, deg=4, noise_width=0.5, seed=135)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)

    _, c = D.shortest_path_data(20, 5, (5, 5), deg=4, noise_width=0.5, seed=3)
    model, oracle = shortestPathModel((5, 5)), ims.MAPOracle(D.shortest_path_problem())
    optimum = M.optimal_values(oracle, c)
    rng = np.random.default_rng(0)
    noisy, tied = c + rng.normal(0, 0.5, c.shape), rng.integers(1, 3, c.shape).astype(float)
    theirs = [calRegret(model, noisy[i], c[i], float(optimum[i])) for i in range(len(c))]
    np.testing.assert_allclose(M.regret(oracle, noisy, c, reduction="none"), theirs, atol=1e-5)
    for pred in (noisy, tied):
        theirs = [calUnambRegret(model, pred[i], c[i], float(optimum[i])) for i in range(len(c))]
        np.testing.assert_allclose(M.unambiguous_regret(oracle, pred, c, reduction="none"), theirs, atol=1e-5)

    w, _, c = D.knapsack_data(15, 5, 10, dim=2, deg=2, noise_width=0.5, seed=3)
    model, oracle = knapsackModel(w, [20, 20]), ims.MAPOracle(D.knapsack_problem(w, 20))
    optimum = M.optimal_values(oracle, c)
    tied = rng.integers(1, 3, c.shape).astype(float)
    theirs = [calUnambRegret(model, tied[i], c[i], float(optimum[i])) for i in range(len(c))]
    np.testing.assert_allclose(M.unambiguous_regret(oracle, tied, c, reduction="none"), theirs, atol=1e-6)


# -- per-instance data: one value for all, and errors that name the metric called -------------------

def per_instance_knapsack():
    """A knapsack whose capacity has no default: every call must pass it."""
    return ims.ILP.from_dict({
        "name": "knapsack",
        "params": {"capacity": {"batched": True}},
        "sets": {"items": 5},
        "constants": {"weights": [4, 3, 3, 2, 5]},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"name": "capacity", "expr": "sum(i in items) weights[i] * x[i] <= capacity"}],
        "objective": {"sense": "max", "theta": "x"},
    })


def test_metrics_take_one_capacity_for_all_instances():
    pytest.importorskip("ortools")
    oracle = ims.MAPOracle(per_instance_knapsack(), backend="ortools")
    rng = np.random.default_rng(4)
    true, pred = rng.uniform(1, 5, (6, 5)), rng.uniform(1, 5, (6, 5))
    full = M.evaluate(oracle, pred, true, capacity=np.full(6, 7.0))
    for capacity in (7.0, 7, np.array(7.0)):
        assert M.evaluate(oracle, pred, true, capacity=capacity) == full
        assert M.regret(oracle, pred, true, capacity=capacity) == full["regret"]
    np.testing.assert_allclose(M.optimal_values(oracle, true, capacity=7.0),
                               [brute_force_knapsack(c, np.array([[4, 3, 3, 2, 5]]), np.array([7.0])) for c in true])


@pytest.mark.parametrize(("metric", "arguments"), [
    ("evaluate", "oracle, predicted, true"), ("regret", "oracle, predicted, true"),
    ("normalized_regret", "oracle, predicted, true"), ("unambiguous_regret", "oracle, predicted, true"),
    ("cost_accuracy", "oracle, predicted, true"), ("exact_match", "oracle, predicted, true"),
])
def test_a_missing_parameter_is_named_with_the_metric_called(metric, arguments):
    """The report: metrics.evaluate(oracle, ...) answered 'pass it per instance: layer(theta, capacity=...)'."""
    oracle = ims.MAPOracle(per_instance_knapsack())
    c = np.ones((3, 5))
    with pytest.raises(ims.InvalidInputError, match=rf"^ILP 'knapsack': batched parameter 'capacity' has no default; "
                                                    rf"pass it per instance: metrics\.{metric}\({arguments}, "
                                                    rf"capacity=\.\.\.\)$"):
        getattr(M, metric)(oracle, c, c)


def test_bad_data_are_named_with_the_metric_called():
    oracle = ims.MAPOracle(per_instance_knapsack())
    c = np.ones((3, 5))
    with pytest.raises(ims.InvalidInputError, match=r"pass it per instance: metrics\.optimal_values\(oracle, costs, "
                                                    r"capacity=\.\.\.\)$"):
        M.optimal_values(oracle, c)
    with pytest.raises(ims.InvalidInputError, match=r"takes no per-instance data 'cap'; its fields: capacity "
                                                    r"\(in metrics\.regret\(oracle, predicted, true, cap=\.\.\.\)\)"):
        M.regret(oracle, c, c, cap=1.0)
    with pytest.raises(ims.InvalidInputError, match=r"^capacity: expected shape \(3,\) \(batch axis first\), or \(\) "
                                                    r"for every instance, got \(4,\)$"):
        M.evaluate(oracle, c, c, capacity=np.ones(4))

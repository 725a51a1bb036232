"""Exact numbers: every problem solves the score magnitudes docs/problems.md gives it
('Score magnitudes'), or refuses them naming the batch index; never a wrong state.
And construction-time checks of the settings that could only fail later (bools for
ints, impossible sample counts)."""

from __future__ import annotations

import math
import warnings

import networkx as nx
import numpy as np
import pytest

import imle_solvers as ims
from imle_solvers import list_solvers
from imle_solvers._array import to_numpy
from imle_solvers.adapters.exact_scores import exact_scores, scaling_shift
from imle_solvers.errors import InvalidInputError, SolverError

HUGE = 2.0**1000  # a reference scale: theta * 2**-1000 solves the same problem without overflow


def backends(kind: str) -> list[str]:
    return [entry.backend for entry in list_solvers(kind) if entry.installed]


def solve_quietly(problem: ims.Problem, theta, backend: str, **data):
    """The oracle's states, with numpy's overflow warnings turned into errors: an overflow
    inside a solver is what this file guards against."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return to_numpy(ims.MAPOracle(problem, backend=backend)(theta, **data))


def assert_same_as_scaled_down(problem: ims.Problem, theta: np.ndarray, backend: str) -> None:
    """Scores near float64's largest value give exactly the states of the same scores scaled
    down by 2**-1000 (exact), where no sum comes near overflow."""
    assert np.abs(theta).max() > np.finfo(np.float64).max / problem.summed_scores  # sums could overflow
    expected = solve_quietly(problem, np.ldexp(theta, -1000), backend)
    np.testing.assert_array_equal(solve_quietly(problem, theta, backend), expected)


# -- problems whose solvers sum scores: solved exactly at any finite magnitude ------------------


@pytest.mark.parametrize("backend", backends(ims.GraphMatching.kind))
def test_graph_matching_of_huge_scores_is_the_best_matching(backend):
    # the case: [1, 1e308, 1] on a path gave the empty matching
    problem = ims.GraphMatching(nx.path_graph(4))
    np.testing.assert_array_equal(solve_quietly(problem, np.array([[1.0, 1e308, 1.0]]), backend), [[0, 1, 0]])
    rng = np.random.default_rng(0)
    problem = ims.GraphMatching(nx.gnm_random_graph(8, 16, seed=1))
    assert_same_as_scaled_down(problem, rng.uniform(-0.2, 1.0, size=(4, problem.shape[0])) * 1.7e308, backend)


@pytest.mark.parametrize("backend", backends(ims.GridShortestPath.kind))
def test_grid_paths_of_huge_costs_are_the_shortest(backend):
    # the case: the scipy backend returned the target cell alone
    problem = ims.GridShortestPath(3, 3)
    np.testing.assert_array_equal(solve_quietly(problem, np.full((1, 3, 3), 1e308), backend)[0], np.eye(3))
    rng = np.random.default_rng(1)
    problem = ims.GridShortestPath(5, 5, neighbourhood=4)
    assert_same_as_scaled_down(problem, rng.uniform(0.3, 1.0, size=(3, 5, 5)) * 1.7e308, backend)


@pytest.mark.parametrize("backend", backends(ims.GraphShortestPath.kind))
def test_graph_paths_of_huge_costs_are_the_shortest(backend):
    # the case: the scipy backend said the target could not be reached
    problem = ims.GraphShortestPath(nx.path_graph(4), 0, 3)
    np.testing.assert_array_equal(solve_quietly(problem, np.full((2, 3), 1e308), backend), np.ones((2, 3)))
    rng = np.random.default_rng(2)
    problem = ims.GraphShortestPath(nx.grid_2d_graph(3, 4), (0, 0), (2, 3))
    assert_same_as_scaled_down(problem, rng.uniform(0.3, 1.0, size=(3, problem.shape[0])) * 1.7e308, backend)


@pytest.mark.parametrize("backend", backends(ims.GraphShortestPath.kind))
def test_graph_paths_with_huge_negative_costs_on_a_dag(backend):
    # negative costs on a DAG (a dynamic programme, or Bellman-Ford) sum too
    graph = nx.DiGraph([(0, 1), (1, 3), (0, 2), (2, 3), (1, 2)])
    problem = ims.GraphShortestPath(graph, 0, 3)
    rng = np.random.default_rng(3)
    assert_same_as_scaled_down(problem, rng.uniform(-1.0, 1.0, size=(6, 5)) * 1.7e308, backend)


@pytest.mark.parametrize("perfect", [True, False])
@pytest.mark.parametrize("backend", backends(ims.BipartiteMatching.kind))
def test_bipartite_matchings_of_huge_scores_are_the_best(backend, perfect):
    rng = np.random.default_rng(4)
    problem = ims.BipartiteMatching(3, 4, perfect=perfect)
    assert_same_as_scaled_down(problem, rng.uniform(-1.0, 1.0, size=(5, 3, 4)) * 1.7e308, backend)


def test_bellman_ford_in_torch_float32_near_its_largest_value():
    torch = pytest.importorskip("torch")
    problem = ims.GridShortestPath(4, 4)
    rng = np.random.default_rng(5)
    costs = rng.uniform(0.5, 1.0, size=(3, 4, 4)).astype(np.float32) * np.float32(3e38)
    oracle = ims.MAPOracle(problem, backend="bellman-ford")
    z = oracle(torch.from_numpy(costs))
    expected = oracle(torch.from_numpy(np.ldexp(costs, -100)))
    assert torch.equal(z, expected)


def test_bellman_ford_in_jax_under_jit_near_its_largest_value():
    jax = pytest.importorskip("jax")
    problem = ims.GridShortestPath(4, 4)
    entry = ims.adapters.resolve_solver(problem.kind, "bellman-ford")
    rng = np.random.default_rng(6)
    costs = rng.uniform(0.5, 1.0, size=(3, 4, 4)).astype(np.float32) * np.float32(3e38)
    solve = jax.jit(lambda theta: entry.solve(theta, problem))  # traced: scaled on the device
    np.testing.assert_array_equal(np.asarray(solve(costs)), np.asarray(solve(np.ldexp(costs, -100))))


def test_a_layer_solves_huge_costs_exactly():
    torch = pytest.importorskip("torch")
    from imle_solvers.torch import IMLELayer

    problem = ims.GridShortestPath(3, 3)
    layer = IMLELayer(problem, ims.STE())  # no noise: the forward state is the MAP state
    z = layer(torch.full((2, 3, 3), 1e308, dtype=torch.float64, requires_grad=True))
    np.testing.assert_array_equal(z.detach().numpy(), np.broadcast_to(np.eye(3), (2, 3, 3)))


def test_rows_are_scaled_only_where_a_sum_could_overflow():
    problem = ims.GridShortestPath(2, 2)
    shift = scaling_shift(problem.summed_scores)
    assert 2**shift >= 2 * problem.summed_scores
    bound = math.ldexp(np.finfo(np.float64).max, -shift)
    theta = np.array([[[bound, 1.0], [1.0, 1.0]], [[bound * 2, 1.0], [1.0, 1.0]]])
    scaled = exact_scores(theta, problem, batched=True)
    np.testing.assert_array_equal(scaled[0], theta[0])  # within range: as it was
    np.testing.assert_array_equal(scaled[1], np.ldexp(theta[1], -shift))  # by a power of two: exact
    one = theta[0]
    assert exact_scores(one, problem, batched=False) is one
    small = np.ones((2, 2, 2))
    assert exact_scores(small, problem, batched=True) is small  # the common case: no copy
    k_subset = ims.KSubset(4, 2)  # compares only: any finite score, untouched
    assert k_subset.summed_scores is None
    huge = np.full((1, 4), 1e308)
    assert exact_scores(huge, k_subset, batched=True) is huge


def test_k_subset_of_huge_scores():
    theta = np.array([[1e308, -1e308, 1.7e308, 0.0], [-1.7e308, -1e308, 5.0, 1e308]])
    z = solve_quietly(ims.KSubset(4, 2), theta, "numpy")
    np.testing.assert_array_equal(z, [[1, 0, 1, 0], [0, 0, 1, 1]])


# -- ILPs: beyond their backends' range, refused naming the batch index ----------------------


def knapsack() -> ims.ILP:
    b = ims.ILPBuilder("knapsack")
    b.add_set("items", 4)
    b.add_parameter("weight", [3, 4, 5, 2])
    b.add_variable("x", over=["items"])
    b.add_constraint("sum(i in items) weight[i] * x[i] <= 7", name="capacity")
    b.set_objective("max", theta="x")
    return b.build()


ILP_BACKENDS = backends("ilp")


@pytest.mark.parametrize("value", [1e308, -1e308, 1.01e18])
@pytest.mark.parametrize("backend", ILP_BACKENDS)
def test_ilp_scores_beyond_the_limit_are_refused_naming_the_batch_index(backend, value):
    # the case: OverflowError (OR-Tools) or "error in input data" (SCIP)
    theta = np.ones((3, 4))
    theta[2, 1] = value
    with pytest.raises(InvalidInputError, match=r"theta: batch index 2: the score .* is beyond ±1e\+18"):
        ims.MAPOracle(knapsack(), backend=backend)(theta)


@pytest.mark.parametrize("backend", ILP_BACKENDS)
def test_ilp_scores_beyond_the_limit_from_a_perturbation_fail_as_their_instance(backend):
    # the solver's own check: perturbed scores (a layer's, never validated) reach it unchecked
    theta = np.ones((3, 4))
    theta[1, 0] = 1e300
    oracle = ims.MAPOracle(knapsack(), backend=backend)
    with pytest.raises(SolverError, match=r"instance 1 .*beyond ±1e\+18") as error:
        oracle(theta, validate=False)
    assert (error.value.index, error.value.status) == (1, "out-of-range")
    skipping = ims.MAPOracle(knapsack(), backend=backend, on_failure="skip")
    z, status = skipping.solve(theta, validate=False)
    assert status.tolist() == [0, int(ims.failures.Status.FAILED), 0]


@pytest.mark.parametrize("backend", ILP_BACKENDS)
def test_ilp_scores_at_the_limit_are_solved(backend):
    # (near 1e18, float64 tells apart differences of 128 and more; the backends, their tolerances')
    theta = np.array([[1e18, -1e18, 1e17, 1e18], [-1e18, 1e18, 5e17, 3e17]])
    z = ims.MAPOracle(knapsack(), backend=backend)(theta)
    np.testing.assert_array_equal(z, [[1, 0, 0, 1], [0, 1, 0, 1]])


def test_an_ilp_fixed_objective_beyond_the_limit_is_refused_when_built():
    import scipy.sparse as sp

    with pytest.raises(InvalidInputError, match=r"objective coefficient 1e\+19 is beyond ±1e\+18"):
        ims.ILP((ims.Variable("x", (2,)),), sp.csr_array(np.ones((1, 2))), -np.inf, 1.0, ("x",),
                objective=np.array([0.0, 1e19]))


def test_batched_objective_beyond_the_limit_fails_as_its_instance():
    b = ims.ILPBuilder("priced")
    b.add_set("items", 2)
    b.add_parameter("price", default=1.0, batched=True)
    b.add_variable("x", over=["items"])
    b.add_constraint("sum(i in items) x[i] <= 1", name="one")
    b.set_objective("max", theta="x", fixed="price * x[0]")
    problem = b.build()
    oracle = ims.MAPOracle(problem, backend=ILP_BACKENDS[0])
    # beyond the scores' limit (1e18), below what the solvers read as infinite: the solve refuses it
    with pytest.raises(SolverError, match=r"instance 1 .*objective coefficient 1e\+19") as error:
        oracle(np.zeros((2, 2)), price=np.array([1.0, 1e19]))
    assert error.value.status == "out-of-range"
    # at or beyond 1e20 the batch's data are refused before any solve, naming the instance
    with pytest.raises(InvalidInputError, match=r"batch index 1 .*1e\+20 or more"):
        oracle(np.zeros((2, 2)), price=np.array([1.0, 1e30]))


# -- bfloat16 scores: converted on the host exactly --------------------------------------------


@pytest.mark.parametrize("backend", ILP_BACKENDS)
def test_bfloat16_torch_scores_into_an_ilp(backend):
    torch = pytest.importorskip("torch")
    theta = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 0.5, 0.25, 1.0]])
    oracle = ims.MAPOracle(knapsack(), backend=backend)
    z = oracle(theta.to(torch.bfloat16))
    assert z.dtype == torch.bfloat16
    assert torch.equal(z.float(), oracle(theta))


def test_bfloat16_jax_scores_into_an_ilp():
    jnp = pytest.importorskip("jax.numpy")
    theta = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    z = ims.MAPOracle(knapsack())(jnp.asarray(theta, dtype=jnp.bfloat16))
    assert z.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(z, dtype=np.float32), ims.MAPOracle(knapsack())(theta))


def test_extension_floats_come_to_the_host_as_exact_float32():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    values = np.array([1.5, -(2.0**127), 3 * 2.0**-126, 7.0], dtype=np.float32)  # each a bfloat16 value
    for array in (torch.tensor(values).to(torch.bfloat16), jnp.asarray(values, dtype=jnp.bfloat16),
                  np.asarray(jnp.asarray(values, dtype=jnp.bfloat16))):
        host = to_numpy(array)
        assert host.dtype == np.float32
        np.testing.assert_array_equal(host, values)
    half = np.ones(2, np.float16)
    assert to_numpy(half) is half


# -- settings refused at construction -------------------------------------------------------------


@pytest.mark.parametrize("build, message", [
    (lambda: ims.KSubset(5, True), r"KSubset: k must be in 1..n=5, got True \(a bool"),
    (lambda: ims.KSubset(True, 1), r"KSubset: n must be a positive integer, got True"),
    (lambda: ims.KSubset(5, 2.5), r"KSubset: k must be in 1..n=5, got 2.5"),
    (lambda: ims.KSubset(5, "2"), r"KSubset: k must be in 1..n=5, got '2'"),
    (lambda: ims.KSubset(float("nan"), 1), r"KSubset: n must be a positive integer, got nan"),
    (lambda: ims.GridShortestPath(True, 3), r"GridShortestPath: rows must be a positive integer, got True"),
    (lambda: ims.GridShortestPath(3, 3, neighbourhood=True), r"neighbourhood must be 4 or 8, got True"),
    (lambda: ims.BipartiteMatching(2, False), r"BipartiteMatching: n_right must be a positive integer, got False"),
    (lambda: ims.Variable("x", (True, 3)), r"Variable 'x': shape\[0\] must be an integer >= 0, got True"),
    (lambda: ims.Variable("x", (2,), "quantum"), r"Variable 'x': type must be one of .*got 'quantum'"),
    (lambda: ims.SumOfGamma(k=True), r"SumOfGamma: k must be a positive number, got True"),
    (lambda: ims.SumOfGamma(k=3, nb_iterations=True), r"nb_iterations must be a positive integer, got True"),
    (lambda: ims.TorchFunctionProblem(lambda t: t, (True,)), r"event_shape\[0\] must be an integer >= 0, got True"),
])
def test_constructors_refuse_bools_and_non_integers_naming_the_argument(build, message):
    with pytest.raises(InvalidInputError, match=message):
        build()


def test_integral_sizes_are_stored_as_ints():
    problem = ims.KSubset(np.int64(5), 2.0)
    assert (problem.n, problem.k) == (5, 2) and all(type(v) is int for v in (problem.n, problem.k))
    assert ims.GridShortestPath(np.int32(3), 4).shape == (3, 4)


@pytest.mark.parametrize("build", [
    lambda: ims.IMLE(samples=10**12),
    lambda: ims.AIMLE(samples=2**11, marginal_samples=2**10),
    lambda: ims.PerturbedOptimizer(ims.Normal(), marginal_samples=10**12),
])
def test_impossible_sample_counts_are_refused_at_construction_with_a_memory_estimate(build):
    # the case: samples=1e12 failed 24 s into the first call
    with pytest.raises(InvalidInputError, match=r"perturbed solves per instance and call, beyond 1,048,576 .* "
                                                r"would hold at least [\d.]+ [kMGT]B per score"):
        build()


def test_the_largest_sample_count_is_accepted_and_the_estimate_is_stated():
    assert ims.IMLE(samples=2**10, marginal_samples=2**10).samples == 1024
    with pytest.raises(InvalidInputError, match=r"IMLE: samples \* marginal_samples = 1,000,000,000,000 .* 12 TB"):
        ims.IMLE(samples=10**12)
    with pytest.raises(InvalidInputError, match="samples must be a positive integer, got 1000000000000.0"):
        ims.IMLE(samples=1e12)


def test_a_fenchel_young_loss_refuses_an_impossible_samples_by_its_name():
    pytest.importorskip("torch")
    from imle_solvers.torch import FenchelYoungLoss

    with pytest.raises(InvalidInputError, match=r"FenchelYoungLoss: samples = 10,000,000 perturbed solves"):
        FenchelYoungLoss(ims.KSubset(3, 1), samples=10**7)
    with pytest.raises(InvalidInputError, match=r"FenchelYoungLoss: samples must be a positive integer, got True"):
        FenchelYoungLoss(ims.KSubset(3, 1), samples=True)


def test_a_registered_solver_of_its_own_gets_summable_scores_too():
    seen = []

    def solve(theta, problem):
        seen.append(float(np.abs(theta).max()))
        return np.eye(3)

    ims.register_solver(ims.GridShortestPath.kind, "test-own")(solve)
    try:
        problem = ims.GridShortestPath(3, 3)
        ims.MAPOracle(problem, backend="test-own")(np.stack([np.full((3, 3), 1e308), np.ones((3, 3))]))
    finally:
        ims.adapters.unregister_solver(ims.GridShortestPath.kind, "test-own")
    assert seen == [np.ldexp(1e308, -scaling_shift(9)), 1.0]
    assert seen[0] * 9 < np.finfo(np.float64).max / 2  # a sum of every cell stays finite


@pytest.mark.parametrize("w, cap", [([1.0, 1e25, 1.0], 2.0), ([1.0, 1.0, 1.0], 1e21)], ids=["coefficient", "bound"])
def test_batched_parameters_that_the_solvers_would_read_as_infinite_are_refused_naming_the_instance(w, cap):
    # a finite 1e21 bound would silently be no bound at all in SCIP (numerics/infinity 1e20)
    problem = ims.ILP.from_dict({
        "sets": {"items": 3},
        "params": {"w": {"over": ["items"], "batched": True, "default": [1.0, 1.0, 1.0]},
                   "cap": {"batched": True, "default": 2}},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"name": "c", "expr": "sum(i in items) w[i] * x[i] <= cap"}],
        "objective": {"sense": "max", "theta": "x"},
    })
    oracle = ims.MAPOracle(problem)
    theta = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ims.InvalidInputError, match="at batch index 1 .*1e\\+20 or more"):
        oracle(theta, w=np.array([[1.0, 1.0, 1.0], w]), cap=np.array([2.0, cap]))
    with pytest.raises(ims.InvalidInputError, match="1e\\+20 or more"):
        problem.instance_values({"w": np.array(w), "cap": np.array(cap)})
    np.testing.assert_array_equal(oracle(theta, w=np.ones((2, 3)), cap=np.array([2.0, 1.0])),
                                  [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])

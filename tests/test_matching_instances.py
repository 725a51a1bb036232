"""Matchings with per-instance ``allowed`` masks: every backend against brute force over
the matchings among allowed pairs (or edges), infeasible perfect instances, and the
problems' own checks of the masks."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from imle_solvers.adapters import resolve_solver
from imle_solvers.errors import InvalidInputError, SolverError
from imle_solvers.problems import BipartiteMatching, DataField, GraphMatching

BIPARTITE_BACKENDS = ["scipy", "ortools", "networkx"]
SHAPES = [(1, 1), (1, 3), (2, 3), (3, 2), (3, 3), (4, 4), (3, 5), (5, 3)]


def solver(backend: str):
    return resolve_solver(BipartiteMatching.kind, backend).solve


def brute_force_bipartite(theta: np.ndarray, allowed: np.ndarray, perfect: bool) -> float:
    """Best total score over the matchings that use allowed pairs only (covering the
    smaller side when ``perfect``); ``-inf`` when there is none."""
    n_left, n_right = theta.shape
    best = -np.inf
    options = [[None, *np.flatnonzero(allowed[i]).tolist()] for i in range(n_left)]
    for choice in itertools.product(*options):
        taken = [j for j in choice if j is not None]
        if len(set(taken)) < len(taken) or (perfect and len(taken) < min(n_left, n_right)):
            continue
        best = max(best, sum(theta[i, j] for i, j in enumerate(choice) if j is not None))
    return best


def assert_valid_matching(z: np.ndarray, theta: np.ndarray, allowed: np.ndarray, perfect: bool) -> None:
    assert set(np.unique(z).tolist()) <= {0.0, 1.0}
    assert (z.sum(axis=0) <= 1).all() and (z.sum(axis=1) <= 1).all()
    assert not z[~allowed].any(), "a forbidden pair is matched"
    if perfect:
        assert z.sum() == min(z.shape)
    else:
        assert (theta[z == 1] > 0).all(), "only pairs of positive score"


def random_instances(rng: np.random.Generator, shape: tuple[int, int], count: int):
    """``count`` pairs (theta, allowed) with masks of varied density, some of them empty."""
    for density in np.linspace(0.15, 1.0, count):
        yield rng.normal(size=shape), rng.random(shape) < density


@pytest.mark.parametrize("backend", BIPARTITE_BACKENDS)
@pytest.mark.parametrize("perfect", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_bipartite_with_allowed_matches_brute_force(backend, perfect, shape, rng):
    problem = BipartiteMatching(*shape, perfect=perfect)
    solve = solver(backend)
    solved = infeasible = 0
    for theta, allowed in random_instances(rng, shape, 24):
        best = brute_force_bipartite(theta, allowed, perfect)
        if best == -np.inf:
            with pytest.raises(SolverError) as caught:
                solve(theta, problem, data={"allowed": allowed})
            assert caught.value.status == "infeasible"
            infeasible += 1
            continue
        z = solve(theta, problem, data={"allowed": allowed})
        assert z.shape == shape
        assert_valid_matching(z, theta, allowed, perfect)
        assert (theta * z).sum() == pytest.approx(best)
        solved += 1
    assert solved > 0
    if perfect and min(shape) > 1:
        assert infeasible > 0, "the sample should hold some infeasible instances"


@pytest.mark.parametrize("backend", BIPARTITE_BACKENDS)
@pytest.mark.parametrize(
    "allowed",
    [
        # passes check_instance_data (every vertex has a pair) but violates Hall's condition
        [[1, 0, 0], [1, 0, 0], [1, 1, 1]],
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]],
        # a left vertex with no allowed pair; no allowed pair at all
        [[1, 1, 1], [0, 0, 0], [1, 1, 1]],
        [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
        # rectangular: the 2 left vertices share one right vertex
        [[0, 1, 0, 0], [0, 1, 0, 0]],
        # rectangular, the smaller side on the right: a right vertex with no pair
        [[1, 0], [1, 0], [1, 0]],
        [[0]],
    ],
)
def test_perfect_matching_without_allowed_solution_is_infeasible(backend, allowed, rng):
    allowed = np.array(allowed, dtype=bool)
    problem = BipartiteMatching(*allowed.shape)
    theta = rng.normal(size=allowed.shape) + 100 * ~allowed  # forbidden pairs look the most tempting
    with pytest.raises(SolverError) as caught:
        solver(backend)(theta, problem, data={"allowed": allowed})
    assert caught.value.status == "infeasible"


@pytest.mark.parametrize("backend", BIPARTITE_BACKENDS)
def test_forbidden_pairs_of_huge_score_are_never_used(backend, rng):
    problem = BipartiteMatching(4, 4)
    allowed = ~np.eye(4, dtype=bool)
    theta = rng.normal(size=(4, 4)) + 1e9 * np.eye(4)
    z = solver(backend)(theta, problem, data={"allowed": allowed})
    assert_valid_matching(z, theta, allowed, perfect=True)
    assert (theta * z).sum() == pytest.approx(brute_force_bipartite(theta, allowed, True))


@pytest.mark.parametrize("small", [[[3e-6, 1e-6], [1e-6, 3e-6]], [[1e-6, 3e-6], [3e-6, 1e-6]]])
def test_ortools_keeps_its_precision_beside_a_huge_forbidden_score(small):
    # the forbidden score must not set the integer scale that rounds the allowed ones to 0
    problem = BipartiteMatching(3, 3)
    allowed = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]], dtype=bool)
    theta = np.zeros((3, 3))
    theta[0, 1] = 1e12
    theta[1:, 1:] = small
    z = solver("ortools")(theta, problem, data={"allowed": allowed})
    assert (theta * z).sum() == pytest.approx(6e-6, rel=1e-9)
    np.testing.assert_array_equal(z, solver("scipy")(theta, problem, data={"allowed": allowed}))


@pytest.mark.parametrize("backend", BIPARTITE_BACKENDS)
@pytest.mark.parametrize("perfect", [True, False])
def test_all_allowed_equals_no_data(backend, perfect, rng):
    problem = BipartiteMatching(4, 6, perfect=perfect)
    solve = solver(backend)
    for _ in range(5):
        theta = rng.normal(size=(4, 6))
        expected = solve(theta, problem)
        np.testing.assert_array_equal(solve(theta, problem, data={"allowed": np.ones((4, 6), dtype=bool)}), expected)
        np.testing.assert_array_equal(solve(theta, problem, data={}), expected)


@pytest.mark.parametrize("perfect", [True, False])
def test_backends_agree_with_allowed(perfect, rng):
    problem = BipartiteMatching(6, 8, perfect=perfect)
    for _ in range(10):
        theta = rng.normal(size=(6, 8))
        allowed = rng.random((6, 8)) < 0.6
        outcomes = []
        for backend in BIPARTITE_BACKENDS:
            try:
                outcomes.append(solver(backend)(theta, problem, data={"allowed": allowed}))
            except SolverError as error:
                outcomes.append(error.status)
        for outcome in outcomes[1:]:  # continuous random scores: the optimum is unique
            if isinstance(outcomes[0], str):
                assert outcome == outcomes[0]
            else:
                np.testing.assert_array_equal(outcome, outcomes[0])


def test_bipartite_declares_allowed():
    field = BipartiteMatching(2, 5).instance_fields["allowed"]
    assert isinstance(field, DataField) and (field.shape, field.kind) == ((2, 5), "bool")
    field = BipartiteMatching(3, 2, perfect=False).instance_fields["allowed"]
    assert (field.shape, field.kind) == ((3, 2), "bool") and field.doc
    assert set(BipartiteMatching(1, 1).instance_fields) == {"allowed"}


@pytest.mark.parametrize(
    ("bad_row", "match"),
    [
        ([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], "left vertex 1 has no allowed pair"),
        ([[1, 0, 0], [1, 0, 0], [1, 0, 1], [1, 0, 0]], "right vertex 1 has no allowed pair"),
        ([[1, 1, 0], [1, 1, 0], [1, 1, 0]], "right vertex 2 has no allowed pair"),
        ([[1, 1, 1], [0, 0, 0], [1, 1, 1]], "left vertex 1 has no allowed pair"),
        ([[0, 1, 0, 0], [0, 1, 0, 0]], "only 1 right vertices have an allowed pair, for 2 left vertices"),
        ([[1, 1], [0, 0], [0, 0]], "only 1 left vertices have an allowed pair, for 2 right vertices"),
    ],
)
def test_check_instance_data_names_the_first_bad_batch_index(bad_row, match):
    bad_row = np.array(bad_row, dtype=bool)
    problem = BipartiteMatching(*bad_row.shape)
    allowed = np.ones((5, *bad_row.shape), dtype=bool)
    allowed[2] = allowed[4] = bad_row
    with pytest.raises(InvalidInputError, match=rf"^allowed: batch index 2 .*\({match}\)$"):
        problem.check_instance_data({"allowed": allowed})


def test_check_instance_data_accepts_what_it_cannot_refuse_cheaply(rng):
    # any mask, even an empty one, leaves a (possibly empty) non-perfect matching
    BipartiteMatching(3, 4, perfect=False).check_instance_data({"allowed": np.zeros((2, 3, 4), dtype=bool)})
    # a Hall violation passes the cheap check: the solver decides (and raises infeasible)
    hall = np.array([[[1, 0, 0], [1, 0, 0], [1, 1, 1]]], dtype=bool)
    BipartiteMatching(3, 3).check_instance_data({"allowed": hall})
    BipartiteMatching(3, 3).check_instance_data({})
    BipartiteMatching(2, 3).check_instance_data({"allowed": np.ones((0, 2, 3), dtype=bool)})
    BipartiteMatching(2, 3).check_instance_data({"allowed": np.ones((3, 2, 3), dtype=bool)})


def brute_force_graph_matching(edges: list[tuple[int, int]], theta: np.ndarray, allowed: np.ndarray) -> float:
    """Best total score over the sets of allowed edges in which no two share a vertex."""
    usable = np.flatnonzero(allowed).tolist()
    best = 0.0
    for size in range(1, len(usable) + 1):
        for subset in itertools.combinations(usable, size):
            ends = [v for i in subset for v in edges[i]]
            if len(set(ends)) == len(ends):
                best = max(best, theta[list(subset)].sum())
    return best


def test_graph_matching_with_allowed_matches_brute_force(rng):
    solve = resolve_solver(GraphMatching.kind, "networkx").solve
    for trial in range(30):
        graph = nx.gnp_random_graph(7, 0.5, seed=int(rng.integers(1 << 30)))
        if graph.number_of_edges() == 0:
            continue
        problem = GraphMatching(graph)
        edges = [tuple(edge) for edge in problem.graph.edges.tolist()]
        theta = rng.normal(size=len(edges)) + 0.5
        allowed = rng.random(len(edges)) < (0.2 + 0.8 * trial / 30)
        z = solve(theta, problem, data={"allowed": allowed})
        assert z.shape == (len(edges),)
        assert not z[~allowed].any(), "a forbidden edge is matched"
        ends = [v for bit, edge in zip(z, edges) if bit for v in edge]
        assert len(set(ends)) == len(ends), "no two chosen edges share a vertex"
        assert (theta[z == 1] > 0).all()
        assert theta @ z == pytest.approx(brute_force_graph_matching(edges, theta, allowed))


def test_graph_matching_allowed_edge_cases(rng):
    graph = nx.petersen_graph()
    problem = GraphMatching(graph)
    solve = resolve_solver(problem.kind, "networkx").solve
    theta = rng.normal(size=problem.shape) + 1e6  # every edge tempting
    assert not solve(theta, problem, data={"allowed": np.zeros(problem.shape, dtype=bool)}).any()
    np.testing.assert_array_equal(
        solve(theta, problem, data={"allowed": np.ones(problem.shape, dtype=bool)}), solve(theta, problem)
    )
    one = np.zeros(problem.shape, dtype=bool)
    one[7] = True
    np.testing.assert_array_equal(np.flatnonzero(solve(theta, problem, data={"allowed": one})), [7])


def test_graph_matching_declares_allowed():
    problem = GraphMatching(nx.cycle_graph(5))
    field = problem.instance_fields["allowed"]
    assert (field.shape, field.kind) == ((5,), "bool") and field.doc
    problem.check_instance_data({"allowed": np.zeros((3, 5), dtype=bool)})  # any mask leaves a matching

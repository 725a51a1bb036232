"""PyEPO's synthetic data, value for value, and the matching problems of this library.

The generators reproduce ``pyepo.data.shortestpath.genData`` and
``pyepo.data.knapsack.genData`` (PyEPO 2.2.7, Tang & Khalil): for the same arguments and
seed they return the same arrays (same draws in the same order from a
``numpy.random.RandomState(seed)``, the same float operations, the same dtypes). The
global numpy random state is not touched.

Shortest path, ``d = (rows - 1) * cols + (cols - 1) * rows`` edges (40 on a 5x5 grid)::

    B   ~ Bernoulli(0.5)            (d, p)      drawn first
    x   ~ N(0, 1)                   (n, p)      then
    eps ~ U(1 - e, 1 + e)           (n, d)      last
    c   = ((x @ B.T / sqrt(p) + 3) ** deg + 1) / 3.5 ** deg * eps     -> float32

Knapsack, ``m`` items, ``dim`` resources::

    W   = choice(300..799) / 100    (dim, m)    drawn first
    B, x, eps as above with d = m
    c   = ceil(((x @ B.T / sqrt(p) + 3) ** deg + 1) * 5 / 3.5 ** deg * eps)  -> float32

Travelling salesman, ``m`` nodes, ``d = m (m - 1) / 2`` edges in ``combinations`` order::

    coords: m // 2 ~ U(-2, 2), m - m // 2 ~ N(0, 1)     (m, 2)    drawn first
    B   ~ Bernoulli(0.5) * U(-2, 2)   (d, p)      then
    x   ~ N(0, 1)                     (n, p)
    eps ~ U(1 - e, 1 + e)             (n, d)      last
    c   = round(dist(coords) + (x @ B.T / sqrt(p) + 3) ** deg / 3 ** (deg - 1) * eps, 4)  -> float32

Portfolio, ``m`` assets, noise level ``tau``::

    B ~ Bernoulli(0.5) (m, p), L ~ U(-0.0025 tau, 0.0025 tau) (m, p), x ~ N(0, 1) (n, p),
    f, e ~ N(0, 1) (n, p + m)         in that order
    r   = (0.05 x @ B.T / sqrt(p) + 0.1 ** (1 / deg)) ** deg + f @ L.T + 0.01 tau e   -> float32
    cov = L @ L.T + (0.01 tau) ** 2 I                                             (m, m), float64

:func:`grid_arcs` lists PyEPO's arcs in its order, :func:`shortest_path_problem` is the
matching :class:`~imle_solvers.GraphShortestPath` (a ``(B, d)`` cost batch in, a
``(B, d)`` 0/1 path out) and :func:`knapsack_problem` the matching
:class:`~imle_solvers.ILP` (maximise values, one capacity row per resource). The TSP
data's problem is :class:`~imle_solvers.TravellingSalesman` ``(m)`` (costs, edges in the
same order), the portfolio data's :class:`~imle_solvers.Portfolio` ``(cov)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial import distance

from .errors import InvalidInputError
from .metrics import objective_values
from .problems import ILP, GraphShortestPath
from .problems.graph import EdgeListGraph

__all__ = [
    "grid_arcs",
    "knapsack_data",
    "knapsack_problem",
    "knn_robust_targets",
    "portfolio_data",
    "shortest_path_data",
    "shortest_path_problem",
    "tsp_data",
]

#: PyEPO's default seed.
PYEPO_SEED = 135
#: The knapsack capacity of PyEPO's tutorials (per resource).
PYEPO_KNAPSACK_CAPACITY = 20.0


def _check(deg: int, noise_width: float) -> None:
    if isinstance(deg, bool) or not isinstance(deg, (int, np.integer)) or deg <= 0:
        raise ValueError(f"deg = {deg!r} should be a positive integer")
    if not np.isfinite(noise_width) or noise_width < 0:
        raise ValueError(f"noise_width = {noise_width!r} should be a finite non-negative number")


def _costs(rnd: np.random.RandomState, n: int, p: int, d: int, deg: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``B`` ``(d, p)`` then ``x`` ``(n, p)``; the noiseless polynomial ``(n, d)``, unscaled."""
    b = rnd.binomial(1, 0.5, (d, p))
    x = rnd.normal(0, 1, (n, p))
    return x, (x @ b.T / np.sqrt(p) + 3) ** deg + 1


def shortest_path_data(num_data: int, num_features: int, grid: tuple[int, int] = (5, 5), deg: int = 1,
                       noise_width: float = 0.0, seed: int = PYEPO_SEED) -> tuple[np.ndarray, np.ndarray]:
    """PyEPO's shortest-path data (``pyepo.data.shortestpath.genData``, same arguments).

    Returns:
        ``x``, float64 ``(num_data, num_features)``, the features; ``c``, float32
        ``(num_data, d)``, the arc costs in :func:`grid_arcs` order, ``d`` the number of arcs.
    """
    _check(deg, noise_width)
    rnd = np.random.RandomState(seed)
    d = (grid[0] - 1) * grid[1] + (grid[1] - 1) * grid[0]
    x, c = _costs(rnd, num_data, num_features, d, deg)
    c /= 3.5**deg
    c *= rnd.uniform(1 - noise_width, 1 + noise_width, (num_data, d))
    return x, c.astype(np.float32)


def knapsack_data(num_data: int, num_features: int, num_items: int, dim: int = 1, deg: int = 1,
                  noise_width: float = 0.0, seed: int = PYEPO_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyEPO's knapsack data (``pyepo.data.knapsack.genData``, same arguments).

    Returns:
        ``weights``, float64 ``(dim, num_items)`` in ``{3.00, 3.01, ..., 7.99}``, the same for
        every instance; ``x``, float64 ``(num_data, num_features)``; ``c``, float32
        ``(num_data, num_items)``, the item values (whole numbers).
    """
    _check(deg, noise_width)
    rnd = np.random.RandomState(seed)
    weights = rnd.choice(range(300, 800), size=(dim, num_items)) / 100
    x, c = _costs(rnd, num_data, num_features, num_items, deg)
    c *= 5
    c /= 3.5**deg
    c *= rnd.uniform(1 - noise_width, 1 + noise_width, (num_data, num_items))
    return weights, x, np.ceil(c).astype(np.float32)


def tsp_data(num_data: int, num_features: int, num_nodes: int, deg: int = 1, noise_width: float = 0.0,
             seed: int = PYEPO_SEED) -> tuple[np.ndarray, np.ndarray]:
    """PyEPO's travelling-salesman data (``pyepo.data.tsp.genData``, same arguments).

    Returns:
        ``x``, float64 ``(num_data, num_features)``, the features; ``c``, float32
        ``(num_data, d)``, ``d = num_nodes * (num_nodes - 1) / 2``, the edge costs (rounded to
        4 decimals) in :attr:`~imle_solvers.TravellingSalesman.edges` order: the theta of
        ``TravellingSalesman(num_nodes)``.
    """
    _check(deg, noise_width)
    rnd = np.random.RandomState(seed)
    m, p = num_nodes, num_features
    d = m * (m - 1) // 2
    coords = np.concatenate((rnd.uniform(-2, 2, (m // 2, 2)), rnd.normal(0, 1, (m - m // 2, 2))))
    euclidean = distance.pdist(coords, "euclidean")  # (d,), combinations order
    b = rnd.binomial(1, 0.5, (d, p)) * rnd.uniform(-2, 2, (d, p))
    x = rnd.normal(0, 1, (num_data, p))
    feature_cost = ((x @ b.T / np.sqrt(p) + 3) ** deg) / 3 ** (deg - 1)
    noise = rnd.uniform(1 - noise_width, 1 + noise_width, (num_data, d))
    return x, np.around(euclidean + feature_cost * noise, decimals=4).astype(np.float32)


def portfolio_data(num_data: int, num_features: int, num_assets: int, deg: int = 1, noise_level: float = 1.0,
                   seed: int = PYEPO_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyEPO's portfolio data (``pyepo.data.portfolio.genData``, same arguments; its noise is
    a ``noise_level``, not a width).

    Returns:
        ``cov``, float64 ``(num_assets, num_assets)``, the returns' covariance, the same for
        every instance; ``x``, float64 ``(num_data, num_features)``; ``r``, float32
        ``(num_data, num_assets)``, the expected returns: the theta of ``Portfolio(cov)``.
    """
    _check(deg, noise_level)
    rnd = np.random.RandomState(seed)
    m, p = num_assets, num_features
    b = rnd.binomial(1, 0.5, (m, p))
    loadings = rnd.uniform(-2.5e-3 * noise_level, 2.5e-3 * noise_level, (m, p))
    x = rnd.normal(0, 1, (num_data, p))
    r = (0.05 * (x @ b.T) / np.sqrt(p) + 0.1 ** (1 / deg)) ** deg
    factors_and_residuals = rnd.randn(num_data, p + m)  # one draw, as PyEPO's
    r += factors_and_residuals[:, :p] @ loadings.T + 0.01 * noise_level * factors_and_residuals[:, p:]
    cov = loadings @ loadings.T + (1e-2 * noise_level) ** 2 * np.eye(m)
    return cov, x, r.astype(np.float32)


def grid_arcs(grid: tuple[int, int] = (5, 5)) -> np.ndarray:
    """PyEPO's arcs of a ``(rows, cols)`` grid, in its order: ``(d, 2)`` int64 ``(tail, head)``
    node numbers, node ``(i, j)`` being ``i * cols + j``. Row by row: the row's arcs to the
    right, then (but for the last row) its arcs down."""
    rows, cols = grid
    arcs = []
    for i in range(rows):
        arcs += [(i * cols + j, i * cols + j + 1) for j in range(cols - 1)]
        if i < rows - 1:
            arcs += [(i * cols + j, (i + 1) * cols + j) for j in range(cols)]
    return np.asarray(arcs, dtype=np.int64).reshape(-1, 2)


def shortest_path_problem(grid: tuple[int, int] = (5, 5), **options: object) -> GraphShortestPath:
    """PyEPO's shortest-path problem: from node 0 (top left) to node ``rows * cols - 1``
    (bottom right) over the directed arcs of :func:`grid_arcs` (right and down only), so
    theta and z are ``(B, d)`` in PyEPO's arc order. ``options`` go to
    :class:`~imle_solvers.GraphShortestPath` (e.g. ``negative_cycles``; the graph is
    acyclic, so negative costs are solved exactly)."""
    n = grid[0] * grid[1]
    graph = EdgeListGraph(nodes=tuple(range(n)), edges=grid_arcs(grid), directed=True)
    return GraphShortestPath(graph, 0, n - 1, **options)  # type: ignore[arg-type]


def knapsack_problem(weights: np.ndarray, capacity: float | Sequence[float] = PYEPO_KNAPSACK_CAPACITY) -> ILP:
    """PyEPO's knapsack as an :class:`~imle_solvers.ILP`: maximise ``theta @ z`` over binary
    ``z`` ``(m,)`` with ``weights @ z <= capacity``, one row per resource.

    ``weights`` ``(dim, m)`` are PyEPO's, hundredths; ``capacity`` a number or ``(dim,)``
    (default 20, PyEPO's tutorials). The capacity is also a batched parameter, so an
    instance may bring its own: ``oracle(theta, capacity=caps)``, ``caps`` ``(B, dim)``.
    The rows are held in hundredths (``round(100 * weights)``, exact for PyEPO's weights),
    so every coefficient is an integer and OR-Tools solves with CP-SAT; the bound is
    ``100 * capacity``, rounded down exactly as an integer row allows.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    dim, m = weights.shape
    caps = np.broadcast_to(np.asarray(capacity, dtype=np.float64), (dim,))
    hundredths = np.rint(weights * 100)
    if np.abs(hundredths - weights * 100).max() > 1e-6:
        raise ValueError("knapsack_problem: weights must be multiples of 0.01 (PyEPO's are)")
    spec = {
        "name": "pyepo_knapsack",
        "sets": {"items": m, "resources": dim},
        "constants": {"weights": hundredths.tolist()},
        "params": {"capacity": {"over": ["resources"], "batched": True, "default": caps.tolist()}},
        "variables": {"x": {"over": ["items"], "type": "binary"}},
        "constraints": [{"name": "capacity", "for": "r in resources",
                         "expr": "sum(i in items) weights[r, i] * x[i] <= 100 * capacity[r]"}],
        "objective": {"sense": "max", "theta": "x"},
    }
    return ILP.from_dict(spec)


def knn_robust_targets(x: np.ndarray, c: np.ndarray, oracle: Any, k: int = 10,
                       weight: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kNN-robust targets of Schutte et al. (IJCAI 2024), PyEPO's ``optDatasetKNN``: each
    instance's costs mixed with those of its ``k`` nearest neighbours in feature space,
    ``weight c_i + (1 - weight) c_j`` for each neighbour ``j`` (itself excluded), each mix
    solved, and the ``k`` solutions averaged.

    Args:
        x: features ``(N, p)``; neighbours by Euclidean distance.
        c: true costs ``(N, d)``.
        oracle: the problem's :class:`~imle_solvers.MAPOracle` (one batched call of ``N k`` rows).
        k: neighbours per instance, ``1 <= k < N``.
        weight: the instance's own share of each mix, in ``[0, 1]`` (1: no smoothing).

    Returns:
        ``(costs, solutions, objectives)``: the mean mixed costs ``(N, d)``, the mean
        solution ``(N, d)`` (a training target, no longer a vertex) and the mean optimal
        objective ``(N, 1)``, as PyEPO's data set holds them (its ``costs``, ``sols``, ``objs``).
    """
    x, c = np.asarray(x), np.asarray(c)
    if x.ndim != 2 or c.ndim != 2 or len(x) != len(c):
        raise InvalidInputError(f"knn_robust_targets: expected x (N, p) and c (N, d), got {x.shape} and {c.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < len(x):
        raise InvalidInputError(f"knn_robust_targets: k must be an integer in [1, {len(x) - 1}] (N - 1), got {k!r}")
    if not 0.0 <= weight <= 1.0:
        raise InvalidInputError(f"knn_robust_targets: weight must be in [0, 1], got {weight!r}")
    distances = distance.cdist(x, x, "euclidean")
    np.fill_diagonal(distances, np.inf)  # an instance is not its own neighbour
    neighbours = np.argpartition(distances, k, axis=1)[:, :k]  # (N, k), as PyEPO selects them
    # (N, d, k) and the same float operations as PyEPO, so that the mean costs are its to the bit
    mixed = weight * c[:, :, np.newaxis] + (1 - weight) * np.transpose(c[neighbours], (0, 2, 1))
    rows = np.transpose(mixed, (0, 2, 1)).reshape(-1, c.shape[1])  # instance-major, neighbour by neighbour
    solutions = np.asarray(oracle(rows.astype(np.float64)), dtype=np.float64)
    objectives = objective_values(solutions, rows).reshape(len(c), k)
    return mixed.mean(axis=2), solutions.reshape(len(c), k, -1).mean(axis=1), objectives.mean(axis=1, keepdims=True)

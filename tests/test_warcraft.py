"""The synthetic Warcraft maps: shapes, terrain costs, optimal 8-neighbour path labels, determinism."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from imle_solvers.datasets.warcraft import TERRAIN_COSTS, TILE_PIXELS, generate_warcraft_maps

KING_MOVES = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


@pytest.fixture(scope="module")
def maps():
    return generate_warcraft_maps(40, grid=12, seed=3)


def vertex_weighted_optimum(costs: np.ndarray) -> float:
    """Independent reference: networkx Dijkstra on the 8-neighbour grid, both endpoints counted."""
    rows, cols = costs.shape
    graph = nx.DiGraph()
    for r in range(rows):
        for c in range(cols):
            for dr, dc in KING_MOVES:
                if 0 <= r + dr < rows and 0 <= c + dc < cols:
                    graph.add_edge((r, c), (r + dr, c + dc), weight=float(costs[r + dr, c + dc]))
    return float(costs[0, 0]) + nx.dijkstra_path_length(graph, (0, 0), (rows - 1, cols - 1))


def test_shapes_and_dtypes(maps):
    assert maps.images.shape == (40, 3, 12 * TILE_PIXELS, 12 * TILE_PIXELS)
    assert maps.costs.shape == maps.paths.shape == (40, 12, 12)
    assert maps.images.dtype == maps.costs.dtype == maps.paths.dtype == np.float32
    assert maps.images.min() >= 0.0 and maps.images.max() <= 1.0
    assert len(maps) == 40 and maps.grid == (12, 12)


def test_costs_come_from_the_five_terrains_and_all_occur(maps):
    assert set(np.unique(maps.costs)) == set(TERRAIN_COSTS.astype(np.float32))


def test_grid_size_is_configurable():
    small = generate_warcraft_maps(3, grid=5, seed=0)
    assert small.images.shape == (3, 3, 5 * TILE_PIXELS, 5 * TILE_PIXELS)
    assert small.paths.shape == (3, 5, 5)


def test_labels_are_connected_8_neighbour_paths_between_the_corners(maps):
    for path in maps.paths:
        assert set(np.unique(path)) <= {0.0, 1.0}
        assert path[0, 0] == 1 and path[-1, -1] == 1
        cells = {tuple(cell) for cell in np.argwhere(path == 1)}
        graph = nx.Graph()
        graph.add_nodes_from(cells)
        graph.add_edges_from(
            ((r, c), (r + dr, c + dc)) for r, c in cells for dr, dc in KING_MOVES if (r + dr, c + dc) in cells
        )
        assert nx.is_connected(graph)


def test_labels_cost_the_optimum(maps):
    for costs, path in zip(maps.costs[:15], maps.paths[:15]):
        assert float((costs * path).sum()) == pytest.approx(vertex_weighted_optimum(costs), rel=1e-6)


def test_images_show_the_terrain(maps):
    """Tiles of the same terrain look alike: mean tile colour predicts the cost almost perfectly."""
    n, _, height, width = maps.images.shape
    tiles = maps.images.reshape(n, 3, 12, TILE_PIXELS, 12, TILE_PIXELS).mean(axis=(3, 5))
    colours = tiles.transpose(0, 2, 3, 1).reshape(-1, 3)
    costs = maps.costs.ravel()
    centroids = np.stack([colours[costs == cost].mean(axis=0) for cost in TERRAIN_COSTS.astype(np.float32)])
    nearest = np.linalg.norm(colours[:, None, :] - centroids[None], axis=-1).argmin(axis=1)
    assert np.mean(TERRAIN_COSTS.astype(np.float32)[nearest] == costs) > 0.95


def test_same_seed_same_maps_other_seed_other_maps():
    first, again, other = (generate_warcraft_maps(5, seed=s) for s in (7, 7, 8))
    for name in ("images", "costs", "paths"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.costs, other.costs)
    assert not np.array_equal(first.images, other.images)


def test_subset_selects_aligned_maps(maps):
    part = maps.subset(slice(10, 20))
    np.testing.assert_array_equal(part.images, maps.images[10:20])
    np.testing.assert_array_equal(part.paths, maps.paths[10:20])
    assert len(part) == 10

"""Synthetic Warcraft-style maps: the shortest-path benchmark of the I-MLE paper, generated offline.

The original dataset (Vlastelica et al., 2020) cannot be downloaded here. This lookalike keeps
its structure: a grid of terrain tiles, five terrain costs {0.8, 1.2, 5.3, 7.7, 9.2}, 8x8-pixel
textured RGB tiles, and as label the 8-neighbour vertex-weighted shortest path from the
top-left to the bottom-right cell, both endpoints counted. Terrain comes from a spatially
smooth random field, so that cheap and expensive regions form patches as on real maps.

The labels are computed by the library's own grid solver (:class:`~imle_solvers.MAPOracle`
on :class:`~imle_solvers.GridShortestPath`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import norm

from ..oracle import MAPOracle
from ..problems import GridShortestPath

TILE_PIXELS = 8

# Terrains in the order they occupy the smooth field, from its lowest to its highest values,
# so that water borders sand, sand borders grass, and so on, as on a map.
TERRAIN_NAMES = ("water", "sand", "grass", "forest", "mountain")
TERRAIN_COSTS = np.array([9.2, 1.2, 0.8, 5.3, 7.7])
TERRAIN_SHARES = np.array([0.15, 0.15, 0.35, 0.2, 0.15])
TERRAIN_COLOURS = np.array(  # RGB in [0, 1]
    [
        [0.15, 0.30, 0.65],
        [0.85, 0.78, 0.50],
        [0.40, 0.70, 0.30],
        [0.10, 0.40, 0.15],
        [0.50, 0.47, 0.45],
    ]
)
# Spatial frequencies (cycles per tile, rows then columns) of each terrain's luminance texture.
TERRAIN_TEXTURE_FREQUENCIES = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [2.0, 2.0], [1.0, 3.0]])
TEXTURE_AMPLITUDE = 0.08
PIXEL_NOISE = 0.04
MAP_COLOUR_JITTER = 0.06


@dataclass(frozen=True)
class WarcraftMaps:
    """A batch of maps with their true costs and shortest paths.

    Attributes:
        images: ``(N, 3, rows * 8, cols * 8)`` float32 RGB in [0, 1].
        costs: ``(N, rows, cols)`` float32 cost of entering each cell.
        paths: ``(N, rows, cols)`` float32 0/1 mask of the shortest path's cells.
    """

    images: np.ndarray
    costs: np.ndarray
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.costs)

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of the tile grid."""
        return self.costs.shape[1], self.costs.shape[2]

    def subset(self, index: slice | np.ndarray) -> WarcraftMaps:
        """The maps selected by ``index`` along the leading axis."""
        return WarcraftMaps(images=self.images[index], costs=self.costs[index], paths=self.paths[index])


def generate_warcraft_maps(n_maps: int, grid: int = 12, seed: int = 0, smoothness: float = 1.5) -> WarcraftMaps:
    """Generate ``n_maps`` synthetic maps of ``grid x grid`` tiles, deterministically from ``seed``.

    Args:
        n_maps: number of maps N.
        grid: tiles per side (12 in the paper's main experiment); images are ``8 * grid`` pixels wide.
        seed: seed of every random draw (terrain, texture noise, colour jitter).
        smoothness: standard deviation, in tiles, of the Gaussian filter that makes the terrain field smooth.
    """
    rng = np.random.default_rng(seed)
    terrain = terrain_types(rng, n_maps, grid, smoothness)
    costs = TERRAIN_COSTS[terrain].astype(np.float32)
    images = render_tiles(rng, terrain)
    paths = MAPOracle(GridShortestPath(grid, grid), backend="scipy")(costs)
    return WarcraftMaps(images=images, costs=costs, paths=paths)


def terrain_types(rng: np.random.Generator, n_maps: int, grid: int, smoothness: float) -> np.ndarray:
    """``(N, grid, grid)`` terrain indices (into ``TERRAIN_COSTS``) from a smooth Gaussian field.

    Each map's field is standardised, then cut at the normal quantiles of the cumulative
    ``TERRAIN_SHARES``: the shares hold on average while each map varies.
    """
    field = gaussian_filter(rng.standard_normal((n_maps, grid, grid)), sigma=(0, smoothness, smoothness))
    field = (field - field.mean(axis=(1, 2), keepdims=True)) / field.std(axis=(1, 2), keepdims=True)
    thresholds = norm.ppf(np.cumsum(TERRAIN_SHARES)[:-1])
    return np.searchsorted(thresholds, field).astype(np.int64)


def terrain_textures() -> np.ndarray:
    """``(terrains, 8, 8)`` luminance offset of each terrain's tile: a sinusoidal pattern."""
    y, x = np.mgrid[0:TILE_PIXELS, 0:TILE_PIXELS] / TILE_PIXELS
    f_rows, f_cols = TERRAIN_TEXTURE_FREQUENCIES[:, 0, None, None], TERRAIN_TEXTURE_FREQUENCIES[:, 1, None, None]
    return TEXTURE_AMPLITUDE * np.sin(2 * np.pi * (f_rows * y + f_cols * x))


def render_tiles(rng: np.random.Generator, terrain: np.ndarray) -> np.ndarray:
    """``(N, 3, rows * 8, cols * 8)`` float32 images of the terrain grids ``(N, rows, cols)``.

    Each tile is its terrain's colour (jittered per map) plus the terrain's texture and
    per-pixel noise.
    """
    n_maps, rows, cols = terrain.shape
    jitter = 1.0 + MAP_COLOUR_JITTER * rng.standard_normal((n_maps, 1, 1, 3))
    colours = TERRAIN_COLOURS[terrain] * jitter  # (N, rows, cols, 3)
    texture = terrain_textures()[terrain]  # (N, rows, cols, 8, 8)
    tiles = colours[:, :, :, None, None, :] + texture[..., None]  # (N, rows, cols, 8, 8, 3)
    tiles = tiles + PIXEL_NOISE * rng.standard_normal(tiles.shape)
    pixels = tiles.transpose(0, 5, 1, 3, 2, 4).reshape(n_maps, 3, rows * TILE_PIXELS, cols * TILE_PIXELS)
    return np.clip(pixels, 0.0, 1.0).astype(np.float32)


__all__ = ["WarcraftMaps", "generate_warcraft_maps", "TERRAIN_COSTS", "TERRAIN_NAMES", "TILE_PIXELS"]

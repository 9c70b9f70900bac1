"""Tile geometry on a mosaic grid: tile sizes, grid origins, primary assignment, re-centred cutouts, splits.

Pure functions on arrays (no file I/O): :mod:`rail.deepdisc.prep.prepare` reads the pixels. `most_central`
is the one primary-tile rule of the package: real mosaics (`assign_primary`, candidates = kept tiles holding
the centroid) and simulated mosaics (:func:`rail.deepdisc.simulation.tiling.cut_field`, candidates = tiles
the footprint touches) both use it.

Conventions: pixel ``i`` covers ``[i - 0.5, i + 0.5)``; a tile with origin ``(y0, x0)`` and shape ``(h, w)``
holds pixels ``y0 .. y0+h-1`` and ``x0 .. x0+w-1``; object positions are 0-based pixel coordinates on the same
grid; boxes are ``x0, y0, x1, y1`` with exclusive upper edges.

An object's primary appearance is the kept tile where it is most central: the one maximising the distance from
its centroid to the nearest tile edge. Departure from Merz et al. 2025: the paper tiles without overlap and
drops objects cut by tile edges from the estimate; here the full-catalog tiling may overlap and objects cut by
their grid tile can get a re-centred cutout holding their whole footprint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rail.deepdisc.exceptions import ConfigError

__all__ = [
    "TILE_SIZE_ARCSEC",
    "tile_shape_px",
    "grid_origins",
    "tile_centrality",
    "most_central",
    "assign_primary",
    "box_inside",
    "recentred_origin",
    "split_tiles",
]

#: Default tile size (width, height), arcsec: 277 x 250 px at 0.03 arcsec/pix (Merz et al. 2025).
TILE_SIZE_ARCSEC = (8.3, 7.5)


def tile_shape_px(width_arcsec: float, height_arcsec: float, pixel_scale_arcsec: float) -> tuple[int, int]:
    """Tile shape (height, width) in pixels for a size in arcsec.

    Parameters
    ----------
    width_arcsec, height_arcsec : float
        Tile size on the sky, arcsec.
    pixel_scale_arcsec : float
        Arcsec per pixel.

    Returns
    -------
    (int, int)
        Height and width in whole pixels.

    Examples
    --------
    >>> tile_shape_px(8.3, 7.5, 0.03)
    (250, 277)
    """
    if not (width_arcsec > 0 and height_arcsec > 0 and pixel_scale_arcsec > 0):
        raise ConfigError(
            f"tile size and pixel scale must be positive, got {width_arcsec}x{height_arcsec} arcsec "
            f"at {pixel_scale_arcsec} arcsec/pix"
        )
    return int(round(height_arcsec / pixel_scale_arcsec)), int(round(width_arcsec / pixel_scale_arcsec))


def _axis_origins(n: int, size: int, overlap: int, cover_edge: bool) -> np.ndarray:
    if n < size:
        return np.empty(0, dtype=np.int64)
    step = size - overlap
    origins = np.arange(0, n - size + 1, step, dtype=np.int64)
    if cover_edge and origins[-1] + size < n:
        origins = np.append(origins, n - size)
    return origins


def grid_origins(
    mosaic_shape: tuple[int, int],
    tile_shape: tuple[int, int],
    *,
    overlap_px: int = 0,
    cover_edges: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Origins of a regular tile grid along each axis.

    Parameters
    ----------
    mosaic_shape : (int, int)
        (ny, nx) of the mosaic.
    tile_shape : (int, int)
        (h, w) of a tile.
    overlap_px : int
        Pixels shared by neighbouring tiles (0 <= overlap < min(h, w)).
    cover_edges : bool
        Add a last row/column of tiles flush with the far edge, so that no strip of the mosaic is left out
        (those tiles overlap their neighbours more).

    Returns
    -------
    y0, x0 : ndarray of int64
        Origins of the tile rows and columns (tiles are every pair), increasing.

    Examples
    --------
    >>> grid_origins((100, 100), (40, 40), overlap_px=10)
    (array([ 0, 30, 60]), array([ 0, 30, 60]))
    >>> grid_origins((100, 100), (40, 40), cover_edges=True)[1]
    array([ 0, 40, 60])
    """
    h, w = tile_shape
    if not 0 <= overlap_px < min(h, w):
        raise ConfigError(
            f"overlap_px must be in [0, {min(h, w) - 1}] for {h}x{w} px tiles, got {overlap_px}"
        )
    return (
        _axis_origins(mosaic_shape[0], h, overlap_px, cover_edges),
        _axis_origins(mosaic_shape[1], w, overlap_px, cover_edges),
    )


def _centrality(pos: np.ndarray, origin: np.ndarray, size: int) -> np.ndarray:
    """Distance from ``pos`` to the nearest edge of ``[origin - 0.5, origin + size - 0.5)`` (< 0 outside)."""
    return np.minimum(pos - (origin - 0.5), (origin + size - 0.5) - pos)


def tile_centrality(
    x: np.ndarray, y: np.ndarray, y0: np.ndarray, x0: np.ndarray, tile_shape: tuple[int, int]
) -> np.ndarray:
    """Distance from each centroid to the nearest edge of its tile, pixels (negative outside the tile).

    Parameters
    ----------
    x, y : ndarray of float (P,)
        Centroids, mosaic pixels.
    y0, x0 : ndarray of int (P,)
        Origins of the tiles they are measured against.
    tile_shape : (int, int)
        (h, w).

    Returns
    -------
    ndarray (P,)

    Examples
    --------
    >>> tile_centrality(np.array([2.0, 25.0]), np.array([9.5, 9.5]), np.zeros(2), np.zeros(2), (20, 20))
    array([ 2.5, -5.5])
    """
    h, w = tile_shape
    return np.minimum(_centrality(np.asarray(x, np.float64), x0, w), _centrality(np.asarray(y, np.float64), y0, h))


def most_central(
    x: np.ndarray,
    y: np.ndarray,
    candidates: tuple[np.ndarray, np.ndarray],
    y0: np.ndarray,
    x0: np.ndarray,
    tile_shape: tuple[int, int],
) -> np.ndarray:
    """The primary tile of every object: its most central candidate tile (`tile_centrality`).

    On exact ties the candidate of lowest tile index wins.

    Parameters
    ----------
    x, y : ndarray of float (M,)
        Object centroids, mosaic pixels.
    candidates : (ndarray of int (P,), ndarray of int (P,))
        Object indices and tile indices of the (object, tile) pairs to choose from.
    y0, x0 : ndarray of int (T,)
        Origin of every tile.
    tile_shape : (int, int)
        (h, w).

    Returns
    -------
    ndarray of int64 (M,)
        Tile index per object, -1 for an object without candidates.

    Examples
    --------
    Object 0 lies in tiles 0 and 1 (origins x = 0 and 10) and is more central in tile 0; object 1 has no
    candidate:

    >>> most_central(np.array([12.0, 3.0]), np.array([9.5, 9.5]), (np.array([0, 0]), np.array([0, 1])),
    ...              np.zeros(2), np.array([0, 10]), (20, 20))
    array([ 0, -1])
    """
    obj, tile = (np.asarray(a, np.int64).ravel() for a in candidates)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    best = np.full(len(x), -1, dtype=np.int64)
    if len(obj) == 0:
        return best
    cen = tile_centrality(x[obj], y[obj], np.asarray(y0)[tile], np.asarray(x0)[tile], tile_shape)
    order = np.lexsort((tile, -cen, obj))  # per object: most central first, then lowest tile index
    first = np.ones(len(order), bool)
    first[1:] = obj[order[1:]] != obj[order[:-1]]
    best[obj[order[first]]] = tile[order[first]]
    return best


def assign_primary(
    x: np.ndarray,
    y: np.ndarray,
    y_origins: np.ndarray,
    x_origins: np.ndarray,
    tile_shape: tuple[int, int],
    kept: np.ndarray,
) -> np.ndarray:
    """Index of the most central kept grid tile holding each object's centroid (`most_central`).

    Parameters
    ----------
    x, y : ndarray of float (M,)
        Object centroids, mosaic pixels.
    y_origins, x_origins : ndarray of int (R,), (K,)
        Grid origins from `grid_origins`; tile ``(r, k)`` has flat index ``r * K + k``.
    tile_shape : (int, int)
        (h, w).
    kept : ndarray of bool (R, K)
        Tiles that exist (e.g. with full coverage).

    Returns
    -------
    ndarray of int64 (M,)
        Flat tile index, -1 when no kept tile contains the centroid.

    Examples
    --------
    >>> yo, xo = grid_origins((10, 20), (10, 10), overlap_px=0)
    >>> assign_primary(np.array([3.0, 12.0, 30.0]), np.array([5.0, 5.0, 5.0]), yo, xo, (10, 10),
    ...                np.ones((1, 2), bool))
    array([ 0,  1, -1])
    """
    h, w = tile_shape
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    y_origins, x_origins = np.asarray(y_origins, np.int64), np.asarray(x_origins, np.int64)
    # tiles containing a coordinate along an axis are contiguous: [first, last) found by searchsorted
    cols = [np.searchsorted(x_origins - 0.5 + w, x, "right"), np.searchsorted(x_origins - 0.5, x, "right")]
    rows = [np.searchsorted(y_origins - 0.5 + h, y, "right"), np.searchsorted(y_origins - 0.5, y, "right")]
    span_c = int(np.max(cols[1] - cols[0], initial=0))
    span_r = int(np.max(rows[1] - rows[0], initial=0))
    objects, tiles = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for dr in range(span_r):
        r = rows[0] + dr
        for dc in range(span_c):
            k = cols[0] + dc
            ok = (r < rows[1]) & (k < cols[1])
            ok[ok] &= kept[r[ok], k[ok]]
            objects.append(np.flatnonzero(ok))
            tiles.append(r[ok] * len(x_origins) + k[ok])
    grid_y0 = np.repeat(y_origins, len(x_origins))
    grid_x0 = np.tile(x_origins, len(y_origins))
    return most_central(x, y, (np.concatenate(objects), np.concatenate(tiles)), grid_y0, grid_x0, tile_shape)


def box_inside(boxes: np.ndarray, y0: np.ndarray, x0: np.ndarray, tile_shape: tuple[int, int]) -> np.ndarray:
    """Whether boxes lie wholly inside tiles.

    Parameters
    ----------
    boxes : ndarray, shape (M, 4)
        ``x0, y0, x1, y1`` in mosaic pixels; NaN = no footprint (counts as inside).
    y0, x0 : ndarray, shape (M,)
        Mosaic pixel of each box's tile corner.
    tile_shape : (int, int)
        Tile height and width, pixels.

    Returns
    -------
    ndarray of bool, shape (M,)
    """
    h, w = tile_shape
    b = np.asarray(boxes, np.float64)
    inside = (b[:, 0] >= x0) & (b[:, 1] >= y0) & (b[:, 2] <= x0 + w) & (b[:, 3] <= y0 + h)
    return inside | np.isnan(b[:, 0])


def recentred_origin(
    x: float, y: float, box: Sequence[float], tile_shape: tuple[int, int], mosaic_shape: tuple[int, int]
) -> tuple[int, int] | None:
    """Origin (y0, x0) of a tile centred on an object and holding its whole footprint, or None if impossible.

    The tile is centred on the centroid, then shifted as little as needed to hold the footprint box and to
    stay inside the mosaic.

    Parameters
    ----------
    x, y : float
        Centroid, mosaic pixels.
    box : (x0, y0, x1, y1)
        Footprint box, x1/y1 exclusive.
    tile_shape, mosaic_shape : (int, int)
        (h, w) and (ny, nx).

    Returns
    -------
    (int, int) or None
        None when the footprint is larger than a tile or the mosaic is smaller than a tile.

    Examples
    --------
    >>> recentred_origin(50.0, 20.0, (40, 10, 60, 30), (20, 30), (100, 100))
    (10, 36)
    """
    origin = []
    for pos, lo, hi, size, n in (
        (y, box[1], box[3], tile_shape[0], mosaic_shape[0]),
        (x, box[0], box[2], tile_shape[1], mosaic_shape[1]),
    ):
        if hi - lo > size or n < size:
            return None
        o = int(np.floor(pos - (size - 1) / 2.0 + 0.5))
        o = min(max(o, int(np.ceil(hi)) - size), int(np.floor(lo)))
        origin.append(min(max(o, 0), n - size))
    return origin[0], origin[1]


def split_tiles(
    n_tiles: int, *, test_fraction: float = 0.1, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split tile indices into training, validation and test sets (seeded shuffle, then cut).

    ``round(test_fraction * n)`` tiles go to test, then ``round(val_fraction * n_rest)`` of the rest to
    validation; each is at least one tile when there are at least three tiles and its fraction is positive.

    Parameters
    ----------
    n_tiles : int
        Number of tiles.
    test_fraction, val_fraction : float
        Fractions held out for test (of all tiles) and validation (of the rest).
    seed : int
        Seed of the shuffle.

    Returns
    -------
    train, val, test : ndarray of int64
        Sorted indices into ``range(n_tiles)``; disjoint, together every tile.

    Examples
    --------
    >>> [len(s) for s in split_tiles(100, seed=1)]
    [81, 9, 10]
    """
    for name, frac in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {frac!r}")
    order = np.random.default_rng(seed).permutation(n_tiles)
    minimum = 1 if n_tiles >= 3 else 0
    n_test = max(int(round(test_fraction * n_tiles)), minimum if test_fraction > 0 else 0)
    n_rest = n_tiles - n_test
    n_val = max(int(round(val_fraction * n_rest)), minimum if val_fraction > 0 else 0)
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return np.sort(train), np.sort(val), np.sort(test)

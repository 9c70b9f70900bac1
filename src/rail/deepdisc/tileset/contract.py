"""The ``deepdisc-tiles`` v2 contract: format name and version, required columns, and the checks.

A TileSet file is the data contract between the simulator, the mosaic tiler, training and inference
(``docs/contracts.md``). This module holds what every TileSet must satisfy, in memory
(:meth:`rail.deepdisc.tileset.format.TileSet.check`) or on file
(:func:`rail.deepdisc.tileset.validation.validate_tileset`): the column definitions and the checks, each of
which raises `TileSetError` with one message naming the data and the first problem.

Version 2 adds optional catalog fluxes to ``objects/``: ``flux_<BAND>`` and ``fluxerr_<BAND>`` (float64, nJy,
negative values allowed: a measured flux; NaN = not measured), present for a band as a pair
(`FLUX_COLUMN_PREFIXES`, `flux_columns`). Version 1 files (no flux columns) are read unchanged
(`READABLE_VERSIONS`); files are written as version 2 (``docs/tileset-v2-fluxes.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rail.deepdisc.exceptions import TileSetError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "FLUX_COLUMN_PREFIXES",
    "flux_columns",
    "TILE_COLUMNS",
    "OBJECT_COLUMNS",
    "TILE_KINDS",
    "object_columns",
    "empty_objects",
    "reject",
    "check_structure",
    "check_pixels",
    "check_objects",
]

FORMAT_NAME = "deepdisc-tiles"
FORMAT_VERSION = 2
#: Versions this package reads: 1 (no flux columns) and 2.
READABLE_VERSIONS = (1, 2)
#: Prefixes of the optional per-band flux columns of ``objects/`` (version 2): flux and its error, nJy.
FLUX_COLUMN_PREFIXES = ("flux_", "fluxerr_")
TILE_KINDS = ("grid", "recentred")

#: Columns of ``tiles/`` and their dtypes (``str`` = UTF-8 text).
TILE_COLUMNS: dict[str, type | str] = {
    "tile_id": np.int64,
    "kind": str,
    "x0": np.int64,
    "y0": np.int64,
    "ra": np.float64,
    "dec": np.float64,
    "wcs": str,
}

#: Band-independent columns of ``objects/`` and their dtypes.
OBJECT_COLUMNS: dict[str, type] = {
    "object_id": np.int64,
    "tile": np.int64,
    "primary": np.bool_,
    "x": np.float64,
    "y": np.float64,
    "bbox_x0": np.float64,
    "bbox_y0": np.float64,
    "bbox_x1": np.float64,
    "bbox_y1": np.float64,
    "ra": np.float64,
    "dec": np.float64,
    "redshift": np.float64,
    "ebv": np.float64,
}

#: Object ids listed at most in an error message.
_MAX_ERRORS_LISTED = 5


def object_columns(bands: Sequence[str]) -> dict[str, type]:
    """Return every required ``objects/`` column and its dtype for a band list.

    Parameters
    ----------
    bands : sequence of str
        Band names in channel order.

    Returns
    -------
    dict
        Column name -> numpy dtype: the fixed columns, then ``mag_<BAND>`` and ``magerr_<BAND>`` per band.

    Examples
    --------
    >>> list(object_columns(["F444W"]))[-2:]
    ['mag_F444W', 'magerr_F444W']
    """
    cols = dict(OBJECT_COLUMNS)
    for band in bands:
        cols[f"mag_{band}"] = np.float64
        cols[f"magerr_{band}"] = np.float64
    return cols


def flux_columns(bands: Sequence[str]) -> dict[str, type]:
    """Return the optional ``objects/`` flux columns of a band list (version 2) and their dtype.

    Parameters
    ----------
    bands : sequence of str
        Band names in channel order.

    Returns
    -------
    dict
        ``flux_<BAND>`` and ``fluxerr_<BAND>`` per band (nJy, float64).

    Examples
    --------
    >>> list(flux_columns(["F444W"]))
    ['flux_F444W', 'fluxerr_F444W']
    """
    return {f"{prefix}{band}": np.float64 for band in bands for prefix in FLUX_COLUMN_PREFIXES}


def empty_objects(bands: Sequence[str], n: int = 0) -> dict[str, np.ndarray]:
    """Make an ``objects`` table of ``n`` rows with every required column (NaN / zero / False filled).

    Parameters
    ----------
    bands : sequence of str
        Band names; ``mag_`` and ``magerr_`` columns are made for each.
    n : int
        Number of rows.

    Returns
    -------
    dict of str -> ndarray
        Float columns are NaN, integer columns 0, ``primary`` False.
    """
    out = {}
    for name, dtype in object_columns(bands).items():
        if np.issubdtype(dtype, np.floating):
            out[name] = np.full(n, np.nan, dtype=dtype)
        else:
            out[name] = np.zeros(n, dtype=dtype)
    return out


def reject(source: str, msg: str) -> None:
    """Raise the `TileSetError` ``"<source>: <msg>"`` (the one format of every contract violation).

    Parameters
    ----------
    source : str
        The file (or in-memory set) the problem was found in.
    msg : str
        The problem and, where there is one, the fix.

    Raises
    ------
    TileSetError
        Always.
    """
    raise TileSetError(f"{source}: {msg}")


def check_structure(source, bands, pixel_scale, image_shape, segmap_shape, tiles, objects) -> None:
    """Check attributes, array shapes and the presence and length of every required column.

    Parameters
    ----------
    source : str
        How messages name the data.
    bands : sequence of str
        Band names.
    pixel_scale : float
        Arcsec per pixel.
    image_shape, segmap_shape : tuple of int
        Shapes of ``images`` (N, C, H, W) and ``segmaps`` (N, H, W).
    tiles, objects : mapping of str -> array-like
        The ``tiles/`` and ``objects/`` columns (datasets or arrays; only lengths and ``tiles/kind`` are read).

    Raises
    ------
    TileSetError
        At the first problem, naming ``source``.
    """
    if len(bands) == 0:
        reject(source, "attrs 'bands' is empty")
    if not np.isfinite(pixel_scale) or pixel_scale <= 0:
        reject(source, f"attrs 'pixel_scale' must be a positive number of arcsec/pix, got {pixel_scale!r}")
    if len(image_shape) != 4:
        reject(source, f"'images' must be 4-D (N, C, H, W), got shape {tuple(image_shape)}")
    n, c, h, w = image_shape
    if c != len(bands):
        reject(source, f"'images' has {c} bands, attrs 'bands' lists {len(bands)}")
    if tuple(segmap_shape) != (n, h, w):
        reject(source, f"'segmaps' has shape {tuple(segmap_shape)}, expected {(n, h, w)} to match 'images'")
    missing = [k for k in TILE_COLUMNS if k not in tiles]
    if missing:
        reject(source, f"'tiles/' lacks column(s) {', '.join(missing)}")
    bad = [k for k in TILE_COLUMNS if len(tiles[k]) != n]
    if bad:
        reject(source, f"'tiles/{bad[0]}' has {len(tiles[bad[0]])} rows, 'images' has {n} tiles")
    kinds = set(np.unique(np.asarray(tiles["kind"]).astype(str)).tolist())
    if not kinds <= set(TILE_KINDS):
        reject(source, f"'tiles/kind' has value(s) {sorted(kinds - set(TILE_KINDS))}, allowed: {TILE_KINDS}")
    missing = [k for k in object_columns(bands) if k not in objects]
    if missing:
        reject(source, f"'objects/' lacks column(s) {', '.join(missing[:8])}")
    for band in bands:
        pair = [f"{prefix}{band}" for prefix in FLUX_COLUMN_PREFIXES]
        present = [k for k in pair if k in objects]
        if len(present) == 1:
            reject(source, f"'objects/' has {present[0]} without {(set(pair) - set(present)).pop()}: flux columns "
                           "come in pairs (flux_<BAND>, fluxerr_<BAND>, nJy)")
        if any(not np.issubdtype(np.dtype(objects[k].dtype), np.floating) for k in present):
            reject(source, f"'objects/' flux columns of {band} must be floating point (nJy)")
    m = len(objects["object_id"])
    bad = [k for k, v in objects.items() if len(v) != m]
    if bad:
        reject(source, f"'objects/{bad[0]}' has {len(objects[bad[0]])} rows, 'objects/object_id' has {m}")


def check_pixels(source, images, bands, tile_ids, first_row: int) -> None:
    """Reject NaN or infinite pixels in a block of tiles.

    Parameters
    ----------
    source : str
        How messages name the data.
    images : ndarray (n, C, H, W)
        A block of tiles.
    bands : sequence of str
        Band names in channel order.
    tile_ids : ndarray (n,)
        ``tiles/tile_id`` of the block.
    first_row : int
        Row of the block's first tile in the whole set (for the message).

    Raises
    ------
    TileSetError
        Naming the first tile and band holding a non-finite pixel.
    """
    finite = np.isfinite(images)
    if finite.all():
        return
    bad_t, bad_c = np.nonzero(~finite.all(axis=(2, 3)))
    t, c = int(bad_t[0]), int(bad_c[0])
    nbad = int((~finite[t, c]).sum())
    reject(source, f"tile row {first_row + t} (tile_id {int(tile_ids[t])}) has {nbad} NaN or inf pixel(s) "
                  f"in band {bands[c]}; NaN is not allowed (drop or re-tile areas without coverage)")


def check_objects(source, n_tiles: int, objects: dict[str, np.ndarray]) -> None:
    """Check the object table: tiles exist and are sorted, no duplicate (tile, object_id), one primary per id.

    Parameters
    ----------
    source : str
        How messages name the data.
    n_tiles : int
        Tiles in the set.
    objects : dict of str -> ndarray
        At least ``object_id``, ``tile`` and ``primary``.

    Raises
    ------
    TileSetError
        At the first problem, naming ``source``.
    """
    tile = np.asarray(objects["tile"])
    oid = np.asarray(objects["object_id"])
    primary = np.asarray(objects["primary"]).astype(bool)
    if len(tile) == 0:
        return
    out = (tile < 0) | (tile >= n_tiles)
    if out.any():
        reject(source, f"{int(out.sum())} object row(s) point at missing tiles (e.g. object_id {int(oid[out][0])}"
                      f" -> tile {int(tile[out][0])}; the file has {n_tiles} tiles)")
    if np.any(np.diff(tile) < 0):
        row = int(np.flatnonzero(np.diff(tile) < 0)[0]) + 1
        reject(source, f"'objects/tile' is not sorted (row {row} has tile {int(tile[row])} after "
                      f"{int(tile[row - 1])}); objects must be sorted by tile")
    pairs = np.stack([tile, oid], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        reject(source, f"object_id {int(dup[1])} appears {int(counts[counts > 1][0])} times in tile {int(dup[0])}"
                      f" (duplicate (tile, object_id) rows)")
    ids, inverse = np.unique(oid, return_inverse=True)
    n_primary = np.bincount(inverse, weights=primary, minlength=len(ids))
    wrong = ids[n_primary != 1]
    if len(wrong):
        listed = ", ".join(str(int(i)) for i in wrong[:_MAX_ERRORS_LISTED])
        reject(source, f"{len(wrong)} object id(s) do not have exactly one primary row (e.g. {listed})")

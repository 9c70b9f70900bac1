"""The TileSet: multi-band image tiles, segmentation maps and their objects (``deepdisc-tiles`` v2).

A TileSet file is the data contract between the simulator, the mosaic tiler, training and inference
(``DESIGN.md`` section 2). This module holds the in-memory :class:`TileSet`, its column definitions and the
contract's checks; :mod:`rail.deepdisc.tileset.io` reads, writes and validates files.

Layout of the HDF5 file::

    attrs   format="deepdisc-tiles", version=2, bands=[...], pixel_scale (arcsec/pix), flux_unit
    images  float32 (N, C, H, W)
    segmaps int32   (N, H, W)       0 = sky, else the object_id owning the pixel
    tiles/  one 1-D dataset per column, N rows
    objects/ one 1-D dataset per column, one row per appearance of an object in a tile, sorted by ``tile``

Version 2 adds optional catalog fluxes to ``objects/``: ``flux_<BAND>`` and ``fluxerr_<BAND>`` (float64, nJy,
negative values allowed: a measured flux; NaN = not measured), present for a band as a pair
(`FLUX_COLUMN_PREFIXES`, `flux_columns`). Version 1 files (no flux columns) are read unchanged
(`READABLE_VERSIONS`); files are written as version 2 (``docs/tileset-v2-fluxes.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.presets import resolve_bands

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "FLUX_COLUMN_PREFIXES",
    "flux_columns",
    "TILE_COLUMNS",
    "OBJECT_COLUMNS",
    "TILE_KINDS",
    "TileSet",
    "object_columns",
    "empty_objects",
    "concatenate_tilesets",
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


@dataclass
class TileSet:
    """Multi-band tiles, their segmentation maps and the objects that appear in them.

    Parameters
    ----------
    images : ndarray, float32, shape (N, C, H, W)
        Pixel values in ``flux_unit``, channel ``c`` is band ``bands[c]``.
    segmaps : ndarray, int, shape (N, H, W)
        0 = sky, otherwise the ``object_id`` owning the pixel.
    tiles : dict of str -> ndarray (N,)
        The ``tiles/`` table (see `TILE_COLUMNS`).
    objects : dict of str -> ndarray (M,)
        The ``objects/`` table (see `object_columns`), sorted by ``tile``; ``tile`` indexes rows of ``tiles``.
    bands : tuple of str
        Band names in channel order.
    pixel_scale : float
        Arcsec per pixel.
    flux_unit : str
        Unit of ``images`` (e.g. ``"nJy"``).
    tile_offset : int
        Row of the first tile in the parent file (0 for a whole file); set by chunked readers.
    primary_offset : int
        Number of primary objects before this chunk in the parent file; set by chunked readers, so that
        ``primary_offset + k`` is the output row of this chunk's k-th primary object.
    source : str
        Where the data came from (a path or ``"<memory>"``), used in error messages.
    """

    images: np.ndarray
    segmaps: np.ndarray
    tiles: dict[str, np.ndarray]
    objects: dict[str, np.ndarray]
    bands: tuple[str, ...]
    pixel_scale: float
    flux_unit: str = "nJy"
    tile_offset: int = 0
    primary_offset: int = 0
    source: str = field(default="<memory>", compare=False)

    @property
    def n_tiles(self) -> int:
        """Number of tiles N."""
        return int(self.images.shape[0])

    @property
    def n_objects(self) -> int:
        """Number of object appearances (rows of ``objects``)."""
        return int(len(self.objects["object_id"]))

    @property
    def n_primary(self) -> int:
        """Number of primary objects (rows of the estimator output for this set)."""
        return int(np.count_nonzero(self.objects["primary"]))

    @property
    def tile_shape(self) -> tuple[int, int]:
        """Tile height and width in pixels."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def object_slice(self, tile: int) -> slice:
        """Rows of ``objects`` that belong to tile ``tile`` (a row index of this set)."""
        t = self.objects["tile"]
        return slice(int(np.searchsorted(t, tile, "left")), int(np.searchsorted(t, tile, "right")))

    def tile_objects(self, tile: int) -> dict[str, np.ndarray]:
        """The ``objects`` rows of one tile, as a table."""
        sl = self.object_slice(tile)
        return {k: v[sl] for k, v in self.objects.items()}

    def primary_objects(self) -> dict[str, np.ndarray]:
        """The primary rows of ``objects``, in file order (the estimator's output order)."""
        sel = self.objects["primary"].astype(bool)
        return {k: v[sel] for k, v in self.objects.items()}

    def labelled(self) -> np.ndarray:
        """Boolean mask of object rows with a spectroscopic label (finite ``redshift``)."""
        return np.isfinite(self.objects["redshift"])

    def select_tiles(self, indices: Sequence[int] | np.ndarray) -> TileSet:
        """Return a new TileSet holding the given tiles (rows of this set, any order, no repeats).

        Objects follow their tiles and ``tile`` is renumbered; primary flags are kept as they are, so an object
        whose primary appearance is dropped has no primary row in the result (call `check` to catch that).
        """
        idx = np.asarray(indices, dtype=np.int64)
        if len(np.unique(idx)) != len(idx):
            raise TileSetError(f"{self.source}: select_tiles got repeated tile indices")
        remap = np.full(self.n_tiles, -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        new_tile = remap[self.objects["tile"]]
        keep = np.flatnonzero(new_tile >= 0)
        order = keep[np.argsort(new_tile[keep], kind="stable")]
        objects = {k: v[order] for k, v in self.objects.items()}
        objects["tile"] = new_tile[order]
        return replace(
            self,
            images=self.images[idx],
            segmaps=self.segmaps[idx],
            tiles={k: v[idx] for k, v in self.tiles.items()},
            objects=objects,
            tile_offset=0,
            primary_offset=0,
        )

    def select_bands(self, bands: str | Sequence[str]) -> TileSet:
        """Return a new TileSet reduced to some bands (a preset name or a band list), in the order given.

        Raises
        ------
        TileSetError
            If a requested band is not in this set.

        Examples
        --------
        >>> small = tileset.select_bands("COSMOSWEB4")  # doctest: +SKIP
        """
        wanted = resolve_bands(bands)
        missing = [b for b in wanted if b not in self.bands]
        if missing:
            raise TileSetError(
                f"{self.source}: band(s) {' '.join(missing)} not in this TileSet (it has {' '.join(self.bands)})"
            )
        chans = [self.bands.index(b) for b in wanted]
        dropped = {f"{p}_{b}" for b in self.bands if b not in wanted for p in ("mag", "magerr")}
        objects = {k: v for k, v in self.objects.items() if k not in dropped}
        return replace(self, images=np.ascontiguousarray(self.images[:, chans]), objects=objects, bands=wanted)

    def check(self) -> TileSet:
        """Validate this in-memory TileSet against the contract; return it unchanged.

        Raises
        ------
        TileSetError
            With one message naming `source` and the first problem found.
        """
        _check_structure(self.source, self.bands, self.pixel_scale, self.images.shape, self.segmaps.shape,
                         self.tiles, self.objects)
        _check_pixels(self.source, self.images, self.bands, self.tiles["tile_id"], 0)
        _check_objects(self.source, self.n_tiles, self.objects)
        return self


def concatenate_tilesets(parts: Sequence[TileSet]) -> TileSet:
    """Join TileSets of the same bands, pixel scale and tile shape (objects re-indexed to the joined tiles).

    Parameters
    ----------
    parts : sequence of TileSet
        The sets, in output order; object columns missing from any part are dropped.

    Returns
    -------
    TileSet

    Raises
    ------
    TileSetError
        If there is nothing to join or the parts differ in bands, tile shape or pixel scale.
    """
    if not parts:
        raise TileSetError("concatenate_tilesets: nothing to join")
    first = parts[0]
    for p in parts[1:]:
        if p.bands != first.bands or p.tile_shape != first.tile_shape or p.pixel_scale != first.pixel_scale:
            raise TileSetError(f"{p.source}: bands/shape/pixel scale differ from {first.source}")
    offsets = np.cumsum([0] + [p.n_tiles for p in parts[:-1]])
    common = set.intersection(*(set(p.objects) for p in parts))
    objects = {k: np.concatenate([p.objects[k] for p in parts]) for k in first.objects if k in common}
    objects["tile"] = np.concatenate([p.objects["tile"] + off for p, off in zip(parts, offsets)])
    return replace(
        first,
        images=np.concatenate([p.images for p in parts]),
        segmaps=np.concatenate([p.segmaps for p in parts]),
        tiles={k: np.concatenate([p.tiles[k] for p in parts]) for k in TILE_COLUMNS},
        objects=objects, tile_offset=0, primary_offset=0,
    )



# ------------------------------------------------------------------------------------------------------
# checks shared by in-memory and file validation


def _fail(source: str, msg: str) -> None:
    raise TileSetError(f"{source}: {msg}")


def _check_structure(source, bands, pixel_scale, image_shape, segmap_shape, tiles, objects) -> None:
    if len(bands) == 0:
        _fail(source, "attrs 'bands' is empty")
    if not np.isfinite(pixel_scale) or pixel_scale <= 0:
        _fail(source, f"attrs 'pixel_scale' must be a positive number of arcsec/pix, got {pixel_scale!r}")
    if len(image_shape) != 4:
        _fail(source, f"'images' must be 4-D (N, C, H, W), got shape {tuple(image_shape)}")
    n, c, h, w = image_shape
    if c != len(bands):
        _fail(source, f"'images' has {c} bands, attrs 'bands' lists {len(bands)}")
    if tuple(segmap_shape) != (n, h, w):
        _fail(source, f"'segmaps' has shape {tuple(segmap_shape)}, expected {(n, h, w)} to match 'images'")
    missing = [k for k in TILE_COLUMNS if k not in tiles]
    if missing:
        _fail(source, f"'tiles/' lacks column(s) {', '.join(missing)}")
    bad = [k for k in TILE_COLUMNS if len(tiles[k]) != n]
    if bad:
        _fail(source, f"'tiles/{bad[0]}' has {len(tiles[bad[0]])} rows, 'images' has {n} tiles")
    kinds = set(np.unique(np.asarray(tiles["kind"]).astype(str)).tolist())
    if not kinds <= set(TILE_KINDS):
        _fail(source, f"'tiles/kind' has value(s) {sorted(kinds - set(TILE_KINDS))}, allowed: {TILE_KINDS}")
    missing = [k for k in object_columns(bands) if k not in objects]
    if missing:
        _fail(source, f"'objects/' lacks column(s) {', '.join(missing[:8])}")
    for band in bands:
        pair = [f"{prefix}{band}" for prefix in FLUX_COLUMN_PREFIXES]
        present = [k for k in pair if k in objects]
        if len(present) == 1:
            _fail(source, f"'objects/' has {present[0]} without {(set(pair) - set(present)).pop()}: flux columns "
                          "come in pairs (flux_<BAND>, fluxerr_<BAND>, nJy)")
        if any(not np.issubdtype(np.dtype(objects[k].dtype), np.floating) for k in present):
            _fail(source, f"'objects/' flux columns of {band} must be floating point (nJy)")
    m = len(objects["object_id"])
    bad = [k for k, v in objects.items() if len(v) != m]
    if bad:
        _fail(source, f"'objects/{bad[0]}' has {len(objects[bad[0]])} rows, 'objects/object_id' has {m}")


def _check_pixels(source, images, bands, tile_ids, first_row: int) -> None:
    finite = np.isfinite(images)
    if finite.all():
        return
    bad_t, bad_c = np.nonzero(~finite.all(axis=(2, 3)))
    t, c = int(bad_t[0]), int(bad_c[0])
    nbad = int((~finite[t, c]).sum())
    _fail(source, f"tile row {first_row + t} (tile_id {int(tile_ids[t])}) has {nbad} NaN or inf pixel(s) "
                  f"in band {bands[c]}; NaN is not allowed (drop or re-tile areas without coverage)")


def _check_objects(source, n_tiles: int, objects: dict[str, np.ndarray]) -> None:
    tile = np.asarray(objects["tile"])
    oid = np.asarray(objects["object_id"])
    primary = np.asarray(objects["primary"]).astype(bool)
    if len(tile) == 0:
        return
    out = (tile < 0) | (tile >= n_tiles)
    if out.any():
        _fail(source, f"{int(out.sum())} object row(s) point at missing tiles (e.g. object_id {int(oid[out][0])}"
                      f" -> tile {int(tile[out][0])}; the file has {n_tiles} tiles)")
    if np.any(np.diff(tile) < 0):
        row = int(np.flatnonzero(np.diff(tile) < 0)[0]) + 1
        _fail(source, f"'objects/tile' is not sorted (row {row} has tile {int(tile[row])} after "
                      f"{int(tile[row - 1])}); objects must be sorted by tile")
    pairs = np.stack([tile, oid], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        _fail(source, f"object_id {int(dup[1])} appears {int(counts[counts > 1][0])} times in tile {int(dup[0])}"
                      f" (duplicate (tile, object_id) rows)")
    ids, inverse = np.unique(oid, return_inverse=True)
    n_primary = np.bincount(inverse, weights=primary, minlength=len(ids))
    wrong = ids[n_primary != 1]
    if len(wrong):
        listed = ", ".join(str(int(i)) for i in wrong[:_MAX_ERRORS_LISTED])
        _fail(source, f"{len(wrong)} object id(s) do not have exactly one primary row (e.g. {listed})")

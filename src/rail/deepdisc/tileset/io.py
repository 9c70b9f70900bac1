"""Reading and writing TileSet files (``deepdisc-tiles`` v2, reads v1; ``docs/contracts.md``).

Writers are atomic (`rail.deepdisc.tileset.writer.TileSetWriter`: temporary file beside the target, validated,
then renamed); readers load a whole file or iterate over chunks of whole tiles, so memory does not grow with
the file; files are checked by `rail.deepdisc.tileset.validation.validate_tileset`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.tileset.contract import check_objects, check_pixels, object_columns
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.tileset.validation import open_checked, read_columns, reports_damage, validate_tileset
from rail.deepdisc.tileset.writer import TileSetWriter

__all__ = [
    "write_tileset",
    "read_tileset",
    "iter_tileset",
    "plan_chunks",
]


def write_tileset(tileset: TileSet, path: str | os.PathLike, *, compression: str | None = None) -> Path:
    """Write an in-memory TileSet to ``path`` atomically (validated before it replaces anything).

    Parameters
    ----------
    tileset : TileSet
        Data to write; extra object columns (e.g. ``redshift_true``) are kept.
    path : str or Path
        Output HDF5 file.
    compression : str or None
        Image compression filter (``"lzf"``, ``"gzip"``, None).

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    TileSetError
        If the data break the contract (nothing is written then).
    """
    extra = {k: np.asarray(v).dtype.type for k, v in tileset.objects.items()
             if k not in object_columns(tileset.bands)}
    writer = TileSetWriter(path, tileset.bands, tileset.pixel_scale, tileset.tile_shape,
                           flux_unit=tileset.flux_unit, extra_object_columns=extra, compression=compression)
    try:
        writer.append(tileset)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


@reports_damage
def read_tileset(path: str | os.PathLike, *, tiles: slice | None = None, validate: bool = True) -> TileSet:
    """Read a TileSet file, whole or a contiguous range of tiles.

    Parameters
    ----------
    path : str or Path
        The file.
    tiles : slice, optional
        Contiguous tile rows to read (step 1); all tiles by default.
    validate : bool
        Run `validate_tileset` first (reads the file in chunks). Structure is always checked.

    Returns
    -------
    TileSet
        With ``tile`` renumbered from 0 and ``tile_offset`` / ``primary_offset`` set when a range was read.

    Raises
    ------
    TileSetError
        If the file breaks the contract.
    """
    if validate:
        validate_tileset(path)
    source = str(path)
    f, bands, pixel_scale, flux_unit = open_checked(path, source)
    with f:
        n = f["images"].shape[0]
        a, b, step = (tiles or slice(None)).indices(n)
        if step != 1:
            raise TileSetError(f"{source}: read_tileset takes a contiguous tile range (step 1), got {tiles}")
        obj_tile = f["objects"]["tile"][()]
        primary = f["objects"]["primary"][()].astype(bool)
        return _read_range(f, source, bands, pixel_scale, flux_unit, obj_tile, max(a, 0), max(b, a),
                           int(primary[obj_tile < a].sum()))


def _read_range(f, source, bands, pixel_scale, flux_unit, obj_tile, a, b, primary_offset) -> TileSet:
    o0 = int(np.searchsorted(obj_tile, a, "left"))
    o1 = int(np.searchsorted(obj_tile, b, "left"))
    objects = read_columns(f["objects"], slice(o0, o1))
    objects["tile"] = objects["tile"] - a
    return TileSet(
        images=f["images"][a:b], segmaps=f["segmaps"][a:b], tiles=read_columns(f["tiles"], slice(a, b)),
        objects=objects, bands=bands, pixel_scale=pixel_scale, flux_unit=flux_unit, tile_offset=a,
        primary_offset=primary_offset, source=source,
    )


def plan_chunks(object_tile: np.ndarray, primary: np.ndarray, n_tiles: int, *, max_tiles: int | None = None,
                max_primary: int | None = None) -> list[tuple[int, int, int, int]]:
    """Cut a TileSet into chunks of whole tiles.

    A chunk closes when it holds ``max_tiles`` tiles or at least ``max_primary`` primary objects (at least one
    tile each). The plan depends only on the file, so every process of a parallel run sees the same chunks.

    Parameters
    ----------
    object_tile : ndarray of int (M,)
        ``objects/tile`` (sorted).
    primary : ndarray of bool (M,)
        ``objects/primary``.
    n_tiles : int
        Number of tiles N.
    max_tiles, max_primary : int, optional
        Limits per chunk; with neither, one chunk holds everything.

    Returns
    -------
    list of (tile_start, tile_end, primary_start, primary_end)
        Half-open ranges of tile rows and of primary-object output rows.

    Examples
    --------
    >>> plan_chunks(np.array([0, 0, 1, 2]), np.array([True, True, True, True]), 3, max_primary=2)
    [(0, 1, 0, 2), (1, 3, 2, 4)]
    """
    per_tile = np.bincount(np.asarray(object_tile)[np.asarray(primary, bool)], minlength=n_tiles)[:n_tiles]
    cum = np.concatenate([[0], np.cumsum(per_tile)])
    chunks, start = [], 0
    for t in range(n_tiles):
        size_t = t + 1 - start
        full_tiles = max_tiles is not None and size_t >= max_tiles
        full_objs = max_primary is not None and cum[t + 1] - cum[start] >= max_primary
        if full_tiles or full_objs or t == n_tiles - 1:
            chunks.append((start, t + 1, int(cum[start]), int(cum[t + 1])))
            start = t + 1
    return chunks


@reports_damage
def iter_tileset(path: str | os.PathLike, *, chunk_tiles: int | None = 64, max_primary: int | None = None,
                 tiles: slice | None = None, rank: int = 0, n_ranks: int = 1, _checked: bool = False
                 ) -> Iterator[TileSet]:
    """Iterate over a TileSet file in chunks of whole tiles, never loading the whole file.

    Parameters
    ----------
    path : str or Path
        The file.
    chunk_tiles : int or None
        Maximum tiles per chunk (None: no limit).
    max_primary : int, optional
        Close a chunk once it holds this many primary objects.
    tiles : slice, optional
        Restrict to a contiguous range of tile rows.
    rank, n_ranks : int
        Yield only chunks ``rank, rank + n_ranks, ...`` (for MPI); the chunk plan is the same on every rank.

    Yields
    ------
    TileSet
        A chunk with ``tile`` local to it, ``tile_offset`` its first tile row in the file and
        ``primary_offset`` the output row of its first primary object.
    """
    source = str(path)
    f, bands, pixel_scale, flux_unit = open_checked(path, source)
    with f:
        n = f["images"].shape[0]
        t_lo, t_hi, _ = (tiles or slice(None)).indices(n)
        obj_tile = f["objects"]["tile"][()]
        primary = f["objects"]["primary"][()].astype(bool)
        if np.any(np.diff(obj_tile) < 0):
            check_objects(source, n, read_columns(f["objects"], names=["object_id", "tile", "primary"]))
        primary_before = int(primary[obj_tile < t_lo].sum())
        sel = (obj_tile >= t_lo) & (obj_tile < t_hi)
        plan = plan_chunks(obj_tile[sel] - t_lo, primary[sel], t_hi - t_lo, max_tiles=chunk_tiles,
                           max_primary=max_primary)
        for k, (a, b, p0, _p1) in enumerate(plan):
            if k % n_ranks != rank:
                continue
            a, b = a + t_lo, b + t_lo
            chunk = _read_range(f, source, bands, pixel_scale, flux_unit, obj_tile, a, b, primary_before + p0)
            if not _checked:
                check_pixels(source, chunk.images, bands, chunk.tiles["tile_id"], a)
            yield chunk

"""Reading, writing and validating TileSet files (``deepdisc-tiles`` v2, reads v1; ``DESIGN.md`` section 2).

Writers are atomic (temporary file beside the target, validated, then renamed); readers load a whole file or
iterate over chunks of whole tiles, so memory does not grow with the file; `validate_tileset` scans a file in
chunks and rejects every defect the contract lists with one message naming the file and the problem.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rail.deepdisc.atomic import commit, temporary_beside
from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.tileset.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    TILE_COLUMNS,
    TileSet,
    _check_objects,
    _check_pixels,
    _check_structure,
    _fail,
    empty_objects,
    object_columns,
)

__all__ = [
    "TileSetSummary",
    "TileSetWriter",
    "write_tileset",
    "read_tileset",
    "iter_tileset",
    "plan_chunks",
    "validate_tileset",
]

log = logging.getLogger(__name__)
_STR_DTYPE = h5py.string_dtype("utf-8")
#: Image bytes read at a time when a writer validates its file on close.
_VALIDATE_CHUNK_BYTES = 32 * 2**20

@dataclass(frozen=True)
class TileSetSummary:
    """What `validate_tileset` learnt about a valid file (shown by ``deepdisc info``)."""

    path: str
    bands: tuple[str, ...]
    pixel_scale: float
    flux_unit: str
    n_tiles: int
    tile_shape: tuple[int, int]
    n_objects: int
    n_primary: int
    n_labelled: int
    n_recentred_tiles: int
    redshift_quantiles: tuple[float, ...]  # 5, 25, 50, 75, 95 % of the labelled primaries (NaN if none)

    def format(self) -> str:
        """A short human-readable summary."""
        q = ", ".join(f"{v:.2f}" for v in self.redshift_quantiles)
        return "\n".join([
            f"TileSet {self.path}  ({FORMAT_NAME})",
            f"  bands ({len(self.bands)}): {' '.join(self.bands)}",
            f"  pixel scale: {self.pixel_scale:g} arcsec/pix, flux unit: {self.flux_unit}",
            f"  tiles: {self.n_tiles} of {self.tile_shape[0]}x{self.tile_shape[1]} px"
            f" ({self.n_recentred_tiles} recentred)",
            f"  objects: {self.n_primary} primary, {self.n_objects} appearances,"
            f" {self.n_labelled} with spec-z",
            f"  spec-z quantiles (5/25/50/75/95%): {q}",
        ])




# ------------------------------------------------------------------------------------------------------
# writing


class TileSetWriter:
    """Write a TileSet file chunk by chunk, atomically.

    Data go to a temporary file beside ``path``; `close` validates it and renames it into place, so a reader
    never sees a half-written file and an interrupted run leaves any earlier file untouched.

    Parameters
    ----------
    path : str or Path
        Output file.
    bands : sequence of str
        Band names in channel order.
    pixel_scale : float
        Arcsec per pixel.
    tile_shape : (int, int)
        Tile height and width in pixels.
    flux_unit : str
        Unit of the pixel values.
    extra_object_columns : dict, optional
        Extra ``objects/`` columns (e.g. ``redshift_true``) and their dtypes.
    compression : str or None
        h5py compression filter for images (``"lzf"``, ``"gzip"`` or None).

    Examples
    --------
    >>> with TileSetWriter("tiles.h5", bands, 0.03, (128, 128)) as w:  # doctest: +SKIP
    ...     for chunk in chunks:
    ...         w.append(chunk)
    """

    def __init__(self, path, bands, pixel_scale, tile_shape, *, flux_unit="nJy", extra_object_columns=None,
                 compression=None):
        self.path = Path(path)
        self.bands = tuple(bands)
        self.pixel_scale = float(pixel_scale)
        self.tile_shape = (int(tile_shape[0]), int(tile_shape[1]))
        self.flux_unit = flux_unit
        self.object_dtypes = object_columns(self.bands)
        self.object_dtypes.update(extra_object_columns or {})
        self._n_tiles = 0
        self._n_objects = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temporary_beside(self.path)
        self._file = h5py.File(self._tmp, "w")
        self._create(compression)

    def _create(self, compression) -> None:
        f = self._file
        h, w = self.tile_shape
        c = len(self.bands)
        f.attrs["format"] = FORMAT_NAME
        f.attrs["version"] = FORMAT_VERSION
        f.attrs["bands"] = np.array(self.bands, dtype=_STR_DTYPE)
        f.attrs["pixel_scale"] = self.pixel_scale
        f.attrs["flux_unit"] = self.flux_unit
        f.create_dataset("images", shape=(0, c, h, w), maxshape=(None, c, h, w), dtype=np.float32,
                         chunks=(1, c, h, w), compression=compression)
        f.create_dataset("segmaps", shape=(0, h, w), maxshape=(None, h, w), dtype=np.int32,
                         chunks=(1, h, w), compression="gzip" if compression else None)
        for group, dtypes in (("tiles", TILE_COLUMNS), ("objects", self.object_dtypes)):
            g = f.create_group(group)
            for name, dtype in dtypes.items():
                dt = _STR_DTYPE if dtype is str else dtype
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(4096,))

    def append(self, tileset: TileSet) -> None:
        """Append the tiles and objects of an in-memory TileSet (its ``tile`` column is local to it)."""
        if tileset.bands != self.bands or tileset.tile_shape != self.tile_shape:
            raise TileSetError(f"{self.path}: appended tiles have bands {tileset.bands} and shape "
                               f"{tileset.tile_shape}, the file has {self.bands} and {self.tile_shape}")
        f = self._file
        n, m = tileset.n_tiles, tileset.n_objects
        t0, o0 = self._n_tiles, self._n_objects
        _append(f["images"], t0, tileset.images.astype(np.float32, copy=False))
        _append(f["segmaps"], t0, tileset.segmaps.astype(np.int32, copy=False))
        for name in TILE_COLUMNS:
            _append(f["tiles"][name], t0, _as_column(tileset.tiles[name], TILE_COLUMNS[name]))
        for name, dtype in self.object_dtypes.items():
            if name == "tile":
                values = np.asarray(tileset.objects["tile"], dtype=np.int64) + t0
            elif name in tileset.objects:
                values = _as_column(tileset.objects[name], dtype)
            else:
                values = empty_objects([], m).get(name, np.full(m, np.nan))
            _append(f["objects"][name], o0, values)
        self._n_tiles += n
        self._n_objects += m

    def close(self, *, validate: bool = True) -> Path:
        """Finish the file: validate it, then rename it into place. Returns the final path."""
        self._file.close()
        try:
            if validate:
                c, (h, w) = len(self.bands), self.tile_shape
                chunk = max(1, _VALIDATE_CHUNK_BYTES // (4 * c * h * w))  # bounds memory for large tiles
                validate_tileset(self._tmp, chunk_tiles=chunk, _display_name=str(self.path))
            commit(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        log.info("wrote %s: %d tiles, %d object rows", self.path, self._n_tiles, self._n_objects)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; any earlier file at ``path`` is left untouched."""
        try:
            self._file.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TileSetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _as_column(values, dtype) -> np.ndarray:
    if dtype is str:
        return np.asarray(values).astype(str).astype(object)
    return np.asarray(values, dtype=dtype)


def _append(dset: h5py.Dataset, start: int, values: np.ndarray) -> None:
    dset.resize(start + len(values), axis=0)
    if len(values):
        dset[start:start + len(values)] = values


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



# ------------------------------------------------------------------------------------------------------
# reading


def _open(path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise TileSetError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise TileSetError(f"{path}: not an HDF5 file ({err})") from None


def _read_header(f: h5py.File, source: str) -> tuple[tuple[str, ...], float, str]:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT_NAME:
        _fail(source, f"attrs 'format' is {fmt!r}, expected {FORMAT_NAME!r} (is this a TileSet file?)")
    version = f.attrs.get("version")
    version = int(version) if version is not None else None
    if version not in READABLE_VERSIONS:
        _fail(source, f"{FORMAT_NAME} version {version} is not supported (this package reads versions "
                      f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade pz-rail-deepdisc or rewrite the file")
    for key in ("bands", "pixel_scale", "flux_unit"):
        if key not in f.attrs:
            _fail(source, f"attrs lack {key!r}")
    bands = tuple(b.decode() if isinstance(b, bytes) else str(b) for b in np.atleast_1d(f.attrs["bands"]))
    flux_unit = f.attrs["flux_unit"]
    flux_unit = flux_unit.decode() if isinstance(flux_unit, bytes) else str(flux_unit)
    for name in ("images", "segmaps", "tiles", "objects"):
        if name not in f:
            _fail(source, f"missing dataset or group {name!r}")
    return bands, float(f.attrs["pixel_scale"]), flux_unit


def _read_columns(group: h5py.Group, rows: slice | None = None, names=None) -> dict[str, np.ndarray]:
    out = {}
    for name in names if names is not None else group.keys():
        dset = group[name]
        if h5py.check_string_dtype(dset.dtype) is not None:
            values = dset.asstr()[rows] if rows is not None else dset.asstr()[()]
            out[name] = np.asarray(values, dtype=str)
        else:
            out[name] = dset[rows] if rows is not None else dset[()]
    return out


def _open_checked(path, source):
    f = _open(path)
    try:
        bands, pixel_scale, flux_unit = _read_header(f, source)
        tiles = {k: f["tiles"][k] for k in f["tiles"]}
        if "kind" in tiles:
            tiles["kind"] = tiles["kind"].asstr()[()]
        objects = {k: f["objects"][k] for k in f["objects"]}
        _check_structure(source, bands, pixel_scale, f["images"].shape, f["segmaps"].shape, tiles, objects)
    except BaseException:
        f.close()
        raise
    return f, bands, pixel_scale, flux_unit


def validate_tileset(path: str | os.PathLike, *, chunk_tiles: int = 256, _display_name: str | None = None
                     ) -> TileSetSummary:
    """Check a TileSet file against the ``deepdisc-tiles`` contract (v1 or v2), reading it in chunks.

    Parameters
    ----------
    path : str or Path
        The file.
    chunk_tiles : int
        Tiles read at a time when scanning pixels.

    Returns
    -------
    TileSetSummary
        Counts and redshift quantiles of a valid file.

    Raises
    ------
    TileSetError
        One message naming the file and the first problem: wrong format or version, missing datasets or
        columns, shape mismatches, NaN or inf pixels, objects pointing at missing tiles, duplicate
        (tile, object_id), object ids without exactly one primary row, unsorted ``tile``.
    """
    source = _display_name or str(path)
    f, bands, pixel_scale, flux_unit = _open_checked(path, source)
    with f:
        n, _, h, w = f["images"].shape
        tile_ids = f["tiles"]["tile_id"][()]
        for t0 in range(0, n, chunk_tiles):
            _check_pixels(source, f["images"][t0:t0 + chunk_tiles], bands, tile_ids[t0:t0 + chunk_tiles], t0)
        objects = _read_columns(f["objects"], names=["object_id", "tile", "primary", "redshift"])
        _check_objects(source, n, objects)
        kinds = f["tiles"]["kind"].asstr()[()]
    primary = objects["primary"].astype(bool)
    z = objects["redshift"][primary]
    z = z[np.isfinite(z)]
    quantiles = tuple(np.percentile(z, [5, 25, 50, 75, 95]).tolist()) if len(z) else (np.nan,) * 5
    return TileSetSummary(
        path=source, bands=bands, pixel_scale=pixel_scale, flux_unit=flux_unit, n_tiles=int(n),
        tile_shape=(int(h), int(w)), n_objects=int(len(primary)), n_primary=int(primary.sum()),
        n_labelled=int(len(z)), n_recentred_tiles=int(np.sum(np.asarray(kinds) == "recentred")),
        redshift_quantiles=quantiles,
    )


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
    f, bands, pixel_scale, flux_unit = _open_checked(path, source)
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
    objects = _read_columns(f["objects"], slice(o0, o1))
    objects["tile"] = objects["tile"] - a
    return TileSet(
        images=f["images"][a:b], segmaps=f["segmaps"][a:b], tiles=_read_columns(f["tiles"], slice(a, b)),
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
    f, bands, pixel_scale, flux_unit = _open_checked(path, source)
    with f:
        n = f["images"].shape[0]
        t_lo, t_hi, _ = (tiles or slice(None)).indices(n)
        obj_tile = f["objects"]["tile"][()]
        primary = f["objects"]["primary"][()].astype(bool)
        if np.any(np.diff(obj_tile) < 0):
            _check_objects(source, n, _read_columns(f["objects"], names=["object_id", "tile", "primary"]))
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
                _check_pixels(source, chunk.images, bands, chunk.tiles["tile_id"], a)
            yield chunk

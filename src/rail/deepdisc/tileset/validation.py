"""Opening and validating TileSet files: header, structure, pixels and objects, read in chunks.

`validate_tileset` scans a file against the ``deepdisc-tiles`` contract (v1 or v2)
(:mod:`rail.deepdisc.tileset.contract`) without loading it whole and rejects every defect the contract lists
with one message naming the file and the problem; `open_checked` and `read_columns` are the file primitives
that the readers (:mod:`rail.deepdisc.tileset.io`) and the estimator's input check share.
"""

from __future__ import annotations

import functools
import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rail.deepdisc.exceptions import DeepDiscError, TileSetError
from rail.deepdisc.tileset.contract import (
    FORMAT_NAME,
    READABLE_VERSIONS,
    check_objects,
    check_pixels,
    check_structure,
    reject,
)

__all__ = ["TileSetSummary", "open_checked", "read_columns", "reading", "reports_damage", "validate_tileset"]


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


@contextmanager
def reading(source):
    """Turn what h5py and numpy raise on a damaged file into one `TileSetError` naming the file."""
    try:
        yield
    except DeepDiscError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError, AttributeError) as err:
        raise TileSetError(f"{source}: damaged or unreadable TileSet file ({type(err).__name__}: {err})") from None


def reports_damage(func):
    """Decorate a reader whose first argument is the file (generators too) with `reading`."""
    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def generator(path, *args, **kwargs):
            with reading(kwargs.get("display_name") or path):
                yield from func(path, *args, **kwargs)
        return generator

    @functools.wraps(func)
    def reader(path, *args, **kwargs):
        with reading(kwargs.get("display_name") or path):
            return func(path, *args, **kwargs)
    return reader


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
        reject(source, f"attrs 'format' is {fmt!r}, expected {FORMAT_NAME!r} (is this a TileSet file?)")
    version = f.attrs.get("version")
    version = int(version) if version is not None else None
    if version not in READABLE_VERSIONS:
        reject(source, f"{FORMAT_NAME} version {version} is not supported (this package reads versions "
                      f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade pz-rail-deepdisc or rewrite the file")
    for key in ("bands", "pixel_scale", "flux_unit"):
        if key not in f.attrs:
            reject(source, f"attrs lack {key!r}")
    bands = tuple(b.decode() if isinstance(b, bytes) else str(b) for b in np.atleast_1d(f.attrs["bands"]))
    flux_unit = f.attrs["flux_unit"]
    flux_unit = flux_unit.decode() if isinstance(flux_unit, bytes) else str(flux_unit)
    for name in ("images", "segmaps", "tiles", "objects"):
        if name not in f:
            reject(source, f"missing dataset or group {name!r}")
    return bands, float(f.attrs["pixel_scale"]), flux_unit


def read_columns(group: h5py.Group, rows: slice | None = None, names=None) -> dict[str, np.ndarray]:
    """Read columns of a ``tiles/`` or ``objects/`` group (text columns as ``str`` arrays).

    Parameters
    ----------
    group : h5py.Group
        The group.
    rows : slice, optional
        Rows to read; all by default.
    names : iterable of str, optional
        Columns to read; all by default.

    Returns
    -------
    dict of str -> ndarray
    """
    out = {}
    for name in names if names is not None else group.keys():
        dset = group[name]
        if h5py.check_string_dtype(dset.dtype) is not None:
            values = dset.asstr()[rows] if rows is not None else dset.asstr()[()]
            out[name] = np.asarray(values, dtype=str)
        else:
            out[name] = dset[rows] if rows is not None else dset[()]
    return out


@reports_damage
def open_checked(path: str | os.PathLike, source: str) -> tuple[h5py.File, tuple[str, ...], float, str]:
    """Open a TileSet file and check its header and structure (`check_structure`), not its pixels or objects.

    Parameters
    ----------
    path : str or Path
        The file.
    source : str
        How messages name it.

    Returns
    -------
    (h5py.File, bands, pixel_scale, flux_unit)
        The open file (the caller closes it) and its attributes.

    Raises
    ------
    TileSetError
        If the file is missing, not HDF5, of another format or version, or malformed.
    """
    f = _open(path)
    try:
        bands, pixel_scale, flux_unit = _read_header(f, source)
        tiles = {k: f["tiles"][k] for k in f["tiles"]}
        if "kind" in tiles:
            tiles["kind"] = tiles["kind"].asstr()[()]
        objects = {k: f["objects"][k] for k in f["objects"]}
        check_structure(source, bands, pixel_scale, f["images"].shape, f["segmaps"].shape, tiles, objects)
    except BaseException:
        f.close()
        raise
    return f, bands, pixel_scale, flux_unit


@reports_damage
def validate_tileset(path: str | os.PathLike, *, chunk_tiles: int = 256, display_name: str | None = None
                     ) -> TileSetSummary:
    """Check a TileSet file against the ``deepdisc-tiles`` contract (v1 or v2), reading it in chunks.

    Parameters
    ----------
    path : str or Path
        The file.
    chunk_tiles : int
        Tiles read at a time when scanning pixels.
    display_name : str, optional
        How messages and the summary name the file (default: ``path``), e.g. the final name of a temporary file.

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
    source = display_name or str(path)
    f, bands, pixel_scale, flux_unit = open_checked(path, source)
    with f:
        n, _, h, w = f["images"].shape
        tile_ids = f["tiles"]["tile_id"][()]
        for t0 in range(0, n, chunk_tiles):
            check_pixels(source, f["images"][t0:t0 + chunk_tiles], bands, tile_ids[t0:t0 + chunk_tiles], t0)
        objects = read_columns(f["objects"], names=["object_id", "tile", "primary", "redshift"])
        check_objects(source, n, objects)
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

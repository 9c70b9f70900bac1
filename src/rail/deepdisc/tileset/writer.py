"""Writing TileSet files chunk by chunk, atomically: `TileSetWriter`.

Data go to a temporary file beside the target; closing validates it (`rail.deepdisc.tileset.validation`) and
renames it into place, so readers never see a half-written file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np

from rail.deepdisc.atomic import commit, temporary_beside
from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.tileset.contract import FORMAT_NAME, FORMAT_VERSION, TILE_COLUMNS, empty_objects, object_columns
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.tileset.validation import validate_tileset

__all__ = ["TileSetWriter"]

log = logging.getLogger(__name__)
_STR_DTYPE = h5py.string_dtype("utf-8")
#: Image bytes read at a time when a writer validates its file on close.
_VALIDATE_CHUNK_BYTES = 32 * 2**20


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
        self.object_dtypes.update({name: _text_or(dtype) for name, dtype in (extra_object_columns or {}).items()})
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
                validate_tileset(self._tmp, chunk_tiles=chunk, display_name=str(self.path))
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


def _text_or(dtype):
    """``str`` for a numpy text dtype (``np.str_``, bytes, object), so extra text columns are stored as UTF-8."""
    return str if dtype is str or np.dtype(dtype).kind in "USO" else dtype


def _as_column(values, dtype) -> np.ndarray:
    if dtype is str:
        return np.asarray(values).astype(str).astype(object)
    return np.asarray(values, dtype=dtype)


def _append(dset: h5py.Dataset, start: int, values: np.ndarray) -> None:
    dset.resize(start + len(values), axis=0)
    if len(values):
        dset[start:start + len(values)] = values

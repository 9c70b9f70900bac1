"""The TileSet: multi-band image tiles, segmentation maps and their objects (``deepdisc-tiles`` v2; reads v1).

A TileSet file is the data contract between the simulator, the mosaic tiler, training and inference
(``docs/contracts.md``). This module holds the in-memory :class:`TileSet`; the column definitions and the
contract's checks are in :mod:`rail.deepdisc.tileset.contract`, and :mod:`rail.deepdisc.tileset.io` reads,
writes and validates files.

Layout of the HDF5 file::

    attrs   format="deepdisc-tiles", version=1, bands=[...], pixel_scale (arcsec/pix), flux_unit
    images  float32 (N, C, H, W)
    segmaps int32   (N, H, W)       0 = sky, else the object_id owning the pixel
    tiles/  one 1-D dataset per column, N rows
    objects/ one 1-D dataset per column, one row per appearance of an object in a tile, sorted by ``tile``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.presets import resolve_bands
from rail.deepdisc.tileset.contract import (
    TILE_COLUMNS,
    check_objects,
    check_pixels,
    check_structure,
)

__all__ = ["TileSet", "concatenate_tilesets"]

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
        The ``tiles/`` table (see `rail.deepdisc.tileset.contract.TILE_COLUMNS`).
    objects : dict of str -> ndarray (M,)
        The ``objects/`` table (see `rail.deepdisc.tileset.contract.object_columns`), sorted by ``tile``;
        ``tile`` indexes rows of ``tiles``.
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
        check_structure(self.source, self.bands, self.pixel_scale, self.images.shape, self.segmaps.shape,
                         self.tiles, self.objects)
        check_pixels(self.source, self.images, self.bands, self.tiles["tile_id"], 0)
        check_objects(self.source, self.n_tiles, self.objects)
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

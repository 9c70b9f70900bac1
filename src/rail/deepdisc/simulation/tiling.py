"""TileSets from simulated fields: independent tiles (`simulate_tileset`) or grid tiles cut from a mosaic.

`simulate_tileset` renders every tile as its own field (seeded from ``settings.seed`` and the tile index), so
tiles are independent and objects never repeat across tiles; tile positions follow a virtual mosaic grid near
GOODS-S so sky positions and Milky-Way dust vary smoothly. `cut_field` cuts one large field into grid tiles;
objects cut by a tile edge then appear in each tile they touch and are primary in the tile where their centre
is most central.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.prep.tiling import most_central
from rail.deepdisc.simulation.field import FieldContext, SimulatedField, make_wcs, simulate_field
from rail.deepdisc.simulation.settings import SimulationSettings
from rail.deepdisc.tileset.contract import object_columns
from rail.deepdisc.tileset.format import TileSet, concatenate_tilesets
from rail.deepdisc.tileset.writer import TileSetWriter

__all__ = ["simulate_tileset", "cut_field", "write_cut_field", "field_tile", "ID_STRIDE"]

log = logging.getLogger(__name__)

#: Object ids of independent tile k are ``(k + 1) * ID_STRIDE + catalog row``: unique within a file.
ID_STRIDE = 10_000
#: Catalog columns that stay out of the TileSet.
_SKIP = ("seg_id", "spec_flag")
#: Catalog flux-error prefix, written as the TileSet's ``fluxerr_<BAND>`` (``flux_<BAND>`` keeps its name).
_FLUX_ERR = "flux_err_"
#: Largest tile count whose object ids fit the int32 segmentation maps.
MAX_TILES = np.iinfo(np.int32).max // ID_STRIDE - 1
BBOX = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")


def _virtual_grid(settings: SimulationSettings):
    cols = math.ceil(math.sqrt(settings.n_tiles))
    rows = math.ceil(settings.n_tiles / cols)
    ts = settings.tile_size
    return cols, make_wcs((rows * ts, cols * ts), settings.pixel_scale)


def _object_table(
    cat: dict,
    bands,
    rows: np.ndarray,
    ids: np.ndarray,
    x0: int,
    y0: int,
    bbox: dict,
    primary: np.ndarray,
    tile: int,
) -> dict:
    out = {
        "object_id": ids.astype(np.int64),
        "tile": np.full(len(rows), tile, dtype=np.int64),
        "primary": primary.astype(bool),
        "x": cat["x"][rows] - x0,
        "y": cat["y"][rows] - y0,
    }
    out.update(bbox)
    for name, values in cat.items():
        if name in out or name in BBOX or name.startswith(_SKIP):
            continue
        column = "fluxerr_" + name[len(_FLUX_ERR):] if name.startswith(_FLUX_ERR) else name
        out[column] = np.asarray(values)[rows]
    missing = [c for c in object_columns(bands) if c not in out]
    if missing:
        raise RuntimeError(f"simulated catalog lacks TileSet column(s) {missing}")
    return out


def _tiles_table(tile_ids, x0s, y0s, wcs_full, shape) -> dict:
    h, w = shape
    ra, dec, headers = [], [], []
    for x0, y0 in zip(x0s, y0s):
        sub = wcs_full[y0 : y0 + h, x0 : x0 + w]
        r, d = sub.wcs_pix2world((w - 1) / 2.0, (h - 1) / 2.0, 0)
        ra.append(float(r))
        dec.append(float(d))
        headers.append(sub.to_header().tostring())
    n = len(tile_ids)
    return {
        "tile_id": np.asarray(tile_ids, np.int64),
        "kind": np.array(["grid"] * n),
        "x0": np.asarray(x0s, np.int64),
        "y0": np.asarray(y0s, np.int64),
        "ra": np.array(ra),
        "dec": np.array(dec),
        "wcs": np.array(headers),
    }


def field_tile(
    field: SimulatedField, settings: SimulationSettings, tile_index: int, x0: int, y0: int, wcs_full
) -> TileSet:
    """Make a one-tile TileSet of a field simulated as a whole tile (every catalogued object primary)."""
    cat = field.catalog
    rows = np.arange(len(cat["x"]))
    if len(rows) >= ID_STRIDE:
        raise ConfigError(
            f"a tile holds {len(rows)} catalogued objects, more than the {ID_STRIDE - 1} its ids "
            f"allow: use smaller tiles or a lower density"
        )
    ids = (tile_index + 1) * ID_STRIDE + cat["seg_id"]
    bbox = {k: cat[k] for k in BBOX}
    objects = _object_table(cat, settings.bands, rows, ids, 0, 0, bbox, np.ones(len(rows), bool), 0)
    seg = field.rendered.segmap
    segmap = np.where(seg > 0, seg + (tile_index + 1) * ID_STRIDE, 0).astype(np.int32)
    return TileSet(
        images=field.rendered.images[None],
        segmaps=segmap[None],
        tiles=_tiles_table([tile_index], [x0], [y0], wcs_full, seg.shape),
        objects=objects,
        bands=settings.bands,
        pixel_scale=settings.pixel_scale,
        flux_unit="nJy",
    )


def simulate_tileset(
    settings: SimulationSettings,
    *,
    path: str | Path | None = None,
    progress_bar: bool = True,
    in_memory: bool = True,
) -> TileSet | None:
    """Simulate ``settings.n_tiles`` independent tiles with their objects, spec-z labels and truth.

    Parameters
    ----------
    settings : SimulationSettings
        Everything that defines the simulation (see its docstring).
    path : str or Path, optional
        When given, tiles are streamed to this TileSet file (written atomically, validated).
    progress_bar : bool
        Show a tqdm progress bar.
    in_memory : bool
        Keep and return the tiles; with ``False`` (only with ``path``) tiles are written and dropped one by
        one, so sets larger than memory can be made, and None is returned.

    Returns
    -------
    TileSet or None
        The simulated tiles (also when written). Objects carry ``redshift`` (spec-z or NaN),
        ``redshift_true`` and ``true_*`` columns (``true_mag_<BAND>``, ``true_is_star``, ...).

    Raises
    ------
    ConfigError
        If ``settings`` is not a `SimulationSettings`, ``in_memory`` is False without a ``path``, or the tile
        count exceeds the id space.

    Examples
    --------
    >>> settings = SimulationSettings(n_tiles=2, tile_size=64)
    >>> ts = simulate_tileset(settings, progress_bar=False)  # doctest: +SKIP
    >>> ts.images.shape  # doctest: +SKIP
    (2, 9, 64, 64)
    """
    if not isinstance(settings, SimulationSettings):
        raise ConfigError(f"simulate_tileset expects SimulationSettings, not {type(settings).__name__}")
    if settings.n_tiles > MAX_TILES:
        raise ConfigError(
            f"n_tiles = {settings.n_tiles} exceeds {MAX_TILES}, the most whose object ids fit the "
            f"int32 segmentation maps: write several files with different seeds"
        )
    if not in_memory and path is None:
        raise ConfigError("simulate_tileset: in_memory=False needs a path to write the tiles to")
    return _simulate_tileset(settings, path, progress_bar, in_memory)


def _simulate_tileset(settings, path, progress_bar, in_memory) -> TileSet | None:
    ctx = FieldContext(settings)
    cols, wcs_full = _virtual_grid(settings)
    ts = settings.tile_size
    seeds = np.random.SeedSequence(settings.seed).spawn(settings.n_tiles)
    parts = []
    writer = None
    try:
        for k in tqdm(range(settings.n_tiles), desc="simulate", unit="tile", disable=not progress_bar):
            row, col = divmod(k, cols)
            x0, y0 = col * ts, row * ts
            field = simulate_field(
                ctx, (ts, ts), wcs_full[y0 : y0 + ts, x0 : x0 + ts], np.random.default_rng(seeds[k])
            )
            tile = field_tile(field, settings, k, x0, y0, wcs_full)
            if path is not None and writer is None:
                extra = {
                    c: np.asarray(v).dtype.type
                    for c, v in tile.objects.items()
                    if c not in object_columns(settings.bands)
                }
                writer = TileSetWriter(
                    path, settings.bands, settings.pixel_scale, (ts, ts), extra_object_columns=extra
                )
            if writer is not None:
                writer.append(tile)
            if in_memory:
                parts.append(tile)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    if not in_memory:
        return None
    out = concatenate_tilesets(parts)
    log.info(
        "simulated %d tiles, %d objects, %d labelled", out.n_tiles, out.n_objects, int(out.labelled().sum())
    )
    return out


def cut_field(field: SimulatedField, settings: SimulationSettings) -> TileSet:
    """Cut a simulated mosaic field into non-overlapping ``tile_size`` grid tiles (partial edges dropped).

    Object ids are the catalog ids (segmentation values); an object appears in every tile its footprint
    touches and is primary in the most central of those tiles (`rail.deepdisc.prep.tiling.most_central`, the
    rule real mosaics follow too).
    """
    return concatenate_tilesets(list(_cut_tiles(field, settings)))


def write_cut_field(field: SimulatedField, settings: SimulationSettings, path: str | Path) -> Path:
    """Stream the `cut_field` tiles of a field (images and segmap may be memory maps) into a TileSet file."""
    writer = None
    try:
        for tile in _cut_tiles(field, settings):
            if writer is None:
                extra = {c: np.asarray(v).dtype.type for c, v in tile.objects.items()
                         if c not in object_columns(settings.bands)}
                writer = TileSetWriter(path, settings.bands, settings.pixel_scale, tile.tile_shape,
                                       extra_object_columns=extra)
            writer.append(tile)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise ConfigError(f"the field is smaller than one {settings.tile_size} px tile: no TileSet to write")
    writer.close()
    return Path(path)


def _cut_tiles(field: SimulatedField, settings: SimulationSettings):
    cat = field.catalog
    seg_full = field.rendered.segmap
    h, w = seg_full.shape
    ts = settings.tile_size
    origins = [(x0, y0) for y0 in range(0, h - ts + 1, ts) for x0 in range(0, w - ts + 1, ts)]
    appearances = []
    for x0, y0 in origins:
        seg = np.asarray(seg_full[y0 : y0 + ts, x0 : x0 + ts])
        ids = np.unique(seg[seg > 0])
        appearances.append((ids, ids - 1))
    candidates = (
        np.concatenate([rows for _, rows in appearances] or [np.empty(0, np.int64)]),
        np.concatenate([np.full(len(ids), t) for t, (ids, _) in enumerate(appearances)] or [np.empty(0, np.int64)]),
    )
    x0s, y0s = (np.array([o[i] for o in origins], np.int64) for i in (0, 1))
    owner = most_central(cat["x"], cat["y"], candidates, y0s, x0s, (ts, ts))
    for t, ((x0, y0), (ids, rows)) in enumerate(zip(origins, appearances)):
        seg = np.asarray(seg_full[y0 : y0 + ts, x0 : x0 + ts])
        bbox = {k: np.zeros(len(ids)) for k in BBOX}
        for i, oid in enumerate(ids):
            yy, xx = np.nonzero(seg == oid)
            bbox["bbox_x0"][i], bbox["bbox_x1"][i] = xx.min(), xx.max() + 1
            bbox["bbox_y0"][i], bbox["bbox_y1"][i] = yy.min(), yy.max() + 1
        objects = _object_table(cat, settings.bands, rows, ids, x0, y0, bbox, owner[rows] == t, 0)
        yield TileSet(
            images=np.asarray(field.rendered.images[:, y0 : y0 + ts, x0 : x0 + ts])[None],
            segmaps=seg[None].astype(np.int32),
            tiles=_tiles_table([t], [x0], [y0], field.wcs, (ts, ts)),
            objects=objects,
            bands=settings.bands,
            pixel_scale=settings.pixel_scale,
            flux_unit="nJy",
        )

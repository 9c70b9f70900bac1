"""Cutting the tiles of a plan out of the mosaics and streaming them into TileSet files.

`write_tiles` reads the windows of a subset of a `rail.deepdisc.prep.plan.TilePlan` (memory-mapped, a chunk
of tiles at a time), builds their segmaps and object rows, and appends them to a
`rail.deepdisc.tileset.writer.TileSetWriter`.

In a file, an object has rows only if its primary tile is in that file; segmentation pixels of objects without
a row are set to 0, so every non-zero label of a file's segmaps is one of its objects. Objects without a
segmentation footprint get a small box around their centroid.
"""

from __future__ import annotations

import os

import numpy as np
from tqdm.auto import tqdm

from rail.deepdisc.prep.mosaics import MosaicStack
from rail.deepdisc.prep.plan import MosaicObjects, TilePlan
from rail.deepdisc.prep.segmentation import SegmentationImage
from rail.deepdisc.tileset.contract import empty_objects, flux_columns
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.tileset.writer import TileSetWriter

__all__ = ["MIN_BOX_HALF_PX", "write_tiles"]

#: Half-width of the box given to a catalog object without segmentation pixels, pixels.
MIN_BOX_HALF_PX = 2.0


def write_tiles(
    path: str | os.PathLike,
    plan: TilePlan,
    tiles: np.ndarray,
    objects: MosaicObjects,
    segmentation: SegmentationImage,
    stack: MosaicStack,
    *,
    tile_shape: tuple[int, int],
    pixel_scale: float,
    tiles_per_chunk: int = 16,
    compression: str | None = None,
    progress_bar: bool = True,
    label: str = "tiles",
) -> dict:
    """Stream some tiles of a plan into a TileSet file (atomic, validated on close).

    Parameters
    ----------
    path : str or Path
        Output file.
    plan : TilePlan
        The tiling.
    tiles : ndarray of int
        Rows of ``plan.origins`` to write, in file order.
    objects : MosaicObjects
        The catalog objects.
    segmentation, stack : SegmentationImage, MosaicStack
        Pixel sources (same grid).
    tile_shape : (int, int)
        (h, w).
    pixel_scale : float
        Arcsec per pixel.
    tiles_per_chunk : int
        Tiles built in memory before each append.
    compression : str or None
        Image compression of the file.
    progress_bar : bool
        Show a progress bar.
    label : str
        Name shown by the progress bar.

    Returns
    -------
    dict
        ``path``, ``tiles``, ``primary_objects``, ``labelled_objects``.
    """
    in_file = np.zeros(len(plan.origins), bool)
    in_file[tiles] = True
    owners = _owners_by_tile(plan.primary, len(plan.origins))
    writer = TileSetWriter(
        path,
        stack.bands,
        pixel_scale,
        tile_shape,
        extra_object_columns={"star": np.bool_, **flux_columns(objects.phot.flux)},
        compression=compression,
    )
    n_objects = n_labelled = 0
    try:
        with tqdm(total=len(tiles), desc=f"writing {label}", unit="tile", disable=not progress_bar) as bar:
            for start in range(0, len(tiles), tiles_per_chunk):
                chunk = tiles[start : start + tiles_per_chunk]
                parts = [
                    _build_tile(int(t), plan, owners, in_file, objects, segmentation, stack, tile_shape)
                    for t in chunk
                ]
                tileset = _assemble(parts, stack.bands, pixel_scale)
                writer.append(tileset)
                n_objects += tileset.n_primary
                n_labelled += int(np.count_nonzero(tileset.objects["primary"] & tileset.labelled()))
                bar.update(len(chunk))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return {
        "path": str(path),
        "tiles": int(len(tiles)),
        "primary_objects": int(n_objects),
        "labelled_objects": int(n_labelled),
    }


def _owners_by_tile(primary: np.ndarray, n_tiles: int) -> list[np.ndarray]:
    rows = np.flatnonzero(primary >= 0)
    order = rows[np.argsort(primary[rows], kind="stable")]
    bounds = np.searchsorted(primary[order], np.arange(n_tiles + 1))
    return [order[bounds[t] : bounds[t + 1]] for t in range(n_tiles)]


def _build_tile(
    t: int, plan: TilePlan, owners, in_file, objects: MosaicObjects, seg, stack, tile_shape
) -> dict:
    h, w = tile_shape
    y0, x0 = (int(v) for v in plan.origins[t])
    images, covered = stack.read(y0, x0, h, w)
    images[~covered] = 0.0  # only tiles within max_uncovered_fraction get here
    segmap = seg.read(y0, x0, h, w)
    rows = np.union1d(objects.rows_of(np.unique(segmap[segmap > 0])), owners[t])
    owner_tile = plan.primary[rows]
    rows = rows[(owner_tile >= 0) & in_file[np.maximum(owner_tile, 0)]]
    segmap[~np.isin(segmap, objects.phot.object_id[rows])] = 0
    centre = seg.wcs.pixel_to_world_values(x0 + (w - 1) / 2.0, y0 + (h - 1) / 2.0)
    tile = {
        "tile_id": plan.tile_ids[t],
        "kind": plan.kinds[t],
        "x0": x0,
        "y0": y0,
        "ra": float(centre[0]),
        "dec": float(centre[1]),
        "wcs": seg.wcs.slice((slice(y0, y0 + h), slice(x0, x0 + w))).to_header().tostring(),
    }
    return {
        "image": images,
        "segmap": segmap.astype(np.int32),
        "tile": tile,
        "objects": _object_rows(rows, plan.primary[rows] == t, objects, y0, x0, tile_shape),
    }


def _object_rows(
    rows: np.ndarray, primary: np.ndarray, objects: MosaicObjects, y0: int, x0: int, tile_shape
) -> dict[str, np.ndarray]:
    h, w = tile_shape
    phot = objects.phot
    out = empty_objects(phot.bands, len(rows))
    x, y = objects.x[rows] - x0, objects.y[rows] - y0
    box = objects.box[rows] - np.array([x0, y0, x0, y0], dtype=np.float64)
    none = np.isnan(box[:, 0])
    half = MIN_BOX_HALF_PX
    box[none] = np.stack([x - half, y - half, x + half + 1, y + half + 1], axis=1)[none]
    box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, w)
    box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, h)
    out.update(
        object_id=phot.object_id[rows],
        primary=primary,
        x=x,
        y=y,
        bbox_x0=box[:, 0],
        bbox_y0=box[:, 1],
        bbox_x1=box[:, 2],
        bbox_y1=box[:, 3],
        ra=phot.ra[rows],
        dec=phot.dec[rows],
        redshift=objects.redshift[rows],
        ebv=objects.ebv[rows],
    )
    for band in phot.bands:
        out[f"mag_{band}"], out[f"magerr_{band}"] = phot.mag[band][rows], phot.magerr[band][rows]
        if band in phot.flux:
            out[f"flux_{band}"], out[f"fluxerr_{band}"] = phot.flux[band][rows], phot.fluxerr[band][rows]
    out["star"] = phot.star[rows]
    return out


def _assemble(parts: list[dict], bands, pixel_scale: float) -> TileSet:
    objects = {k: np.concatenate([p["objects"][k] for p in parts]) for k in parts[0]["objects"]}
    objects["tile"] = np.concatenate(
        [np.full(len(p["objects"]["object_id"]), k, np.int64) for k, p in enumerate(parts)]
    )
    tiles = {k: np.array([p["tile"][k] for p in parts]) for k in parts[0]["tile"]}
    return TileSet(
        images=np.stack([p["image"] for p in parts]),
        segmaps=np.stack([p["segmap"] for p in parts]),
        tiles=tiles,
        objects=objects,
        bands=tuple(bands),
        pixel_scale=pixel_scale,
        flux_unit="nJy",
    )

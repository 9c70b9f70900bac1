"""Shared fixtures: small hand-made TileSets (no simulator needed)."""

import numpy as np
import pytest

from rail.deepdisc.presets import get_preset
from rail.deepdisc.tileset.contract import empty_objects
from rail.deepdisc.tileset.format import TileSet


def make_tileset(n_tiles=4, size=32, bands=None, objects_per_tile=3, seed=0, recentred_last=False):
    """A TileSet of Gaussian blobs on noise; every object primary once, a duplicate appearance per tile pair."""
    bands = tuple(bands or get_preset("COSMOSWEB4"))
    rng = np.random.default_rng(seed)
    c = len(bands)
    images = rng.normal(0.0, 1.0, size=(n_tiles, c, size, size)).astype(np.float32)
    segmaps = np.zeros((n_tiles, size, size), dtype=np.int32)
    rows = []
    yy, xx = np.mgrid[0:size, 0:size]
    next_id = 100
    for t in range(n_tiles):
        for _ in range(objects_per_tile):
            x, y = rng.uniform(6, size - 6, 2)
            blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
            images[t] += (20 * blob)[None].astype(np.float32)
            segmaps[t][blob > 0.1] = next_id
            rows.append((next_id, t, True, x, y, rng.uniform(0.1, 5.0)))
            next_id += 1
    # the first object of tile 0 also appears (non-primary) in tile 1
    if n_tiles > 1:
        oid, _, _, x, y, z = rows[0]
        rows.append((oid, 1, False, x, y, z))
    rows.sort(key=lambda r: r[1])
    objects = empty_objects(bands, len(rows))
    for k, (oid, t, prim, x, y, z) in enumerate(rows):
        objects["object_id"][k] = oid
        objects["tile"][k] = t
        objects["primary"][k] = prim
        objects["x"][k], objects["y"][k] = x, y
        objects["bbox_x0"][k], objects["bbox_y0"][k] = x - 4, y - 4
        objects["bbox_x1"][k], objects["bbox_y1"][k] = x + 4, y + 4
        objects["ra"][k], objects["dec"][k] = 53.1 + x * 1e-5, -27.8 + y * 1e-5
        objects["redshift"][k] = z if k % 2 == 0 else np.nan
        objects["ebv"][k] = 0.01
        for b in bands:
            objects[f"mag_{b}"][k] = 26.0
            objects[f"magerr_{b}"][k] = 0.1
    objects["redshift_true"] = np.array([r[5] for r in rows])
    kinds = np.array(["grid"] * n_tiles, dtype="U9")
    if recentred_last:
        kinds[-1] = "recentred"
    tiles = {
        "tile_id": np.arange(n_tiles, dtype=np.int64) + 1000,
        "kind": kinds,
        "x0": np.arange(n_tiles, dtype=np.int64) * size,
        "y0": np.zeros(n_tiles, dtype=np.int64),
        "ra": np.full(n_tiles, 53.1),
        "dec": np.full(n_tiles, -27.8),
        "wcs": np.array([""] * n_tiles, dtype=str),
    }
    return TileSet(images=images, segmaps=segmaps, tiles=tiles, objects=objects, bands=bands,
                   pixel_scale=0.03, flux_unit="nJy")


@pytest.fixture
def small_tileset():
    return make_tileset()


@pytest.fixture
def tileset_file(tmp_path, small_tileset):
    from rail.deepdisc.tileset.io import write_tileset

    return write_tileset(small_tileset, tmp_path / "tiles.h5")

"""Synthetic training TileSets for the network tests: Gaussian blobs whose colours encode redshift."""

import numpy as np

from rail.deepdisc.tileset.contract import empty_objects
from rail.deepdisc.tileset.format import TileSet

BANDS4 = ("F115W", "F200W", "F277W", "F444W")
Z_RANGE = (0.2, 4.0)


def colour_sed(z, n_bands):
    """Relative flux of each band (n_bands,) for redshift z: a bump that moves red-ward with z."""
    centre = (z - Z_RANGE[0]) / (Z_RANGE[1] - Z_RANGE[0]) * (n_bands - 1)
    b = np.arange(n_bands)
    return 0.3 + np.exp(-0.5 * ((b - centre) / 0.8) ** 2)


def make_colour_tileset(
    n_tiles=24,
    size=32,
    bands=BANDS4,
    objects_per_tile=3,
    seed=0,
    labelled_fraction=0.7,
    peak=(12.0, 30.0),
    sigma_px=(1.2, 2.2),
    noise=1.0,
):
    """A TileSet of blobs on unit noise; object colours follow `colour_sed`; some objects lack spec-z.

    Objects are kept apart (>= 7 px) so each has an unambiguous box; bbox = 3 sigma around the centre.
    """
    rng = np.random.default_rng(seed)
    c = len(bands)
    images = (noise * rng.standard_normal((n_tiles, c, size, size))).astype(np.float32)
    segmaps = np.zeros((n_tiles, size, size), dtype=np.int32)
    yy, xx = np.mgrid[0:size, 0:size]
    rows = []
    next_id = 1
    for t in range(n_tiles):
        centres = []
        while len(centres) < objects_per_tile:
            x, y = rng.uniform(5, size - 5, 2)
            if all((x - a) ** 2 + (y - b) ** 2 > 49 for a, b in centres):
                centres.append((x, y))
        for x, y in centres:
            z = rng.uniform(*Z_RANGE)
            s = rng.uniform(*sigma_px)
            amp = rng.uniform(*peak)
            blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s**2))
            images[t] += (amp * colour_sed(z, c)[:, None, None] * blob[None]).astype(np.float32)
            segmaps[t][(blob > 0.15) & (segmaps[t] == 0)] = next_id
            label = z if rng.uniform() < labelled_fraction else np.nan
            rows.append((next_id, t, x, y, 3 * s, label, z))
            next_id += 1
    objects = empty_objects(bands, len(rows))
    for k, (oid, t, x, y, half, label, z) in enumerate(rows):
        objects["object_id"][k], objects["tile"][k], objects["primary"][k] = oid, t, True
        objects["x"][k], objects["y"][k] = x, y
        objects["bbox_x0"][k], objects["bbox_y0"][k] = max(x - half, 0), max(y - half, 0)
        objects["bbox_x1"][k], objects["bbox_y1"][k] = min(x + half, size), min(y + half, size)
        objects["ra"][k], objects["dec"][k] = 53.0, -27.8
        objects["redshift"][k] = label
        objects["ebv"][k] = 0.01
    objects["redshift_true"] = np.array([r[6] for r in rows])
    tiles = {
        "tile_id": np.arange(n_tiles, dtype=np.int64),
        "kind": np.array(["grid"] * n_tiles, dtype=str),
        "x0": np.full(n_tiles, -1, dtype=np.int64),
        "y0": np.full(n_tiles, -1, dtype=np.int64),
        "ra": np.full(n_tiles, 53.0),
        "dec": np.full(n_tiles, -27.8),
        "wcs": np.array([""] * n_tiles, dtype=str),
    }
    return TileSet(
        images=images,
        segmaps=segmaps,
        tiles=tiles,
        objects=objects,
        bands=tuple(bands),
        pixel_scale=0.03,
        flux_unit="nJy",
    ).check()


#: ``deepdisc train`` options of a quiet one-thread CPU run (the CLI counterpart of part of `FAST`).
FAST_CLI = ("--threads", "1", "--device", "cpu", "--no-progress")

#: Small, fast training options for tests.
FAST = {
    "members": 1,
    "epochs": 2,
    "batch_size": 4,
    "num_threads": 1,
    "progress_bar": False,
    "device": "cpu",
    "head_hidden": [64, 32],
    "learning_rate": 1e-3,
}

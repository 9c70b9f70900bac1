"""Simulated data shared by the simulator tests (made once per test process)."""

from functools import lru_cache

import numpy as np

from rail.deepdisc.simulation import (
    FieldContext,
    SimulationSettings,
    make_wcs,
    simulate_field,
    simulate_tileset,
)

FIELD_SHAPE = (256, 256)


@lru_cache(maxsize=None)
def default_tileset(n_tiles=24, tile_size=128, seed=11):
    """A TileSet with the default physics (about 200 catalogued objects)."""
    return simulate_tileset(
        SimulationSettings(n_tiles=n_tiles, tile_size=tile_size, seed=seed), progress_bar=False
    )


@lru_cache(maxsize=None)
def fields(n=3, seed=5, **overrides):
    """A few 256x256 fields (with noiseless models) and their settings."""
    settings = SimulationSettings(seed=seed, **overrides)
    ctx = FieldContext(settings)
    wcs = make_wcs(FIELD_SHAPE, settings.pixel_scale)
    return settings, [
        simulate_field(ctx, FIELD_SHAPE, wcs, np.random.default_rng([seed, k])) for k in range(n)
    ]

"""Cutting a simulated mosaic into grid tiles: each object is primary once, in its most central tile."""

import numpy as np

from rail.deepdisc.prep.tiling import assign_primary, grid_origins
from rail.deepdisc.simulation import SimulationSettings, cut_field, make_wcs, simulate_field
from rail.deepdisc.simulation.field import FieldContext


def test_cut_field_primary_follows_the_prep_rule():
    s = SimulationSettings(n_tiles=4, tile_size=64, seed=3, field_size=400)  # 6 x 6 tiles, 16 px strips dropped
    field = simulate_field(FieldContext(s), s.field_shape, make_wcs(s.field_shape, s.pixel_scale),
                           np.random.default_rng(5))
    ts = cut_field(field, s)
    cat = field.catalog
    assert ts.n_tiles == 36
    primary = ts.objects["object_id"][ts.objects["primary"]]
    assert len(primary) == len(set(primary.tolist()))  # at most one primary appearance per object
    y0, x0 = grid_origins(s.field_shape, (64, 64))
    grid = assign_primary(cat["x"], cat["y"], y0, x0, (64, 64), np.ones((6, 6), bool))
    tile_of = dict(zip(ts.objects["object_id"][ts.objects["primary"]].tolist(),
                       ts.objects["tile"][ts.objects["primary"]].tolist()))
    inside = grid >= 0
    assert inside.sum() > 10 and (~inside).any()
    for seg_id, t in zip(cat["seg_id"][inside], grid[inside]):
        if np.any((ts.objects["object_id"] == seg_id) & (ts.objects["tile"] == t)):
            assert tile_of[int(seg_id)] == t
    # objects centred in a dropped strip stay primary in the tile their footprint reaches
    appearing = set(ts.objects["object_id"].tolist())
    assert set(tile_of) == appearing

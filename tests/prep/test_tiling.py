"""Tile geometry: sizes, grids, primary assignment, re-centred cutouts, seeded splits."""

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.prep.tiling import (
    assign_primary,
    box_inside,
    grid_origins,
    recentred_origin,
    split_tiles,
    tile_shape_px,
)


def test_default_tile_is_277_by_250_px_at_30_mas():
    assert tile_shape_px(8.3, 7.5, 0.03) == (250, 277)


def test_tile_size_must_be_positive():
    with pytest.raises(ConfigError, match="must be positive"):
        tile_shape_px(0.0, 7.5, 0.03)


def test_grid_without_overlap_leaves_the_remainder_out():
    y0, x0 = grid_origins((100, 130), (30, 40))
    assert y0.tolist() == [0, 30, 60] and x0.tolist() == [0, 40, 80]


def test_grid_with_overlap_and_edges_covers_the_mosaic():
    y0, x0 = grid_origins((100, 130), (30, 40), overlap_px=10, cover_edges=True)
    assert x0.tolist() == [0, 30, 60, 90]
    assert y0.tolist() == [0, 20, 40, 60, 70]
    assert y0[-1] + 30 == 100 and x0[-1] + 40 == 130


def test_grid_smaller_than_a_tile_is_empty():
    y0, x0 = grid_origins((20, 20), (30, 40))
    assert len(y0) == 0 and len(x0) == 0


@pytest.mark.parametrize("overlap", [-1, 30])
def test_overlap_out_of_range(overlap):
    with pytest.raises(ConfigError, match="overlap_px"):
        grid_origins((100, 100), (30, 40), overlap_px=overlap)


def test_primary_is_the_most_central_tile():
    # tiles of 20 px overlapping by 10: origins 0, 10, 20 on x; one row
    y0, x0 = grid_origins((20, 40), (20, 20), overlap_px=10)
    kept = np.ones((1, 3), bool)
    x = np.array([2.0, 12.0, 14.0, 16.0, 37.0])
    y = np.full(5, 9.5)
    # x=12 is in tiles 0 (edges -0.5..19.5: distance 7.5) and 1 (9.5..29.5: 2.5) -> 0
    # x=16: tile 0 -> 3.5, tile 1 -> 6.5 -> 1 ; x=14 -> tile 0: 5.5, tile 1: 4.5 -> 0
    assert assign_primary(x, y, y0, x0, (20, 20), kept).tolist() == [0, 0, 0, 1, 2]


def test_primary_skips_dropped_tiles_and_reports_uncovered_objects():
    y0, x0 = grid_origins((20, 40), (20, 20), overlap_px=10)
    kept = np.array([[False, True, True]])
    x = np.array([2.0, 12.0, 25.0])
    got = assign_primary(x, np.full(3, 9.5), y0, x0, (20, 20), kept)
    assert got.tolist() == [-1, 1, 2]


def test_every_object_gets_exactly_one_primary_on_a_2d_grid():
    rng = np.random.default_rng(0)
    y0, x0 = grid_origins((90, 120), (30, 40), overlap_px=8, cover_edges=True)
    x, y = rng.uniform(-0.5, 119.4, 500), rng.uniform(-0.5, 89.4, 500)
    prim = assign_primary(x, y, y0, x0, (30, 40), np.ones((len(y0), len(x0)), bool))
    assert (prim >= 0).all()
    r, k = np.divmod(prim, len(x0))
    assert np.all((x >= x0[k] - 0.5) & (x < x0[k] + 39.5) & (y >= y0[r] - 0.5) & (y < y0[r] + 29.5))


def test_box_inside():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 45, 10], [np.nan] * 4], float)
    assert box_inside(boxes, np.zeros(3), np.zeros(3), (30, 40)).tolist() == [True, False, True]


def test_recentred_origin_holds_the_whole_box_and_stays_in_the_mosaic():
    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = 30, 40
        bw, bh = rng.integers(1, w + 1), rng.integers(1, h + 1)
        bx0, by0 = rng.integers(0, 200 - bw), rng.integers(0, 100 - bh)
        x, y = bx0 + rng.uniform(0, bw), by0 + rng.uniform(0, bh)
        oy, ox = recentred_origin(x, y, (bx0, by0, bx0 + bw, by0 + bh), (h, w), (100, 200))
        assert 0 <= ox <= 200 - w and 0 <= oy <= 100 - h
        assert ox <= bx0 and bx0 + bw <= ox + w and oy <= by0 and by0 + bh <= oy + h


def test_recentred_origin_centres_when_possible():
    assert recentred_origin(100.0, 50.0, (98, 48, 103, 53), (30, 40), (100, 200)) == (36, 81)


def test_recentred_origin_refuses_boxes_larger_than_a_tile():
    assert recentred_origin(50.0, 50.0, (20, 40, 80, 60), (30, 40), (100, 200)) is None


def test_split_is_deterministic_disjoint_and_complete():
    a = split_tiles(57, seed=7)
    b = split_tiles(57, seed=7)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    train, val, test = a
    assert len(test) == 6 and len(val) == 5 and len(train) == 46
    assert sorted(np.concatenate(a).tolist()) == list(range(57))
    c = split_tiles(57, seed=8)
    assert not np.array_equal(a[2], c[2])


def test_split_keeps_one_test_and_val_tile_for_small_sets():
    train, val, test = split_tiles(3, seed=0)
    assert len(train) == len(val) == len(test) == 1
    assert [len(s) for s in split_tiles(2, seed=0)] == [2, 0, 0]


def test_split_fraction_out_of_range():
    with pytest.raises(ConfigError, match="test_fraction"):
        split_tiles(10, test_fraction=1.0)

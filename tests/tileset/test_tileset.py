"""TileSet format: round trip, chunked reads, every validator rule, band reduction."""

import h5py
import numpy as np
import pytest
import tables_io

from rail.deepdisc.exceptions import ConfigError, TileSetError
from rail.deepdisc.presets import get_preset, resolve_bands
from rail.deepdisc.tileset.format import concatenate_tilesets
from rail.deepdisc.tileset.io import iter_tileset, plan_chunks, read_tileset, write_tileset
from rail.deepdisc.tileset.validation import validate_tileset
from rail.deepdisc.tileset.writer import TileSetWriter
from tests.helpers.tilesets import make_tileset


def assert_same(a, b):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.segmaps, b.segmaps)
    assert a.bands == b.bands and a.pixel_scale == b.pixel_scale and a.flux_unit == b.flux_unit
    for k in a.tiles:
        np.testing.assert_array_equal(a.tiles[k], b.tiles[k])
    assert set(a.objects) == set(b.objects)
    for k in a.objects:
        np.testing.assert_array_equal(a.objects[k], b.objects[k])


def test_round_trip_keeps_everything(tmp_path, small_tileset):
    path = write_tileset(small_tileset, tmp_path / "t.h5")
    back = read_tileset(path)
    assert_same(small_tileset, back)
    assert back.objects["redshift_true"].dtype == np.float64
    assert back.tiles["kind"].dtype.kind == "U"


def test_objects_tables_are_readable_with_tables_io(tileset_file, small_tileset):
    objects = tables_io.read(str(tileset_file), fmt="hdf5", keys=["objects"])["objects"]
    np.testing.assert_array_equal(objects["object_id"], small_tileset.objects["object_id"])
    np.testing.assert_array_equal(objects["redshift"], small_tileset.objects["redshift"])


@pytest.mark.parametrize("chunk_tiles", [1, 2, 3, 10])
def test_chunked_iteration_matches_whole_read(tileset_file, chunk_tiles):
    whole = read_tileset(tileset_file)
    chunks = list(iter_tileset(tileset_file, chunk_tiles=chunk_tiles))
    assert sum(c.n_tiles for c in chunks) == whole.n_tiles
    joined = concatenate_tilesets(chunks)
    assert_same(whole, joined)
    # primary offsets count the primaries of the preceding chunks
    expected = np.cumsum([0] + [c.n_primary for c in chunks[:-1]])
    assert [c.primary_offset for c in chunks] == expected.tolist()
    assert [c.tile_offset for c in chunks] == np.cumsum([0] + [c.n_tiles for c in chunks[:-1]]).tolist()


def test_rank_split_covers_every_chunk_once(tileset_file):
    all_chunks = [c.tile_offset for c in iter_tileset(tileset_file, chunk_tiles=1)]
    split = [c.tile_offset for r in range(3) for c in iter_tileset(tileset_file, chunk_tiles=1, rank=r, n_ranks=3)]
    assert sorted(split) == all_chunks


def test_plan_chunks_by_primary_count():
    tile = np.array([0, 0, 0, 1, 2, 2, 3])
    primary = np.array([1, 1, 1, 1, 1, 0, 1], bool)
    assert plan_chunks(tile, primary, 4, max_primary=2) == [(0, 1, 0, 3), (1, 3, 3, 5), (3, 4, 5, 6)]
    assert plan_chunks(tile, primary, 4, max_tiles=3) == [(0, 3, 0, 5), (3, 4, 5, 6)]
    assert plan_chunks(tile, primary, 4) == [(0, 4, 0, 6)]
    # a tile without objects still belongs to a chunk
    assert plan_chunks(np.array([], int), np.array([], bool), 2, max_tiles=1) == [(0, 1, 0, 0), (1, 2, 0, 0)]


def test_read_tile_range_sets_offsets(tileset_file):
    whole = read_tileset(tileset_file)
    part = read_tileset(tileset_file, tiles=slice(2, 4))
    assert part.n_tiles == 2 and part.tile_offset == 2
    assert part.primary_offset == int(whole.objects["primary"][whole.objects["tile"] < 2].sum())
    np.testing.assert_array_equal(part.images, whole.images[2:4])


def test_summary_counts(tileset_file, small_tileset):
    s = validate_tileset(tileset_file)
    assert s.n_tiles == 4 and s.n_primary == 12 and s.n_objects == 13
    z = small_tileset.primary_objects()["redshift"]
    assert s.n_labelled == int(np.isfinite(z).sum())
    assert s.redshift_quantiles[2] == pytest.approx(np.nanmedian(z))
    assert "F444W" in s.format()


def test_writer_appends_chunks_and_offsets_tiles(tmp_path):
    a, b = make_tileset(n_tiles=2, seed=1), make_tileset(n_tiles=3, seed=2)
    b.objects["object_id"] += 1000  # distinct ids
    b.segmaps[b.segmaps > 0] += 1000
    with TileSetWriter(tmp_path / "w.h5", a.bands, a.pixel_scale, a.tile_shape,
                       extra_object_columns={"redshift_true": np.float64}) as w:
        w.append(a)
        w.append(b)
    back = read_tileset(tmp_path / "w.h5")
    assert back.n_tiles == 5
    np.testing.assert_array_equal(back.objects["tile"][a.n_objects:], b.objects["tile"] + 2)


def test_failed_write_leaves_previous_file(tmp_path, small_tileset):
    path = write_tileset(small_tileset, tmp_path / "t.h5")
    bad = make_tileset()
    bad.images[0, 0, 0, 0] = np.nan
    with pytest.raises(TileSetError, match="NaN"):
        write_tileset(bad, path)
    assert_same(read_tileset(path), small_tileset)
    assert [p.name for p in tmp_path.iterdir()] == ["t.h5"]  # no temporary left behind


# --- validator rules: each breaks one rule of docs/contracts.md ---------------------------------------------


def _rewrite(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def _replace(f, name, values):
    del f[name]
    f[name] = values


RULES = [
    ("wrong format", lambda f: f.attrs.__setitem__("format", "something-else"), "attrs 'format'"),
    ("wrong version", lambda f: f.attrs.__setitem__("version", 3), "version 3 is not supported"),
    ("missing dataset", lambda f: f.__delitem__("segmaps"), "missing dataset or group 'segmaps'"),
    ("missing column", lambda f: f["objects"].__delitem__("ebv"), "lacks column.*ebv"),
    ("missing band column", lambda f: f["objects"].__delitem__("mag_F444W"), "mag_F444W"),
    ("band count", lambda f: f.attrs.__setitem__("bands", ["F115W", "F150W", "F277W"]),
     "'images' has 4 bands, attrs 'bands' lists 3"),
    ("tile count", lambda f: _replace(f, "tiles/ra", np.zeros(3)), "'tiles/ra' has 3 rows, 'images' has 4"),
    ("segmap shape", lambda f: _replace(f, "segmaps", np.zeros((4, 8, 8), np.int32)), "'segmaps' has shape"),
    ("nan pixels", lambda f: f["images"].__setitem__((2, 3, 5, 5), np.nan), "tile row 2.*NaN.*F444W"),
    ("inf pixels", lambda f: f["images"].__setitem__((1, 0, 0, 0), np.inf), "tile row 1.*inf"),
    ("missing tile", lambda f: f["objects/tile"].__setitem__(-1, 7), "point at missing tiles"),
    ("duplicate", lambda f: f["objects/object_id"].__setitem__(1, f["objects/object_id"][0]),
     "duplicate \\(tile, object_id\\)"),
    ("no primary", lambda f: f["objects/primary"].__setitem__(0, False), "exactly one primary"),
    ("two primaries", lambda f: f["objects/primary"].__setitem__(slice(None), True), "exactly one primary"),
    ("unsorted", lambda f: f["objects/tile"].__setitem__(0, 3), "not sorted"),
    ("bad kind", lambda f: _replace(f, "tiles/kind", np.array([b"grid", b"grid", b"odd", b"grid"])),
     "'tiles/kind' has value"),
    ("bad pixel scale", lambda f: f.attrs.__setitem__("pixel_scale", -1.0), "pixel_scale"),
]


@pytest.mark.parametrize("label, breaker, message", RULES, ids=[r[0] for r in RULES])
def test_validator_rejects(tileset_file, label, breaker, message):
    _rewrite(tileset_file, breaker)
    with pytest.raises(TileSetError, match=message) as err:
        validate_tileset(tileset_file)
    assert str(tileset_file) in str(err.value)
    with pytest.raises(TileSetError):
        read_tileset(tileset_file)


def test_not_hdf5_and_missing_file(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    with pytest.raises(TileSetError, match="not an HDF5 file"):
        validate_tileset(junk)
    with pytest.raises(TileSetError, match="no such file"):
        read_tileset(tmp_path / "absent.h5")


def test_in_memory_check(small_tileset):
    small_tileset.check()
    small_tileset.objects["primary"][:] = False
    with pytest.raises(TileSetError, match="<memory>.*exactly one primary"):
        small_tileset.check()


# --- presets -----------------------------------------------------------------------------------------------


def test_presets():
    assert len(get_preset("JADES9")) == 9
    assert get_preset("nexus6") == ("F090W", "F115W", "F150W", "F200W", "F356W", "F444W")
    assert get_preset("COSMOSWEB4") == ("F115W", "F150W", "F277W", "F444W")
    with pytest.raises(ConfigError, match="unknown filter preset"):
        get_preset("HST5")
    with pytest.raises(ConfigError, match="unknown NIRCam band"):
        resolve_bands(["F999W"])
    with pytest.raises(ConfigError, match="repeats"):
        resolve_bands(["F444W", "F444W"])


def test_reduce_to_preset(tmp_path):
    full = make_tileset(bands=get_preset("JADES9"))
    small = full.select_bands("COSMOSWEB4")
    assert small.bands == get_preset("COSMOSWEB4")
    assert small.images.shape[1] == 4
    np.testing.assert_array_equal(small.images[:, 2], full.images[:, full.bands.index("F277W")])
    assert "mag_F090W" not in small.objects and "mag_F277W" in small.objects
    back = read_tileset(write_tileset(small, tmp_path / "small.h5"))
    assert back.bands == small.bands
    with pytest.raises(TileSetError, match="F090W F200W F356W not in this TileSet"):
        small.select_bands("NEXUS6")


def test_select_tiles_renumbers(small_tileset):
    sub = small_tileset.select_tiles([3, 1])
    assert sub.n_tiles == 2
    np.testing.assert_array_equal(sub.images[0], small_tileset.images[3])
    assert np.all(np.diff(sub.objects["tile"]) >= 0)
    ids_tile3 = set(small_tileset.tile_objects(3)["object_id"])
    assert set(sub.tile_objects(0)["object_id"]) == ids_tile3

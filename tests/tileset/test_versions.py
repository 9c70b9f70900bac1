"""deepdisc-tiles v2: optional flux columns; version 1 files are still read."""

import h5py
import numpy as np
import pytest

from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.tileset.contract import FORMAT_VERSION, flux_columns
from rail.deepdisc.tileset.io import read_tileset, validate_tileset, write_tileset
from tests.helpers.tilesets import make_tileset


def _with_fluxes(ts):
    rng = np.random.default_rng(3)
    for name in flux_columns(ts.bands):
        values = rng.normal(10.0, 20.0, ts.n_objects)  # negative fluxes are measurements
        ts.objects[name] = np.abs(values) if name.startswith("fluxerr_") else values
    return ts


def test_written_as_version_2_with_flux_columns(tmp_path):
    ts = _with_fluxes(make_tileset())
    path = write_tileset(ts, tmp_path / "v2.h5")
    with h5py.File(path) as f:
        assert int(f.attrs["version"]) == FORMAT_VERSION == 2
    back = read_tileset(path)
    for name in flux_columns(ts.bands):
        np.testing.assert_array_equal(back.objects[name], ts.objects[name])
    assert (back.objects[f"flux_{ts.bands[0]}"] < 0).any()


def test_version_1_file_is_still_read(tmp_path):
    ts = make_tileset()
    path = write_tileset(ts, tmp_path / "v1.h5")
    with h5py.File(path, "r+") as f:  # what this package wrote before version 2: no flux columns
        f.attrs["version"] = 1
    back = read_tileset(path)
    assert back.n_tiles == ts.n_tiles and not any(k.startswith("flux") for k in back.objects)
    np.testing.assert_array_equal(back.objects["mag_F444W"], ts.objects["mag_F444W"])


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        (lambda f: f["objects"].__delitem__("fluxerr_F150W"), "has flux_F150W without fluxerr_F150W"),
        (
            lambda f: (f["objects"].__delitem__("flux_F150W"), f["objects"].create_dataset(
                "flux_F150W", data=np.zeros(len(f["objects/object_id"]), np.int64))),
            "flux columns of F150W must be floating point",
        ),
    ],
)
def test_flux_columns_come_in_float_pairs(tmp_path, breaker, message):
    path = write_tileset(_with_fluxes(make_tileset()), tmp_path / "bad.h5")
    with h5py.File(path, "r+") as f:
        breaker(f)
    with pytest.raises(TileSetError, match=message):
        validate_tileset(path)

"""``deepdisc peers``: TileSet in, EAZY, BPZ, FlexZBoost, kNN and catalog MDN photo-z files out, row for row."""

import json

import numpy as np
import pytest
import qp

from rail.deepdisc.cli import main
from tests.helpers.peers_helpers import synthetic_catalog
from tests.helpers.tilesets import make_tileset

pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered in power:RuntimeWarning"),
    # BPZ's prior fitted to 12 labels: unphysical, and said so
    pytest.mark.filterwarnings("ignore::rail.deepdisc.peers.bpz_setup.BPZPriorWarning"),
]


def test_peers_command_writes_every_photo_z_file(tmp_path, capsys, monkeypatch):
    from rail.deepdisc.tileset.io import write_tileset

    monkeypatch.setenv("RAIL_DEEPDISC_CACHE", str(tmp_path / "cache"))
    ts = make_tileset(n_tiles=3, objects_per_tile=4, seed=7)
    prim = np.flatnonzero(ts.objects["primary"])
    cat = synthetic_catalog(ts.bands, len(prim), snr=50.0, seed=8, igm="madau")
    for col in [c for c in cat if c.startswith("mag")]:
        ts.objects[col][prim] = cat[col]
    ts.objects["redshift"][prim] = cat["redshift"]
    ts.objects["redshift"][ts.objects["primary"] == 0] = np.nan
    tiles = write_tileset(ts, tmp_path / "tiles.h5")
    out = tmp_path / "peers"
    assert (
        main(["peers", str(tiles), "-o", str(out), "--zmax", "7", "--nzbins", "141", "--chunk-size", "5"])
        == 0
    )
    timing = json.loads((out / "timing.json").read_text())
    for peer in ("eazy", "bpz", "flexzboost", "knn", "catalog_mdn"):
        assert timing[peer]["objects"] == ts.n_primary and timing[peer]["objects_per_s"] > 0
        ens = qp.read(str(out / f"pz_{peer}.hdf5"))
        assert ens.npdf == ts.n_primary
        assert {"zmode", "zmean", "zmedian", "object_id"} <= set(ens.ancil)
        np.testing.assert_array_equal(np.ravel(ens.ancil["object_id"]), ts.primary_objects()["object_id"])
    assert "eazy: 12 objects" in capsys.readouterr().out


def test_peers_command_without_labels_exits_2(tmp_path, capsys):
    from rail.deepdisc.tileset.io import write_tileset

    ts = make_tileset(n_tiles=1)
    ts.objects["redshift"][:] = np.nan
    tiles = write_tileset(ts, tmp_path / "tiles.h5")
    assert main(["peers", str(tiles), "-o", str(tmp_path / "o")]) == 2
    assert "no object has a spec-z" in capsys.readouterr().err


@pytest.mark.parametrize("flag, has_prior", [([], False), (["--eazy-prior"], True)])
def test_eazy_prior_flag_fits_a_magnitude_prior(tmp_path, monkeypatch, caplog, flag, has_prior):
    import logging

    from rail.deepdisc.peers.eazy_model import EazyModel
    from rail.deepdisc.peers.model_io import load_npz_model
    from rail.deepdisc.tileset.io import write_tileset

    monkeypatch.setenv("RAIL_DEEPDISC_CACHE", str(tmp_path / "cache"))
    bands = ("F115W", "F150W", "F277W", "F444W")  # 4 bands: without a prior the informer warns
    ts = make_tileset(n_tiles=3, objects_per_tile=8, seed=3, bands=bands)
    prim = np.flatnonzero(ts.objects["primary"])
    cat = synthetic_catalog(ts.bands, len(prim), snr=30.0, seed=4, igm="madau")
    for col in [c for c in cat if c.startswith("mag")]:
        ts.objects[col][prim] = cat[col]
    ts.objects["redshift"][prim] = cat["redshift"]
    tiles = write_tileset(ts, tmp_path / "tiles.h5")
    out = tmp_path / "peers"
    with caplog.at_level(logging.WARNING):
        assert main(["peers", str(tiles), "-o", str(out), "--peer", "eazy", "--zmax", "7", *flag]) == 0
    model = EazyModel.from_dict(load_npz_model(out / "model_eazy.npz"))
    assert (model.prior_band == "F444W") is has_prior
    assert (model.prior_density.size > 0) is has_prior
    assert ("no prior" in caplog.text) is not has_prior

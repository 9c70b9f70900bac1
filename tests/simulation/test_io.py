"""Simulator interfaces: settings, TileSet files, JADES-format mosaics, CLI, RAIL stage, determinism."""

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.simulation import SimulationSettings, simulate_mosaics, simulate_tileset
from rail.deepdisc.simulation.mosaics import (
    CATALOG_FILENAME,
    SEGMENTATION_FILENAME,
    SPECZ_FILENAME,
    mosaic_filename,
)
from rail.deepdisc.tileset.io import read_tileset
from rail.deepdisc.tileset.validation import validate_tileset
from tests.helpers.simdata import default_tileset

SMALL = dict(n_tiles=3, tile_size=48, seed=4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_tiles=0), "n_tiles must be >= 1"),
        (dict(tile_size=8), "tile_size must be >= 16"),
        (dict(bands=["F444X"]), "unknown NIRCam band"),
        (dict(label_fraction=1.5), "label_fraction must be in"),
        (dict(depth={"F070W": 29.0}), "not simulated"),
        (dict(depth=(29.0, 30.0)), "2 values for 9 bands"),
        (dict(density=-1.0), "density must be > 0"),
        (dict(psf_obscuration=1.0), "psf_obscuration"),
        (dict(mag_limit=50.0), "mag_limit"),
    ],
)
def test_settings_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SimulationSettings(**kwargs)


def test_settings_depths_resolve_and_replace_is_stable():
    s = SimulationSettings(bands="COSMOSWEB4", depth={"f444w": 29.0}, depth_offset=0.5)
    assert s.depths[-1] == pytest.approx(29.5)
    assert s.depths[0] == pytest.approx(29.9 + 0.5)
    again = dataclasses.replace(s, psf_fwhm_scale=1.2)
    assert again.depths == s.depths
    assert SimulationSettings(n_tiles=5).field_shape == (256, 384)  # 2 rows x 3 columns of 128 px
    assert SimulationSettings(field_size=100).field_shape == (100, 100)


def test_tileset_contract_and_truth_columns():
    ts = default_tileset()
    ts.check()
    assert ts.images.shape[1:] == (9, 128, 128) and ts.flux_unit == "nJy"
    assert set(np.asarray(ts.tiles["kind"]).astype(str)) == {"grid"}
    o = ts.objects
    for col in ("redshift_true", "true_mag_F444W", "true_is_star", "ebv"):
        assert np.all(np.isfinite(o[col].astype(float)))
    assert np.all(o["primary"])
    assert 2.0 < np.median(o["redshift_true"]) < 3.5


def test_segmentation_ids_equal_catalog_ids_and_boxes_hold_footprints():
    ts = default_tileset()
    for t in range(ts.n_tiles):
        obj = ts.tile_objects(t)
        seg = ts.segmaps[t]
        assert set(np.unique(seg[seg > 0]).tolist()) == set(obj["object_id"].tolist())
        for i, oid in enumerate(obj["object_id"]):
            yy, xx = np.nonzero(seg == oid)
            assert xx.min() == obj["bbox_x0"][i] and xx.max() + 1 == obj["bbox_x1"][i]
            assert yy.min() == obj["bbox_y0"][i] and yy.max() + 1 == obj["bbox_y1"][i]


def test_same_seed_identical_files_other_seed_differs(tmp_path):
    s = SimulationSettings(**SMALL)
    a = simulate_tileset(s, path=tmp_path / "a.h5", progress_bar=False)
    simulate_tileset(s, path=tmp_path / "b.h5", progress_bar=False)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    c = simulate_tileset(dataclasses.replace(s, seed=5), progress_bar=False)
    assert not np.array_equal(a.images, c.images)
    back = read_tileset(tmp_path / "a.h5")
    np.testing.assert_array_equal(back.images, a.images)
    np.testing.assert_array_equal(back.objects["redshift_true"], a.objects["redshift_true"])


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    out = tmp_path_factory.mktemp("mosaic")
    s = SimulationSettings(n_tiles=4, tile_size=96, seed=8)
    return s, simulate_mosaics(s, out / "jades", tileset_path=out / "tiles.h5", progress_bar=False), out


def test_mosaics_follow_the_jades_layout(mosaic):
    s, paths, out = mosaic
    assert set(paths["mosaics"]) == set(s.bands)
    for band, path in paths["mosaics"].items():
        assert path.name == mosaic_filename(band) and band.lower() in path.name
        with fits.open(path) as hdul:
            assert hdul[0].data is None and "TARG_RA" in hdul[0].header
            sci = hdul["SCI"]
            assert sci.header["BUNIT"] == "MJy/sr" and sci.data.shape == s.field_shape
            assert np.sqrt(sci.header["PIXAR_A2"]) == pytest.approx(s.pixel_scale)
            assert WCS(sci.header).proj_plane_pixel_scales()[0].to_value("arcsec") == pytest.approx(
                s.pixel_scale
            )
            assert np.all(hdul["ERR"].data > 0) and "WHT" in hdul
    assert paths["segmentation"].name == SEGMENTATION_FILENAME
    with fits.open(paths["catalog"]) as cat:
        assert paths["catalog"].name == CATALOG_FILENAME
        names = [h.name for h in cat[1:]]
        assert names[:5] == ["FLAG", "SIZE", "CIRC", "KRON", "PHOTOZ"]
        ids = cat["FLAG"].data["ID"]
        for name in names:
            t = cat[name].data
            np.testing.assert_array_equal(t["ID"], ids)
            assert "RA" in t.names and "DEC" in t.names
        for col in ("F444W_KRON", "F444W_KRON_e", "F444W_CIRC0", "F090W_CIRC6_ei"):
            assert col in cat["KRON"].data.names or col in cat["CIRC"].data.names
        assert set(np.unique(cat["FLAG"].data["FLAG_ST"])) <= {0, 1}
        for col in ("X", "Y", "BBOX_XMIN", "BBOX_XMAX", "BBOX_YMIN", "BBOX_YMAX"):
            assert col in cat["SIZE"].data.names
    with fits.open(paths["specz"]) as sz:
        assert paths["specz"].name == SPECZ_FILENAME
        t = sz[1].data
        for col in (
            "NIRSpec_ID",
            "NIRCam_ID",
            "TIER",
            "Field",
            "RA_TARG",
            "Dec_TARG",
            "z_Spec",
            "z_Spec_flag",
        ):
            assert col in t.names
        assert set(np.char.strip(t["z_Spec_flag"].astype(str))) <= set("ABCDE")
        assert set(t["NIRCam_ID"]) <= set(ids)


def test_mosaic_segmentation_ids_equal_catalog_ids(mosaic):
    _, paths, _ = mosaic
    seg = fits.getdata(paths["segmentation"], 0)
    ids = fits.getdata(paths["catalog"], "FLAG")["ID"]
    assert set(np.unique(seg[seg > 0]).tolist()) == set(ids.tolist())
    size = fits.getdata(paths["catalog"], "SIZE")
    for row in size[:20]:
        yy, xx = np.nonzero(seg == row["ID"])
        assert (xx.min(), xx.max(), yy.min(), yy.max()) == (
            row["BBOX_XMIN"],
            row["BBOX_XMAX"],
            row["BBOX_YMIN"],
            row["BBOX_YMAX"],
        )


def test_mosaic_and_tileset_paths_agree(mosaic):
    s, paths, _ = mosaic
    ts = read_tileset(paths["tileset"])
    assert ts.n_tiles == 4
    with fits.open(paths["mosaics"]["F444W"]) as hdul:
        njy = hdul["SCI"].data.astype(float) * hdul["SCI"].header["PIXAR_SR"] * 1e15
    c = s.bands.index("F444W")
    for t in range(ts.n_tiles):
        x0, y0 = int(ts.tiles["x0"][t]), int(ts.tiles["y0"][t])
        np.testing.assert_allclose(ts.images[t, c], njy[y0 : y0 + 96, x0 : x0 + 96], rtol=1e-5, atol=1e-6)
    kron = fits.getdata(paths["catalog"], "KRON")
    prim = ts.primary_objects()
    order = np.searchsorted(kron["ID"], prim["object_id"])
    flux, err = kron["F444W_KRON"][order], kron["F444W_KRON_e"][order]
    ok = flux > err
    np.testing.assert_allclose(prim["mag_F444W"][ok], 31.4 - 2.5 * np.log10(flux[ok]), atol=1e-6)
    sz = fits.getdata(paths["specz"], 1)
    good = np.isin(np.char.strip(sz["z_Spec_flag"].astype(str)), ["A", "B", "C"])
    assert good.sum() == np.isfinite(prim["redshift"]).sum()
    labelled = dict(zip(prim["object_id"], prim["redshift"]))
    for nid, z in zip(sz["NIRCam_ID"][good], sz["z_Spec"][good]):
        assert labelled[nid] == pytest.approx(z)


def test_mosaic_files_are_deterministic(mosaic, tmp_path):
    s, paths, _ = mosaic
    again = simulate_mosaics(s, tmp_path, progress_bar=False)
    for key in ("segmentation", "catalog", "specz"):
        assert again[key].read_bytes() == paths[key].read_bytes()
    assert again["mosaics"]["F090W"].read_bytes() == paths["mosaics"]["F090W"].read_bytes()


def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    assert (
        main(
            [
                "simulate",
                "-o",
                str(out),
                "--tiles",
                "2",
                "--size",
                "32",
                "--seed",
                "3",
                "--no-progress",
                "--preset",
                "F150W,F444W",
                "--label-fraction",
                "0.5",
            ]
        )
        == 0
    )
    summary = validate_tileset(out)
    assert summary.n_tiles == 2 and tuple(summary.bands) == ("F150W", "F444W")
    assert "tiles: 2 of 32x32 px" in capsys.readouterr().out
    assert main(["simulate", "-o", str(out), "--tiles", "0"]) == 2
    assert "n_tiles must be >= 1, got 0" in capsys.readouterr().err


def test_stage_writes_tileset_and_checks_options(tmp_path):
    from rail.creation.engines.deepdisc_simulator import DeepDiscSimulator

    stage = DeepDiscSimulator.make_stage(
        name="sim_test",
        tile_size=32,
        bands="COSMOSWEB4",
        progress_bar=False,
        depth={"F444W": 29.0},
        output=str(tmp_path / "sim.h5"),
    )
    assert stage.settings().depths[-1] == 29.0
    handle = stage.sample(n_samples=2, seed=6)
    assert handle.data.n_tiles == 2 and handle.data.bands == ("F115W", "F150W", "F277W", "F444W")
    assert validate_tileset(handle.path).n_tiles == 2
    with pytest.raises(ConfigError, match="did you mean 'tile_size'"):
        DeepDiscSimulator.make_stage(name="sim_bad", tile_sise=32)


def test_streaming_without_memory(tmp_path):
    s = SimulationSettings(**SMALL)
    assert simulate_tileset(s, path=tmp_path / "s.h5", progress_bar=False, in_memory=False) is None
    in_memory = simulate_tileset(s, progress_bar=False)
    np.testing.assert_array_equal(read_tileset(tmp_path / "s.h5").images, in_memory.images)
    with pytest.raises(ConfigError, match="in_memory=False needs a path"):
        simulate_tileset(s, in_memory=False)


def test_dust_map_gives_the_objects_ebv(tmp_path):
    from rail.deepdisc.dust import sfd_ebv
    from tests.helpers.jades_files import write_sfd_map

    folder = write_sfd_map(tmp_path / "dust" / "sfd")
    ts = simulate_tileset(SimulationSettings(n_tiles=1, tile_size=32, dustmap_dir=str(tmp_path / "dust")),
                          progress_bar=False)
    expected = sfd_ebv(ts.objects["ra"], ts.objects["dec"], map_dir=folder)
    assert ts.n_objects > 0 and np.all(expected > 0)
    np.testing.assert_allclose(ts.objects["ebv"], expected, rtol=1e-6)


def test_missing_dust_maps_raise(tmp_path):
    from rail.deepdisc.exceptions import DustMapError

    s = SimulationSettings(n_tiles=1, tile_size=32, dustmap_dir=str(tmp_path))
    with pytest.raises(DustMapError, match=r"SFD_dust_4096_ngp.fits, SFD_dust_4096_sgp.fits not found"):
        simulate_tileset(s, progress_bar=False)


def test_stage_mosaic_mode(tmp_path):
    from rail.creation.engines.deepdisc_simulator import DeepDiscSimulator

    stage = DeepDiscSimulator.make_stage(
        name="sim_mosaic",
        tile_size=32,
        bands="COSMOSWEB4",
        progress_bar=False,
        mosaic_dir=str(tmp_path / "m"),
        output=str(tmp_path / "m.h5"),
    )
    handle = stage.sample(n_samples=4, seed=2)
    assert handle.data.n_tiles == 4
    assert (tmp_path / "m" / CATALOG_FILENAME).exists()


def test_tile_wcs_maps_object_pixels_to_their_sky_positions(mosaic):
    _, paths, _ = mosaic
    for ts in (default_tileset(), read_tileset(paths["tileset"])):
        for t in (0, ts.n_tiles - 1):
            obj = ts.tile_objects(t)
            wcs = WCS(fits.Header.fromstring(str(ts.tiles["wcs"][t])))
            ra, dec = wcs.wcs_pix2world(obj["x"], obj["y"], 0)
            np.testing.assert_allclose(ra, obj["ra"], atol=1e-9)
            np.testing.assert_allclose(dec, obj["dec"], atol=1e-9)

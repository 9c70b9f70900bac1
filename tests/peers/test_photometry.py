"""Peer photometry: magnitude/flux conventions, dereddening, TileSet -> catalog, aperture photometry."""

import numpy as np
import pytest

from rail.deepdisc.dust import band_extinction
from rail.deepdisc.exceptions import ConfigError, TileSetError
from rail.deepdisc.peers.photometry import (
    AB_ZEROPOINT_NJY,
    MIN_MAG_ERROR,
    NONDETECTION_MAG,
    ApertureSettings,
    aperture_photometry,
    catalog_magnitudes,
    deredden,
    magnitudes_to_fluxes,
    tileset_to_catalog,
)
from tests.helpers.tilesets import make_tileset


def test_magnitudes_to_fluxes_known_values():
    mags = np.array([[AB_ZEROPOINT_NJY, 26.4, NONDETECTION_MAG, np.nan]])
    errs = np.array([[0.1, 2.5 / np.log(10) * 0.2, 28.9, 0.1]])
    flux, err = magnitudes_to_fluxes(mags, errs)
    np.testing.assert_allclose(flux[0, :3], [1.0, 100.0, 0.0])
    np.testing.assert_allclose(err[0, :3], [np.log(10) / 2.5 * 0.1, 20.0, 10.0])
    assert np.isnan(flux[0, 3]) and np.isnan(err[0, 3])
    _, err0 = magnitudes_to_fluxes(np.array([[AB_ZEROPOINT_NJY]]), np.array([[0.0]]))
    assert err0[0, 0] == pytest.approx(np.log(10) / 2.5 * MIN_MAG_ERROR)


def test_deredden_brightens_detections_only():
    bands = ("F090W", "F444W")
    coeff = band_extinction(bands)
    assert coeff[0] > 1.0 and coeff[0] > coeff[1] >= 0.0
    mags = np.array([[25.0, 24.0], [NONDETECTION_MAG, np.nan]])
    out = deredden(mags, np.array([0.1, 0.1]), bands)
    np.testing.assert_allclose(out[0], mags[0] - 0.1 * coeff)
    assert out[1, 0] == NONDETECTION_MAG and np.isnan(out[1, 1])
    np.testing.assert_array_equal(deredden(mags, np.array([0.0, np.nan]), bands), mags)


def test_catalog_magnitudes_names_missing_columns():
    with pytest.raises(ConfigError, match="lacks column.*magerr_F444W"):
        catalog_magnitudes({"mag_F444W": np.ones(2)}, ["F444W"])


def test_tileset_to_catalog_one_row_per_primary(small_tileset):
    table = tileset_to_catalog(small_tileset, bands=["F444W", "F115W"])
    prim = small_tileset.primary_objects()
    np.testing.assert_array_equal(table["object_id"], prim["object_id"])
    assert set(table) == {
        "object_id",
        "ra",
        "dec",
        "redshift",
        "ebv",
        "mag_F444W",
        "magerr_F444W",
        "mag_F115W",
        "magerr_F115W",
    }
    with pytest.raises(TileSetError, match="F090W not in this TileSet"):
        tileset_to_catalog(small_tileset, bands=["F090W"])


def _one_blob_tileset():
    ts = make_tileset(n_tiles=2, size=48, objects_per_tile=1, seed=3)
    # analytic flux of the conftest blobs: amplitude 20, sigma 1.5 px -> 20 * 2 pi 1.5^2 nJy
    return ts, 20 * 2 * np.pi * 1.5**2


def test_aperture_photometry_recovers_blob_flux():
    ts, total = _one_blob_tileset()
    radius = 0.15
    enclosed = total * (1 - np.exp(-((radius / ts.pixel_scale) ** 2) / (2 * 1.5**2)))
    mags, errs = aperture_photometry(ts, bands=["F150W"], aperture=ApertureSettings(radius_arcsec=radius))
    assert mags.shape == (ts.n_primary, 1)
    expected_err = np.sqrt(np.pi * (radius / ts.pixel_scale) ** 2) / enclosed * 2.5 / np.log(10)
    np.testing.assert_allclose(mags[:, 0], AB_ZEROPOINT_NJY - 2.5 * np.log10(enclosed), atol=5 * expected_err)
    np.testing.assert_allclose(errs[:, 0], expected_err, rtol=0.3)


def test_measure_missing_fills_only_nan():
    ts, _ = _one_blob_tileset()
    ts.objects["mag_F444W"][:] = np.nan
    table = tileset_to_catalog(ts, measure_missing=True)
    assert np.all(np.isfinite(table["mag_F444W"])) and np.all(table["mag_F444W"] < 27)
    np.testing.assert_array_equal(table["mag_F150W"], 26.0)


def test_aperture_photometry_needs_calibrated_units():
    ts, _ = _one_blob_tileset()
    ts.flux_unit = "counts"
    with pytest.raises(TileSetError, match="flux_unit 'counts' is not an f_nu unit"):
        aperture_photometry(ts)


def test_aperture_settings_validate():
    with pytest.raises(ConfigError, match="radius_arcsec must be > 0"):
        ApertureSettings(radius_arcsec=0.0)


def test_faint_aperture_flux_is_a_nondetection():
    ts, _ = _one_blob_tileset()
    ts.images[:] = np.random.default_rng(0).normal(0, 1, ts.images.shape).astype(np.float32)
    mags, errs = aperture_photometry(ts, bands=["F150W"])
    faint = mags[:, 0] == NONDETECTION_MAG
    assert faint.any()
    assert np.all((errs[faint, 0] > 25) & (errs[faint, 0] < 30))

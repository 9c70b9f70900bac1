"""Photometric catalog reader: extensions by name, nJy -> AB, error suffixes, star flags, flux kinds."""

import numpy as np
import pytest
from astropy.io import fits

from rail.deepdisc.exceptions import ConfigError, PrepError, PrepWarning
from rail.deepdisc.prep.catalog import flux_to_mag, read_photometry
from tests.helpers.jades_files import write_photometry


@pytest.fixture
def catalog(tmp_path):
    flux = {"F115W": np.array([1.0, 100.0, 0.0, np.nan]), "F444W": np.array([10.0, 3630.78, 5.0, 1.0])}
    err = {b: 0.1 * np.nan_to_num(f, nan=1.0) + 0.01 for b, f in flux.items()}
    return write_photometry(
        tmp_path / "phot.fits",
        [11, 12, 13, 14],
        [53.1] * 4,
        [-27.8] * 4,
        flux,
        err,
        star=[False, True, False, False],
    )


def test_flux_to_mag_known_values():
    mag, err = flux_to_mag(np.array([1.0, 3630.78e3, -1.0]), np.array([0.1, 3630.78, 1.0]))
    assert mag[0] == pytest.approx(31.4) and mag[1] == pytest.approx(15.0, abs=1e-5) and np.isnan(mag[2])
    assert err[0] == pytest.approx(2.5 / np.log(10) * 0.1) and np.isnan(err[2])


def test_read_kron_magnitudes_and_stars(catalog):
    cat = read_photometry(catalog, ["F115W", "F444W"])
    assert cat.object_id.tolist() == [11, 12, 13, 14]
    assert cat.mag["F115W"][0] == pytest.approx(31.4) and cat.mag["F115W"][1] == pytest.approx(26.4)
    assert np.isnan(cat.mag["F115W"][2]) and np.isnan(cat.mag["F115W"][3])  # no coverage: 0 or NaN flux
    assert cat.magerr["F444W"][0] == pytest.approx(2.5 / np.log(10) * 1.01 / 10.0)
    assert cat.star.tolist() == [False, True, False, False]  # 32768 is not a star


def test_circular_aperture_kind(catalog):
    cat = read_photometry(catalog, ["F444W"], flux_kind="circ2")
    assert cat.mag["F444W"][0] == pytest.approx(-2.5 * np.log10(10.0 * 0.6) + 31.4)


def test_error_suffix_en_is_accepted(tmp_path):
    flux, err = {"F444W": np.array([10.0])}, {"F444W": np.array([1.0])}
    path = write_photometry(tmp_path / "p.fits", [1], [53.1], [-27.8], flux, err, err_suffix="_en")
    assert read_photometry(path, ["F444W"]).magerr["F444W"][0] == pytest.approx(2.5 / np.log(10) * 0.1)


def test_missing_band_warns_and_gives_nan(catalog):
    with pytest.warns(PrepWarning, match="no KRON flux column for band\\(s\\) F090W"):
        cat = read_photometry(catalog, ["F090W", "F444W"])
    assert np.isnan(cat.mag["F090W"]).all()


def test_bad_kind_and_bad_files(catalog, tmp_path):
    with pytest.raises(ConfigError, match="flux_kind must be KRON or CIRC0..CIRC6"):
        read_photometry(catalog, ["F444W"], flux_kind="CIRC9")
    with pytest.raises(PrepError, match="photometric catalog not found"):
        read_photometry(tmp_path / "none.fits", ["F444W"])
    other = tmp_path / "other.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("ID", "K", array=[1])], name="FLAG")]
    ).writeto(other)
    with pytest.raises(PrepError, match="no 'KRON' extension"):
        read_photometry(other, ["F444W"])


def test_fluxes_are_kept_negative_included(tmp_path):
    flux = {"F444W": np.array([10.0, -3.0, 0.0, np.nan, 4.0])}
    err = {"F444W": np.array([1.0, 2.0, 1.0, 1.0, np.nan])}
    path = write_photometry(tmp_path / "neg.fits", [1, 2, 3, 4, 5], [53.1] * 5, [-27.8] * 5, flux, err)
    cat = read_photometry(path, ["F444W"])
    # a negative flux is a measurement (its magnitude is undefined); 0 and NaN mean no coverage
    np.testing.assert_array_equal(cat.flux["F444W"], [10.0, -3.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(cat.fluxerr["F444W"], [1.0, 2.0, np.nan, np.nan, np.nan])
    assert np.isnan(cat.mag["F444W"][1])

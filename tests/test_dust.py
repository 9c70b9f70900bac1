"""SFD E(B-V) lookup against a tiny map in SFD's two-file ZEA layout, the missing-map error, and the MW law."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from rail.deepdisc.dust import (
    MW_RV,
    SF11_RECALIBRATION,
    SFD_FILES,
    band_extinction,
    fetch_command,
    mw_extinction_mag,
    sfd_ebv,
)
from rail.deepdisc.exceptions import ConfigError, DustMapError
from rail.deepdisc.filters import filter_curve, pivot_wavelength
from rail.deepdisc.presets import NIRCAM_BANDS
from tests.helpers.jades_files import sfd_header, write_sfd_map

NPIX = 64


def expected_ebv(ra, dec):
    """Evaluate the linear test map by hand: 0.005 + 1e-4 x + 2e-4 y (+0.5 in the north)."""
    gal = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").galactic
    out = []
    for lon, b in zip(gal.l.deg, gal.b.deg):
        pole = "ngp" if b >= 0 else "sgp"
        x, y = WCS(sfd_header(pole, NPIX)).wcs_world2pix([[lon, b]], 0)[0]
        out.append(0.005 + 1e-4 * x + 2e-4 * y + (0.5 if pole == "ngp" else 0.0))
    return np.array(out)


def test_lookup_matches_the_map_in_both_hemispheres(tmp_path):
    folder = write_sfd_map(tmp_path / "sfd", NPIX)
    ra = np.array([53.16, 53.10, 150.1, 189.2])  # GOODS-S twice (south), COSMOS, GOODS-N (north)
    dec = np.array([-27.78, -27.90, 2.2, 62.2])
    got = sfd_ebv(ra, dec, map_dir=folder, recalibration=1.0)
    np.testing.assert_allclose(got, expected_ebv(ra, dec), rtol=1e-5)
    assert got[0] < 0.5 and got[3] > 0.5
    assert got[0] != got[1]  # interpolated, not constant


def test_default_is_the_sf11_recalibration_and_data_dir_is_accepted(tmp_path):
    write_sfd_map(tmp_path / "sfd", NPIX)
    ra, dec = np.array([53.16]), np.array([-27.78])
    raw = sfd_ebv(ra, dec, map_dir=tmp_path / "sfd", recalibration=1.0)
    assert sfd_ebv(ra, dec, map_dir=tmp_path)[0] == pytest.approx(SF11_RECALIBRATION * raw[0])
    with pytest.raises(ValueError, match="recalibration must be > 0"):
        sfd_ebv(ra, dec, map_dir=tmp_path, recalibration=0.0)


def test_empty_input(tmp_path):
    folder = write_sfd_map(tmp_path / "sfd", NPIX)
    assert sfd_ebv(np.array([]), np.array([]), map_dir=folder).shape == (0,)


def test_missing_map_gives_the_fetch_command(tmp_path):
    folder = tmp_path / "dust" / "sfd"
    with pytest.raises(
        DustMapError, match=r"SFD_dust_4096_ngp.fits, SFD_dust_4096_sgp.fits not found"
    ) as err:
        sfd_ebv(np.array([53.16]), np.array([-27.78]), map_dir=folder)
    msg = str(err.value)
    assert fetch_command(tmp_path / "dust") in msg
    assert "dustmaps.config.config['data_dir']=" in msg and "dustmaps.sfd.fetch()" in msg


def test_one_missing_pole_file(tmp_path):
    folder = write_sfd_map(tmp_path / "sfd", NPIX)
    (folder / SFD_FILES[0]).unlink()
    with pytest.raises(DustMapError, match="SFD_dust_4096_ngp.fits not found"):
        sfd_ebv(np.array([53.16]), np.array([-27.78]), map_dir=folder)


def test_damaged_map(tmp_path):
    folder = tmp_path / "sfd"
    folder.mkdir()
    for name in SFD_FILES:
        (folder / name).write_bytes(b"not a fits file")
    with pytest.raises(DustMapError, match="cannot be read"):
        sfd_ebv(np.array([53.16]), np.array([-27.78]), map_dir=folder)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        sfd_ebv(np.zeros(2), np.zeros(3), map_dir="unused")


def test_missing_map_in_a_data_dir_fetches_into_it(tmp_path):
    with pytest.raises(DustMapError, match="not found") as err:
        sfd_ebv(np.array([53.16]), np.array([-27.78]), map_dir=tmp_path)
    assert fetch_command(tmp_path) in str(err.value)


def test_law_covers_every_nircam_band_and_falls_to_the_red():
    coeff = band_extinction(NIRCAM_BANDS)
    assert np.all(coeff > 0) and np.all(np.isfinite(coeff))
    by_band = dict(zip(NIRCAM_BANDS, coeff))
    assert by_band["F090W"] > by_band["F150W"] > by_band["F200W"] > by_band["F277W"] > by_band["F444W"] > 0
    # extinction falls monotonically with pivot wavelength across the whole camera
    order = np.argsort([pivot_wavelength(b) for b in NIRCAM_BANDS])
    assert np.all(np.diff(coeff[order]) < 0)


def test_f150w_coefficient_in_the_literature_range():
    # A_lambda / E(B-V) near 1.5 micron for R_V = 3.1: CCM89 0.65, F99 0.59, G23 0.62 at F150W's pivot;
    # the 2MASS H band (1.65 micron) has 0.45-0.58 in Schlafly & Finkbeiner (2011) and Fitzpatrick (1999)
    assert 0.55 < band_extinction(["F150W"])[0] < 0.70


def test_band_average_agrees_with_the_law_at_the_pivot_wavelength():
    from astropy import units as u
    from dust_extinction.parameter_averages import G23

    law = G23(Rv=MW_RV)
    for band in ("F090W", "F150W", "F277W", "F444W"):
        direct = MW_RV * float(law(pivot_wavelength(band) * u.AA))
        # the band mean and the pivot value differ by the curvature of the law over the band (< 3 %)
        assert band_extinction([band])[0] == pytest.approx(direct, rel=0.03), band


def test_band_average_weights_the_filter_curve():
    wave, trans = filter_curve("F444W")
    inside = trans > 0
    k = mw_extinction_mag(wave[inside], 1.0)
    # the average lies strictly inside the range of the law over the band
    assert k.min() < band_extinction(["F444W"])[0] < k.max()


def test_extinction_scales_with_ebv_and_r_v():
    wave = np.array([9000.0, 15000.0, 44000.0])
    np.testing.assert_allclose(mw_extinction_mag(wave, 0.2), 0.2 * mw_extinction_mag(wave, 1.0))
    assert mw_extinction_mag(5500.0, 1.0) == pytest.approx(MW_RV, rel=5e-3)  # A_V = R_V E(B-V)
    np.testing.assert_allclose(mw_extinction_mag(wave[:, None], np.array([0.0, 0.1]))[:, 0], 0.0)
    assert band_extinction(["F090W"], r_v=5.0)[0] > band_extinction(["F090W"])[0]


def test_wavelength_outside_the_law_is_refused():
    with pytest.raises(ConfigError, match="outside the 912-320000 Angstrom of the G23 law"):
        mw_extinction_mag(np.array([5000.0, 400000.0]), 0.1)

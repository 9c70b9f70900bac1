"""SFD E(B-V) lookup against a tiny map in SFD's two-file ZEA layout, and the missing-map error."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from rail.deepdisc.dust import SF11_RECALIBRATION, SFD_FILES, fetch_command, sfd_ebv
from rail.deepdisc.exceptions import DustMapError
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

"""The strip-wise mosaic writer equals the in-RAM simulator pixel for pixel, and its FITS files are standard."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from rail.deepdisc.cli import main
from rail.deepdisc.simulation import SimulationSettings, simulate_mosaics
from rail.deepdisc.simulation.catalogs import photometry_catalog_hdul
from rail.deepdisc.simulation.field import FieldContext, make_wcs, simulate_field
from rail.deepdisc.simulation.fitsio import MappedFits
from rail.deepdisc.simulation.mosaics import ARCSEC_PER_RAD, CATALOG_STREAM, MOSAIC_STREAM, NJY_PER_MJY


@pytest.mark.parametrize("correlation, realism", [(0.0, True), (0.7, True), (0.0, False)])
def test_strips_equal_the_in_ram_field(tmp_path, correlation, realism):
    """Sweeping 80 rows in strips of 16 gives the in-RAM field's images, segmentation and catalog exactly.

    With the defaults (bulge+disc galaxies, source photon noise) and without them.
    """
    extra = {} if realism else {"bulge_disc": False, "photon_noise": False}
    s = SimulationSettings(field_size=80, seed=5, density=2.0, noise_correlation_px=correlation, **extra)
    assert (s.bulge_disc, s.photon_noise) == (realism, realism)
    files = simulate_mosaics(s, tmp_path, progress_bar=False, strip_rows=16)
    ref = simulate_field(FieldContext(s), s.field_shape, make_wcs(s.field_shape, s.pixel_scale),
                         np.random.default_rng([s.seed, MOSAIC_STREAM]))
    assert len(ref.catalog["x"]) > 5  # objects cross strip edges
    seg = fits.getdata(files["segmentation"])
    np.testing.assert_array_equal(seg, ref.rendered.segmap)
    for b, band in enumerate(s.bands):
        with fits.open(files["mosaics"][band]) as hdul:
            to_mjysr = 1.0 / (s.pixel_scale**2 / ARCSEC_PER_RAD**2 * NJY_PER_MJY)
            np.testing.assert_array_equal(hdul["SCI"].data, (ref.rendered.images[b] * to_mjysr).astype(np.float32))
            assert np.all(hdul["ERR"].data == np.float32(ref.rendered.sigma[b] * to_mjysr))
    expected = photometry_catalog_hdul(ref, s, np.random.default_rng([s.seed, CATALOG_STREAM]))
    with fits.open(files["catalog"]) as got:
        for name in ("FLAG", "SIZE", "CIRC", "KRON", "PHOTOZ"):
            for col in expected[name].columns.names:
                np.testing.assert_array_equal(got[name].data[col], expected[name].data[col], err_msg=col)
    ids = fits.getdata(files["catalog"], "FLAG")["ID"]
    assert set(np.unique(seg[seg > 0]).tolist()) == set(ids.tolist())
    if realism:  # the photon noise is in the images and in the errors
        assert np.all(ref.rendered.gain > 0)
        assert "true_bulge_to_total" in ref.catalog


def test_photutils_mosaics_in_ram_or_refused(tmp_path, monkeypatch):
    """photutils detection renders small mosaics in RAM (same files as simulate_field), refuses larger ones."""
    from rail.deepdisc.exceptions import ConfigError
    from rail.deepdisc.simulation import mosaics

    s = SimulationSettings(field_size=64, seed=3, density=2.0, detection="photutils")
    files = simulate_mosaics(s, tmp_path, progress_bar=False)
    ref = simulate_field(FieldContext(s), s.field_shape, make_wcs(s.field_shape, s.pixel_scale),
                         np.random.default_rng([s.seed, MOSAIC_STREAM]))
    np.testing.assert_array_equal(fits.getdata(files["segmentation"]), ref.rendered.segmap)
    monkeypatch.setattr(mosaics, "IN_RAM_MAX_PIXELS", 63 * 64)
    with pytest.raises(ConfigError, match="detection='photutils' needs the whole 64 x 64 px field in RAM"):
        simulate_mosaics(s, tmp_path / "big", progress_bar=False)
    assert not (tmp_path / "big").exists()


def test_mapped_fits_bytes_equal_astropy(tmp_path):
    """A file filled through memory maps is byte for byte what HDUList.writeto writes."""
    rng = np.random.default_rng(0)
    sci = rng.normal(size=(7, 5)).astype(np.float32)
    seg = rng.integers(0, 9, size=(7, 5)).astype(np.int32)
    header = fits.Header({"BUNIT": "MJy/sr"})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, header=header, name="SCI"),
                  fits.ImageHDU(seg, name="SEG")]).writeto(tmp_path / "ref.fits")
    out = MappedFits(tmp_path / "mapped.fits", [
        (fits.PrimaryHDU(), None),
        (fits.ImageHDU(np.zeros((1, 1), np.float32), header=header, name="SCI"), sci.shape),
        (fits.ImageHDU(np.zeros((1, 1), np.int32), name="SEG"), seg.shape),
    ])
    assert not (tmp_path / "mapped.fits").exists()  # renamed into place only when complete
    out.data[1][:4], out.data[1][4:] = sci[:4], sci[4:]
    out.data[2][:] = seg
    out.close()
    assert (tmp_path / "mapped.fits").read_bytes() == (tmp_path / "ref.fits").read_bytes()


def test_cli_simulate_mosaics_without_a_tileset(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["simulate", "--mosaic-dir", str(out), "--field-size", "48", "--preset", "F150W,F444W",
                 "--no-progress"]) == 0
    assert len(list(out.glob("*_drz.fits"))) == 3 and not list(tmp_path.glob("*.h5"))
    assert main(["simulate", "--field-size", "48"]) == 2
    assert "give -o/--output (a TileSet) or --mosaic-dir" in capsys.readouterr().err

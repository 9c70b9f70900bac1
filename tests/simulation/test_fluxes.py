"""The simulator's TileSets carry catalog fluxes (deepdisc-tiles v2): nJy, negative allowed, twins of the mags."""

import numpy as np

from rail.deepdisc.tileset.contract import flux_columns
from tests.helpers.simdata import default_tileset


def test_flux_columns_are_the_magnitudes_in_njy():
    ts = default_tileset()
    o = ts.objects
    assert set(flux_columns(ts.bands)) <= set(o)
    negative = 0
    for band in ts.bands:
        flux, err = o[f"flux_{band}"], o[f"fluxerr_{band}"]
        assert np.all(np.isfinite(flux)) and np.all(err > 0)
        det = flux > err
        np.testing.assert_allclose(o[f"mag_{band}"][det], 31.4 - 2.5 * np.log10(flux[det]), atol=1e-9)
        np.testing.assert_allclose(o[f"magerr_{band}"][det], 2.5 / np.log(10) * err[det] / flux[det], rtol=1e-9)
        # below one sigma the magnitude is the 1-sigma limit: the flux keeps the measurement
        np.testing.assert_allclose(o[f"mag_{band}"][~det], 31.4 - 2.5 * np.log10(err[~det]), atol=1e-9)
        negative += int((flux < 0).sum())
    assert negative > 0  # measured fluxes of dropouts scatter around zero
    assert "flux_err_F444W" not in o

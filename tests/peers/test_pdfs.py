"""Grid PDFs: normalisation, resampling, point estimates with known answers."""

import numpy as np
import pytest

from rail.deepdisc.peers.pdfs import normalise_pdfs, point_estimates, resample_pdfs


def test_normalise_handles_empty_rows():
    z = np.linspace(0.0, 4.0, 401)
    pdfs = normalise_pdfs(z, np.vstack([np.exp(-z), np.zeros_like(z), np.full_like(z, np.nan)]))
    np.testing.assert_allclose(np.trapezoid(pdfs, z, axis=1), 1.0)
    np.testing.assert_allclose(pdfs[1], 0.25)


def test_point_estimates_of_an_exponential():
    z = np.linspace(0.0, 20.0, 20001)
    est = point_estimates(z, normalise_pdfs(z, np.exp(-2.0 * z)[None]))
    assert est["zmode"][0] == 0.0
    assert est["zmean"][0] == pytest.approx(0.5, abs=1e-3)
    assert est["zmedian"][0] == pytest.approx(np.log(2) / 2.0, abs=1e-3)


def test_resample_keeps_the_distribution():
    z_in = np.geomspace(0.01, 8.0, 300)
    pdf = normalise_pdfs(z_in, np.exp(-0.5 * ((z_in - 2.0) / 0.2) ** 2)[None])
    z_out = np.linspace(0.0, 8.0, 801)
    out = resample_pdfs(z_in, pdf, z_out)
    assert np.trapezoid(out[0], z_out) == pytest.approx(1.0)
    assert point_estimates(z_out, out)["zmean"][0] == pytest.approx(2.0, abs=0.01)

"""NIRCam filter curves and AB photometry."""

import numpy as np
import pytest

from rail.deepdisc.filters import C_ANGSTROM_PER_S, ab_magnitudes, pivot_wavelength
from rail.deepdisc.presets import get_preset


def test_flat_fnu_spectrum_has_its_ab_magnitude_in_every_band():
    wave = np.linspace(5000, 60000, 20000)
    m_ab = 25.0
    fnu = 10 ** (-0.4 * (m_ab + 48.6))
    flam = fnu * C_ANGSTROM_PER_S / wave**2
    mags = ab_magnitudes(wave, flam, get_preset("JADES9"))
    np.testing.assert_allclose(mags, m_ab, atol=1e-3)


def test_pivot_wavelengths_are_ordered_like_the_preset():
    piv = [pivot_wavelength(b) for b in get_preset("JADES9")]
    assert np.all(np.diff(piv) > 0)
    assert piv[0] == pytest.approx(9020, rel=0.02) and piv[-1] == pytest.approx(44040, rel=0.02)


def test_zero_flux_is_infinite_magnitude():
    wave = np.linspace(5000, 60000, 1000)
    assert np.isinf(ab_magnitudes(wave, np.zeros_like(wave), ["F444W"])).all()

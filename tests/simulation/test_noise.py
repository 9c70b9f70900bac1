"""Source photon noise: Poisson in electrons with the gain at which the sky's photon noise is the depth."""

import numpy as np
import pytest

from rail.deepdisc.filters import pivot_wavelength
from rail.deepdisc.simulation import FieldContext, SimulationSettings, make_wcs, simulate_field
from rail.deepdisc.simulation.morphology import Morphology
from rail.deepdisc.simulation.noise import (
    draw_photon_noise,
    photon_gain,
    pixel_sigma,
    sky_background_mjysr,
)
from rail.deepdisc.simulation.render import make_psf_transfer, render_field

BANDS = ("F150W", "F444W")


def _star_draws(settings, flux_njy, n_draws, shape=(24, 24)):
    """Noisy images (D, B, H, W) of one star at the centre, the noiseless model (B, H, W) and the gain."""
    morph = Morphology(r_e=np.zeros(1), sersic_n=np.full(1, np.nan), q=np.ones(1), beta=np.zeros(1))
    xy = np.array([[shape[1] / 2, shape[0] / 2]])
    flux = np.full((1, len(settings.bands)), flux_njy)
    transfer = make_psf_transfer(settings)
    out = [
        render_field(xy, flux, morph, settings, shape, np.random.default_rng([7, d]), transfer)
        for d in range(n_draws)
    ]
    return np.stack([f.images for f in out]), out[0].model, out[0].gain, out[0].sigma


def test_sky_of_the_gain_has_the_depth_noise():
    """By construction g = b / sigma^2: a flat source as bright as the sky gets Poisson noise sigma."""
    s = SimulationSettings(bands=BANDS)
    sigma = pixel_sigma(s.depths, pixel_scale=s.pixel_scale, aperture_diameter=0.2)
    sky = sky_background_mjysr([pivot_wavelength(b) / 1e4 for b in BANDS])
    assert np.all((sky > 0.05) & (sky < 0.5))  # JWST's 1-5 micron background, MJy/sr
    gain = photon_gain(sigma, sky, s.pixel_scale)
    sky_njy = sky * 1e15 * (s.pixel_scale / 206264.806) ** 2
    noise = draw_photon_noise(np.random.default_rng(0), np.broadcast_to(sky_njy[:, None, None], (2, 200, 200)), gain)
    np.testing.assert_allclose(noise.std(axis=(1, 2)), sigma, rtol=0.02)
    np.testing.assert_allclose(noise.mean(axis=(1, 2)), 0.0, atol=0.01 * sigma.max())


def test_photon_noise_variance_grows_with_flux_as_poisson():
    """Repeated draws of a bright star: pixel variance = sky variance + model / gain, linear in the flux."""
    s = SimulationSettings(bands=BANDS)
    excess = []
    for flux in (2e3, 8e3):
        images, model, gain, sigma = _star_draws(s, flux, 150)
        var = images.var(axis=0, ddof=1)
        bright = model > 0.3 * model.max(axis=(1, 2), keepdims=True)  # the core, per band
        for b in range(len(BANDS)):
            predicted = sigma[b] ** 2 + model[b][bright[b]] / gain[b]
            assert var[b][bright[b]].sum() == pytest.approx(predicted.sum(), rel=0.12)
        excess.append(var[1][bright[1]].sum() - sigma[1] ** 2 * bright[1].sum())
    # 4x the flux, 4x the photon variance (not 16x as for noise proportional to the signal, not 1x as sky)
    assert excess[1] / excess[0] == pytest.approx(4.0, rel=0.15)
    quiet, model, gain, sigma = _star_draws(SimulationSettings(bands=BANDS, photon_noise=False), 8e3, 60)
    assert gain is None
    core = model[1] > 0.3 * model[1].max()
    assert quiet.var(axis=0, ddof=1)[1][core].mean() == pytest.approx(sigma[1] ** 2, rel=0.25)


def test_photon_noise_changes_only_the_pixels_and_errors():
    """Same seed with and without photon noise: same objects and labels; errors include the source term."""
    cats = []
    for on in (False, True):
        s = SimulationSettings(seed=3, bands=BANDS, photon_noise=on, density=3.0)
        shape = (128, 128)
        f = simulate_field(FieldContext(s), shape, make_wcs(shape, s.pixel_scale), np.random.default_rng(3))
        cats.append(f.catalog)
    off, on = cats
    assert len(off["x"]) >= 3
    np.testing.assert_array_equal(off["x"], on["x"])
    np.testing.assert_array_equal(off["redshift"], on["redshift"])
    ratio = on["flux_err_F444W"] / off["flux_err_F444W"]
    assert np.all(ratio >= 1.0 - 1e-12) and ratio.max() > 1.01  # bright objects get larger errors
    order = np.argsort(off["flux_F444W"])
    assert ratio[order[-1]] > ratio[order[0]]  # the brightest gains more than the faintest

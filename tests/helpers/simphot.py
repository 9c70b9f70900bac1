"""Catalog photometry drawn from the simulator's galaxy population at the simulator's depths (no images)."""

import numpy as np

from rail.deepdisc.peers.photometry import AB_ZEROPOINT_NJY
from rail.deepdisc.simulation.population import REFERENCE_BAND, draw_population
from rail.deepdisc.simulation.seds import photometry_grid
from rail.deepdisc.simulation.settings import SimulationSettings


def simulated_photometry(bands="JADES9", *, area_arcsec2=5000.0, seed=0, depth_offset=0.0):
    """A flux catalog of simulated galaxies (stars dropped): true redshifts, fluxes with Gaussian noise.

    Each band's error is a fifth of the flux at the simulator's 5-sigma depth of that band (0.2" apertures),
    plus ``depth_offset`` magnitudes. Columns ``object_id``, ``redshift``, ``ebv`` (0), ``true_mag_<BAND>``,
    ``flux_<BAND>``/``fluxerr_<BAND>`` (nJy, negative allowed) and ``mag_<BAND>``/``magerr_<BAND>`` (99 and the
    1-sigma limit below S/N 1).
    """
    settings = SimulationSettings(bands=bands, depth_offset=depth_offset)
    grid = photometry_grid(settings.bands + (REFERENCE_BAND,), z_max=settings.z_max)
    rng = np.random.default_rng(seed)
    pop = draw_population(rng, settings, grid, area_arcsec2)
    gal = ~pop.is_star
    true_mag = pop.mag[gal]
    n = len(true_mag)
    flux = 10 ** (-0.4 * (true_mag - AB_ZEROPOINT_NJY))
    sigma = 10 ** (-0.4 * (np.asarray(settings.depths) - AB_ZEROPOINT_NJY)) / 5.0
    err = np.broadcast_to(sigma, flux.shape)
    obs = flux + rng.normal(size=flux.shape) * err
    table = {"object_id": np.arange(1, n + 1), "redshift": pop.z[gal], "ebv": np.zeros(n)}
    det = obs > err
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(det, AB_ZEROPOINT_NJY - 2.5 * np.log10(obs), 99.0)
        magerr = np.where(det, 2.5 / np.log(10) * err / obs, AB_ZEROPOINT_NJY - 2.5 * np.log10(err))
    for k, band in enumerate(settings.bands):
        table[f"true_mag_{band}"] = true_mag[:, k]
        table[f"flux_{band}"], table[f"fluxerr_{band}"] = obs[:, k], err[:, k].copy()
        table[f"mag_{band}"], table[f"magerr_{band}"] = mag[:, k], magerr[:, k]
    return table

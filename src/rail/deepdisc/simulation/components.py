"""Two-component galaxies: a compact de Vaucouleurs bulge with a passive SED plus an exponential disc.

With ``bulge_disc`` on, every galaxy keeps its drawn total SED (`population`: template, redshift, dust, lines),
its total magnitudes and its overall size (`morphology`), and is split into two light profiles with their own
colours, so colours vary across a galaxy as in real ones (red cores, bluer discs):

- bulge: Sersic n = 4, the redder part. Its SED is a passive COSMOS template (Ell-S0; for passive galaxies one
  at least as red as the galaxy's own) at the galaxy's redshift and dust, without nebular lines. Its share of
  the rest-frame V light (5500 Angstrom, where the templates are normalised) is the bulge-to-total ratio B/T,
  drawn per class: passive galaxies are bulge-dominated (Beta(6, 2), mean 0.75), spirals Beta(2, 5) (0.29),
  starbursts Beta(1.2, 8) (0.13). In another band its share is B/T times the bulge-to-galaxy flux ratio of
  the two SEDs there (both normalised at 5500 Angstrom), capped at `MAX_BULGE_SHARE`.
- disc: Sersic n = 1, the rest of the galaxy's light in every band (the star-forming light: all nebular lines
  sit in it). Disc plus bulge equal the drawn galaxy in every band, so catalog truth is unchanged.

Sizes: the bulge-to-disc half-light radius ratio is drawn log-uniformly per class (`RADIUS_RATIO`) and the two
radii are set so their light-weighted mean equals the galaxy's drawn half-light radius. Axis ratios: the disc
takes the drawn one, the bulge is rounder (at least `BULGE_MIN_Q`); both share the position angle. Everything
is drawn from its own random stream, so switching ``bulge_disc`` changes nothing else in a field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.simulation.morphology import Morphology
from rail.deepdisc.simulation.population import PASSIVE_TEMPLATES, Population
from rail.deepdisc.simulation.seds import PhotometryGrid

__all__ = ["BulgeDisc", "draw_bulge_disc", "BULGE_SERSIC_N", "DISC_SERSIC_N"]

BULGE_SERSIC_N = 4.0
DISC_SERSIC_N = 1.0
#: Beta-distribution parameters of the rest-V bulge-to-total ratio per class (passive, spiral, starburst).
BULGE_TO_TOTAL = {0: (6.0, 2.0), 1: (2.0, 5.0), 2: (1.2, 8.0)}
#: Range of the bulge-to-disc half-light radius ratio per class (log-uniform).
RADIUS_RATIO = {0: (0.3, 0.7), 1: (0.15, 0.4), 2: (0.15, 0.4)}
BULGE_MIN_Q = 0.6
MAX_BULGE_SHARE = 0.98


@dataclass
class BulgeDisc:
    """Bulge and disc of N objects (stars: B/T = 0 and zero radii; they stay points).

    Attributes
    ----------
    bulge_to_total : ndarray (N,)
        Bulge share of the rest-frame V light.
    bulge_template : ndarray (N,)
        Continuous COSMOS template index of the bulge SED (NaN for stars).
    bulge : Morphology
        Bulge shapes (Sersic n = 4; radii in arcsec).
    disc : Morphology
        Disc shapes (Sersic n = 1).
    band_share : ndarray (N, B)
        Bulge share of each band's flux (the grid's bands), in [0, `MAX_BULGE_SHARE`].
    """

    bulge_to_total: np.ndarray
    bulge_template: np.ndarray
    bulge: Morphology
    disc: Morphology
    band_share: np.ndarray

    @property
    def galaxy(self) -> np.ndarray:
        """Objects drawn as two components (those with a non-zero disc radius)."""
        return self.disc.r_e > 0


def draw_bulge_disc(
    rng: np.random.Generator, population: Population, morph: Morphology, grid: PhotometryGrid
) -> BulgeDisc:
    """Split every galaxy of a population into a bulge and a disc.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source (its own stream, so the rest of a field is unchanged).
    population : Population
        The objects (``galaxy_class``, ``template``, ``z``, ``ebv_internal``, ``ew_halpha``).
    morph : Morphology
        Their single-profile shapes (``r_e``, ``q``, ``beta``).
    grid : PhotometryGrid
        Photometry of the templates in the population's bands.

    Returns
    -------
    BulgeDisc
    """
    n = len(population)
    cls = population.galaxy_class
    gal = (cls >= 0) & (morph.r_e > 0)
    bt = np.zeros(n)
    ratio = np.ones(n)
    for c, (a, b) in BULGE_TO_TOTAL.items():
        sel = gal & (cls == c)
        k = int(sel.sum())
        bt[sel] = rng.beta(a, b, size=k)
        lo, hi = RADIUS_RATIO[c]
        ratio[sel] = np.exp(rng.uniform(np.log(lo), np.log(hi), size=k))
    reddest = np.where(cls == 0, np.nan_to_num(population.template), PASSIVE_TEMPLATES[1])
    template = np.where(gal, rng.uniform(PASSIVE_TEMPLATES[0], np.maximum(reddest, 0.0)), np.nan)
    q_bulge = np.maximum(morph.q, rng.uniform(BULGE_MIN_Q, 1.0, size=n))
    r_disc = np.where(gal, morph.r_e / (bt * ratio + 1.0 - bt), 0.0)
    share = np.zeros((n, len(grid.bands)))
    if gal.any():
        z, ebv = population.z[gal], population.ebv_internal[gal]
        # each galaxy's own SED family (``mixed`` libraries); the bulge is a passive SED of the same family
        family = None
        if len(grid.families) > 1:
            family = np.array([grid.families.index(f) for f in population.sed_family[gal]])
        total = grid.galaxy_fnu(population.template[gal], z, ebv, population.ew_halpha[gal], family)
        bulge = grid.galaxy_fnu(template[gal], z, ebv, None, family)  # no nebular lines
        with np.errstate(divide="ignore", invalid="ignore"):
            share[gal] = np.nan_to_num(bt[gal, None] * bulge / total)
    nan = np.full(n, np.nan)
    return BulgeDisc(
        bulge_to_total=bt,
        bulge_template=template,
        bulge=Morphology(r_e=r_disc * ratio, sersic_n=np.where(gal, BULGE_SERSIC_N, nan), q=q_bulge,
                         beta=morph.beta),
        disc=Morphology(r_e=r_disc, sersic_n=np.where(gal, DISC_SERSIC_N, nan), q=morph.q, beta=morph.beta),
        band_share=np.clip(share, 0.0, MAX_BULGE_SHARE),
    )

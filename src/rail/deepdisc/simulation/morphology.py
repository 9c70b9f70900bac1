"""Galaxy shapes: Sersic index, half-light radius, axis ratio and position angle.

Half-light radii follow size-luminosity-redshift relations in the spirit of van der Wel et al. (2014) and the
compact sizes JADES measures at z > 6: r_e = r_0 (L/L*)^beta (1+z)^-eta with a log-normal scatter, separately
for passive (early-type) and star-forming (late-type) galaxies, converted to arcsec with the proper angular
scale. Sersic indices are quantised (galsim tabulates each index once per process); stars are points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.simulation.population import Population, arcsec_per_kpc

__all__ = ["Morphology", "draw_morphology", "SERSIC_STEP"]

SERSIC_STEP = 0.25
SERSIC_RANGE = (0.5, 5.5)
#: Per class (passive, late, starburst): r_0 (kpc at L*), beta, eta, scatter (dex), median Sersic n,
#: n scatter (dex).
SIZE_RELATIONS = {
    0: (2.5, 0.60, 1.30, 0.15, 3.5, 0.10),
    1: (4.0, 0.15, 1.00, 0.18, 1.0, 0.15),
    2: (3.0, 0.18, 1.10, 0.20, 1.2, 0.15),
}
R_E_RANGE_ARCSEC = (0.008, 2.0)
#: Beta-distribution parameters of the axis ratio q = b/a, and its floor, per class.
AXIS_RATIO = {0: (5.0, 2.0, 0.3), 1: (2.2, 1.2, 0.1), 2: (2.0, 1.5, 0.15)}


@dataclass
class Morphology:
    """Shapes of N objects.

    Attributes
    ----------
    r_e : ndarray (N,)
        Circularised half-light radius, arcsec (0 for stars).
    sersic_n : ndarray (N,)
        Sersic index, multiple of `SERSIC_STEP` (NaN for stars).
    q : ndarray (N,)
        Axis ratio b/a (1 for stars).
    beta : ndarray (N,)
        Position angle of the major axis, radians from +x towards +y.
    """

    r_e: np.ndarray
    sersic_n: np.ndarray
    q: np.ndarray
    beta: np.ndarray


def draw_morphology(
    rng: np.random.Generator, population: Population, *, size_scale: float = 1.0, z_max: float = 12.0
) -> Morphology:
    """Draw a Sersic shape for every galaxy of a population (stars get points).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    population : Population
        Objects (uses ``galaxy_class``, ``z``, ``luminosity_ratio``).
    size_scale : float
        Multiplies every half-light radius.
    z_max : float
        Largest redshift (for the cosmology table).

    Returns
    -------
    Morphology
    """
    n = len(population)
    r_e = np.zeros(n)
    sersic = np.full(n, np.nan)
    q = np.ones(n)
    beta = rng.uniform(0.0, np.pi, size=n)
    lum = np.nan_to_num(population.luminosity_ratio, nan=1.0)
    scale = arcsec_per_kpc(population.z, z_max)
    for cls, (r0, b, eta, sig, n_med, n_sig) in SIZE_RELATIONS.items():
        sel = population.galaxy_class == cls
        k = int(sel.sum())
        r_kpc = r0 * lum[sel] ** b * (1.0 + population.z[sel]) ** -eta * 10.0 ** rng.normal(0.0, sig, k)
        r_e[sel] = np.clip(r_kpc * scale[sel] * size_scale, *R_E_RANGE_ARCSEC)
        n_draw = np.clip(n_med * 10.0 ** rng.normal(0.0, n_sig, k), *SERSIC_RANGE)
        sersic[sel] = np.round(n_draw / SERSIC_STEP) * SERSIC_STEP
        a, bb, floor = AXIS_RATIO[cls]
        q[sel] = np.clip(rng.beta(a, bb, size=k), floor, 1.0)
    return Morphology(r_e=r_e, sersic_n=sersic, q=q, beta=beta)

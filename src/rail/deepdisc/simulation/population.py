"""The simulated population: redshifts, SED types, dust, luminosities and magnitudes of galaxies and stars.

Galaxies: z from a Gamma-shaped N(z) (default median about 2.7 with a tail to ``z_max``); a class (passive,
star-forming, starburst) whose mix depends on z (no passive galaxies above ``passive_z_max``); a continuous
template index within the class, in the SED family of ``sed_library`` (``mixed`` draws the family per
galaxy); a Calzetti E(B-V); an H-alpha equivalent width for the nebular lines that rises with z and with the
youth of the template; a rest-frame V absolute magnitude from an evolving
Schechter function truncated at the F444W magnitude limit, so high-z galaxies are intrinsically luminous but
apparently faint. Stars and brown dwarfs (z = 0) take a flat-ish F444W number count. This is a JAGUAR-like
empirical model, not a semi-analytic one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rail.deepdisc.simulation.seds import PhotometryGrid

__all__ = ["Population", "draw_population", "distance_modulus", "arcsec_per_kpc", "REFERENCE_BAND"]

#: Band of the magnitude limit and the number counts (always tabulated, simulated or not).
REFERENCE_BAND = "F444W"
Z_MIN = 0.05
PASSIVE_TEMPLATES = (0.0, 7.0)  # Ell1 .. S0
SPIRAL_TEMPLATES = (7.0, 18.999)  # S0 .. Sdm
STARBURST_TEMPLATES = (19.0, 30.0)  # SB0 .. SB11 (old to young)
PASSIVE_DECLINE_Z = 1.5
SCHECHTER_X_GRID = np.geomspace(1e-7, 60.0, 500)  # L / L* grid for inverse-CDF sampling (L <= 60 L*)
STAR_MAG_BRIGHT = 19.0
STAR_COUNT_SLOPE = 0.12  # d log10 N / dm of faint star counts
STAR_T_RANGE = (3000.0, 7000.0)  # K
BROWN_DWARF_T_RANGE = (450.0, 2300.0)  # K
PASSIVE_EBV_MEAN = 0.03
PASSIVE_ALPHA = -1.0  # faint-end slope of passive galaxies (dwarf ellipticals included)
#: Rest-frame H-alpha equivalent width of star-forming galaxies: EW_0 (1+z)^slope (Angstrom), capped,
#: times a youth factor rising from spirals to the youngest starbursts, with a log-normal scatter (dex).
EW_HALPHA_0, EW_HALPHA_SLOPE, EW_HALPHA_MAX, EW_HALPHA_SCATTER = 25.0, 1.5, 2000.0, 0.25
SPIRAL_EBV_FACTOR = 0.7


@dataclass
class Population:
    """Intrinsic properties of N drawn objects (no positions, no Milky-Way dust).

    Attributes
    ----------
    is_star, is_brown_dwarf : ndarray of bool (N,)
    z : ndarray (N,)
        True redshift (0 for stars).
    galaxy_class : ndarray of int (N,)
        0 passive, 1 star-forming, 2 starburst, -1 star.
    template : ndarray (N,)
        Continuous template index within the galaxy's SED family (NaN for stars).
    sed_family : ndarray of str (N,)
        SED family of each galaxy (``cosmos``, ``fsps``; ``""`` for stars).
    temperature : ndarray (N,)
        Star temperature, K (NaN for galaxies).
    ebv_internal : ndarray (N,)
        Calzetti E(B-V), mag.
    ew_halpha : ndarray (N,)
        Rest-frame H-alpha equivalent width of the nebular lines, Angstrom (0 for passive galaxies and stars).
    abs_mag_v : ndarray (N,)
        Rest-frame V absolute AB magnitude (NaN for stars).
    luminosity_ratio : ndarray (N,)
        L_V / L*_V(z) (NaN for stars).
    mag : ndarray (N, B)
        Apparent AB magnitudes in the grid's bands (before Milky-Way extinction).
    mag_ref : ndarray (N,)
        Apparent F444W AB magnitude (before Milky-Way extinction).
    """

    is_star: np.ndarray
    is_brown_dwarf: np.ndarray
    z: np.ndarray
    galaxy_class: np.ndarray
    template: np.ndarray
    sed_family: np.ndarray
    temperature: np.ndarray
    ebv_internal: np.ndarray
    ew_halpha: np.ndarray
    abs_mag_v: np.ndarray
    luminosity_ratio: np.ndarray
    mag: np.ndarray
    mag_ref: np.ndarray

    def __len__(self) -> int:
        return len(self.z)


@lru_cache(maxsize=4)
def _cosmology_tables(z_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from astropy.cosmology import Planck18

    z = np.linspace(Z_MIN / 2, z_max + 0.5, 2000)
    dm = Planck18.distmod(z).value
    scale = Planck18.arcsec_per_kpc_proper(z).value
    return z, dm, scale


def distance_modulus(z: np.ndarray, z_max: float = 12.0) -> np.ndarray:
    """Distance modulus 5 log10(d_L / 10 pc) in a Planck 2018 cosmology.

    Parameters
    ----------
    z : array_like
        Redshifts, up to ``z_max``.
    z_max : float
        Upper end of the cached interpolation table.

    Returns
    -------
    ndarray
        Magnitudes, same shape as ``z``.
    """
    zt, dm, _ = _cosmology_tables(float(z_max))
    return np.interp(z, zt, dm)


def arcsec_per_kpc(z: np.ndarray, z_max: float = 12.0) -> np.ndarray:
    """Proper angular scale in a Planck 2018 cosmology.

    Parameters
    ----------
    z : array_like
        Redshifts, up to ``z_max``.
    z_max : float
        Upper end of the cached interpolation table.

    Returns
    -------
    ndarray
        Arcsec per proper kpc, same shape as ``z``.
    """
    zt, _, scale = _cosmology_tables(float(z_max))
    return np.interp(z, zt, scale)


def _schechter_parameters(z: np.ndarray, galaxy_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evolving V-band M* (AB) and faint-end slope alpha; passive galaxies have a shallow slope."""
    m_star = -21.2 - 0.8 * np.minimum(z, 2.0) / 2.0 + 0.25 * np.maximum(z - 4.0, 0.0)
    alpha = np.clip(-1.3 - 0.1 * z, -2.2, None)
    passive = galaxy_class == 0
    return np.where(passive, m_star - 0.3, m_star), np.where(passive, PASSIVE_ALPHA, alpha)


def _sample_schechter(rng, alpha: np.ndarray, x_min: np.ndarray) -> np.ndarray:
    """Draw L/L* from x^alpha exp(-x) truncated below at ``x_min`` (per object), by inverse CDF."""
    x = SCHECHTER_X_GRID
    dens = x[None, :] ** (alpha[:, None] + 1.0) * np.exp(-x[None, :])  # per d ln x
    dens = np.where(x[None, :] >= x_min[:, None], dens, 0.0)
    cdf = np.cumsum(dens, axis=1)
    total = cdf[:, -1]
    u = rng.uniform(size=len(alpha)) * total
    idx = np.minimum((cdf < u[:, None]).sum(axis=1), len(x) - 1)
    lx = np.log(x)
    jitter = rng.uniform(-0.5, 0.5, size=len(alpha)) * (lx[1] - lx[0])
    out = np.exp(lx[idx] + jitter)
    return np.where(total > 0, np.maximum(out, x_min), x_min)


def _draw_galaxies(rng, n: int, settings, grid: PhotometryGrid, ref: int) -> dict:
    z = rng.gamma(settings.nz_shape, settings.nz_scale, size=n)
    bad = (z < Z_MIN) | (z > settings.z_max)
    while bad.any():
        z[bad] = rng.gamma(settings.nz_shape, settings.nz_scale, size=int(bad.sum()))
        bad = (z < Z_MIN) | (z > settings.z_max)
    p_passive = settings.passive_fraction * np.exp(-z / PASSIVE_DECLINE_Z) * (z < settings.passive_z_max)
    p_burst = np.clip(settings.starburst_weight * (0.3 + 0.65 * (1.0 - np.exp(-z / 1.2))), 0.0, 1.0)
    u = rng.uniform(size=n)
    cls = np.where(u < p_passive, 0, np.where(rng.uniform(size=n) < p_burst, 2, 1))
    burst_lo = STARBURST_TEMPLATES[0] + 5.0 * np.clip((z - 2.0) / 6.0, 0.0, 1.0)
    lo = np.select([cls == 0, cls == 1], [PASSIVE_TEMPLATES[0], SPIRAL_TEMPLATES[0]], burst_lo)
    hi = np.select([cls == 0, cls == 1], [PASSIVE_TEMPLATES[1], SPIRAL_TEMPLATES[1]], STARBURST_TEMPLATES[1])
    template = rng.uniform(lo, hi)
    ebv_mean = np.select(
        [cls == 0, cls == 1],
        [PASSIVE_EBV_MEAN, SPIRAL_EBV_FACTOR * settings.ebv_internal_mean],
        settings.ebv_internal_mean / (1.0 + (z / 4.0) ** 2),
    )
    ebv = np.minimum(rng.exponential(1.0, size=n) * ebv_mean, min(settings.ebv_internal_max, grid.ebv[-1]))
    youth = np.clip(
        (template - PASSIVE_TEMPLATES[1]) / (STARBURST_TEMPLATES[1] - PASSIVE_TEMPLATES[1]), 0.0, 1.0
    )
    ew = (
        EW_HALPHA_0
        * (1.0 + z) ** EW_HALPHA_SLOPE
        * (0.3 + 0.9 * youth)
        * 10.0 ** rng.normal(0.0, EW_HALPHA_SCATTER, n)
    )
    ew = np.where(cls == 0, 0.0, np.minimum(ew, EW_HALPHA_MAX) * settings.emission_line_scale)
    # one family: no draw, so a fixed seed gives the same galaxies as before families existed
    family = np.zeros(n, int) if len(grid.families) == 1 else rng.integers(0, len(grid.families), size=n)
    rel = grid.galaxy_fnu(template, z, ebv, ew, family)  # (n, B+1) relative f_nu
    dm_eff = distance_modulus(z, settings.z_max) - 2.5 * np.log10(1.0 + z)
    with np.errstate(divide="ignore"):
        kcorr = -2.5 * np.log10(np.maximum(rel, 1e-300))
    m_star, alpha = _schechter_parameters(z, cls)
    m_faint = settings.mag_limit - dm_eff - kcorr[:, ref]
    x_min = 10.0 ** (-0.4 * (m_faint - m_star))
    lum = _sample_schechter(rng, alpha, x_min)
    abs_mag = m_star - 2.5 * np.log10(lum)
    mags = abs_mag[:, None] + dm_eff[:, None] + kcorr
    return dict(
        z=z,
        galaxy_class=cls,
        template=template,
        sed_family=np.asarray(grid.families)[family],
        ebv_internal=ebv,
        ew_halpha=ew,
        abs_mag_v=abs_mag,
        luminosity_ratio=lum,
        mags=mags,
    )


def _draw_stars(rng, n: int, settings, grid: PhotometryGrid, ref: int) -> dict:
    is_bd = rng.uniform(size=n) < settings.brown_dwarf_fraction
    log_t = np.where(
        is_bd, rng.uniform(*np.log(BROWN_DWARF_T_RANGE), size=n), rng.uniform(*np.log(STAR_T_RANGE), size=n)
    )
    temperature = np.exp(log_t)
    # p(m) ~ 10^(slope m) on [bright, limit]: inverse CDF
    a = 10.0 ** (STAR_COUNT_SLOPE * STAR_MAG_BRIGHT)
    b = 10.0 ** (STAR_COUNT_SLOPE * settings.mag_limit)
    m_ref = np.log10(a + rng.uniform(size=n) * (b - a)) / STAR_COUNT_SLOPE
    rel = grid.star_fnu(temperature)
    mags = m_ref[:, None] - 2.5 * np.log10(rel / rel[:, ref : ref + 1])
    return dict(is_brown_dwarf=is_bd, temperature=temperature, mags=mags)


def draw_population(
    rng: np.random.Generator, settings, grid: PhotometryGrid, area_arcsec2: float
) -> Population:
    """Draw the objects of a sky area: Poisson numbers of galaxies and stars, then their properties.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    settings : SimulationSettings
        Population parameters (density, N(z), SED mix, dust, magnitude limit, star fraction).
    grid : PhotometryGrid
        Photometry table whose last band is `REFERENCE_BAND` (the simulated bands come first).
    area_arcsec2 : float
        Sky area, arcsec^2.

    Returns
    -------
    Population
        Galaxies first, then stars; ``mag`` holds the simulated bands (the grid's bands but the last).
    """
    ref = len(grid.bands) - 1
    n_gal = rng.poisson(settings.density * area_arcsec2)
    star_ratio = settings.star_fraction / max(1.0 - settings.star_fraction, 1e-9)
    n_star = rng.poisson(settings.density * area_arcsec2 * star_ratio)
    gal = _draw_galaxies(rng, n_gal, settings, grid, ref)
    star = _draw_stars(rng, n_star, settings, grid, ref)
    nan_s = np.full(n_star, np.nan)
    mags = np.concatenate([gal["mags"], star["mags"]])
    return Population(
        is_star=np.r_[np.zeros(n_gal, bool), np.ones(n_star, bool)],
        is_brown_dwarf=np.r_[np.zeros(n_gal, bool), star["is_brown_dwarf"]],
        z=np.r_[gal["z"], np.zeros(n_star)],
        galaxy_class=np.r_[gal["galaxy_class"], np.full(n_star, -1)],
        template=np.r_[gal["template"], nan_s],
        sed_family=np.r_[gal["sed_family"], np.full(n_star, "")],
        temperature=np.r_[np.full(n_gal, np.nan), star["temperature"]],
        ebv_internal=np.r_[gal["ebv_internal"], np.zeros(n_star)],
        ew_halpha=np.r_[gal["ew_halpha"], np.zeros(n_star)],
        abs_mag_v=np.r_[gal["abs_mag_v"], nan_s],
        luminosity_ratio=np.r_[gal["luminosity_ratio"], nan_s],
        mag=mags[:, :ref],
        mag_ref=mags[:, ref],
    )

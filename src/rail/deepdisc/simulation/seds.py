"""Spectral energy distributions and their NIRCam photometry: galaxy SED families, dust, IGM, stars.

Galaxies use an SED family of `rail.deepdisc.simulation.sed_library` (by default the 31 COSMOS templates that
pz-rail-base ships: Polletta et al. 2007 and BC03 starbursts, the LePhare COSMOS set of Ilbert et al. 2009),
ordered red to blue and mixed linearly between neighbours (a continuous template index), reddened with the
Calzetti et al. (2000) law and attenuated by the intergalactic medium following Madau (1995). Stars are black
bodies; brown dwarfs add crude H2O/CH4/CO absorption bands so that they show their characteristic blue
F356W-F444W colours without being galaxies at any redshift.

Nebular emission lines (Balmer, Paschen, [OII], [OIII], [NII], [SIII], HeI) are added with fixed flux ratios
to H-alpha and a per-galaxy H-alpha equivalent width, attenuated like the continuum at their wavelength: they
give the strong [OIII] and H-alpha boosts that JWST sees in F356W-F444W at z > 4.

Everything the renderer needs is tabulated once per process in a `PhotometryGrid`: band-averaged f_nu of every
template, and of its lines per unit H-alpha equivalent width, on a (redshift, E(B-V)) grid, relative to the
template's rest-frame f_nu at 5500 Angstrom. Departures from a population-synthesis simulator such as JAGUAR:
no Lyman-alpha emission, fixed line ratios, templates rather than star-formation histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.filters import filter_curve
from rail.deepdisc.simulation.sed_library import (
    HALPHA,
    LYMAN_LIMIT,
    SedFamily,
    library_families,
    sed_family,
)
from rail.deepdisc.simulation.sed_mismatch import mismatched

__all__ = [
    "PhotometryGrid",
    "calzetti_k",
    "madau_igm_transmission",
    "star_fnu",
    "photometry_grid",
    "check_coverage",
]

CALZETTI_RV = 4.05
#: Lyman-series lines (Angstrom) and their Madau (1995) line-blanketing coefficients.
LYMAN_SERIES = ((1215.67, 3.6e-3), (1025.72, 1.7e-3), (972.537, 1.1846e-3), (949.743, 9.410e-4))
HC_OVER_K = 1.438777e8  # Angstrom K
BROWN_DWARF_T_MAX = 2400.0  # K: molecular bands switch on below this
METHANE_T_MAX = 1500.0  # K: T dwarfs
#: Brown-dwarf absorption bands: centre (Angstrom), Gaussian sigma (Angstrom), optical depth, methane?
BROWN_DWARF_BANDS = (
    (11500.0, 600.0, 1.2, False),
    (14000.0, 700.0, 1.5, False),
    (18800.0, 900.0, 2.0, False),
    (16500.0, 500.0, 1.0, True),
    (22500.0, 1500.0, 1.5, True),
    (27000.0, 2500.0, 2.5, False),
    (33000.0, 1500.0, 3.0, True),
    (46000.0, 1000.0, 0.5, False),
)
#: Nebular lines: rest wavelength (Angstrom) and flux relative to H-alpha (low-metallicity, star-forming).
EMISSION_LINES = (
    (3727.0, 0.60),
    (3869.0, 0.08),
    (4102.0, 0.09),
    (4341.0, 0.16),
    (4861.0, 0.35),
    (4959.0, 0.53),
    (5007.0, 1.60),
    (5876.0, 0.04),
    (6563.0, 1.00),
    (6584.0, 0.10),
    (6725.0, 0.12),
    (9069.0, 0.04),
    (9531.0, 0.10),
    (10830.0, 0.06),
    (12818.0, 0.055),
    (18751.0, 0.12),
)
Z_GRID_STEP = 0.02
EBV_GRID_STEP = 0.05
FILTER_SAMPLES = 200
STAR_TEMPERATURES = np.geomspace(400.0, 12000.0, 90)


def calzetti_k(wave_angstrom: np.ndarray) -> np.ndarray:
    """Calzetti et al. (2000) starburst attenuation curve k(lambda) = A_lambda / E(B-V), R_V = 4.05.

    Below 1200 Angstrom the curve is continued linearly; above 2.2 micron the near-IR form is continued
    and floored at zero.

    Parameters
    ----------
    wave_angstrom : ndarray
        Rest-frame wavelength, Angstrom.

    Returns
    -------
    ndarray
        k(lambda), same shape.

    Examples
    --------
    >>> round(float(calzetti_k(np.array(5500.0))), 2)
    4.05
    """
    lam = np.asarray(wave_angstrom, float) / 1e4
    uv = 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3) + CALZETTI_RV
    ir = 2.659 * (-1.857 + 1.040 / lam) + CALZETTI_RV
    k = np.where(lam < 0.63, uv, ir)
    lo, lo2 = 0.12, 0.125
    k_lo = 2.659 * (-2.156 + 1.509 / lo - 0.198 / lo**2 + 0.011 / lo**3) + CALZETTI_RV
    k_lo2 = 2.659 * (-2.156 + 1.509 / lo2 - 0.198 / lo2**2 + 0.011 / lo2**3) + CALZETTI_RV
    k = np.where(lam < lo, k_lo + (lam - lo) * (k_lo2 - k_lo) / (lo2 - lo), k)
    return np.clip(k, 0.0, None)


def madau_igm_transmission(wave_obs_angstrom: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Mean intergalactic transmission exp(-tau) of Madau (1995): Lyman series plus Lyman continuum.

    Parameters
    ----------
    wave_obs_angstrom : ndarray
        Observed wavelength, Angstrom (broadcast against ``z``).
    z : float or ndarray
        Source redshift.

    Returns
    -------
    ndarray
        Transmission in [0, 1].
    """
    lam = np.asarray(wave_obs_angstrom, float)
    zp1 = 1.0 + np.asarray(z, float)
    tau = np.zeros(np.broadcast(lam, zp1).shape)
    for line, coeff in LYMAN_SERIES:
        tau = tau + np.where(lam < line * zp1, coeff * (lam / line) ** 3.46, 0.0)
    xc = lam / LYMAN_LIMIT
    xe = zp1 + 0.0 * xc
    cont = (
        0.25 * xc**3 * (xe**0.46 - xc**0.46)
        + 9.4 * xc**1.5 * (xe**0.18 - xc**0.18)
        - 0.7 * xc**3 * (xc**-1.32 - xe**-1.32)
        - 0.023 * (xe**1.68 - xc**1.68)
    )
    tau = tau + np.where(xc < xe, np.clip(cont, 0.0, None), 0.0)
    return np.exp(-tau)


def star_fnu(wave_angstrom: np.ndarray, temperature_k: float) -> np.ndarray:
    """f_nu shape (arbitrary units) of a star or brown dwarf: a black body with molecular bands below 2400 K.

    Parameters
    ----------
    wave_angstrom : ndarray (L,)
        Wavelength, Angstrom.
    temperature_k : float
        Effective temperature, K.

    Returns
    -------
    ndarray (L,)
        f_nu, arbitrary normalisation.
    """
    lam = np.asarray(wave_angstrom, float)
    x = np.clip(HC_OVER_K / (lam * temperature_k), None, 600.0)
    fnu = lam**-3 / np.expm1(x)
    if temperature_k < BROWN_DWARF_T_MAX:
        strength = min(1.0, (BROWN_DWARF_T_MAX - temperature_k) / 800.0)
        methane = float(np.clip((METHANE_T_MAX - temperature_k) / 500.0, 0.0, 1.0))
        tau = np.zeros_like(lam)
        for centre, sigma, depth, is_ch4 in BROWN_DWARF_BANDS:
            amp = depth * (methane if is_ch4 else strength)
            tau += amp * np.exp(-0.5 * ((lam - centre) / sigma) ** 2)
        tau += np.where(lam < 1e4, 3.0 * strength * (1e4 - lam) / 3e3, 0.0)  # K I / Na I wings
        fnu = fnu * np.exp(-tau)
    return fnu


def _band_weights(band: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Return observed wavelengths, weights T/lambda dlambda (summing to 1) and int T/lambda dlambda."""
    fw, ft = filter_curve(band)
    keep = ft > 1e-3
    lo, hi = fw[keep].min(), fw[keep].max()
    wave = np.linspace(lo, hi, FILTER_SAMPLES)
    w = np.interp(wave, fw, ft) / wave
    return wave, w / w.sum(), float(w.sum() * (wave[1] - wave[0]))


def _line_response(cont: np.ndarray, band: str, z: np.ndarray, ebv: np.ndarray) -> np.ndarray:
    """Band f_nu (T, Z, E) of the nebular lines per Angstrom of rest H-alpha equivalent width.

    A line of flux F = r EW_Ha f_lambda(Ha) adds F lambda_l T(lambda_l (1+z)) / (c int T/lambda dlambda) to
    the band-averaged f_nu; in units of the f_nu shape this is EW_Ha S_nu(Ha) r lambda_l T / (lambda_Ha^2 N).
    """
    fw, ft = filter_curve(band)
    _, _, norm = _band_weights(band)
    out = np.zeros((len(cont), len(z), len(ebv)))
    for lam, ratio in EMISSION_LINES:
        obs = lam * (1.0 + z)
        trans = np.interp(obs, fw, ft, left=0.0, right=0.0) * madau_igm_transmission(obs, z)
        dust = 10.0 ** (-0.4 * calzetti_k(np.array(lam)) * ebv)
        out += (ratio * lam / (HALPHA**2 * norm)) * trans[None, :, None] * dust[None, None, :]
    return out * cont[:, None, None]


@dataclass(frozen=True)
class PhotometryGrid:
    """Band-averaged f_nu of the galaxy SEDs and of stars, tabulated for fast interpolation.

    Attributes
    ----------
    bands : tuple of str
        Band order of the last axis.
    z : ndarray (Z,)
        Redshift grid.
    ebv : ndarray (E,)
        Internal E(B-V) grid, mag.
    galaxy : ndarray (F x T, Z, E, B)
        Observed band-averaged f_nu over the rest-frame f_nu at 5500 Angstrom (IGM and dust included), the T
        templates of each of the F families one after the other.
    lines : ndarray (F x T, Z, E, B)
        The same for the nebular lines, per Angstrom of rest-frame H-alpha equivalent width.
    star_temperature : ndarray (S,)
        Star temperatures, K.
    star : ndarray (S, B)
        Band-averaged f_nu of stars, arbitrary normalisation.
    families : tuple of str
        SED families of the galaxy templates, in table order.
    """

    bands: tuple[str, ...]
    z: np.ndarray
    ebv: np.ndarray
    galaxy: np.ndarray
    lines: np.ndarray
    star_temperature: np.ndarray
    star: np.ndarray
    families: tuple[str, ...] = ("cosmos",)

    @property
    def n_templates(self) -> int:
        """Number of templates T of each family (the continuous index runs over [0, T - 1])."""
        return int(self.galaxy.shape[0]) // len(self.families)

    def galaxy_fnu(
        self,
        template: np.ndarray,
        z: np.ndarray,
        ebv: np.ndarray,
        ew_halpha: np.ndarray | None = None,
        family: np.ndarray | None = None,
    ) -> np.ndarray:
        """Interpolate (linearly in template index, redshift and E(B-V)) the relative band fluxes.

        Parameters
        ----------
        template, z, ebv : ndarray (N,)
            Continuous template index in [0, T - 1], redshift in the grid range, E(B-V) in the grid range.
        ew_halpha : ndarray (N,), optional
            Rest-frame H-alpha equivalent width, Angstrom (lines scale with it; None = no lines).
        family : ndarray of int (N,), optional
            Index into ``families`` of each galaxy's family (None: the first).

        Returns
        -------
        ndarray (N, B)
            f_nu(band) / f_nu,rest(5500 Angstrom).
        """
        index = np.asarray(template, float)
        if family is not None:
            index = index + self.n_templates * np.asarray(family, float)
        t0, tw = _cell(index, np.arange(self.galaxy.shape[0], dtype=float))
        z0, zw = _cell(np.asarray(z, float), self.z)
        e0, ew = _cell(np.asarray(ebv, float), self.ebv)
        out = np.zeros((len(t0), len(self.bands)))
        for dt, wt in ((0, 1 - tw), (1, tw)):
            for dz, wz in ((0, 1 - zw), (1, zw)):
                for de, we in ((0, 1 - ew), (1, ew)):
                    idx = (t0 + dt, z0 + dz, e0 + de)
                    cell = self.galaxy[idx]
                    if ew_halpha is not None:
                        cell = cell + np.asarray(ew_halpha, float)[:, None] * self.lines[idx]
                    out += (wt * wz * we)[:, None] * cell
        return out

    def star_fnu(self, temperature: np.ndarray) -> np.ndarray:
        """Band f_nu (N, B) of stars of the given temperatures (K), interpolated in log temperature."""
        i0, w = _cell(np.log(np.asarray(temperature, float)), np.log(self.star_temperature))
        return (1 - w)[:, None] * self.star[i0] + w[:, None] * self.star[i0 + 1]


def _cell(value: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower grid index and linear weight of each value (clipped to the grid)."""
    value = np.clip(value, grid[0], grid[-1])
    i0 = np.clip(np.searchsorted(grid, value, side="right") - 1, 0, len(grid) - 2)
    return i0, (value - grid[i0]) / (grid[i0 + 1] - grid[i0])


@lru_cache(maxsize=8)
def photometry_grid(
    bands: tuple[str, ...], *, z_max: float = 12.0, ebv_max: float = 1.0, sed_library: str = "cosmos",
    sed_mismatch: float = 0.0,
) -> PhotometryGrid:
    """Tabulate `PhotometryGrid` for a band tuple (cached per process: about a second per band list).

    Parameters
    ----------
    bands : tuple of str
        NIRCam bands.
    z_max : float
        Largest redshift of the grid.
    ebv_max : float
        Largest internal E(B-V) of the grid, mag.
    sed_library : str
        Galaxy SED library (`rail.deepdisc.simulation.sed_library.SED_LIBRARIES`).
    sed_mismatch : float
        Departure of the galaxies' SEDs from the library's templates, in units of EAZY's template error
        function (`rail.deepdisc.simulation.sed_mismatch`; 0 = the templates exactly).

    Returns
    -------
    PhotometryGrid
    """
    families = tuple(mismatched(sed_family(name), sed_mismatch) for name in library_families(sed_library))
    for fam in families:
        check_coverage(fam, bands, z_max)
    zg = np.arange(0.0, z_max + Z_GRID_STEP / 2, Z_GRID_STEP)
    eg = np.arange(0.0, ebv_max + EBV_GRID_STEP / 2, EBV_GRID_STEP)
    n_sed = sum(len(fam.fnu) for fam in families)
    galaxy = np.empty((n_sed, len(zg), len(eg), len(bands)))
    lines = np.empty_like(galaxy)
    star = np.empty((len(STAR_TEMPERATURES), len(bands)))
    for b, band in enumerate(bands):
        obs, weight, _ = _band_weights(band)
        rest = obs[None, :] / (1.0 + zg[:, None])  # (Z, K)
        att = madau_igm_transmission(obs[None, :], zg[:, None]) * weight  # (Z, K)
        dust = 10.0 ** (-0.4 * calzetti_k(rest)[:, :, None] * eg[None, None, :])  # (Z, K, E)
        t0 = 0
        for fam in families:
            sample = np.interp if fam.name == "cosmos" else _bin_average
            shape = np.stack([sample(rest, fam.wave, f) for f in fam.fnu])  # (T, Z, K)
            sl = slice(t0, t0 + len(fam.fnu))
            galaxy[sl, ..., b] = np.einsum("tzk,zk,zke->tze", shape, att, dust, optimize=True)
            lines[sl, ..., b] = _line_response(fam.halpha_continuum, band, zg, eg)
            t0 = sl.stop
        star[:, b] = [np.dot(star_fnu(obs, t), weight) for t in STAR_TEMPERATURES]
    return PhotometryGrid(
        bands=tuple(bands),
        z=zg,
        ebv=eg,
        galaxy=galaxy,
        lines=lines,
        star_temperature=STAR_TEMPERATURES,
        star=star,
        families=tuple(fam.name for fam in families),
    )


def check_coverage(family: SedFamily, bands: tuple[str, ...], z_max: float) -> None:
    """Refuse an SED family whose rest-frame wavelengths do not cover ``bands`` from z = 0 to ``z_max``.

    Needed: from the bluest band's blue edge at ``z_max`` (not below the Lyman limit, where the IGM absorbs
    everything at the redshifts that bring it into NIRCam's bands) to the reddest band's red edge at z = 0.

    Raises
    ------
    ConfigError
        Naming the family, its range and the range needed.
    """
    edges = [_band_weights(band)[0] for band in bands]
    lo = max(min(w[0] for w in edges) / (1.0 + z_max), LYMAN_LIMIT)
    hi = max(w[-1] for w in edges)
    if family.wave[0] > lo or family.wave[-1] < hi:
        raise ConfigError(
            f"SED family {family.name!r} covers rest-frame {family.wave[0]:.0f}-{family.wave[-1]:.0f} A, but bands "
            f"{' '.join(bands)} at z = 0-{z_max:g} need {lo:.0f}-{hi:.0f} A"
        )


def _bin_average(rest: np.ndarray, wave: np.ndarray, fnu: np.ndarray) -> np.ndarray:
    """Mean of an SED over the interval each (evenly spaced, per row) sample of ``rest`` stands for.

    Unlike point sampling, it keeps the flux of lines narrower than the samples' spacing (FSPS templates
    carry nebular lines one wavelength step wide); the COSMOS path keeps point sampling (its outputs are
    unchanged).
    """
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (fnu[1:] + fnu[:-1]) * np.diff(wave))])
    half = 0.5 * np.abs(np.gradient(rest, axis=-1))
    lo, hi = rest - half, rest + half
    return (np.interp(hi, wave, cum) - np.interp(lo, wave, cum)) / (hi - lo)

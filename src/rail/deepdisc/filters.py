"""NIRCam filter curves from astro-sedpy, and AB photometry of spectra through them.

The curves are astro-sedpy's ``jwst_<band>.par`` files (post-flight system throughputs). The simulator uses them
to turn redshifted SEDs into AB magnitudes; the template-fitting peers write them in their own formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from rail.deepdisc.presets import resolve_bands

__all__ = ["load_filter", "filter_curve", "pivot_wavelength", "ab_magnitudes"]

#: speed of light in Angstrom / s
C_ANGSTROM_PER_S = 2.99792458e18


@lru_cache(maxsize=None)
def load_filter(band: str):
    """Return astro-sedpy's `Filter` for a NIRCam band (cached).

    Parameters
    ----------
    band : str
        NIRCam band, e.g. ``"F444W"``.

    Returns
    -------
    sedpy.observate.Filter
    """
    from sedpy import observate

    (band,) = resolve_bands([band])
    return observate.Filter(f"jwst_{band.lower()}")


def filter_curve(band: str) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength and transmission of a band.

    Parameters
    ----------
    band : str
        NIRCam band, e.g. ``"F444W"``.

    Returns
    -------
    wavelength : ndarray (L,)
        Angstrom, increasing.
    transmission : ndarray (L,)
        Photon-counting response, peak-normalised.
    """
    f = load_filter(band)
    trans = np.asarray(f.transmission, float)
    return np.asarray(f.wavelength, float), trans / trans.max()


def pivot_wavelength(band: str) -> float:
    """Pivot wavelength of a band.

    Parameters
    ----------
    band : str
        NIRCam band, e.g. ``"F444W"``.

    Returns
    -------
    float
        Angstrom.
    """
    return float(load_filter(band).wave_pivot)


def ab_magnitudes(wave_angstrom: np.ndarray, f_lambda: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """AB magnitudes of spectra through NIRCam bands.

    Parameters
    ----------
    wave_angstrom : ndarray (L,)
        Observed-frame wavelength grid, Angstrom, increasing.
    f_lambda : ndarray (..., L)
        Flux densities in erg/s/cm^2/Angstrom (any leading shape).
    bands : sequence of str
        NIRCam band names.

    Returns
    -------
    ndarray (..., len(bands))
        AB magnitudes; ``inf`` where the band-averaged flux is not positive.

    Notes
    -----
    For a photon-counting detector, the band-averaged f_nu is
    ``int f_lambda T lambda dlambda / int T c / lambda dlambda``; m_AB = -2.5 log10(f_nu) - 48.6.
    """
    wave = np.asarray(wave_angstrom, float)
    flam = np.asarray(f_lambda, float)
    out = np.empty(flam.shape[:-1] + (len(bands),))
    for k, band in enumerate(resolve_bands(list(bands))):
        fw, ft = filter_curve(band)
        t = np.interp(wave, fw, ft, left=0.0, right=0.0)
        num = np.trapezoid(flam * t * wave, wave, axis=-1)
        den = np.trapezoid(t * C_ANGSTROM_PER_S / wave, wave)
        fnu = num / den
        with np.errstate(divide="ignore", invalid="ignore"):
            out[..., k] = np.where(fnu > 0, -2.5 * np.log10(np.where(fnu > 0, fnu, 1.0)) - 48.6, np.inf)
    return out

"""The simulator's Milky-Way dust: a smooth E(B-V) field (or the SFD map) and its NIRCam extinction.

Without a map directory the simulator uses a smooth random field around ``ebv_mw_mean`` (GOODS-S has
E(B-V) of about 0.008); with one, it queries the Schlegel, Finkbeiner & Davis (1998) map with the
Schlafly & Finkbeiner (2011) recalibration through `rail.deepdisc.dust.sfd_ebv`, as the real-data path does.
Extinction per band follows Cardelli, Clayton & Mathis (1989) with R_V = 3.1 at the band's pivot wavelength.
"""

from __future__ import annotations

import numpy as np

from rail.deepdisc.dust import sfd_ebv
from rail.deepdisc.filters import pivot_wavelength

__all__ = ["ccm89_extinction", "band_extinction", "smooth_ebv_field", "milky_way_ebv"]

MW_RV = 3.1
SMOOTH_MODES = 6
SMOOTH_SCALE_DEG = (0.05, 0.5)  # wavelengths of the field's modes


def ccm89_extinction(wave_angstrom: np.ndarray, r_v: float = MW_RV) -> np.ndarray:
    """A_lambda / E(B-V) of Cardelli, Clayton & Mathis (1989), infrared and optical branches.

    Parameters
    ----------
    wave_angstrom : ndarray
        Wavelength, Angstrom (0.3 to 3.3 inverse micron; the infrared power law continues beyond 3.3 micron).
    r_v : float
        Total-to-selective extinction.

    Returns
    -------
    ndarray
        A_lambda / E(B-V).

    Examples
    --------
    >>> round(float(ccm89_extinction(np.array(5495.0))), 2)
    3.1
    """
    x = 1e4 / np.asarray(wave_angstrom, float)
    y = x - 1.82
    a_opt = 1 + y * (
        0.17699
        + y * (-0.50447 + y * (-0.02427 + y * (0.72085 + y * (0.01979 + y * (-0.77530 + y * 0.32999)))))
    )
    b_opt = y * (
        1.41338
        + y * (2.28305 + y * (1.07233 + y * (-5.38434 + y * (-0.62251 + y * (5.30260 - y * 2.09002)))))
    )
    a_ir, b_ir = 0.574 * x**1.61, -0.527 * x**1.61
    a = np.where(x < 1.1, a_ir, a_opt)
    b = np.where(x < 1.1, b_ir, b_opt)
    return a * r_v + b


def band_extinction(bands) -> np.ndarray:
    """A_band / E(B-V) of each band at its pivot wavelength.

    Parameters
    ----------
    bands : sequence of str
        NIRCam bands.

    Returns
    -------
    ndarray (B,)
        Magnitudes of extinction per magnitude of E(B-V).
    """
    return ccm89_extinction(np.array([pivot_wavelength(b) for b in bands]))


def smooth_ebv_field(
    ra: np.ndarray, dec: np.ndarray, *, mean: float, variation: float, seed: int
) -> np.ndarray:
    """Evaluate a smooth, deterministic E(B-V) field: ``mean`` x (1 + ``variation`` x sum of plane waves).

    Parameters
    ----------
    ra, dec : ndarray (N,)
        Sky position, deg.
    mean : float
        Mean E(B-V), mag.
    variation : float
        Relative rms of the field.
    seed : int
        Fixes the waves (the same seed gives the same field everywhere).

    Returns
    -------
    ndarray (N,)
        E(B-V) >= 0, mag.
    """
    rng = np.random.default_rng([seed, 0xD057])
    wavelength = np.exp(rng.uniform(*np.log(SMOOTH_SCALE_DEG), SMOOTH_MODES))
    angle = rng.uniform(0, 2 * np.pi, SMOOTH_MODES)
    phase = rng.uniform(0, 2 * np.pi, SMOOTH_MODES)
    x = np.asarray(ra, float)[:, None] * np.cos(np.deg2rad(np.asarray(dec, float)))[:, None]
    y = np.asarray(dec, float)[:, None]
    arg = 2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / wavelength + phase
    waves = np.cos(arg).sum(axis=1) * np.sqrt(2.0 / SMOOTH_MODES)
    return np.clip(mean * (1.0 + variation * waves), 0.0, None)


def milky_way_ebv(settings, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """E(B-V) of the simulated objects: the SFD map in ``settings.dustmap_dir``, else the smooth field.

    Parameters
    ----------
    settings : SimulationSettings
        ``dustmap_dir``, ``ebv_mw_mean``, ``ebv_mw_variation`` and ``seed``.
    ra, dec : ndarray (N,)
        Sky position, deg.

    Returns
    -------
    ndarray (N,)
        E(B-V), mag (SF11-recalibrated when read from the map).

    Raises
    ------
    DustMapError
        If ``settings.dustmap_dir`` lacks the map files or they cannot be read.
    """
    if settings.dustmap_dir:
        return sfd_ebv(ra, dec, map_dir=settings.dustmap_dir)
    return smooth_ebv_field(
        ra, dec, mean=settings.ebv_mw_mean, variation=settings.ebv_mw_variation, seed=settings.seed
    )

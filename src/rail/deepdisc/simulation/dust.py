"""The simulator's Milky-Way E(B-V): a smooth random field, or the SFD map.

Without a map directory the simulator uses a smooth random field around ``ebv_mw_mean`` (GOODS-S has
E(B-V) of about 0.008); with one, it queries the Schlegel, Finkbeiner & Davis (1998) map with the
Schlafly & Finkbeiner (2011) recalibration through `rail.deepdisc.dust.sfd_ebv`, as the real-data path does.
The extinction per band is the package's one Milky-Way law (`rail.deepdisc.dust.band_extinction`).
"""

from __future__ import annotations

import numpy as np

from rail.deepdisc.dust import sfd_ebv

__all__ = ["smooth_ebv_field", "milky_way_ebv"]

SMOOTH_MODES = 6
SMOOTH_SCALE_DEG = (0.05, 0.5)  # wavelengths of the field's modes


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

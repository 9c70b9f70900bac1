"""Grid redshift PDFs: normalisation, resampling, RAIL's point estimates ``zmode``, ``zmean``, ``zmedian``."""

from __future__ import annotations

import numpy as np

__all__ = ["normalise_pdfs", "resample_pdfs", "point_estimates"]


def normalise_pdfs(zgrid: np.ndarray, pdfs: np.ndarray) -> np.ndarray:
    """Scale each row to unit integral over ``zgrid`` (trapezoid rule); all-zero rows become uniform.

    Parameters
    ----------
    zgrid : ndarray (NZ,)
        Increasing redshifts.
    pdfs : ndarray (N, NZ)
        Non-negative densities.

    Returns
    -------
    ndarray (N, NZ)
    """
    pdfs = np.clip(np.nan_to_num(np.asarray(pdfs, float)), 0.0, None)
    norm = np.trapezoid(pdfs, zgrid, axis=1)
    empty = ~(norm > 0)
    if empty.any():
        pdfs[empty] = 1.0
        norm[empty] = zgrid[-1] - zgrid[0]
    return pdfs / norm[:, None]


def resample_pdfs(z_in: np.ndarray, pdfs: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    """Linearly interpolate PDFs onto another grid (zero outside ``z_in``) and renormalise.

    Parameters
    ----------
    z_in : ndarray (NZ,)
        Grid of ``pdfs``.
    pdfs : ndarray (N, NZ)
        Densities on ``z_in``.
    z_out : ndarray (NO,)
        New grid.

    Returns
    -------
    ndarray (N, NO)
    """
    out = np.empty((pdfs.shape[0], len(z_out)))
    for i, row in enumerate(pdfs):
        out[i] = np.interp(z_out, z_in, row, left=0.0, right=0.0)
    return normalise_pdfs(z_out, out)


def point_estimates(zgrid: np.ndarray, pdfs: np.ndarray) -> dict[str, np.ndarray]:
    """Mode, mean and median of grid PDFs.

    Parameters
    ----------
    zgrid : ndarray (NZ,)
        Increasing redshifts.
    pdfs : ndarray (N, NZ)
        Normalised densities (see `normalise_pdfs`).

    Returns
    -------
    dict
        ``zmode``, ``zmean``, ``zmedian``: ndarray (N,) each; the median interpolates the trapezoid CDF.

    Examples
    --------
    >>> z = np.linspace(0, 2, 201)
    >>> p = normalise_pdfs(z, np.exp(-0.5 * ((z - 1.0) / 0.1) ** 2)[None])
    >>> {k: round(float(v[0]), 3) for k, v in point_estimates(z, p).items()}
    {'zmode': 1.0, 'zmean': 1.0, 'zmedian': 1.0}
    """
    zgrid = np.asarray(zgrid, float)
    zmode = zgrid[np.argmax(pdfs, axis=1)]
    zmean = np.trapezoid(pdfs * zgrid, zgrid, axis=1) / np.trapezoid(pdfs, zgrid, axis=1)
    steps = 0.5 * (pdfs[:, 1:] + pdfs[:, :-1]) * np.diff(zgrid)
    cdf = np.concatenate([np.zeros((len(pdfs), 1)), np.cumsum(steps, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    zmedian = np.array([np.interp(0.5, c, zgrid) for c in cdf])
    return {"zmode": zmode, "zmean": zmean, "zmedian": zmedian}

"""Grid redshift PDFs: normalisation, resampling, point estimates (RAIL's names, eazy's ``zml``).

`point_estimates` gives ``zmode``, ``zmean`` and ``zmedian``; `max_lnp_redshift` the maximum of ln p(z)
refined as eazy's ``zml``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalise_pdfs", "resample_pdfs", "point_estimates", "max_lnp_redshift"]


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


def max_lnp_redshift(zgrid: np.ndarray, lnp: np.ndarray) -> np.ndarray:
    """Redshift of the maximum of ln p(z), refined by a parabola through the peak (eazy's ``zml``).

    As eazy's ``PhotoZ.get_maxlnp_redshift``: the parabola through the grid maximum and its two neighbours.

    Parameters
    ----------
    zgrid : ndarray (NZ,)
        Redshift grid, increasing.
    lnp : ndarray (N, NZ)
        Log densities.

    Returns
    -------
    ndarray (N,)
        The peak's redshift; the grid value where the peak is the first or last point (eazy flags the first
        as -1) or where the three points do not bend down.
    """
    zgrid = np.asarray(zgrid, float)
    lnp = np.asarray(lnp, float)
    peak = np.argmax(lnp, axis=1)
    out = zgrid[peak].copy()
    inner = np.flatnonzero((peak > 0) & (peak < len(zgrid) - 1))
    if not len(inner):
        return out
    cols = peak[inner, None] + np.arange(-1, 2)[None, :]
    x, y = zgrid[cols], lnp[inner[:, None], cols]
    dx, dx2, dy = np.diff(x, axis=1).T, np.diff(x**2, axis=1).T, np.diff(y, axis=1).T
    with np.errstate(divide="ignore", invalid="ignore"):
        c2 = (dy[1] / dx[1] - dy[0] / dx[0]) / (dx2[1] / dx[1] - dx2[0] / dx[0])
        c1 = (dy[0] - c2 * dx2[0]) / dx[0]
        top = -c1 / 2 / c2
    bends = (c2 < 0) & np.isfinite(top)
    out[inner[bends]] = top[bends]
    return out

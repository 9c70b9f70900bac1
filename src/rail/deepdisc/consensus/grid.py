"""Redshift PDFs on the consensus grid: tabulation of any qp ensemble, normalisation, values, point estimates.

Every method's PDFs are compared and multiplied on one grid, ``linspace(zmin, zmax, nzbins)`` (by default the
package's photo-z grid, `rail.deepdisc.constants`). Gaussian mixtures are evaluated in closed form in bounded
chunks, ``qp.interp`` ensembles already on the grid are read as they are, anything else through qp's ``pdf``.
Point estimates are computed here from the grid (``qp.mixmod``'s ``mean()`` is unreliable).
"""

from __future__ import annotations

import numpy as np

from rail.deepdisc.evaluation.coverage import mixture_params

__all__ = ["PDF_ROWS", "pdfs_on_grid", "normalise_rows", "cumulative", "values_at", "grid_point_estimates"]

#: Rows per qp ``pdf`` call for ensembles that are neither mixtures nor already on the grid.
PDF_ROWS = 2000


def normalise_rows(zgrid: np.ndarray, pdfs: np.ndarray) -> np.ndarray:
    """Scale each row to unit integral on ``zgrid`` (trapezoid rule), in place where possible.

    Rows that are all zero, negative or not finite carry no information and become flat.

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
        Increasing redshifts.
    pdfs : ndarray, shape (N, G)
        Densities.

    Returns
    -------
    ndarray, shape (N, G)
        Normalised densities (float64).
    """
    pdfs = np.asarray(pdfs, dtype=float)
    bad = ~np.isfinite(pdfs)
    if bad.any():
        pdfs = np.where(bad, 0.0, pdfs)
    np.maximum(pdfs, 0.0, out=pdfs)
    norm = np.trapezoid(pdfs, zgrid, axis=1)
    empty = ~(norm > 0)
    if empty.any():
        pdfs[empty] = 1.0
        norm[empty] = zgrid[-1] - zgrid[0]
    pdfs /= norm[:, None]
    return pdfs


def pdfs_on_grid(ensemble, zgrid: np.ndarray) -> np.ndarray:
    """Tabulate every PDF of a qp ensemble on ``zgrid`` and normalise it there.

    Probability outside the grid is dropped (the consensus lives on the grid); a PDF with no probability on
    the grid becomes flat (no information).

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs in any representation.
    zgrid : ndarray, shape (G,)
        Increasing redshifts.

    Returns
    -------
    ndarray, shape (N, G)
    """
    zgrid = np.asarray(zgrid, float)
    mix = mixture_params(ensemble)
    if mix is not None:
        return normalise_rows(zgrid, mix.pdf_grid(zgrid))
    data = ensemble.objdata
    if type(ensemble.gen_obj).__name__ == "interp_gen":
        xvals = np.asarray(ensemble.metadata["xvals"], float).reshape(-1)
        if xvals.shape == zgrid.shape and np.allclose(xvals, zgrid, rtol=0, atol=1e-9):
            return normalise_rows(zgrid, np.array(data["yvals"], dtype=float, copy=True).reshape(-1, len(zgrid)))
    n = ensemble.npdf
    out = np.empty((n, len(zgrid)))
    for a in range(0, n, PDF_ROWS):
        b = min(a + PDF_ROWS, n)
        out[a:b] = np.asarray(ensemble[np.arange(a, b)].pdf(zgrid), float).reshape(b - a, len(zgrid))
    return normalise_rows(zgrid, out)


def cumulative(zgrid: np.ndarray, pdfs: np.ndarray) -> np.ndarray:
    """Trapezoid CDF of each row on ``zgrid``, scaled to end at 1.

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
    pdfs : ndarray, shape (N, G)

    Returns
    -------
    ndarray, shape (N, G)
    """
    steps = 0.5 * (pdfs[:, 1:] + pdfs[:, :-1]) * np.diff(zgrid)
    cdf = np.zeros(pdfs.shape)
    np.cumsum(steps, axis=1, out=cdf[:, 1:])
    total = cdf[:, -1:]
    return cdf / np.where(total > 0, total, 1.0)


def values_at(zgrid: np.ndarray, rows: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Linear interpolation of row ``i`` of ``rows`` at ``z[i]`` (0 outside the grid).

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
        Increasing redshifts.
    rows : ndarray, shape (N, G)
        Tabulated functions.
    z : ndarray, shape (N,)
        One redshift per row.

    Returns
    -------
    ndarray, shape (N,)
    """
    z = np.asarray(z, float)
    inside = (z >= zgrid[0]) & (z <= zgrid[-1])
    k = np.clip(np.searchsorted(zgrid, z, side="right") - 1, 0, len(zgrid) - 2)
    t = np.clip((z - zgrid[k]) / (zgrid[k + 1] - zgrid[k]), 0.0, 1.0)
    idx = np.arange(len(z))
    out = (1.0 - t) * rows[idx, k] + t * rows[idx, k + 1]
    return np.where(inside, out, 0.0)


def grid_point_estimates(zgrid: np.ndarray, pdfs: np.ndarray) -> dict[str, np.ndarray]:
    """``zmode``, ``zmean`` and ``zmedian`` of normalised grid PDFs, vectorised over rows.

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
        Increasing redshifts.
    pdfs : ndarray, shape (N, G)
        Densities normalised on the grid.

    Returns
    -------
    dict of str -> ndarray (N,)
        The mode (grid point of the maximum), the mean (trapezoid) and the median (the trapezoid CDF
        interpolated linearly at 1/2).

    Examples
    --------
    >>> z = np.linspace(0, 2, 201)
    >>> p = normalise_rows(z, np.exp(-0.5 * ((z - 1.0) / 0.1) ** 2)[None])
    >>> {k: round(float(v[0]), 3) for k, v in grid_point_estimates(z, p).items()}
    {'zmode': 1.0, 'zmean': 1.0, 'zmedian': 1.0}
    """
    zgrid = np.asarray(zgrid, float)
    zmode = zgrid[np.argmax(pdfs, axis=1)]
    zmean = np.trapezoid(pdfs * zgrid, zgrid, axis=1) / np.trapezoid(pdfs, zgrid, axis=1)
    cdf = cumulative(zgrid, pdfs)
    k = np.clip(np.argmax(cdf >= 0.5, axis=1) - 1, 0, len(zgrid) - 2)
    idx = np.arange(len(pdfs))
    lo, hi = cdf[idx, k], cdf[idx, k + 1]
    t = np.clip((0.5 - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    zmedian = zgrid[k] + t * (zgrid[k + 1] - zgrid[k])
    return {"zmode": zmode, "zmean": zmean, "zmedian": zmedian}

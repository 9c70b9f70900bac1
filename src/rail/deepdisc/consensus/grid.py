"""Redshift PDFs on the consensus grid: tabulation of any qp ensemble, normalisation, values, point estimates.

Every method's PDFs are compared and multiplied on one grid, ``linspace(zmin, zmax, nzbins)`` (by default the
package's photo-z grid, `rail.deepdisc.constants`). Gaussian mixtures are evaluated in closed form in bounded
chunks, ``qp.interp`` ensembles already on the grid are read as they are, anything else through qp's ``pdf``.
Point estimates are computed here from the grid (``qp.mixmod``'s ``mean()`` is unreliable).
"""

from __future__ import annotations

import numpy as np

from rail.deepdisc.mixture import from_qp

__all__ = ["PDF_ROWS", "row_integrals", "mixture_on_grid", "pdfs_on_grid", "normalise_rows", "cumulative", "values_at",
           "grid_point_estimates"]

#: Rows per qp ``pdf`` call for ensembles that are neither mixtures nor already on the grid.
PDF_ROWS = 2000


def row_integrals(zgrid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Trapezoid integral of each row over ``zgrid`` (one pass over the rows on a regular grid).

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
        Increasing redshifts.
    rows : ndarray, shape (N, G)

    Returns
    -------
    ndarray, shape (N,)
    """
    steps = np.diff(zgrid)
    if np.allclose(steps, steps[0], rtol=1e-9, atol=0.0):
        return float(steps[0]) * (rows.sum(axis=1) - 0.5 * (rows[:, 0] + rows[:, -1]))
    return np.trapezoid(rows, zgrid, axis=1)


def normalise_rows(zgrid: np.ndarray, pdfs: np.ndarray, *, check: bool = True) -> np.ndarray:
    """Scale each row to unit integral on ``zgrid`` (trapezoid rule), in place where possible.

    Rows that are all zero, negative or not finite carry no information and become flat.

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
        Increasing redshifts.
    pdfs : ndarray, shape (N, G)
        Densities.
    check : bool
        Replace non-finite and negative values by 0 first (False: the caller guarantees there are none).

    Returns
    -------
    ndarray, shape (N, G)
        Normalised densities (float64).
    """
    pdfs = np.asarray(pdfs, dtype=float)
    if check:
        bad = ~np.isfinite(pdfs)
        if bad.any():
            pdfs = np.where(bad, 0.0, pdfs)
        np.maximum(pdfs, 0.0, out=pdfs)
    norm = row_integrals(zgrid, pdfs)
    empty = ~(norm > 0)
    if empty.any():
        pdfs[empty] = 1.0
        norm[empty] = zgrid[-1] - zgrid[0]
    pdfs /= norm[:, None]
    return pdfs


def mixture_on_grid(means: np.ndarray, stds: np.ndarray, weights: np.ndarray, zgrid: np.ndarray) -> np.ndarray:
    """Gaussian mixtures tabulated on ``zgrid``, one component at a time in place (two (N, G) arrays in all).

    Parameters
    ----------
    means, stds, weights : ndarray, shape (N, K)
        Components (weights need not be normalised: rows are normalised on the grid afterwards).
    zgrid : ndarray, shape (G,)

    Returns
    -------
    ndarray, shape (N, G)
        Densities (about 3x faster than evaluating all components at once with broadcasting).
    """
    means, stds, weights = (np.atleast_2d(np.asarray(a, float)) for a in (means, stds, weights))
    out = np.zeros((means.shape[0], len(zgrid)))
    work = np.empty_like(out)
    for k in range(means.shape[1]):
        np.subtract(zgrid[None, :], means[:, k, None], out=work)
        work *= 1.0 / stds[:, k, None]
        np.square(work, out=work)
        work *= -0.5
        np.exp(work, out=work)
        work *= (weights[:, k] / stds[:, k])[:, None]
        out += work
    return out


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
    mix = from_qp(ensemble)
    if mix is not None:
        return normalise_rows(zgrid, mixture_on_grid(mix.means, mix.stds, mix.weights, zgrid))
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
    steps = pdfs[:, 1:] + pdfs[:, :-1]
    steps *= 0.5 * np.diff(zgrid)
    np.cumsum(steps, axis=1, out=steps)  # in place: a cumsum into a strided view of the output is ~7x slower
    cdf = np.empty(pdfs.shape)
    cdf[:, 0] = 0.0
    cdf[:, 1:] = steps
    total = cdf[:, -1:].copy()
    cdf /= np.where(total > 0, total, 1.0)
    return cdf


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
    zmean = row_integrals(zgrid, pdfs * zgrid) / row_integrals(zgrid, pdfs)
    # the CDF at zgrid[1:] (unnormalised, no (N, G) copy): cumulative trapezoid steps
    upper = pdfs[:, 1:] + pdfs[:, :-1]
    upper *= 0.5 * np.diff(zgrid)
    np.cumsum(upper, axis=1, out=upper)
    half = 0.5 * upper[:, -1]
    j = np.argmax(upper >= half[:, None], axis=1)  # the median lies in [zgrid[j], zgrid[j + 1]]
    idx = np.arange(len(pdfs))
    k = np.clip(j, 0, len(zgrid) - 2)
    lo = np.where(k > 0, upper[idx, np.maximum(k - 1, 0)], 0.0) / np.where(half > 0, 2 * half, 1.0)
    hi = upper[idx, k] / np.where(half > 0, 2 * half, 1.0)
    t = np.clip((0.5 - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    zmedian = zgrid[k] + t * (zgrid[k + 1] - zgrid[k])
    return {"zmode": zmode, "zmean": zmean, "zmedian": zmedian}

"""The hierarchical Bayesian (HB) combination of Dahlen et al. (2013) and Duncan et al. (2018).

Each method's calibrated PDF ``P_i(z)`` is mixed with an "it is wrong" term, a flat density ``U(z)`` on the
grid, weighted by the method's bad fraction ``f_i`` (fitted by maximum likelihood on labelled objects, per
magnitude bin where the labels allow)::

    P_i'(z) = (1 - f_i) P_i(z) + f_i U(z)

and the methods are multiplied, the product softened by ``1 / beta`` (``beta`` fitted by maximum likelihood:
1 for independent methods, up to the number of methods for identical ones, Duncan et al. 2018), and
normalised on the grid::

    P(z) ∝ prod_i P_i'(z) ** (1 / beta)

``beta`` may grow with magnitude above a pivot, ``beta(m) = beta * (1 + kappa * max(m - m_pivot, 0))``: Duncan
et al. (2018) found that the calibration a set of PDFs needs changes with magnitude and fitted it as a linear
function of magnitude; spec-z are bright, and the slope carries what the faintest labels say to the fainter
objects that have none.

A confidently wrong method then loses to the others where they disagree (its ``f_i U`` floor stays above the
product of their tails), a flat method (no information) changes nothing, and agreeing methods narrow the
result. The functions here work on arrays tabulated on the grid (`rail.deepdisc.consensus.grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from rail.deepdisc.consensus.grid import normalise_rows, values_at

__all__ = [
    "magnitude_bins",
    "bin_index",
    "fit_bad_fraction",
    "bad_fraction_loglike",
    "with_bad_term",
    "log_product",
    "add_log",
    "combine_log_product",
    "fit_beta",
    "fit_beta_slope",
    "magnitude_excess",
    "maximise_on_log_scale",
]

_BISECTION_STEPS = 60
_SCAN_POINTS = 17
_TINY = 1e-300
#: Largest relative growth of ``beta`` per magnitude that the fit considers.
MAX_BETA_SLOPE = 1.0


def magnitude_bins(mag: np.ndarray, edges: Sequence[float], min_per_bin: int) -> np.ndarray:
    """Merge neighbouring magnitude bins until each holds at least ``min_per_bin`` labelled objects.

    Parameters
    ----------
    mag : ndarray, shape (N,)
        Magnitudes of the labelled objects (NaN = unknown, not counted).
    edges : sequence of float
        Inner bin edges, increasing (bins are ``(-inf, e0)``, ``[e0, e1)``, ..., ``[e_last, inf)``).
    min_per_bin : int
        Fewest labelled objects per bin.

    Returns
    -------
    ndarray
        The inner edges kept (empty: one bin for all objects).
    """
    edges = [float(e) for e in edges]
    mag = np.asarray(mag, float)
    mag = mag[np.isfinite(mag)]
    while edges:
        counts = np.bincount(np.searchsorted(edges, mag, side="right"), minlength=len(edges) + 1)
        k = int(np.argmin(counts))
        if counts[k] >= min_per_bin:
            break
        # merge the sparsest bin with its sparser neighbour: drop the edge between them
        if k == 0:
            drop = 0
        elif k == len(counts) - 1:
            drop = k - 1
        else:
            drop = k - 1 if counts[k - 1] <= counts[k + 1] else k
        del edges[drop]
    return np.asarray(edges, float)


def bin_index(mag: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Magnitude bin of each object (``-1`` where the magnitude is unknown)."""
    mag = np.asarray(mag, float)
    idx = np.searchsorted(np.asarray(edges, float), mag, side="right")
    return np.where(np.isfinite(mag), idx, -1)


def bad_fraction_loglike(a: np.ndarray, u: float, f: float) -> float:
    """``sum log((1 - f) a + f u)``: the log-likelihood of bad fraction ``f`` given PDF values ``a`` at truth."""
    return float(np.sum(np.log(np.maximum((1.0 - f) * a + f * u, _TINY))))


def fit_bad_fraction(a: np.ndarray, u: float, f_min: float = 0.0) -> float:
    """Maximum-likelihood bad fraction of one method (in ``[f_min, 1]``).

    The log-likelihood ``sum log((1 - f) a_i + f u)`` is concave in ``f``; its derivative is bisected.

    Parameters
    ----------
    a : ndarray, shape (N,)
        The method's calibrated PDF at each labelled object's true redshift.
    u : float
        The flat density (``1 / (zmax - zmin)``).
    f_min : float
        Lower bound (a small floor keeps a method that was never wrong on the labels from vetoing others).

    Returns
    -------
    float
    """
    a = np.asarray(a, float)
    if len(a) == 0:
        return float(f_min)

    def slope(f):
        return float(np.sum((u - a) / np.maximum((1.0 - f) * a + f * u, _TINY)))

    lo, hi = float(f_min), 1.0
    if slope(lo) <= 0:
        return lo
    if slope(hi) >= 0:
        return hi
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if slope(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def with_bad_term(pdfs: np.ndarray, f: np.ndarray, u: float, *, inplace: bool = False) -> np.ndarray:
    """``(1 - f) P + f U`` per row (``f`` one value per row or a scalar); ``inplace`` overwrites ``pdfs``."""
    f = np.asarray(f, float)
    f = f[:, None] if f.ndim == 1 else f
    out = pdfs if inplace else pdfs.copy()
    out *= 1.0 - f
    out += f * u
    return out


def log_product(mixed: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """``sum_i log P_i'(z)`` over methods, per row and grid point (``P_i'`` include the bad term).

    With ``out`` the logarithms are added to it (in place) and it is returned.
    """
    total = np.zeros(mixed[0].shape) if out is None else out
    for p in mixed:
        total += np.log(np.maximum(p, _TINY))
    return total


def add_log(total: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``total += log(max(p, tiny))``, overwriting ``p`` with its logarithm (no temporary)."""
    np.maximum(p, _TINY, out=p)
    total += np.log(p, out=p)
    return total


def combine_log_product(zgrid: np.ndarray, logp: np.ndarray, beta) -> np.ndarray:
    """``exp(logp / beta)`` normalised on the grid, per row (stable: the row maximum is removed first).

    ``beta`` is a number or one value per row.
    """
    scaled = logp - logp.max(axis=1, keepdims=True)
    beta = np.asarray(beta, float)
    scaled *= 1.0 / (beta[:, None] if beta.ndim else float(beta))
    return normalise_rows(zgrid, np.exp(scaled, out=scaled), check=False)


def maximise_on_log_scale(fn: Callable[[float], float], lo: float, hi: float) -> float:
    """The ``x`` in ``[lo, hi]`` maximising ``fn``: a log-spaced scan, then Brent's method around the best point."""
    xs = np.geomspace(lo, hi, _SCAN_POINTS)
    values = np.array([fn(float(x)) for x in xs])
    k = int(np.nanargmax(np.where(np.isfinite(values), values, -np.inf)))
    a, b = np.log(xs[max(k - 1, 0)]), np.log(xs[min(k + 1, len(xs) - 1)])
    res = minimize_scalar(lambda t: -fn(float(np.exp(t))), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-4})
    best = float(np.exp(res.x))
    return best if fn(best) >= values[k] else float(xs[k])


def fit_beta(zgrid: np.ndarray, logp: np.ndarray, ztrue: np.ndarray, lo: float, hi: float) -> float:
    """Maximum-likelihood ``beta`` of the combination on labelled objects.

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
    logp : ndarray, shape (N, G)
        `log_product` of the labelled objects' mixed PDFs.
    ztrue : ndarray, shape (N,)
        Their true redshifts (inside the grid).
    lo, hi : float
        Range of ``beta``.

    Returns
    -------
    float
    """
    if len(ztrue) == 0:
        return 1.0

    return maximise_on_log_scale(lambda beta: _beta_loglike(zgrid, logp, ztrue, beta), lo, hi)


def _beta_loglike(zgrid, logp, ztrue, beta) -> float:
    combined = combine_log_product(zgrid, logp, beta)
    return float(np.sum(np.log(np.maximum(values_at(zgrid, combined, ztrue), _TINY))))


def magnitude_excess(magnitude, pivot: float) -> np.ndarray:
    """``max(m - pivot, 0)`` per object, 0 where the magnitude is NaN (the growth of ``beta``)."""
    mag = np.asarray(magnitude, float)
    return np.where(np.isfinite(mag), np.maximum(mag - pivot, 0.0), 0.0)


def fit_beta_slope(zgrid: np.ndarray, logp: np.ndarray, ztrue: np.ndarray, magnitude: np.ndarray, pivot: float,
                   lo: float, hi: float) -> tuple[float, float]:
    """Maximum-likelihood ``beta`` and its growth with magnitude on labelled objects.

    ``beta_i = beta * (1 + slope * max(m_i - pivot, 0))``, the slope in ``[0, MAX_BETA_SLOPE]`` per magnitude
    (Nelder-Mead from the best ``beta`` without growth, which it keeps unless the growth raises the likelihood),
    ``beta`` in ``[lo, hi]``.

    Parameters
    ----------
    zgrid, logp, ztrue :
        As for `fit_beta`.
    magnitude : ndarray, shape (N,)
        The objects' magnitudes (NaN: no growth).
    pivot : float
        Magnitude where the growth starts.
    lo, hi : float
        Range of ``beta``.

    Returns
    -------
    (float, float)
        ``beta`` and the slope.
    """
    if len(ztrue) == 0:
        return 1.0, 0.0
    excess = magnitude_excess(magnitude, pivot)
    beta0 = maximise_on_log_scale(lambda b: _beta_loglike(zgrid, logp, ztrue, b), lo, hi)  # slope 0

    def cost(x) -> float:
        return -_beta_loglike(zgrid, logp, ztrue, np.exp(x[0]) * (1.0 + x[1] * excess))

    start = np.array([np.log(beta0), 0.0])
    res = minimize(cost, start, method="Nelder-Mead", bounds=[(np.log(lo), np.log(hi)), (0.0, MAX_BETA_SLOPE)],
                   options={"xatol": 1e-3, "fatol": 1e-3, "initial_simplex": [start, start + [0.1, 0.0],
                                                                               start + [0.0, 0.1]]})
    if not res.fun < cost(start):
        return beta0, 0.0
    return float(np.exp(res.x[0])), float(res.x[1])

"""PDF calibration: PIT values, central credible-interval coverage, and moments/quantiles of qp ensembles.

The central credible interval at credibility ``c`` is ``[F^-1((1 - c) / 2), F^-1((1 + c) / 2)]``, ``F``
the object's CDF, so the true redshift lies inside it exactly when its PIT value ``u = F(z_true)`` satisfies
``|u - 1/2| <= c / 2``. Coverage is therefore computed from PIT values without inverting any CDF, exactly for
every qp representation. For Gaussian mixtures (the estimator's ``qp.mixmod`` output) the CDF, moments and
quantiles are evaluated in closed form, vectorised over objects, by `rail.deepdisc.mixture.Mixture`
(``qp.mixmod``'s ``mean()`` is unreliable).

A calibrated estimator has coverage equal to the credibility at every level; an overconfident one (PDFs too
narrow) has less, an underconfident one more. `calibration_error` summarises the curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.mixture import from_qp

__all__ = [
    "CREDIBILITY_LEVELS",
    "QUANTILE_TOLERANCE",
    "CoverageResult",
    "pit_values",
    "coverage_from_pit",
    "central_interval_coverage",
    "calibration_error",
    "ensemble_moments",
    "ensemble_quantiles",
    "gridded_ensemble",
]

#: Default credibility levels of the coverage curve.
CREDIBILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Absolute accuracy of the mixture quantiles (redshift): a few units of double precision at z ~ 10.
QUANTILE_TOLERANCE = 1e-14
_PDF_ROWS = 2000  # rows per qp pdf call for non-mixture ensembles


@dataclass(frozen=True)
class CoverageResult:
    """Coverage of central credible intervals.

    Attributes
    ----------
    levels : ndarray, shape (L,)
        Credibility levels.
    coverage : ndarray, shape (L,)
        Fraction of objects whose truth lies in their central interval at each level.
    stderr : ndarray, shape (L,)
        Binomial standard error expected for a calibrated estimator, ``sqrt(c (1 - c) / n)``.
    n : int
        Objects evaluated.
    """

    levels: np.ndarray
    coverage: np.ndarray
    stderr: np.ndarray
    n: int

    def rows(self) -> list[dict]:
        """One dict per level (``level``, ``coverage``, ``stderr``, ``n``), JSON/CSV-ready."""
        return [{"level": float(c), "coverage": float(v), "stderr": float(e), "n": self.n}
                for c, v, e in zip(self.levels, self.coverage, self.stderr)]


def _checked_truth(ensemble, ztrue) -> np.ndarray:
    ztrue = np.asarray(ztrue, float)
    if ztrue.shape != (ensemble.npdf,):
        raise DeepDiscError(f"ztrue has shape {ztrue.shape}, the ensemble holds {ensemble.npdf} PDFs: "
                            f"give one true redshift per PDF")
    return ztrue


def pit_values(ensemble, ztrue) -> np.ndarray:
    """Probability integral transform ``F_i(z_true,i)`` of each object (NaN where the truth is NaN).

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs.
    ztrue : array_like, shape (N,)
        True redshifts.

    Returns
    -------
    ndarray, shape (N,)
        Values in [0, 1].
    """
    ztrue = _checked_truth(ensemble, ztrue)
    return _pit_values(ensemble, ztrue)


def _pit_values(ensemble, ztrue: np.ndarray) -> np.ndarray:
    out = np.full(len(ztrue), np.nan)
    ok = np.isfinite(ztrue)
    if not ok.any():
        return out
    mix = from_qp(ensemble)
    if mix is not None:
        out[ok] = mix.take(ok).cdf(ztrue[ok])
    else:
        out[ok] = np.asarray(ensemble[np.flatnonzero(ok)].cdf(ztrue[ok][:, None]), float).reshape(-1)
    return np.clip(out, 0.0, 1.0)


def coverage_from_pit(pit, levels: Sequence[float] = CREDIBILITY_LEVELS) -> CoverageResult:
    """Coverage of central credible intervals from PIT values.

    Parameters
    ----------
    pit : array_like, shape (N,)
        PIT values; NaN are skipped.
    levels : sequence of float
        Credibility levels in (0, 1).

    Returns
    -------
    CoverageResult

    Examples
    --------
    >>> coverage_from_pit([0.5, 0.2, 0.9, 0.99], [0.5]).coverage
    array([0.25])
    """
    levels = np.asarray(levels, float)
    if levels.ndim != 1 or len(levels) == 0 or np.any((levels <= 0) | (levels >= 1)):
        raise DeepDiscError(f"credibility levels must lie strictly between 0 and 1, got {levels.tolist()}")
    pit = np.asarray(pit, float)
    pit = pit[np.isfinite(pit)]
    n = len(pit)
    if n == 0:
        nan = np.full(len(levels), np.nan)
        return CoverageResult(levels, nan, nan.copy(), 0)
    distance = np.abs(pit - 0.5)
    coverage = (distance[None, :] <= levels[:, None] / 2).mean(axis=1)
    return CoverageResult(levels, coverage, np.sqrt(levels * (1 - levels) / n), n)


def central_interval_coverage(ensemble, ztrue, levels: Sequence[float] = CREDIBILITY_LEVELS
                              ) -> CoverageResult:
    """Fraction of true redshifts inside each PDF's central credible interval, per credibility level.

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs (any qp representation; Gaussian mixtures are evaluated in closed form).
    ztrue : array_like, shape (N,)
        True redshifts; objects with NaN are skipped.
    levels : sequence of float
        Credibility levels in (0, 1).

    Returns
    -------
    CoverageResult

    Examples
    --------
    >>> import numpy as np, qp
    >>> ens = qp.Ensemble(qp.stats.norm, data=dict(loc=np.array([[1.0], [2.0]]), scale=np.full((2, 1), 0.1)))
    >>> central_interval_coverage(ens, [1.0, 2.5], [0.5]).coverage
    array([0.5])
    """
    return coverage_from_pit(pit_values(ensemble, ztrue), levels)


def calibration_error(result: CoverageResult) -> dict[str, float]:
    """Summaries of a coverage curve.

    Parameters
    ----------
    result : CoverageResult

    Returns
    -------
    dict
        ``mean_abs`` (mean of ``|coverage - c|``), ``max_abs`` (largest deviation), ``mean_signed`` (mean of
        ``coverage - c``: negative = overconfident PDFs, positive = underconfident) and ``max_sigma``
        (largest deviation in units of the calibrated standard error).
    """
    dev = result.coverage - result.levels
    with np.errstate(divide="ignore", invalid="ignore"):
        pulls = np.abs(dev) / result.stderr
    return {"mean_abs": float(np.mean(np.abs(dev))), "max_abs": float(np.max(np.abs(dev))),
            "mean_signed": float(np.mean(dev)), "max_sigma": float(np.max(pulls))}


def ensemble_moments(ensemble) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every PDF.

    Parameters
    ----------
    ensemble : qp.Ensemble

    Returns
    -------
    mean, std : ndarray, shape (N,)
        In redshift units; closed form for Gaussian mixtures, qp's ``mean``/``std`` otherwise.
    """
    mix = from_qp(ensemble)
    if mix is None:
        return (np.asarray(ensemble.mean(), float).reshape(-1), np.asarray(ensemble.std(), float).reshape(-1))
    return mix.mean(), mix.std()


def ensemble_quantiles(ensemble, quantiles: Sequence[float]) -> np.ndarray:
    """Quantiles of every PDF.

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs.
    quantiles : sequence of float
        Q probabilities in (0, 1).

    Returns
    -------
    ndarray, shape (N, Q)
        Redshifts; bisection on the closed-form CDF for Gaussian mixtures, ``ensemble.ppf`` otherwise.
    """
    q = np.asarray(quantiles, float)
    if q.ndim != 1 or np.any((q <= 0) | (q >= 1)):
        raise DeepDiscError(f"quantiles must lie strictly between 0 and 1, got {q.tolist()}")
    mix = from_qp(ensemble)
    if mix is None:
        return np.asarray(ensemble.ppf(q), float).reshape(ensemble.npdf, len(q))
    out = np.empty((mix.n_objects, len(q)))
    for j, p in enumerate(q):
        out[:, j] = mix.quantile(p, QUANTILE_TOLERANCE)
    return out


def gridded_ensemble(ensemble, zgrid) -> object:
    """The ensemble as ``qp.interp`` PDFs on ``zgrid`` (ancil kept), for grid-based evaluators.

    qp evaluates a ``mixmod`` ensemble on a grid with an (components, N, G) temporary, which for tens of
    thousands of objects does not fit in memory; this evaluates the mixtures in bounded chunks instead.
    The result is normalised on the grid by qp (probability outside ``zgrid`` is dropped). A PDF narrower
    than the grid step that falls between two grid points is placed by its CDF on the grid instead.

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs.
    zgrid : array_like, shape (G,)
        Increasing redshift grid.

    Returns
    -------
    qp.Ensemble
        ``qp.interp`` with ``xvals = zgrid`` and ``yvals`` of shape (N, G).
    """
    import qp

    zgrid = np.asarray(zgrid, float)
    if zgrid.ndim != 1 or len(zgrid) < 2 or np.any(np.diff(zgrid) <= 0):
        raise DeepDiscError("zgrid must be an increasing 1-D grid of at least two redshifts")
    mix = from_qp(ensemble)
    if mix is not None:
        yvals = mix.pdf(zgrid)
    else:
        n = ensemble.npdf
        chunks = [np.asarray(ensemble[np.arange(a, min(a + _PDF_ROWS, n))].pdf(zgrid), float)
                  .reshape(-1, len(zgrid)) for a in range(0, n, _PDF_ROWS)]
        yvals = np.concatenate(chunks) if chunks else np.zeros((0, len(zgrid)))
    yvals = np.clip(np.nan_to_num(yvals), 0.0, None)  # interpolation rounding can leave -1e-14
    empty = ~(np.trapezoid(yvals, zgrid, axis=1) > 0)
    if empty.any():
        # PDFs narrower than the grid step, between two grid points: spread each one's mass per grid cell
        cdf = np.asarray(ensemble[np.flatnonzero(empty)].cdf(zgrid), float).reshape(-1, len(zgrid))
        mass = np.diff(cdf, axis=1) / np.diff(zgrid)
        yvals[empty] = np.clip(np.concatenate([mass[:, :1], 0.5 * (mass[:, 1:] + mass[:, :-1]), mass[:, -1:]],
                                              axis=1), 0.0, None)
    out = qp.Ensemble(qp.interp, data=dict(xvals=zgrid, yvals=yvals))
    if ensemble.ancil:
        out.set_ancil(dict(ensemble.ancil))
    return out

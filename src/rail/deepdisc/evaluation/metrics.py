"""Point-estimate metrics of Merz et al. (2025): bias, sigma_IQR, outlier fraction, normalised residuals.

All functions are pure and work on 1-D arrays. With ``dz = zphot - ztrue``:

* bias = median of ``dz / (1 + ztrue)``;
* sigma_IQR = interquartile range of ``dz / (1 + ztrue)`` divided by 1.349 (the IQR of a unit Gaussian);
* eta (outlier fraction) = fraction of objects with ``|dz| / (1 + ztrue) > 0.15``;
* bootstrap errors (`bootstrap_errors`): the standard deviation of bias, sigma_IQR and eta over resamples of
  the objects with replacement;
* normalised residuals = ``dz / sigma`` with ``sigma`` the standard deviation of each object's p(z): for
  calibrated PDFs their median is 0 and their sigma_IQR 1.

Binned versions (by magnitude or redshift), the split by the estimator flags (``detected``, ``forced``,
``spec_rep``) and `metrics_table` are in :mod:`rail.deepdisc.evaluation.binned`. Objects without truth
(NaN ``ztrue``) are ignored by every metric.
Departure from RAIL: its ``PointOutlierRate`` uses ``max(0.06, 3 sigma_IQR)``; we keep the paper's fixed
0.15 threshold (``outlier_threshold`` changes it) and report RAIL's value separately.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rail.deepdisc.exceptions import DeepDiscError

__all__ = [
    "IQR_PER_SIGMA",
    "OUTLIER_THRESHOLD",
    "PointMetrics",
    "scaled_residuals",
    "photoz_bias",
    "sigma_iqr",
    "outlier_fraction",
    "normalised_residuals",
    "point_metrics",
    "as_1d",
    "checked_pair",
    "bootstrap_errors",
]

#: Interquartile range of a unit Gaussian (so IQR / 1.349 estimates sigma).
IQR_PER_SIGMA = 1.349
#: Catastrophic-outlier threshold on |dz| / (1 + z) (Merz et al. 2025).
OUTLIER_THRESHOLD = 0.15
_QUARTILES_PERCENT = (25.0, 75.0)


@dataclass(frozen=True)
class PointMetrics:
    """Summary of point-estimate quality for one set of objects.

    Attributes
    ----------
    n : int
        Objects with finite truth and estimate.
    bias : float
        Median of ``dz / (1 + z)``.
    sigma_iqr : float
        IQR / 1.349 of ``dz / (1 + z)``.
    outlier_fraction : float
        Fraction with ``|dz| / (1 + z) > threshold`` (eta).
    norm_median : float
        Median of ``dz / sigma`` (NaN if no sigma was given).
    norm_sigma_iqr : float
        IQR / 1.349 of ``dz / sigma`` (1 for calibrated Gaussian PDFs).
    """

    n: int
    bias: float
    sigma_iqr: float
    outlier_fraction: float
    norm_median: float = np.nan
    norm_sigma_iqr: float = np.nan

    def as_dict(self) -> dict[str, float]:
        """The metrics as a plain dict (JSON-ready)."""
        return {k: (int(v) if k == "n" else float(v)) for k, v in asdict(self).items()}


def as_1d(name: str, values, n: int | None = None) -> np.ndarray:
    """Return ``values`` as a 1-D float array, checking its length.

    Parameters
    ----------
    name : str
        How the message names the input.
    values : array_like
        The values.
    n : int, optional
        Required length (one value per object).

    Returns
    -------
    ndarray of float64

    Raises
    ------
    DeepDiscError
        If the array is not 1-D or has the wrong length.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise DeepDiscError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise DeepDiscError(f"{name} has {len(arr)} values, expected {n} (one per object)")
    return arr


def checked_pair(zphot, ztrue) -> tuple[np.ndarray, np.ndarray]:
    """Return point estimates and truths as 1-D float arrays of one length, truths > -1.

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth.

    Returns
    -------
    zphot, ztrue : ndarray of float64 (N,)

    Raises
    ------
    DeepDiscError
        On shape mismatches or a true redshift <= -1.
    """
    ztrue = as_1d("ztrue", ztrue)
    zphot = as_1d("zphot", zphot, len(ztrue))
    if np.any(ztrue[np.isfinite(ztrue)] <= -1):
        raise DeepDiscError("ztrue must be > -1 (dz / (1 + z) is undefined otherwise)")
    return zphot, ztrue


def scaled_residuals(zphot, ztrue) -> np.ndarray:
    """Return ``(zphot - ztrue) / (1 + ztrue)`` per object (NaN where either is missing).

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Photometric point estimate and true (or spectroscopic) redshift.

    Returns
    -------
    ndarray, shape (N,)

    Examples
    --------
    >>> scaled_residuals([1.1, 2.0], [1.0, 3.0]).round(3)
    array([ 0.05, -0.25])
    """
    zphot, ztrue = checked_pair(zphot, ztrue)
    return (zphot - ztrue) / (1.0 + ztrue)


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def _robust_sigma(x: np.ndarray) -> float:
    x = _finite(x)
    if len(x) == 0:
        return np.nan
    q25, q75 = np.percentile(x, _QUARTILES_PERCENT)
    return float((q75 - q25) / IQR_PER_SIGMA)


def photoz_bias(zphot, ztrue) -> float:
    """Median of ``(zphot - ztrue) / (1 + ztrue)`` over objects with both values.

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth; objects with a NaN in either are skipped.

    Returns
    -------
    float
        The bias; NaN if no object has both values.
    """
    ez = _finite(scaled_residuals(zphot, ztrue))
    return float(np.median(ez)) if len(ez) else np.nan


def sigma_iqr(zphot, ztrue) -> float:
    """Interquartile range of ``(zphot - ztrue) / (1 + ztrue)`` divided by 1.349 (a Gaussian's sigma).

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth; objects with a NaN in either are skipped.

    Returns
    -------
    float
        The scatter; NaN if no object has both values.
    """
    return _robust_sigma(scaled_residuals(zphot, ztrue))


def outlier_fraction(zphot, ztrue, *, threshold: float = OUTLIER_THRESHOLD) -> float:
    """Fraction of objects with ``|zphot - ztrue| / (1 + ztrue) > threshold`` (the outlier fraction eta).

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth; objects with a NaN in either are skipped.
    threshold : float
        Outlier limit on ``|dz| / (1 + z)``.

    Returns
    -------
    float
        The fraction in [0, 1]; NaN if no object has both values.
    """
    if not threshold > 0:
        raise DeepDiscError(f"threshold must be positive, got {threshold!r}")
    ez = _finite(scaled_residuals(zphot, ztrue))
    return float(np.mean(np.abs(ez) > threshold)) if len(ez) else np.nan


def normalised_residuals(zphot, ztrue, sigma) -> np.ndarray:
    """Return the error-normalised residuals ``(zphot - ztrue) / sigma``.

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth.
    sigma : array_like, shape (N,)
        Standard deviation of each object's p(z) (same units as z); non-positive values give NaN.

    Returns
    -------
    ndarray, shape (N,)
    """
    zphot, ztrue = checked_pair(zphot, ztrue)
    sigma = as_1d("sigma", sigma, len(ztrue))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sigma > 0, (zphot - ztrue) / sigma, np.nan)


def point_metrics(zphot, ztrue, sigma=None, *, threshold: float = OUTLIER_THRESHOLD) -> PointMetrics:
    """All point metrics of one set of objects.

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth; pairs with a NaN are skipped.
    sigma : array_like, shape (N,), optional
        Per-object p(z) standard deviation, for the normalised-residual statistics.
    threshold : float
        Outlier threshold on ``|dz| / (1 + z)``.

    Returns
    -------
    PointMetrics

    Examples
    --------
    >>> m = point_metrics([1.0, 2.2, 3.0, 0.0], [1.0, 2.0, 3.0, 1.0])
    >>> m.n, m.bias, m.outlier_fraction
    (4, 0.0, 0.25)
    """
    zphot, ztrue = checked_pair(zphot, ztrue)
    ok = np.isfinite(zphot) & np.isfinite(ztrue)
    zp, zt = zphot[ok], ztrue[ok]
    norm = np.full(len(zp), np.nan)
    if sigma is not None:
        norm = normalised_residuals(zp, zt, as_1d("sigma", sigma, len(ztrue))[ok])
    finite_norm = _finite(norm)
    return PointMetrics(
        n=int(ok.sum()),
        bias=photoz_bias(zp, zt),
        sigma_iqr=sigma_iqr(zp, zt),
        outlier_fraction=outlier_fraction(zp, zt, threshold=threshold),
        norm_median=float(np.median(finite_norm)) if len(finite_norm) else np.nan,
        norm_sigma_iqr=_robust_sigma(norm),
    )


def bootstrap_errors(zphot, ztrue, *, n_boot: int = 200, seed: int = 0,
                     threshold: float = OUTLIER_THRESHOLD) -> dict[str, float]:
    """Bootstrap standard errors of bias, sigma_IQR and the outlier fraction.

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth; pairs with a NaN are skipped.
    n_boot : int
        Resamples of the objects, with replacement.
    seed : int
        Seed of the resampling.
    threshold : float
        Outlier threshold on ``|dz| / (1 + z)``.

    Returns
    -------
    dict
        ``bias``, ``sigma_iqr``, ``outlier_fraction``: the standard deviation of each metric over the
        resamples (NaN with fewer than 2 objects).

    Examples
    --------
    >>> err = bootstrap_errors(np.linspace(0.9, 1.1, 101), np.ones(101))
    >>> 0.0 < err["bias"] < 0.05
    True
    """
    if n_boot < 2:
        raise DeepDiscError(f"n_boot must be >= 2, got {n_boot!r}")
    ez = _finite(scaled_residuals(*checked_pair(zphot, ztrue)))
    if len(ez) < 2:
        return {"bias": np.nan, "sigma_iqr": np.nan, "outlier_fraction": np.nan}
    sample = ez[np.random.default_rng(seed).integers(0, len(ez), size=(n_boot, len(ez)))]
    q25, q50, q75 = np.percentile(sample, (25.0, 50.0, 75.0), axis=1)
    eta = np.mean(np.abs(sample) > threshold, axis=1)
    return {"bias": float(np.std(q50, ddof=1)), "sigma_iqr": float(np.std((q75 - q25) / IQR_PER_SIGMA, ddof=1)),
            "outlier_fraction": float(np.std(eta, ddof=1))}

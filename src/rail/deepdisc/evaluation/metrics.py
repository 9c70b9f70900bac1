"""Point-estimate metrics of Merz et al. (2025): bias, sigma_IQR, outlier fraction, normalised residuals.

All functions are pure and work on 1-D arrays. With ``dz = zphot - ztrue``:

* bias = median of ``dz / (1 + ztrue)``;
* sigma_IQR = interquartile range of ``dz / (1 + ztrue)`` divided by 1.349 (the IQR of a unit Gaussian);
* eta (outlier fraction) = fraction of objects with ``|dz| / (1 + ztrue) > 0.15``;
* normalised residuals = ``dz / sigma`` with ``sigma`` the standard deviation of each object's p(z): for
  calibrated PDFs their median is 0 and their sigma_IQR 1;
* detection completeness = fraction of catalog objects matched to a detection, per magnitude bin.

Binned versions group by magnitude or redshift; `metrics_table` adds the split by the estimator flags
(``detected``, ``forced``, ``spec_rep``). Objects without truth (NaN ``ztrue``) are ignored by every metric.
Departure from RAIL: its ``PointOutlierRate`` uses ``max(0.06, 3 sigma_IQR)``; we keep the paper's fixed
0.15 threshold (``outlier_threshold`` changes it) and report RAIL's value separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    "binned_point_metrics",
    "detection_completeness",
    "flag_subsets",
    "metrics_table",
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


def _as_1d(name: str, values, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise DeepDiscError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise DeepDiscError(f"{name} has {len(arr)} values, expected {n} (one per object)")
    return arr


def _checked_pair(zphot, ztrue) -> tuple[np.ndarray, np.ndarray]:
    ztrue = _as_1d("ztrue", ztrue)
    zphot = _as_1d("zphot", zphot, len(ztrue))
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
    zphot, ztrue = _checked_pair(zphot, ztrue)
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
    zphot, ztrue = _checked_pair(zphot, ztrue)
    sigma = _as_1d("sigma", sigma, len(ztrue))
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
    zphot, ztrue = _checked_pair(zphot, ztrue)
    ok = np.isfinite(zphot) & np.isfinite(ztrue)
    zp, zt = zphot[ok], ztrue[ok]
    norm = np.full(len(zp), np.nan)
    if sigma is not None:
        norm = normalised_residuals(zp, zt, _as_1d("sigma", sigma, len(ztrue))[ok])
    finite_norm = _finite(norm)
    return PointMetrics(
        n=int(ok.sum()),
        bias=photoz_bias(zp, zt),
        sigma_iqr=sigma_iqr(zp, zt),
        outlier_fraction=outlier_fraction(zp, zt, threshold=threshold),
        norm_median=float(np.median(finite_norm)) if len(finite_norm) else np.nan,
        norm_sigma_iqr=_robust_sigma(norm),
    )


def _check_edges(name: str, edges) -> np.ndarray:
    edges = _as_1d(name, edges)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0) or not np.isfinite(edges).all():
        raise DeepDiscError(f"{name} must be at least two finite, strictly increasing bin edges, got {edges}")
    return edges


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value (-1 outside, right edge of the last bin included)."""
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2
    idx[~np.isfinite(values) | (idx < 0) | (idx >= len(edges) - 1)] = -1
    return idx


def binned_point_metrics(zphot, ztrue, values, edges, sigma=None, *,
                         threshold: float = OUTLIER_THRESHOLD) -> list[dict]:
    """Point metrics in bins of another quantity (a magnitude, or the true redshift).

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth.
    values : array_like, shape (N,)
        The binning quantity; NaN values fall in no bin.
    edges : array_like, shape (B + 1,)
        Increasing bin edges (the last bin includes its right edge).
    sigma : array_like, shape (N,), optional
        Per-object p(z) standard deviation.
    threshold : float
        Outlier threshold.

    Returns
    -------
    list of dict
        One row per bin: ``lo``, ``hi``, ``centre`` and the `PointMetrics` fields (``n = 0`` and NaN metrics
        for an empty bin).
    """
    zphot, ztrue = _checked_pair(zphot, ztrue)
    values = _as_1d("values", values, len(ztrue))
    edges = _check_edges("edges", edges)
    sigma = None if sigma is None else _as_1d("sigma", sigma, len(ztrue))
    idx = _bin_index(values, edges)
    rows = []
    for b in range(len(edges) - 1):
        sel = idx == b
        m = point_metrics(zphot[sel], ztrue[sel], None if sigma is None else sigma[sel], threshold=threshold)
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]),
                     "centre": float(0.5 * (edges[b] + edges[b + 1])), **m.as_dict()})
    return rows


def detection_completeness(detected, magnitude, edges) -> list[dict]:
    """Fraction of catalog objects matched to a detection, per magnitude bin.

    Parameters
    ----------
    detected : array_like of bool, shape (N,)
        True where the object was matched to a detection (the estimator's ``detected`` flag).
    magnitude : array_like, shape (N,)
        Catalog AB magnitude; NaN falls in no bin.
    edges : array_like, shape (B + 1,)
        Magnitude bin edges.

    Returns
    -------
    list of dict
        Per bin: ``lo``, ``hi``, ``centre``, ``n``, ``n_detected``, ``completeness`` (NaN when empty) and
        ``completeness_err`` (binomial standard error).

    Examples
    --------
    >>> rows = detection_completeness([True, False, True, True], [24.0, 28.5, 25.0, 28.1], [24, 26, 30])
    >>> [r["completeness"] for r in rows]
    [1.0, 0.5]
    """
    magnitude = _as_1d("magnitude", magnitude)
    detected = np.asarray(detected).astype(bool)
    if detected.shape != magnitude.shape:
        raise DeepDiscError(f"detected has shape {detected.shape}, magnitude has {magnitude.shape}")
    edges = _check_edges("edges", edges)
    idx = _bin_index(magnitude, edges)
    rows = []
    for b in range(len(edges) - 1):
        sel = idx == b
        n, k = int(sel.sum()), int(detected[sel].sum())
        frac = k / n if n else np.nan
        err = float(np.sqrt(frac * (1 - frac) / n)) if n else np.nan
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]),
                     "centre": float(0.5 * (edges[b] + edges[b + 1])), "n": n, "n_detected": k,
                     "completeness": float(frac), "completeness_err": err})
    return rows


def flag_subsets(flags: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Boolean selections of the standard subsets: all, detected, forced, spec_rep and not spec_rep.

    Parameters
    ----------
    flags : mapping of str -> array_like of bool, shape (N,)
        Any of ``detected``, ``forced``, ``spec_rep``; missing flags give no subset.
    n : int
        Number of objects.

    Returns
    -------
    dict of str -> ndarray of bool
        ``all`` always; ``detected``, ``forced``, ``spec_rep``, ``not_spec_rep`` when the flag is given.
    """
    out = {"all": np.ones(n, dtype=bool)}
    for name in ("detected", "forced", "spec_rep"):
        if name in flags and flags[name] is not None:
            sel = np.asarray(flags[name]).astype(bool)
            if sel.shape != (n,):
                raise DeepDiscError(f"flag {name!r} has shape {sel.shape}, expected ({n},)")
            out[name] = sel
            if name == "spec_rep":
                out["not_spec_rep"] = ~sel
    return out


def metrics_table(zphot, ztrue, *, sigma=None, magnitude=None, mag_edges: Sequence[float] | None = None,
                  z_edges: Sequence[float] | None = None, flags: Mapping[str, np.ndarray] | None = None,
                  threshold: float = OUTLIER_THRESHOLD) -> list[dict]:
    """The paper's metrics for every flag subset, overall and by magnitude and redshift bin.

    Parameters
    ----------
    zphot, ztrue : array_like, shape (N,)
        Point estimate and truth (NaN truth = not evaluated).
    sigma : array_like, shape (N,), optional
        Per-object p(z) standard deviation.
    magnitude : array_like, shape (N,), optional
        Magnitude for the magnitude bins (needed with ``mag_edges``).
    mag_edges, z_edges : sequence of float, optional
        Bin edges in magnitude and true redshift.
    flags : mapping, optional
        ``detected``, ``forced``, ``spec_rep`` boolean arrays (see `flag_subsets`).
    threshold : float
        Outlier threshold.

    Returns
    -------
    list of dict
        Rows with ``subset``, ``binning`` (``all``, ``mag`` or ``z``), ``lo``, ``hi``, ``centre`` (NaN for
        ``all``) and the `PointMetrics` fields.
    """
    zphot, ztrue = _checked_pair(zphot, ztrue)
    n = len(ztrue)
    sigma = None if sigma is None else _as_1d("sigma", sigma, n)
    if mag_edges is not None and magnitude is None:
        raise DeepDiscError("mag_edges given without magnitude: pass the magnitude column to bin by")
    rows = []
    for name, sel in flag_subsets(flags or {}, n).items():
        sig = None if sigma is None else sigma[sel]
        m = point_metrics(zphot[sel], ztrue[sel], sig, threshold=threshold)
        rows.append({"subset": name, "binning": "all", "lo": np.nan, "hi": np.nan, "centre": np.nan,
                     **m.as_dict()})
        binnings = []
        if mag_edges is not None:
            binnings.append(("mag", _as_1d("magnitude", magnitude, n)[sel], mag_edges))
        if z_edges is not None:
            binnings.append(("z", ztrue[sel], z_edges))
        for kind, values, edges in binnings:
            for row in binned_point_metrics(zphot[sel], ztrue[sel], values, edges, sig, threshold=threshold):
                rows.append({"subset": name, "binning": kind, **row})
    return rows

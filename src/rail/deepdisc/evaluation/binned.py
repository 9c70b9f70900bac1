"""Point metrics by bin and by subset: magnitude and redshift bins, detection completeness, the metrics table.

`binned_point_metrics` applies :func:`rail.deepdisc.evaluation.metrics.point_metrics` in bins of a magnitude
or the true redshift; `detection_completeness` is the fraction of catalog objects matched to a detection per
magnitude bin; `metrics_table` gives every metric for each estimator-flag subset (`flag_subsets`: ``all``,
``detected``, ``forced``, ``spec_rep``, ``not_spec_rep``), overall and binned. Bins include their left edge;
the last bin also its right edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rail.deepdisc.evaluation.metrics import OUTLIER_THRESHOLD, as_1d, checked_pair, point_metrics
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["BOX_SIZE_EDGES", "binned_point_metrics", "detection_completeness", "flag_subsets", "metrics_table"]

#: Default bins of the catalog box side (px, the larger of width and height) for completeness by size: octaves
#: from the 4 px of the faintest objects to boxes as large as a 128 px tile.
BOX_SIZE_EDGES = (1.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 1024.0)


def _check_edges(name: str, edges) -> np.ndarray:
    edges = as_1d(name, edges)
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
    zphot, ztrue = checked_pair(zphot, ztrue)
    values = as_1d("values", values, len(ztrue))
    edges = _check_edges("edges", edges)
    sigma = None if sigma is None else as_1d("sigma", sigma, len(ztrue))
    idx = _bin_index(values, edges)
    rows = []
    for b in range(len(edges) - 1):
        sel = idx == b
        m = point_metrics(zphot[sel], ztrue[sel], None if sigma is None else sigma[sel], threshold=threshold)
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]),
                     "centre": float(0.5 * (edges[b] + edges[b + 1])), **m.as_dict()})
    return rows


def detection_completeness(detected, magnitude, edges) -> list[dict]:
    """Fraction of catalog objects matched to a detection, per magnitude (or size: `BOX_SIZE_EDGES`) bin.

    Parameters
    ----------
    detected : array_like of bool, shape (N,)
        True where the object was matched to a detection (the estimator's ``detected`` flag).
    magnitude : array_like, shape (N,)
        Catalog AB magnitude, or any value to bin by (e.g. the catalog box side,
        `rail.deepdisc.evaluation.io.TruthTable.box_size`); NaN falls in no bin.
    edges : array_like, shape (B + 1,)
        Bin edges.

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
    >>> [r["completeness"] for r in detection_completeness([True, False, False], [6.0, 40.0, 90.0], BOX_SIZE_EDGES)
    ...  if r["n"]]
    [1.0, 0.0, 0.0]
    """
    magnitude = as_1d("magnitude", magnitude)
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
    zphot, ztrue = checked_pair(zphot, ztrue)
    n = len(ztrue)
    sigma = None if sigma is None else as_1d("sigma", sigma, n)
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
            binnings.append(("mag", as_1d("magnitude", magnitude, n)[sel], mag_edges))
        if z_edges is not None:
            binnings.append(("z", ztrue[sel], z_edges))
        for kind, values, edges in binnings:
            for row in binned_point_metrics(zphot[sel], ztrue[sel], values, edges, sig, threshold=threshold):
                rows.append({"subset": name, "binning": kind, **row})
    return rows

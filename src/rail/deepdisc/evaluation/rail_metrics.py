"""RAIL's own evaluators, run in memory on a photo-z ensemble and its truth.

`rail_metrics` runs two ``rail.evaluation`` stages with ``output_mode="return"`` (nothing written):

* ``OldEvaluator``: PIT and its Kolmogorov-Smirnov, Cramer-von Mises and Anderson-Darling statistics and PIT
  outlier rate; CDE loss on the redshift grid; point metrics of the grid mode;
* ``PointToPointEvaluator``: qp's point metrics (sigma_IQR, bias, outlier rate with RAIL's
  ``max(0.06, 3 sigma_IQR)`` threshold, sigma_MAD) of the estimator's own point estimate.

Only objects with a finite truth are passed. The keys of the result are renamed to stable snake-case names
(RAIL spells one ``POINT_SimgaIQR``); p-values are not reported because ``OldEvaluator`` leaves them NaN.
"""

from __future__ import annotations

import itertools
import logging
import warnings

import numpy as np

from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["RAIL_POINT_METRICS", "rail_metrics"]

log = logging.getLogger(__name__)

#: qp point-metric names run by ``PointToPointEvaluator``.
RAIL_POINT_METRICS = ("point_stats_iqr", "point_bias", "point_outlier_rate", "point_stats_sigma_mad")
_MIN_OBJECTS = 2
_TRUTH_GROUP = "truth"
_OLD_EVALUATOR_KEYS = {
    "PIT_KS_stat": "pit_ks",
    "PIT_CvM_stat": "pit_cvm",
    "PIT_AD_stat": "pit_ad",
    "PIT_OutRate_stat": "pit_outlier_rate",
    "CDE_stat": "cde_loss",
    "POINT_SimgaIQR": "gridmode_sigma_iqr",
    "POINT_Bias": "gridmode_bias",
    "POINT_OutlierRate": "gridmode_outlier_rate",
    "POINT_SigmaMAD": "gridmode_sigma_mad",
}
_names = itertools.count()


def rail_metrics(ensemble, ztrue, *, zmin: float, zmax: float, nzbins: int, point_estimate: str = "zmode"
                 ) -> dict[str, float]:
    """Run RAIL's PIT, CDE-loss and point-metric evaluators.

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs, with the point estimate among its ancil columns.
    ztrue : array_like, shape (N,)
        Truth; objects with NaN are left out.
    zmin, zmax : float
        Redshift grid limits for the CDE loss and the grid mode.
    nzbins : int
        Grid intervals.
    point_estimate : str
        Ancil column for ``PointToPointEvaluator`` (skipped if absent).

    Returns
    -------
    dict of str -> float
        ``pit_ks``, ``pit_cvm``, ``pit_ad``, ``pit_outlier_rate``, ``cde_loss``, ``gridmode_*`` and
        ``rail_<point metric>``; empty when fewer than two objects have truth.
    """
    from rail.evaluation.evaluator import OldEvaluator

    ztrue = np.asarray(ztrue, float)
    if ztrue.shape != (ensemble.npdf,):
        raise DeepDiscError(f"ztrue has shape {ztrue.shape}, the ensemble holds {ensemble.npdf} PDFs")
    if not zmax > zmin or nzbins < 2:
        raise DeepDiscError(f"bad redshift grid: zmin={zmin}, zmax={zmax}, nzbins={nzbins}")
    ok = np.flatnonzero(np.isfinite(ztrue))
    if len(ok) < _MIN_OBJECTS:
        log.warning("RAIL evaluators skipped: %d object(s) with truth", len(ok))
        return {}
    ens, truth = ensemble[ok], {"redshift": ztrue[ok]}
    tag = next(_names)
    stage = OldEvaluator.make_stage(name=f"deepdisc_rail_eval_{tag}", zmin=zmin, zmax=zmax, nzbins=nzbins,
                                    output_mode="return", redshift_col="redshift")
    with warnings.catch_warnings():  # scipy's anderson_ksamp notes on capped p-values, which we do not report
        warnings.filterwarnings("ignore", category=UserWarning, module="qp.metrics.array_metrics")
        out = stage.evaluate(ens, truth).data
    result = {new: float(np.asarray(out[old]).reshape(-1)[0]) for old, new in _OLD_EVALUATOR_KEYS.items()
              if old in out}
    if point_estimate in (ens.ancil or {}):
        result.update(_point_to_point(ens, truth, point_estimate, tag))
    return result


def _point_to_point(ens, truth: dict, point_estimate: str, tag: int) -> dict[str, float]:
    from rail.evaluation.point_to_point_evaluator import PointToPointEvaluator

    stage = PointToPointEvaluator.make_stage(
        name=f"deepdisc_rail_point_{tag}", metrics=list(RAIL_POINT_METRICS), force_exact=True,
        output_mode="return", hdf5_groupname=_TRUTH_GROUP, point_estimate_key=point_estimate)
    summary = stage.evaluate(ens, {_TRUTH_GROUP: truth})["summary"].data
    return {f"rail_{k}": float(np.asarray(v).reshape(-1)[0]) for k, v in summary.items()}

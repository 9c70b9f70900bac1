"""RAIL evaluation stages for DeepDISC photo-z: truth matching, coverage and the paper's metrics.

* `DeepDiscTruthMatcher`: keeps the PDFs whose TileSet object has a truth redshift and writes the truth table,
  so RAIL's own evaluators (``DistToPointEvaluator``, ``PointToPointEvaluator``, ``OldEvaluator``) run on
  DeepDISC output with ``redshift`` as the reference column;
* `DeepDiscCoverageEvaluator`: central credible-interval coverage per credibility level and flag subset, with
  the calibration error (RAIL has no coverage evaluator);
* `DeepDiscMetricsEvaluator`: everything ``deepdisc evaluate`` computes (paper metrics by magnitude, redshift
  and flag, completeness, coverage, RAIL's PIT/CDE/point metrics, N(z)) as one JSON document;
* `DeepDiscDistToPointEvaluator`: RAIL's ``DistToPointEvaluator`` (PIT, its KS/CvM/AD statistics, CDE loss) on
  the estimators' redshift grid, ``zmin`` to ``zmax`` (RAIL's metrics default to an LSST grid, 0 to 2.5, which
  cuts JWST PDFs that reach z = 12).

The truth input is the TileSet the estimator ran on (`TileSetHandle`); only its object table is read. These
stages evaluate the whole ensemble at once (medians and quantiles do not split over chunks); they hold no
science: the numbers come from :mod:`rail.deepdisc.evaluation.evaluate`, :mod:`rail.deepdisc.evaluation.coverage` and
:mod:`rail.deepdisc.evaluation.metrics`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import numpy as np
import qp
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import DataHandle, Hdf5Handle, QPHandle
from rail.core.stage import RailStage
from rail.evaluation.dist_to_point_evaluator import DistToPointEvaluator

from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN
from rail.deepdisc.evaluation.binned import flag_subsets
from rail.deepdisc.evaluation.coverage import (
    CREDIBILITY_LEVELS,
    calibration_error,
    coverage_from_pit,
    gridded_ensemble,
    pit_values,
)
from rail.deepdisc.evaluation.directory import summary_document
from rail.deepdisc.evaluation.evaluate import EvaluationSettings, evaluate_photoz
from rail.deepdisc.evaluation.io import (
    PhotoZTable,
    TruthTable,
    match_truth,
    read_json,
    read_truth,
    write_json_atomic,
)
from rail.deepdisc.exceptions import ConfigError, DeepDiscError
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.tileset.handles import TileSetHandle

__all__ = ["JsonHandle", "DeepDiscTruthMatcher", "DeepDiscCoverageEvaluator", "DeepDiscMetricsEvaluator",
           "DeepDiscDistToPointEvaluator"]

_DEFAULTS = EvaluationSettings()


class JsonHandle(DataHandle):
    """RAIL handle for a JSON document (a dict of tables and summaries), written atomically."""

    suffix = "json"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        return open(path, encoding="utf-8")

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict:
        return read_json(path)

    @classmethod
    def _write(cls, data: dict, path: str, **kwargs: Any) -> None:
        write_json_atomic(data, path)


class _TruthStage(RailStage):
    """Shared input handling: a photo-z ensemble (``input``) and its TileSet (``truth``)."""

    entrypoint_function = "evaluate"
    parallel = False  # medians, quantiles and the SOM need every object at once: one process
    config_options = RailStage.config_options.copy()
    config_options.update(
        truth_column=Param(str, "auto", msg="truth redshift column: auto (redshift_true for simulations, "
                           "else the spec-z 'redshift'), redshift_true or redshift"),
        galaxies_only=Param(bool, True, msg="leave stars (true_is_star or is_star) out of the redshift metrics"),
    )
    inputs = [("input", QPHandle), ("truth", TileSetHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def evaluate(self, data: qp.Ensemble, truth, **kwargs: Any) -> Any:
        """Evaluate a photo-z ensemble against the truth of its TileSet.

        Parameters
        ----------
        data : qp.Ensemble
            The photo-z ensemble, one row per primary object of ``truth``, in order.
        truth : TileSet, TileSetHandle or str
            The TileSet the ensemble was estimated on (only its object table is read).
        **kwargs : Any
            Not used (options are given to ``make_stage``).

        Returns
        -------
        DataHandle or dict of str to DataHandle
            The output handle; a dict of handles by tag for a stage with several outputs.
        """
        with _photoz_errors(getattr(data, "path", None)):  # a handle is read here
            self.set_data("input", data)
        if isinstance(truth, (str, os.PathLike)):
            truth = TileSetHandle("truth", path=str(truth))
        self.set_data("truth", truth, do_read=False)
        self.run()
        self.finalize()
        if len(self.outputs) > 1:
            return {tag: self.get_handle(tag) for tag, _ in self.outputs}
        return self.get_handle(self.outputs[0][0])

    def _read_inputs(self) -> tuple[PhotoZTable, TruthTable]:
        photoz = PhotoZTable(_read_photoz_input(self), "input")
        handle = self.get_handle("truth", allow_missing=True)
        if handle.data is None and handle.path:
            truth = read_truth(handle.path)
        else:
            truth = TruthTable.from_tileset(self.get_data("truth"))
        match_truth(photoz, truth)
        return photoz, truth


class DeepDiscTruthMatcher(_TruthStage):
    """Keep the PDFs with a truth redshift; write their truth table for RAIL's evaluators.

    Outputs: ``output``, the selected PDFs (ancil kept); ``truth_table``, an HDF5 table
    with ``object_id``, ``redshift`` (the chosen truth) and the ``mag_<BAND>`` columns,
    row for row.
    """

    name = "DeepDiscTruthMatcher"
    interactive_function = "deepdisc_truth_matcher"
    config_options = _TruthStage.config_options.copy()
    outputs = [("output", QPHandle), ("truth_table", Hdf5Handle)]

    def run(self) -> None:
        """Select and write."""
        photoz, truth = self._read_inputs()
        z, _ = truth.redshift(self.config.truth_column, galaxies_only=self.config.galaxies_only)
        rows = np.flatnonzero(np.isfinite(z))
        self.log.info(f"{len(rows)} of {len(z)} objects have a truth redshift")
        cols = truth.columns
        table = {"object_id": np.asarray(cols["object_id"])[rows].astype(np.int64), "redshift": z[rows]}
        table.update({k: np.asarray(v, float)[rows] for k, v in cols.items() if k.startswith("mag_")})
        self.add_data("output", photoz.ensemble[rows])
        self.add_data("truth_table", table)


class DeepDiscCoverageEvaluator(_TruthStage):
    """Coverage of central credible intervals (levels 0.1 to 0.99), per flag subset.

    Output ``output`` (JSON): ``levels``, ``rows`` (``subset``, ``level``, ``coverage``,
    ``stderr``, ``n``) and ``calibration`` per subset (``mean_abs``, ``max_abs``,
    ``mean_signed``, ``max_sigma``).
    """

    name = "DeepDiscCoverageEvaluator"
    interactive_function = "deepdisc_coverage_evaluator"
    config_options = _TruthStage.config_options.copy()
    config_options.update(
        levels=Param(list, list(CREDIBILITY_LEVELS), msg="credibility levels, each strictly between 0 and 1"),
    )
    outputs = [("output", JsonHandle)]

    def run(self) -> None:
        """Compute PIT values, coverage and calibration error."""
        photoz, truth = self._read_inputs()
        z, column = truth.redshift(self.config.truth_column, galaxies_only=self.config.galaxies_only)
        pit = pit_values(photoz.ensemble, z)
        rows, calib = [], {}
        for name, sel in flag_subsets(photoz.flags(), photoz.n).items():
            res = coverage_from_pit(pit[sel], self.config.levels)
            rows += [{"subset": name, **r} for r in res.rows()]
            calib[name] = calibration_error(res) if res.n else {}
        self.add_data("output", {"truth_column": column, "levels": list(self.config.levels), "rows": rows,
                                 "calibration": calib})


class DeepDiscMetricsEvaluator(_TruthStage):
    """The paper's metrics and every other metric of ``deepdisc evaluate``, as one JSON.

    Output ``output`` (JSON): the content of an evaluation folder's ``summary.json``
    (overall metrics per flag subset, calibration, RAIL metrics, and the tables
    ``metrics``, ``coverage``, ``completeness`` (by magnitude),
    ``completeness_size`` (by catalog box side), ``nz``).
    """

    name = "DeepDiscMetricsEvaluator"
    interactive_function = "deepdisc_metrics_evaluator"
    config_options = _TruthStage.config_options.copy()
    config_options.update(
        point_estimate=Param(str, _DEFAULTS.point_estimate, msg="point estimate: zmode, zmean or zmedian"),
        mag_band=Param(str, _DEFAULTS.mag_band, msg="band of the magnitude bins (reddest band if absent)"),
        mag_edges=Param(list, list(_DEFAULTS.mag_edges), msg="magnitude bin edges, AB mag"),
        z_edges=Param(list, list(_DEFAULTS.z_edges), msg="true-redshift bin edges"),
        levels=Param(list, list(_DEFAULTS.levels), msg="credibility levels of the coverage curve"),
        outlier_threshold=Param(float, _DEFAULTS.outlier_threshold, msg="outlier threshold on |dz|/(1+z)"),
        zmin=SharedParams.copy_param("zmin"),
        zmax=Param(float, _DEFAULTS.zmax, msg="maximum redshift of the grid (N(z), CDE loss)"),
        nzbins=Param(int, _DEFAULTS.nzbins, msg="redshift grid intervals"),
        label=Param(str, "", msg="name of this run in tables (default: the filter preset)"),
    )
    outputs = [("output", JsonHandle)]

    def run(self) -> None:
        """Evaluate and register the summary document."""
        photoz, truth = self._read_inputs()
        c = self.config
        settings = EvaluationSettings(
            point_estimate=c.point_estimate, truth_column=c.truth_column, mag_band=c.mag_band,
            mag_edges=tuple(c.mag_edges), z_edges=tuple(c.z_edges), levels=tuple(c.levels),
            outlier_threshold=c.outlier_threshold, zmin=c.zmin, zmax=c.zmax, nzbins=c.nzbins,
            galaxies_only=c.galaxies_only)
        result = evaluate_photoz(photoz, truth, settings=settings, label=c.label)
        self.add_data("output", summary_document(result))


class DeepDiscDistToPointEvaluator(DistToPointEvaluator):
    """RAIL's distribution-to-point metrics (PIT, CDE loss) on the photo-z grid 0..zmax.

    RAIL's ``DistToPointEvaluator`` evaluates its grid-based metrics on LSST defaults
    (CDE loss on 0 to 2.5, ``metric_integration_limits`` 0 to 3), which drop the part of
    a JWST PDF above z = 2.5. This stage runs the same metrics on the estimators' grid,
    ``linspace(zmin, zmax, nzbins)`` (by default that of `DeepDiscEstimator` and of the
    template-fitting peers): the PDFs are evaluated once on it (in bounded chunks, so
    large catalogs fit in memory), the CDE loss uses it as its evaluation grid, and
    metrics that integrate take ``zmin``/``zmax`` as their limits and the grid step as
    ``dx`` (RAIL's ``metric_integration_limits`` and ``dx`` options are set from the
    grid, not given). A ``metric_config`` entry for a metric still wins. Inputs
    ``input`` (a ``qp`` ensemble) and ``truth`` (a table with the reference redshift,
    e.g. ``truth_table`` of `DeepDiscTruthMatcher`); outputs as RAIL's evaluator.
    """

    name = "DeepDiscDistToPointEvaluator"
    interactive_function = "deepdisc_dist_to_point_evaluator"
    config_options = DistToPointEvaluator.config_options.copy()
    config_options.update(
        zmin=Param(float, ZMIN, msg="lowest redshift of the evaluation grid"),
        zmax=Param(float, ZMAX, msg="highest redshift of the evaluation grid"),
        nzbins=Param(int, NZBINS, msg="points of the evaluation grid (the estimators' nzbins)"),
    )
    config_options["metric_integration_limits"] = Param(list, [ZMIN, ZMAX], msg="set from zmin and zmax")
    config_options["dx"] = Param(float, (ZMAX - ZMIN) / (NZBINS - 1), msg="set from the grid step")
    config_options["x_grid"] = Param(list, [], msg="not used by RAIL's metrics (the grid is zmin, zmax, nzbins)")
    _DERIVED = ("metric_integration_limits", "dx", "x_grid")

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        given = {**(args if isinstance(args, dict) else {}), **kwargs}
        derived = self._derived(float(given.get("zmin", ZMIN)), float(given.get("zmax", ZMAX)),
                                int(given.get("nzbins", NZBINS)))
        bad = [k for k in self._DERIVED if k in given and not _same(given[k], derived[k])]
        if bad:
            raise ConfigError(f"{self.name}: {', '.join(bad)} cannot be set: give zmin, zmax and nzbins")
        super().__init__(args, **kwargs)
        derived = self._derived(float(self.config.zmin), float(self.config.zmax), int(self.config.nzbins))
        for key, value in derived.items():  # ceci's command line may have changed the grid
            self.config[key] = value

    @staticmethod
    def _derived(zmin: float, zmax: float, nzbins: int) -> dict:
        return {"metric_integration_limits": [zmin, zmax], "dx": (zmax - zmin) / max(nzbins - 1, 1), "x_grid": []}

    def zgrid(self) -> np.ndarray:
        """The evaluation grid, ``linspace(zmin, zmax, nzbins)``."""
        zmin, zmax, nzbins = float(self.config.zmin), float(self.config.zmax), int(self.config.nzbins)
        if not zmax > zmin or nzbins < 2:
            raise ConfigError(f"{self.name}: bad redshift grid zmin={zmin}, zmax={zmax}, nzbins={nzbins}")
        return np.linspace(zmin, zmax, nzbins)

    def _build_config_dict(self) -> None:
        super()._build_config_dict()
        grid = self.zgrid()
        ours = {"limits": [float(grid[0]), float(grid[-1])], "dx": float(grid[1] - grid[0]), "eval_grid": grid}
        for metric, sub in self._metric_config_dict.items():
            given = {**self.config.metric_config.get("general", {}), **self.config.metric_config.get(metric, {})}
            params = {**sub, **{k: v for k, v in ours.items() if k not in given}}
            if metric != "cdeloss" and "eval_grid" not in given:
                params.pop("eval_grid")  # PIT's eval_grid is a quantile grid, not redshifts
            self._metric_config_dict[metric] = params
            self._cached_metrics[metric] = self._metric_dict[metric](**params)

    def _process_all(self, data_tuple: Any) -> None:
        super()._process_all([gridded_ensemble(data_tuple[0], self.zgrid()), *data_tuple[1:]])

    def _process_chunk(self, data_tuple: Any, first: bool) -> None:
        start, end, estimate, *rest = data_tuple
        super()._process_chunk([start, end, gridded_ensemble(estimate, self.zgrid()), *rest], first)


def _read_photoz_input(stage: RailStage) -> qp.Ensemble:
    """The ``input`` ensemble; a file that qp cannot read is one `DeepDiscError` naming it."""
    with _photoz_errors(stage.get_handle("input", allow_missing=True).path):
        return stage.get_data("input")


@contextmanager
def _photoz_errors(path):
    try:
        yield
    except DeepDiscError:
        raise
    except Exception as err:  # qp and tables_io raise RuntimeError, IndexError, KeyError, ... on damaged files
        raise DeepDiscError(f"{path}: not a readable qp photo-z file ({type(err).__name__}: {err})") from None


def _same(given: Any, derived: Any) -> bool:
    """Whether an option value equals the one derived from the grid (numbers compared to rounding)."""
    try:
        return bool(np.allclose(np.asarray(given, float), np.asarray(derived, float), rtol=1e-9, atol=1e-12))
    except (TypeError, ValueError):
        return False

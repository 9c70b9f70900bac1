"""RAIL evaluation stages for DeepDISC photo-z: truth matching, coverage and the paper's metrics.

* `DeepDiscTruthMatcher`: keeps the PDFs whose TileSet object has a truth redshift and writes the truth table,
  so RAIL's own evaluators (``DistToPointEvaluator``, ``PointToPointEvaluator``, ``OldEvaluator``) run on
  DeepDISC output with ``redshift`` as the reference column;
* `DeepDiscCoverageEvaluator`: central credible-interval coverage per credibility level and flag subset, with
  the calibration error (RAIL has no coverage evaluator);
* `DeepDiscMetricsEvaluator`: everything ``deepdisc evaluate`` computes (paper metrics by magnitude, redshift
  and flag, completeness, coverage, RAIL's PIT/CDE/point metrics, N(z)) as one JSON document.

The truth input is the TileSet the estimator ran on (`TileSetHandle`); only its object table is read. These
stages evaluate the whole ensemble at once (medians and quantiles do not split over chunks); they hold no
science: the numbers come from :mod:`rail.deepdisc.evaluation.evaluate`, :mod:`rail.deepdisc.evaluation.coverage` and
:mod:`rail.deepdisc.evaluation.metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import qp
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import DataHandle, Hdf5Handle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.evaluation.binned import flag_subsets
from rail.deepdisc.evaluation.coverage import CREDIBILITY_LEVELS, calibration_error, coverage_from_pit, pit_values
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
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.tileset.handles import TileSetHandle

__all__ = ["JsonHandle", "DeepDiscTruthMatcher", "DeepDiscCoverageEvaluator", "DeepDiscMetricsEvaluator"]

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
    )
    inputs = [("input", QPHandle), ("truth", TileSetHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        check_stage_options(self, args, kwargs)
        super().__init__(args, **kwargs)

    def evaluate(self, data: qp.Ensemble, truth) -> Any:
        """Attach the ensemble and its TileSet (object, path or handle), run, and return the output handle."""
        self.set_data("input", data)
        self.set_data("truth", truth, do_read=False)
        self.run()
        self.finalize()
        return self.get_handle(self.outputs[0][0])

    def _read_inputs(self) -> tuple[PhotoZTable, TruthTable]:
        photoz = PhotoZTable(self.get_data("input"), "input")
        handle = self.get_handle("truth", allow_missing=True)
        if handle.data is None and handle.path:
            truth = read_truth(handle.path)
        else:
            truth = TruthTable.from_tileset(self.get_data("truth"))
        match_truth(photoz, truth)
        return photoz, truth


class DeepDiscTruthMatcher(_TruthStage):
    """Select the PDFs with a truth redshift and write the matching truth table for RAIL's evaluators.

    Outputs: ``output``, the selected PDFs (ancil kept); ``truth_table``, an HDF5 table with ``object_id``,
    ``redshift`` (the chosen truth) and the ``mag_<BAND>`` columns, row for row.
    """

    name = "DeepDiscTruthMatcher"
    config_options = _TruthStage.config_options.copy()
    outputs = [("output", QPHandle), ("truth_table", Hdf5Handle)]

    def run(self) -> None:
        """Select and write."""
        photoz, truth = self._read_inputs()
        z, _ = truth.redshift(self.config.truth_column)
        rows = np.flatnonzero(np.isfinite(z))
        self.log.info(f"{len(rows)} of {len(z)} objects have a truth redshift")
        cols = truth.columns
        table = {"object_id": np.asarray(cols["object_id"])[rows].astype(np.int64), "redshift": z[rows]}
        table.update({k: np.asarray(v, float)[rows] for k, v in cols.items() if k.startswith("mag_")})
        self.add_data("output", photoz.ensemble[rows])
        self.add_data("truth_table", table)


class DeepDiscCoverageEvaluator(_TruthStage):
    """Coverage of central credible intervals for credibility levels 0.1 to 0.99, per flag subset.

    Output ``output`` (JSON): ``levels``, ``rows`` (``subset``, ``level``, ``coverage``, ``stderr``, ``n``)
    and ``calibration`` per subset (``mean_abs``, ``max_abs``, ``mean_signed``, ``max_sigma``).
    """

    name = "DeepDiscCoverageEvaluator"
    config_options = _TruthStage.config_options.copy()
    config_options.update(
        levels=Param(list, list(CREDIBILITY_LEVELS), msg="credibility levels, each strictly between 0 and 1"),
    )
    outputs = [("output", JsonHandle)]

    def run(self) -> None:
        """Compute PIT values, coverage and calibration error."""
        photoz, truth = self._read_inputs()
        z, column = truth.redshift(self.config.truth_column)
        pit = pit_values(photoz.ensemble, z)
        rows, calib = [], {}
        for name, sel in flag_subsets(photoz.flags(), photoz.n).items():
            res = coverage_from_pit(pit[sel], self.config.levels)
            rows += [{"subset": name, **r} for r in res.rows()]
            calib[name] = calibration_error(res) if res.n else {}
        self.add_data("output", {"truth_column": column, "levels": list(self.config.levels), "rows": rows,
                                 "calibration": calib})


class DeepDiscMetricsEvaluator(_TruthStage):
    """The paper's metrics tables and every other metric of ``deepdisc evaluate``, as one JSON document.

    Output ``output`` (JSON): the content of an evaluation folder's ``summary.json`` (overall metrics per flag
    subset, calibration, RAIL metrics, and the tables ``metrics``, ``coverage``, ``completeness``, ``nz``).
    """

    name = "DeepDiscMetricsEvaluator"
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
            outlier_threshold=c.outlier_threshold, zmin=c.zmin, zmax=c.zmax, nzbins=c.nzbins)
        result = evaluate_photoz(photoz, truth, settings=settings, label=c.label)
        self.add_data("output", summary_document(result))

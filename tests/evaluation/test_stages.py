"""RAIL stages of the evaluation: in memory, strict options, and run by ceci from the command line."""

import json
from pathlib import Path

import numpy as np
import pytest
import qp
import rail.stages
import tables_io

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.tileset.io import write_tileset
from rail.estimation.algos.deepdisc_som import DeepDiscSOMFlagger
from rail.evaluation.deepdisc_evaluators import (
    DeepDiscCoverageEvaluator,
    DeepDiscMetricsEvaluator,
    DeepDiscTruthMatcher,
)
from tests.helpers.evalhelpers import make_photoz_for, varied_tileset
from tests.helpers.subprocesses import run_stage


@pytest.fixture(scope="module")
def tileset():
    ts = varied_tileset(n_tiles=6, objects_per_tile=10)
    ts.objects["redshift"][::3] = np.nan  # some objects without spec-z
    return ts


@pytest.fixture(scope="module")
def photoz(tileset):
    return make_photoz_for(tileset, seed=2)


def test_stages_are_attached():
    rail.stages.import_and_attach_all(silent=True)
    stages = (DeepDiscCoverageEvaluator, DeepDiscMetricsEvaluator, DeepDiscTruthMatcher, DeepDiscSOMFlagger)
    for stage in stages:
        assert getattr(rail.stages, stage.name) is stage


@pytest.mark.parametrize("stage, bad, hint", [
    (DeepDiscCoverageEvaluator, {"level": [0.5]}, "did you mean 'levels'"),
    (DeepDiscMetricsEvaluator, {"mag_edge": [20, 30]}, "did you mean 'mag_edges'"),
    (DeepDiscSOMFlagger, {"sigm": 3.0}, "did you mean 'sigma'"),
])
def test_misspelled_option_is_an_error(stage, bad, hint):
    with pytest.raises(ConfigError, match=hint):
        stage.make_stage(name=f"strict_{stage.name}", **bad)


def test_coverage_stage_in_memory(tileset, photoz):
    stage = DeepDiscCoverageEvaluator.make_stage(name="cov_mem", levels=[0.5, 0.9], output_mode="return")
    out = stage.evaluate(photoz, tileset).data
    assert out["truth_column"] == "redshift_true" and out["levels"] == [0.5, 0.9]
    subsets = {r["subset"] for r in out["rows"]}
    assert subsets == {"all", "detected", "forced"}
    all_rows = [r for r in out["rows"] if r["subset"] == "all"]
    assert all_rows[0]["n"] == tileset.n_primary and 0 <= all_rows[0]["coverage"] <= 1


def test_coverage_stage_spec_z_truth_uses_only_labelled(tileset, photoz):
    stage = DeepDiscCoverageEvaluator.make_stage(name="cov_spec", truth_column="redshift",
                                                 output_mode="return")
    out = stage.evaluate(photoz, tileset).data
    n_labelled = int(np.isfinite(tileset.primary_objects()["redshift"]).sum())
    assert out["rows"][0]["n"] == n_labelled < tileset.n_primary


def test_metrics_stage_in_memory(tileset, photoz):
    stage = DeepDiscMetricsEvaluator.make_stage(name="met_mem", mag_edges=[22, 26, 30], z_edges=[0, 2, 6],
                                                output_mode="return")
    out = stage.evaluate(photoz, tileset).data
    assert out["metrics"]["all"]["n"] == tileset.n_primary
    assert {"pit_ks", "cde_loss", "rail_point_bias"} <= set(out["rail"])
    kinds = {(r["subset"], r["binning"]) for r in out["tables"]["metrics"]}
    assert ("forced", "mag") in kinds and ("detected", "z") in kinds
    assert len(out["tables"]["completeness"]) == 2


def test_truth_matcher_keeps_labelled_rows(tileset, photoz):
    stage = DeepDiscTruthMatcher.make_stage(name="match_mem", truth_column="redshift", output_mode="return")
    stage.evaluate(photoz, tileset)
    ens, table = stage.get_data("output"), stage.get_data("truth_table")
    labelled = np.isfinite(tileset.primary_objects()["redshift"])
    assert ens.npdf == labelled.sum() == len(table["redshift"])
    np.testing.assert_array_equal(ens.ancil["object_id"], table["object_id"])


def test_truth_mismatch_is_an_error(tileset, photoz):
    from rail.deepdisc.exceptions import DeepDiscError

    stage = DeepDiscCoverageEvaluator.make_stage(name="cov_bad", output_mode="return")
    with pytest.raises(DeepDiscError, match="holds 59 PDFs but TileSet <memory> has 60"):
        stage.evaluate(photoz[np.arange(photoz.npdf - 1)], tileset)


def test_som_flagger_in_memory(tileset, photoz):
    stage = DeepDiscSOMFlagger.make_stage(name="som_mem", som_rows=6, som_cols=6, n_iterations=500,
                                          output_mode="return")
    out = stage.flag(photoz, tileset, tileset).data
    assert out.npdf == photoz.npdf and set(np.unique(out.ancil["spec_rep"])) <= {0, 1}
    assert out.ancil["spec_rep"].sum() >= np.isfinite(tileset.primary_objects()["redshift"]).sum() // 2
    np.testing.assert_array_equal(out.ancil["zmode"], photoz.ancil["zmode"])


def _ceci(stage: str, args: list[str], cwd: Path) -> None:
    run_stage([stage, *args, "--config=config.yml"], cwd=cwd)


@pytest.mark.slow
def test_stages_run_under_ceci(tmp_path, tileset, photoz):
    write_tileset(tileset, tmp_path / "tiles.h5")
    photoz.write_to(str(tmp_path / "pz.hdf5"))
    (tmp_path / "config.yml").write_text(
        "DeepDiscSOMFlagger: {som_rows: 6, som_cols: 6, n_iterations: 500}\n"
        "DeepDiscCoverageEvaluator: {levels: [0.5, 0.9]}\n"
        "DeepDiscMetricsEvaluator: {mag_edges: [22, 26, 30], z_edges: [0, 2, 6]}\n"
        "DeepDiscTruthMatcher: {truth_column: redshift}\n"
        "DistToPointEvaluator: {metrics: [cdeloss, pit], force_exact: true, hdf5_groupname: ''}\n")
    _ceci("rail.estimation.algos.deepdisc_som.DeepDiscSOMFlagger",
          ["--input=pz.hdf5", "--tiles=tiles.h5", "--spec=tiles.h5", "--output=flagged.hdf5"], tmp_path)
    _ceci("rail.evaluation.deepdisc_evaluators.DeepDiscMetricsEvaluator",
          ["--input=flagged.hdf5", "--truth=tiles.h5", "--output=metrics.json"], tmp_path)
    _ceci("rail.evaluation.deepdisc_evaluators.DeepDiscCoverageEvaluator",
          ["--input=flagged.hdf5", "--truth=tiles.h5", "--output=coverage.json"], tmp_path)
    _ceci("rail.evaluation.deepdisc_evaluators.DeepDiscTruthMatcher",
          ["--input=pz.hdf5", "--truth=tiles.h5", "--output=matched.hdf5", "--truth_table=truth.hdf5"],
          tmp_path)
    _ceci("rail.evaluation.dist_to_point_evaluator.DistToPointEvaluator",
          ["--input=matched.hdf5", "--truth=truth.hdf5", "--output=d2p.hdf5", "--summary=d2p_summary.hdf5",
           "--single_distribution_summary=d2p_pit.hdf5"], tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "spec_rep" in metrics["metrics"] and metrics["n_objects"] == tileset.n_primary
    coverage = json.loads((tmp_path / "coverage.json").read_text())
    assert {r["subset"] for r in coverage["rows"]} >= {"spec_rep", "not_spec_rep"}
    assert qp.read(str(tmp_path / "flagged.hdf5")).npdf == tileset.n_primary
    summary = tables_io.read(str(tmp_path / "d2p_summary.hdf5"))
    assert np.isfinite(summary["cdeloss"][0])

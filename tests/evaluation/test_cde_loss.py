"""CDE loss on the estimators' grid (0 to zmax), in the pipelines' evaluator and in the report's metrics."""

import numpy as np
import pytest
import qp
from scipy import integrate, stats

from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN
from rail.deepdisc.evaluation.coverage import gridded_ensemble
from rail.deepdisc.evaluation.evaluate import EvaluationSettings
from rail.deepdisc.evaluation.rail_metrics import rail_metrics
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.pipelines import PIPELINES
from rail.evaluation.deepdisc_evaluators import DeepDiscDistToPointEvaluator

#: Three two-component mixtures, two of them far above RAIL's default grid (0 to 2.5).
MEANS = np.array([[1.0, 1.3], [5.0, 4.6], [9.0, 8.5]])
STDS = np.array([[0.1, 0.3], [0.2, 0.4], [0.3, 0.5]])
WEIGHTS = np.array([[0.7, 0.3], [0.6, 0.4], [0.5, 0.5]])
ZTRUE = np.array([1.02, 4.9, 8.8])


def _pdf(row: int, z):
    return sum(w * stats.norm.pdf(z, m, s) for m, s, w in zip(MEANS[row], STDS[row], WEIGHTS[row]))


def direct_cde_loss(zmin: float, zmax: float, rows=(0, 1, 2)) -> float:
    """Izbicki & Lee (2017): mean of the integral of p(z)^2 over [zmin, zmax], minus twice the mean p(z_true)."""
    term1 = [integrate.quad(lambda z, r=r: _pdf(r, z) ** 2, zmin, zmax, points=list(MEANS[r]), limit=200)[0]
             for r in rows]
    term2 = [_pdf(r, ZTRUE[r]) for r in rows]
    return float(np.mean(term1) - 2 * np.mean(term2))


@pytest.fixture
def ensemble():
    return qp.Ensemble(qp.mixmod, data=dict(means=MEANS, stds=STDS, weights=WEIGHTS))


def test_known_mixture_direct_value_depends_on_the_grid():
    # the check below can fail: RAIL's default grid gives another number for these PDFs
    assert abs(direct_cde_loss(0.0, 2.5) - direct_cde_loss(ZMIN, ZMAX)) > 0.5


def test_pipeline_evaluator_cde_loss_matches_direct_computation(ensemble):
    stage = DeepDiscDistToPointEvaluator.make_stage(
        name="cde_test_stage", metrics=["cdeloss", "pit"], force_exact=True, hdf5_groupname="",
        output_mode="return")
    summary = stage.evaluate(ensemble, {"redshift": ZTRUE})["summary"].data
    assert summary["cdeloss"][0] == pytest.approx(direct_cde_loss(ZMIN, ZMAX), rel=1e-3)


def test_pipeline_evaluator_follows_its_grid_options(ensemble):
    stage = DeepDiscDistToPointEvaluator.make_stage(
        name="cde_test_stage_7", metrics=["cdeloss"], force_exact=True, hdf5_groupname="", output_mode="return",
        zmax=7.0, nzbins=701)
    summary = stage.evaluate(ensemble[np.arange(2)], {"redshift": ZTRUE[:2]})["summary"].data
    assert summary["cdeloss"][0] == pytest.approx(direct_cde_loss(0.0, 7.0, rows=(0, 1)), rel=1e-3)


def test_report_cde_loss_matches_direct_computation(ensemble):
    settings = EvaluationSettings()
    assert (settings.zmin, settings.zmax) == (ZMIN, ZMAX)
    gridded = gridded_ensemble(ensemble, settings.zgrid)
    result = rail_metrics(gridded, ZTRUE, zmin=settings.zmin, zmax=settings.zmax, nzbins=settings.nzbins)
    assert result["cde_loss"] == pytest.approx(direct_cde_loss(ZMIN, ZMAX), rel=1e-3)


def test_every_pipeline_evaluates_on_its_estimators_grid():
    for stem, (factory, _) in PIPELINES.items():
        pipe = factory()
        pits = [name for name in pipe.stage_names if name.startswith("pit_")]
        assert pits, stem
        for name in pits:
            stage = getattr(pipe, name)
            estimator = getattr(pipe, name.replace("pit_", "estimate_"))
            if "zmax" not in estimator.config_options:  # the consensus takes its grid from its informer's model
                estimator = getattr(pipe, name.replace("pit_", "inform_"))
            assert isinstance(stage, DeepDiscDistToPointEvaluator), (stem, name)
            for key in ("zmin", "zmax", "nzbins"):
                assert stage.config[key] == estimator.config[key], (stem, name, key)
            assert (stage.config["zmax"], stage.config["nzbins"]) == (ZMAX, NZBINS)


def test_integration_limits_come_from_the_grid():
    with pytest.raises(ConfigError, match="metric_integration_limits cannot be set"):
        DeepDiscDistToPointEvaluator.make_stage(name="cde_test_bad", metric_integration_limits=[0, 3])


def test_grid_options_may_repeat_the_derived_values():
    """A pipeline's config file holds every option, the derived ones included: equal values are accepted."""
    stage = DeepDiscDistToPointEvaluator.make_stage(name="cde_test_repeat", zmax=6.0, nzbins=601,
                                                    metric_integration_limits=[0.0, 6.0], dx=0.01, x_grid=[])
    assert stage.config["metric_integration_limits"] == [0.0, 6.0] and stage.config["dx"] == pytest.approx(0.01)

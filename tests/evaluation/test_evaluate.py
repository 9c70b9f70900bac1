"""`evaluate_photoz` grids only the PDFs of objects with a truth redshift, with the results of gridding all."""

import numpy as np
import pytest

import rail.deepdisc.evaluation.evaluate as evaluate
from rail.deepdisc.evaluation.coverage import gridded_ensemble
from rail.deepdisc.evaluation.evaluate import EvaluationSettings, evaluate_photoz
from rail.deepdisc.evaluation.io import PhotoZTable, TruthTable
from rail.deepdisc.evaluation.rail_metrics import rail_metrics
from tests.helpers.evalhelpers import make_photoz_for, varied_tileset


@pytest.fixture(scope="module")
def spec_case():
    ts = varied_tileset(n_tiles=6, objects_per_tile=10)
    truth = TruthTable.from_tileset(ts)
    return PhotoZTable(make_photoz_for(ts, seed=1)), PhotoZTable(make_photoz_for(ts, seed=9, width_factor=0.5)), truth


def test_only_the_labelled_pdfs_are_gridded_and_the_results_are_those_of_gridding_all(spec_case, monkeypatch):
    photoz, peer, truth = spec_case
    settings = EvaluationSettings(truth_column="redshift")
    ztrue = np.asarray(truth.columns["redshift"], float)
    n_spec = int(np.isfinite(ztrue).sum())
    assert 2 <= n_spec < photoz.n  # a spec-z subset, as on a real field

    gridded_rows = []

    def spy(ensemble, zgrid):
        gridded_rows.append(ensemble.npdf)
        return gridded_ensemble(ensemble, zgrid)

    monkeypatch.setattr(evaluate, "gridded_ensemble", spy)
    res = evaluate_photoz(photoz, truth, settings=settings, peers={"peer": peer})
    assert gridded_rows == [n_spec, n_spec]  # ours and the peer's: the labelled objects only

    # what gridding every PDF gave: RAIL's metrics on the labelled rows, N(z) stacked over them
    everything = gridded_ensemble(photoz.ensemble, settings.zgrid)
    want = rail_metrics(everything, ztrue, zmin=settings.zmin, zmax=settings.zmax, nzbins=settings.nzbins,
                        point_estimate=settings.point_estimate)
    assert res.summary["rail"].keys() == want.keys() and "cde_loss" in want
    for key, value in want.items():
        assert res.summary["rail"][key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    stacked = np.asarray(everything.objdata["yvals"])[np.isfinite(ztrue)].mean(axis=0)
    np.testing.assert_allclose(res.nz["stacked_pdf"], stacked, rtol=1e-12, atol=1e-15)
    peer_row = next(r for r in res.peers if r["estimator"] == "peer")
    peer_want = rail_metrics(gridded_ensemble(peer.ensemble, settings.zgrid), ztrue, zmin=settings.zmin,
                             zmax=settings.zmax, nzbins=settings.nzbins, point_estimate=settings.point_estimate)
    assert peer_row["cde_loss"] == pytest.approx(peer_want["cde_loss"], rel=1e-12)


def test_one_labelled_object_still_gives_its_stacked_pdf(spec_case):
    photoz, _, truth = spec_case
    z = np.full(truth.n, np.nan)
    z[3] = 1.2
    one = TruthTable({**truth.columns, "redshift": z}, truth.bands)
    res = evaluate_photoz(photoz, one, settings=EvaluationSettings(truth_column="redshift"))
    grid = gridded_ensemble(photoz.ensemble[np.array([3])], EvaluationSettings().zgrid)
    np.testing.assert_allclose(res.nz["stacked_pdf"], np.asarray(grid.objdata["yvals"]).reshape(-1), rtol=1e-12)
    assert res.summary["rail"] == {}  # RAIL's evaluators need two


def test_stars_are_left_out_of_the_redshift_metrics_unless_asked(spec_case):
    photoz, _, truth = spec_case
    rng = np.random.default_rng(3)
    z = rng.uniform(0.5, 3.0, truth.n)
    star = np.zeros(truth.n, bool)
    star[::7] = True
    z[star] = 0.0  # the simulator's truth of a star
    cols = {**truth.columns, "redshift_true": z, "true_is_star": star}
    with_stars = TruthTable(cols, truth.bands)
    res = evaluate_photoz(photoz, with_stars)
    assert res.summary["truth_column"] == "redshift_true"
    assert res.summary["n_with_truth"] == truth.n - star.sum()
    assert res.summary["n_stars_left_out"] == star.sum()
    assert np.all(np.isnan(res.objects["ztrue"][star])) and np.all(np.isfinite(res.objects["ztrue"][~star]))
    assert res.summary["metrics"]["all"]["n"] == truth.n - star.sum()
    kept = evaluate_photoz(photoz, with_stars, settings=EvaluationSettings(galaxies_only=False))
    assert kept.summary["n_with_truth"] == truth.n and kept.summary["n_stars_left_out"] == 0
    assert kept.summary["metrics"]["all"]["n"] == truth.n
    # a user's own star/galaxy flag works the same way
    user = TruthTable({**truth.columns, "redshift_true": z, "is_star": star.astype(np.int8)}, truth.bands)
    assert np.array_equal(np.isnan(user.redshift()[0]), star)

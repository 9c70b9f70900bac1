"""Catalog machine-learning peers (FlexZBoost, kNN) on NIRCam catalogs: options, inputs, output row for row."""

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.catalog_ml import grid_point_estimates, ml_table, nircam_ml_options
from rail.deepdisc.presets import get_preset
from rail.estimation.algos.deepdisc_ml import (
    NIRCamFlexZBoostEstimator,
    NIRCamFlexZBoostInformer,
    NIRCamKNNEstimator,
    NIRCamKNNInformer,
)
from tests.helpers.simphot import simulated_photometry

BANDS = get_preset("JADES9")
#: Small grids for fast tests.
FAST = dict(zmax=8.0, nzbins=201)


@pytest.fixture(scope="module")
def catalogs():
    cat = simulated_photometry(BANDS, area_arcsec2=2500.0, seed=5)
    keep = np.flatnonzero(cat["true_mag_F444W"] < 28)
    train = {k: v[keep[::2]] for k, v in cat.items()}
    test = {k: v[keep[1::2][:80]] for k, v in cat.items()}
    train["redshift"][::4] = np.nan  # unlabelled objects are not trained on
    test["mag_F090W"][:3] = np.nan  # not observed
    return train, test


def test_options_follow_the_bands():
    opts = nircam_ml_options(["F115W", "F277W", "F444W"], mag_limit=29.0)
    assert opts["bands"] == ["mag_F115W", "mag_F277W", "mag_F444W"] and opts["ref_band"] == "mag_F444W"
    assert opts["mag_limits"] == {f"mag_{b}": 29.0 for b in ("F115W", "F277W", "F444W")}
    with pytest.raises(ConfigError, match="ref_band 'F090W' is not one of the bands"):
        nircam_ml_options(["F115W"], ref_band="F090W")
    est = NIRCamKNNEstimator.make_stage(name="knn_opts", nircam_bands=["F150W", "F444W"], nircam_ref_band="F150W")
    assert est.config.bands == ["mag_F150W", "mag_F444W"] and est.config.ref_band == "mag_F150W"
    assert est.config.zmax == 12.0 and est.config.nzbins == 1201
    with pytest.raises(ConfigError, match="did you mean 'nircam_bands'"):
        NIRCamFlexZBoostEstimator.make_stage(name="fzb_bad", nircam_band=["F444W"])


def test_ml_table_sets_non_detections_and_missing_bands():
    table = {"mag_F150W": np.array([25.0, 99.0, np.nan]), "magerr_F150W": np.array([0.1, 31.0, np.nan]),
             "ebv": np.array([0.1, 0.0, 0.0])}
    kept = ml_table(table, ["F150W"], mag_limit=30.0)
    assert kept["mag_F150W"][0] < 25.0  # dereddened
    assert kept["mag_F150W"][1] == 30.0 and kept["magerr_F150W"][1] == 1.0
    assert np.isnan(kept["mag_F150W"][2])
    filled = ml_table(table, ["F150W"], mag_limit=30.0, fill_missing=True, deredden_mw=False)
    np.testing.assert_array_equal(filled["mag_F150W"], [25.0, 30.0, 30.0])
    assert table["mag_F150W"][1] == 99.0  # the input is left alone


def test_grid_point_estimates_known_answer():
    import qp

    ens = qp.Ensemble(qp.mixmod, data=dict(means=np.array([[1.0, 3.0]]), stds=np.array([[0.1, 0.1]]),
                                           weights=np.array([[0.7, 0.3]])))
    est = grid_point_estimates(ens, np.linspace(0, 5, 5001))
    assert est["zmode"][0] == pytest.approx(1.0, abs=1e-3)
    assert est["zmean"][0] == pytest.approx(0.7 * 1.0 + 0.3 * 3.0, abs=1e-3)
    assert est["zmedian"][0] == pytest.approx(1.0 + 0.1 * 0.566, abs=2e-3)  # Phi^-1(0.5 / 0.7) = 0.566


@pytest.mark.parametrize(
    ("inform_cls", "estimate_cls", "options"),
    [
        (NIRCamKNNInformer, NIRCamKNNEstimator, {}),
        (NIRCamFlexZBoostInformer, NIRCamFlexZBoostEstimator, dict(nbump=3, nsharp=3, max_basis=20)),
    ],
)
def test_inform_on_labels_estimate_row_for_row(tmp_path, catalogs, inform_cls, estimate_cls, options):
    train, test = catalogs
    inf = inform_cls.make_stage(name=f"{inform_cls.name}_t", model=str(tmp_path / "model.pkl"), **FAST, **options)
    inf.inform(train)
    if inform_cls is NIRCamKNNInformer:
        assert len(inf.model["truezs"]) == np.isfinite(train["redshift"]).sum()
    est = estimate_cls.make_stage(name=f"{estimate_cls.name}_t", model=inf.get_handle("model"), chunk_size=30,
                                  output=str(tmp_path / "pz.hdf5"), **FAST)
    out = est.estimate(test).data
    assert out.npdf == len(test["redshift"])
    np.testing.assert_array_equal(np.ravel(out.ancil["object_id"]), test["object_id"])
    for key in ("zmode", "zmean", "zmedian"):
        assert np.all(np.isfinite(np.ravel(out.ancil[key])))
    z = test["redshift"]
    dz = np.abs(np.ravel(out.ancil["zmedian"]) - z) / (1 + z)
    assert np.mean(dz < 0.15) > 0.6  # learnt something from ~100 labels (random guessing: ~0.2)


def test_knn_with_fewer_labels_than_neighbours(tmp_path, catalogs):
    train, test = catalogs
    few = {k: v[np.flatnonzero(np.isfinite(train["redshift"]))[:6]] for k, v in train.items()}
    inf = NIRCamKNNInformer.make_stage(name="knn_few", model=str(tmp_path / "few.pkl"), **FAST)
    inf.inform(few)  # the tree holds 4 objects: at most 4 neighbours
    assert inf.model["nneigh"] <= 4
    est = NIRCamKNNEstimator.make_stage(name="knn_few_est", model=inf.get_handle("model"),
                                        output=str(tmp_path / "few.hdf5"), **FAST)
    assert est.estimate(test).data.npdf == len(test["redshift"])


@pytest.mark.parametrize("n_labels", [3, 5])
def test_knn_keeps_two_objects_to_validate_on(tmp_path, catalogs, n_labels):
    """Upstream's CDE loss fails on a single validation object (5 labels at train_frac 0.75 left one)."""
    train, test = catalogs
    few = {k: v[np.flatnonzero(np.isfinite(train["redshift"]))[:n_labels]] for k, v in train.items()}
    inf = NIRCamKNNInformer.make_stage(name=f"knn_{n_labels}", model=str(tmp_path / "few.pkl"), **FAST)
    inf.inform(few)
    assert n_labels - round(n_labels * inf.config.train_frac) >= 2
    assert 1 <= inf.model["nneigh"] <= n_labels - 2


def test_knn_refuses_two_labels(tmp_path, catalogs):
    train, _ = catalogs
    two = {k: v[np.flatnonzero(np.isfinite(train["redshift"]))[:2]] for k, v in train.items()}
    inf = NIRCamKNNInformer.make_stage(name="knn_two", model=str(tmp_path / "two.pkl"), **FAST)
    with pytest.raises(ConfigError, match="kNN needs at least 3"):
        inf.inform(two)

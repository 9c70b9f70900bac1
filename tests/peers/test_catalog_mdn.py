"""The catalog MDN: DeepDISC's redshift head trained on catalog colours (issue 18's images-vs-catalog control)."""

import pickle

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.peers.catalog_mdn import (
    CATALOG_MDN_OPTIONS,
    CatalogMdnSettings,
    catalog_features,
    catalog_mixtures,
    load_catalog_mdn,
    save_catalog_mdn,
)
from rail.deepdisc.peers.catalog_mdn_train import train_catalog_mdn
from rail.estimation.algos.deepdisc_ml import CatalogMdnEstimator, CatalogMdnInformer

BANDS = ["F115W", "F150W", "F277W", "F444W"]
COLOUR_NOISE = 0.05
#: Quick settings: the head as DeepDISC's, fewer members and epochs.
QUICK = dict(members=2, epochs=60, progress_bar=False)


def colour_catalog(n, seed, *, z=None):
    """Galaxies whose colours are known functions of redshift (plus 0.05 mag noise per band).

    F115W-F150W = 0.4 z, F150W-F277W = 0.8 sin(z), F277W-F444W = 0.1 z; F444W uniform in 23-26 (no information).
    """
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.2, 6.0, n) if z is None else np.asarray(z, float)
    m444 = rng.uniform(23.0, 26.0, len(z))
    m277 = m444 + 0.1 * z
    m150 = m277 + 0.8 * np.sin(z)
    m115 = m150 + 0.4 * z
    table = {"object_id": np.arange(1, len(z) + 1), "redshift": z, "ebv": np.zeros(len(z))}
    for band, mag in zip(BANDS, (m115, m150, m277, m444)):
        table[f"mag_{band}"] = mag + rng.normal(0.0, COLOUR_NOISE, len(z))
        table[f"magerr_{band}"] = np.full(len(z), COLOUR_NOISE)
    return table


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("mdn") / "model.pt"
    train = colour_catalog(300, seed=1)
    train["redshift"][::10] = np.nan  # unlabelled objects are not trained on
    inf = CatalogMdnInformer.make_stage(name="mdn_inform", model=str(path), nircam_bands=BANDS, **QUICK)
    inf.inform(train)
    return inf, path


def _mixture_cdf(weights, means, stds, z):
    return (weights * ndtr((z[:, None] - means) / stds)).sum(axis=1)


def test_learns_a_colour_redshift_relation_with_calibrated_widths(tmp_path, trained):
    inf, _ = trained
    test = colour_catalog(200, seed=2)
    est = CatalogMdnEstimator.make_stage(name="mdn_estimate", model=inf.get_handle("model"),
                                         output=str(tmp_path / "pz.hdf5"), chunk_size=64)
    out = est.estimate(test).data
    z = test["redshift"]
    zmode = np.ravel(out.ancil["zmode"])
    spread = np.std(z)  # ~1.7: what the prior alone gets
    assert np.median(np.abs(zmode - z)) < 0.1 * spread
    assert np.mean(np.abs(zmode - z) / (1 + z) > 0.15) < 0.05
    np.testing.assert_array_equal(np.ravel(out.ancil["object_id"]), test["object_id"])
    # the 68% central intervals of the calibrated mixtures hold about 68% of the true redshifts
    features, ebv = catalog_features(test, BANDS, ref_band="F444W", mag_limit=30.0)
    weights, means, stds = catalog_mixtures(inf.model, features, ebv)
    pit = _mixture_cdf(weights, means, stds, z)
    assert 0.5 < np.mean(np.abs(pit - 0.5) < 0.34) < 0.85
    assert all(m["std_scale"] != 1.0 for m in inf.model["members"])  # the widths were calibrated


def test_pdfs_are_normalised_and_members_weighted(tmp_path, trained):
    inf, path = trained
    model = load_catalog_mdn(path)  # the file loads with weights_only=True
    assert model["format"] == "deepdisc-catalog-mdn" and model["config"]["bands"] == BANDS
    assert sum(m["weight"] for m in model["members"]) == pytest.approx(1.0)
    test = colour_catalog(50, seed=3)
    features, ebv = catalog_features(test, BANDS, ref_band="F444W", mag_limit=30.0)
    weights, means, stds = catalog_mixtures(model, features, ebv)
    assert weights.shape[1] == len(model["members"]) * model["config"]["n_components"]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(stds > 0) and np.all(means > 0)
    est = CatalogMdnEstimator.make_stage(name="mdn_estimate_norm", model=str(path), zmax=12.0, nzbins=2401,
                                         output=str(tmp_path / "pz.hdf5"))
    out = est.estimate(test).data
    grid = np.linspace(0.0, 12.0, 2401)
    np.testing.assert_allclose(np.trapezoid(out.pdf(grid), grid, axis=1), 1.0, atol=2e-3)
    zmean = np.ravel(out.ancil["zmean"])
    np.testing.assert_allclose(zmean, (weights * means).sum(axis=1), atol=0.02)  # mass below 0 is tiny here


def test_training_is_reproducible_and_uses_only_labels():
    table = colour_catalog(60, seed=4)
    features, ebv = catalog_features(table, BANDS, ref_band="F444W", mag_limit=30.0)
    settings = CatalogMdnSettings(members=1, epochs=3, progress_bar=False)
    config = dict(bands=BANDS, ref_band="F444W", mag_limit=30.0, deredden=True)
    a = train_catalog_mdn(features, ebv, table["redshift"], settings, feature_config=config)
    b = train_catalog_mdn(features, ebv, table["redshift"], settings, feature_config=config)
    for key, value in a["members"][0]["state_dict"].items():
        torch.testing.assert_close(value, b["members"][0]["state_dict"][key])
    z = table["redshift"].copy()
    z[30:] = np.nan
    c = train_catalog_mdn(features, ebv, z, settings, feature_config=config)
    assert c["provenance"]["n_labelled"] == 30


def test_ensemble_width_calibration_on_held_out_objects():
    table = colour_catalog(200, seed=5)
    features, ebv = catalog_features(table, BANDS, ref_band="F444W", mag_limit=30.0)
    settings = CatalogMdnSettings(members=2, epochs=20, calibration_fraction=0.2, progress_bar=False)
    model = train_catalog_mdn(features, ebv, table["redshift"], settings,
                              feature_config=dict(bands=BANDS, ref_band="F444W", mag_limit=30.0, deredden=True))
    assert model["provenance"]["n_calibration"] == 40
    assert all(len(m["calibration"]["z"]) == 40 for m in model["members"])
    assert model["config"]["ensemble_std_scale"] != 1.0


def test_bad_input_gets_one_clear_error(tmp_path):
    table = colour_catalog(20, seed=6)
    with pytest.raises(ConfigError, match=r"lacks column\(s\) mag_F200W, magerr_F200W"):
        catalog_features(table, ["F200W", "F444W"], ref_band="F444W", mag_limit=30.0)
    with pytest.raises(ConfigError, match="ref_band 'F090W' is not one of the bands"):
        catalog_features(table, BANDS, ref_band="F090W", mag_limit=30.0)
    with pytest.raises(ConfigError, match="mdn_nolabels: the input table has no spec-z column 'specz'"):
        CatalogMdnInformer.make_stage(name="mdn_nolabels", model=str(tmp_path / "n.pt"), redshift_col="specz",
                                      nircam_bands=BANDS).inform(table)
    few = dict(table, redshift=np.where(np.arange(20) < 2, table["redshift"], np.nan))
    inf = CatalogMdnInformer.make_stage(name="mdn_few", model=str(tmp_path / "few.pt"), nircam_bands=BANDS, **QUICK)
    with pytest.raises(ConfigError, match="2 object.*with a spec-z; the catalog MDN needs at least 3"):
        inf.inform(few)
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        CatalogMdnInformer.make_stage(name="mdn_typo", epoch=3)
    with pytest.raises(ConfigError, match="head_dropout must be in"):
        CatalogMdnInformer.make_stage(name="mdn_range", head_dropout=1.5)


def test_estimating_a_catalog_without_the_models_bands_is_refused(tmp_path, trained):
    inf, _ = trained
    table = colour_catalog(10, seed=7)
    del table["mag_F115W"]
    est = CatalogMdnEstimator.make_stage(name="mdn_missing_band", model=inf.get_handle("model"),
                                         output=str(tmp_path / "pz.hdf5"))
    with pytest.raises(ConfigError, match=r"mdn_missing_band: input catalog lacks column\(s\) mag_F115W"):
        est.estimate(table)
    assert not (tmp_path / "pz.hdf5").exists()


def test_model_files_are_weights_only_and_checked(tmp_path):
    pickled = tmp_path / "pickled.pt"
    with open(pickled, "wb") as f:
        pickle.dump({"format": "deepdisc-catalog-mdn", "obj": ConfigError("x")}, f)
    with pytest.raises(ModelError, match="pickled.pt: not a weights-only catalog MDN model file"):
        load_catalog_mdn(pickled)
    other = save_catalog_mdn({"config": {}, "members": []}, tmp_path / "empty.pt")
    with pytest.raises(ModelError, match="empty.pt: incomplete catalog MDN model"):
        load_catalog_mdn(other)
    torch.save({"format": "deepdisc-model", "version": 3}, tmp_path / "deepdisc.pt")
    with pytest.raises(ModelError, match="deepdisc.pt: not a catalog MDN model \\(format 'deepdisc-model'"):
        load_catalog_mdn(tmp_path / "deepdisc.pt")
    with pytest.raises(ModelError, match="missing.pt: no such model file"):
        load_catalog_mdn(tmp_path / "missing.pt")


def test_options_are_deepdiscs_declarations():
    from rail.deepdisc.training.settings import TRAIN_OPTIONS

    for name in ("members", "seed", "head_dropout", "head_hidden", "n_components", "weight_decay",
                 "calibrate_widths"):
        assert CATALOG_MDN_OPTIONS[name].help == TRAIN_OPTIONS[name].help, name
        assert CATALOG_MDN_OPTIONS[name].default == TRAIN_OPTIONS[name].default, name
    param = CatalogMdnInformer.config_options["head_dropout"]
    assert (param.default, param.msg) == (0.3, TRAIN_OPTIONS["head_dropout"].help)

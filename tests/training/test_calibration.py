"""The ensemble's width calibration: held-out tiles, stored member mixtures, the fitted factor at load time."""

import logging
import math

import numpy as np
import pytest
import torch

import rail.deepdisc.training.ensemble as ensemble_mod
from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.inference.predictor import EnsemblePredictor
from rail.deepdisc.model.artifact import save_artifact
from rail.deepdisc.model.network import model_from_artifact
from rail.deepdisc.model.redshift_head import MixtureParams
from rail.deepdisc.training.calibration import calibration_tiles, ensemble_std_scale, mixture_crps
from rail.deepdisc.training.data import MemberData, labelled_tiles, tile_targets
from rail.deepdisc.training.ensemble import merge_artifacts
from rail.deepdisc.training.run import train_from_options
from rail.deepdisc.training.settings import EnsembleSettings
from rail.deepdisc.training.validation import held_out_mixtures
from tests.helpers.nethelpers import FAST, make_colour_tileset


def test_calibration_tiles_are_a_seeded_share_of_the_labelled_tiles():
    labelled = np.arange(3, 43)
    a = calibration_tiles(labelled, 0.1, seed=5)
    assert len(a) == 4 and set(a) <= set(labelled) and np.all(np.diff(a) > 0)
    assert np.array_equal(a, calibration_tiles(labelled, 0.1, seed=5))
    assert not np.array_equal(a, calibration_tiles(labelled, 0.1, seed=6))
    assert len(calibration_tiles(labelled, 0.0, seed=5)) == 0


def test_calibration_tiles_leave_every_member_two_labelled_tiles(caplog):
    assert len(calibration_tiles(np.arange(4), 0.5, seed=0)) == 2
    with caplog.at_level(logging.WARNING):
        assert len(calibration_tiles(np.arange(3), 0.5, seed=0)) == 0
    assert "none held out for the ensemble width calibration" in caplog.text


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_calibration_fraction_is_checked(fraction):
    with pytest.raises(ConfigError, match="calibration_fraction must be in"):
        EnsembleSettings(calibration_fraction=fraction)


def _members(rng, n, *, spread, own=0.15, n_members=3):
    """Members each calibrated alone, whose means scatter about a shared error (their mixture over-covers)."""
    z = rng.uniform(0.3, 5.0, n)
    shared = rng.normal(0.0, own, n)
    members = []
    for _ in range(n_members):
        mean = z + shared + rng.normal(0.0, spread, n)
        std = np.full(n, math.hypot(own, spread))  # each member's width = its own error: calibrated alone
        members.append({
            "weight": 1.0 / n_members,
            "calibration": {"z": torch.tensor(z, dtype=torch.float32),
                            "weights": torch.ones(n, 1), "means": torch.tensor(mean[:, None], dtype=torch.float32),
                            "stds": torch.tensor(std[:, None], dtype=torch.float32)},
        })
    return z, members


def _central_coverage(members, z, scale, level=0.68):
    """Fraction of objects whose z lies in the central ``level`` interval of the weighted mixture."""
    from scipy.stats import norm

    cdf = sum(m["weight"] * norm.cdf(z, m["calibration"]["means"][:, 0].numpy(),
                                     scale * m["calibration"]["stds"][:, 0].numpy()) for m in members)
    lo = (1 - level) / 2
    return float(np.mean((cdf > lo) & (cdf < 1 - lo)))


def test_fitted_factor_brings_an_over_covering_mixture_to_nominal_coverage():
    z, members = _members(np.random.default_rng(1), 4000, spread=0.1)
    for m in members:
        assert _central_coverage([{**m, "weight": 1.0}], z, 1.0) == pytest.approx(0.68, abs=0.03)
    before = _central_coverage(members, z, 1.0)
    scale, n = ensemble_std_scale(members)
    assert n == 4000 and scale < 0.9
    assert before > 0.75
    assert _central_coverage(members, z, scale) == pytest.approx(0.68, abs=0.03)
    assert _central_coverage(members, z, scale, level=0.95) == pytest.approx(0.95, abs=0.02)


def test_mixture_crps_matches_the_integral_of_the_squared_cdf_difference():
    from scipy.stats import norm

    params = MixtureParams(np.array([[0.3, 0.7], [1.0, 0.0]]), np.array([[0.5, 2.0], [1.0, 3.0]]),
                           np.array([[0.1, 0.4], [0.2, 1.0]]))
    z = np.array([1.2, 0.4])
    x = np.linspace(-6.0, 10.0, 200001)
    for i in range(2):
        cdf = (params.weights[i] * norm.cdf(x[:, None], params.means[i], params.stds[i])).sum(1)
        expected = np.trapezoid((cdf - (x >= z[i])) ** 2, x)
        assert mixture_crps(MixtureParams(*(p[i : i + 1] for p in params)), z[i : i + 1])[0] == pytest.approx(
            expected, rel=1e-4)


def test_agreeing_members_keep_their_widths():
    z, members = _members(np.random.default_rng(2), 4000, spread=0.0)
    scale, _ = ensemble_std_scale(members)
    assert scale == pytest.approx(1.0, abs=0.05)


def test_factor_is_one_without_common_records(caplog):
    z, members = _members(np.random.default_rng(3), 50, spread=0.3)
    assert ensemble_std_scale([members[0], {"weight": 1.0}]) == (1.0, 0)
    other = {**members[1], "calibration": {**members[1]["calibration"],
                                           "z": members[1]["calibration"]["z"] + 0.1}}
    with caplog.at_level(logging.WARNING):
        assert ensemble_std_scale([members[0], other], name="m.pt") == (1.0, 0)
    assert "m.pt: members were calibrated on different objects" in caplog.text
    few = [{**m, "calibration": {k: v[:5] for k, v in m["calibration"].items()}} for m in members]
    assert ensemble_std_scale(few) == (1.0, 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-member ensemble on 10 labelled tiles with 3 calibration tiles, and what each member trained on."""
    tiles = make_colour_tileset(n_tiles=10, seed=6, labelled_fraction=1.0, objects_per_tile=6)
    seen = []
    original = ensemble_mod.train_member

    def recording(model, data, *args, **kwargs):
        seen.append(data)
        return original(model, data, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(ensemble_mod, "train_member", recording)
    try:
        options = {**FAST, "members": 2, "epochs": 1, "val_fraction": 0.3, "calibration_fraction": 0.3, "seed": 9}
        art = train_from_options(tiles, options)
    finally:
        mp.undo()
    return tiles, art, seen


def test_calibration_tiles_train_no_member_redshift(trained):
    tiles, art, seen = trained
    targets = tile_targets(tiles)
    cal = calibration_tiles(labelled_tiles(targets), 0.3, seed=9)
    assert len(cal) == 3
    cal_ids = np.concatenate([targets[k]["object_id"] for k in cal])
    for data in seen:
        assert not set(cal) & set(data.val)
        for k in data.train:  # detection still trains on them, with every calibration object's label hidden
            hidden = np.isin(data.targets[k]["object_id"], cal_ids)
            assert np.all(np.isnan(data.targets[k]["redshift"][hidden]))


def test_members_store_their_mixtures_of_the_same_calibration_objects(trained):
    tiles, art, _ = trained
    targets = tile_targets(tiles)
    cal = calibration_tiles(labelled_tiles(targets), 0.3, seed=9)
    labels = np.concatenate([targets[k]["redshift"] for k in cal])
    records = [m["calibration"] for m in art["members"]]
    assert all(torch.equal(r["z"], records[0]["z"]) for r in records)
    assert np.allclose(records[0]["z"].numpy(), labels[np.isfinite(labels)])
    model = model_from_artifact(art, 1)
    data = MemberData(tiles.images, tiles.segmaps, targets, np.zeros(0, np.int64), cal, np.ones(len(tiles.bands)))
    params, _ = held_out_mixtures(model, data, batch_size=4, device=torch.device("cpu"))
    assert torch.allclose(params.means, records[1]["means"], atol=1e-5)
    assert torch.allclose(params.stds, records[1]["stds"], atol=1e-5)
    assert art["config"]["training"]["calibration_fraction"] == 0.3


def test_loaded_ensemble_applies_the_factor_of_its_members(trained, tmp_path, capsys):
    _, art, _ = trained
    scale, n = ensemble_std_scale(art["members"])
    assert n > 0 and scale != 1.0
    predictor = EnsemblePredictor.from_artifact(art, device="cpu")
    for (_, model), member in zip(predictor.networks(), art["members"], strict=True):
        assert float(model.redshift_head.std_scale) == pytest.approx(member["std_scale"] * scale, rel=1e-6)
    alone = EnsemblePredictor.from_artifact(art, device="cpu", members=[1])
    own, _ = ensemble_std_scale([art["members"][1]])
    net = alone.members.network(0)
    assert float(net.redshift_head.std_scale) == pytest.approx(art["members"][1]["std_scale"] * own)
    merged = merge_artifacts([{**art, "members": [m]} for m in art["members"]])
    assert ensemble_std_scale(merged["members"]) == pytest.approx((scale, n))
    assert main(["info", str(save_artifact(art, tmp_path / "m.pt"))]) == 0
    assert f"ensemble widths x {scale:.3f} (fitted on {n} calibration objects)" in capsys.readouterr().out


def test_without_width_calibration_no_tile_is_held_out():
    tiles = make_colour_tileset(n_tiles=8, seed=6, labelled_fraction=1.0)
    art = train_from_options(tiles, {**FAST, "epochs": 1, "calibrate_widths": False, "calibration_fraction": 0.25})
    assert "calibration" not in art["members"][0]
    assert ensemble_std_scale(art["members"]) == (1.0, 0)

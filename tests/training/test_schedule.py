"""Training choices that decide which weights a member keeps: schedule, validation, kept epoch, shared gradient."""

import math

import numpy as np
import pytest
import torch

import rail.deepdisc.training.selection as selection_mod
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.network import scale_gradient
from rail.deepdisc.model.redshift_head import MixtureParams, fit_std_scale
from rail.deepdisc.training.checkpoint import MemberState
from rail.deepdisc.training.data import MemberData, tile_targets
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.optimiser import COSINE_FLOOR, learning_rate_at
from rail.deepdisc.training.run import train_from_options
from rail.deepdisc.training.settings import TrainSettings
from rail.deepdisc.training.validation import (
    MIN_CALIBRATION_OBJECTS,
    ValidationScores,
    calibrate_widths,
    validation_log_likelihood,
    validation_objective,
    validation_scores,
)
from tests.helpers.nethelpers import FAST, make_colour_tileset
from tests.training.test_head_training import one_target, small_model


def test_cosine_schedule_decays_to_the_floor_and_keeps_the_steps():
    s = TrainSettings(learning_rate=1e-3, epochs=11)
    lrs = [learning_rate_at(e, s) for e in range(11)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3 * COSINE_FLOOR)
    assert lrs[5] == pytest.approx(1e-3 * (COSINE_FLOOR + (1 - COSINE_FLOOR) / 2))  # half way: mid-point
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    stepped = TrainSettings(learning_rate=1e-3, epochs=11, lr_steps=(5,), lr_gamma=0.1)
    assert learning_rate_at(5, stepped) == pytest.approx(0.1 * lrs[5])
    paper = TrainSettings(learning_rate=1e-3, epochs=11, lr_schedule="steps")
    assert {learning_rate_at(e, paper) for e in range(11)} == {1e-3}


def test_unknown_schedule_is_an_error():
    with pytest.raises(ConfigError, match="lr_schedule must be one of cosine, steps"):
        TrainSettings(lr_schedule="linear")
    with pytest.raises(ConfigError, match="redshift_backbone_grad must be in"):
        TrainSettings(redshift_backbone_grad=1.5)


def test_scale_gradient_keeps_values_and_scales_the_gradient():
    x = torch.randn(5, requires_grad=True)
    y = scale_gradient(x, 0.1)
    assert torch.equal(y, x)
    (y**2).sum().backward()
    assert torch.allclose(x.grad, 0.1 * 2 * x.detach())


def _backbone_grad_from_redshift(grad_scale):
    model = small_model()
    model.normaliser.set_statistics([0.1] * 4, [2.0] * 4)
    model.train()
    images = torch.rand(1, 4, 32, 32) * 10
    enc = model.encode(images)
    inputs = model.redshift_inputs(enc, [one_target([1.0, 2.5])], grad_scale=grad_scale)
    loss = -model.redshift_head(inputs.features, inputs.extra).means.sum()  # any function of the features
    loss.backward()
    head_grad = model.redshift_head.output.weight.grad.clone()
    return model.backbone.body.conv1.weight.grad.clone(), head_grad, float(loss.detach())


def test_redshift_gradient_into_the_backbone_is_scaled_and_the_head_is_not():
    full, head_full, loss_full = _backbone_grad_from_redshift(1.0)
    tenth, head_tenth, loss_tenth = _backbone_grad_from_redshift(0.1)
    none, _, _ = _backbone_grad_from_redshift(0.0)
    assert loss_full == loss_tenth  # same forward values
    assert torch.allclose(head_full, head_tenth)  # the head trains at full strength
    assert full.abs().sum() > 0 and torch.allclose(tenth, 0.1 * full, atol=1e-7, rtol=1e-4)
    assert float(none.abs().sum()) == 0.0


@pytest.fixture(scope="module")
def member_data():
    tiles = make_colour_tileset(n_tiles=8, seed=2, labelled_fraction=1.0)
    return MemberData(
        images=tiles.images,
        segmaps=tiles.segmaps,
        targets=tile_targets(tiles),
        train=np.arange(4),
        val=np.arange(4, 8),
        sky_sigma=np.ones(tiles.images.shape[1], dtype=np.float32),
    )


def test_validation_scores_are_deterministic_and_leave_the_random_stream_alone(member_data):
    model = small_model()
    model.normaliser.set_statistics([0.1] * 4, [3.0] * 4)
    model.train()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = validation_scores(model, member_data, batch_size=2, device=torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected_next)  # the training stream is untouched
    b = validation_scores(model, member_data, batch_size=2, device=torch.device("cpu"))
    assert a == b and model.training  # deterministic, and the model is back in training mode
    assert a.n_objects == sum(len(member_data.targets[i]["redshift"]) for i in member_data.val)
    assert math.isfinite(a.detection_loss) and a.detection_loss > 0
    assert a.log_likelihood_se > 0


def test_validation_objective_weights_and_skips_missing_terms():
    assert validation_objective(0.5, 1.0, 2.0) == pytest.approx(2.5)
    assert validation_objective(0.5, math.nan, 1.0) == pytest.approx(0.5)  # no labelled validation object
    assert math.isnan(validation_objective(math.nan, math.nan, 1.0))


@pytest.mark.parametrize(
    ("losses", "se", "kept", "stopped_after"),
    [
        # 0.55 and 0.52 are within one standard error (0.1) of the lowest (0.5): the later epoch is kept
        ([1.0, 0.5, 0.55, 0.9, 0.52], 0.1, 4, None),
        # with a tiny standard error only a lower loss counts, and patience 2 stops after epoch 3
        ([1.0, 0.5, 0.55, 0.9, 0.52], 1e-9, 1, 4),
        # patience 2: two epochs outside the tolerance stop training
        ([1.0, 0.5, 0.9, 0.9, 0.1], 0.1, 1, 4),
    ],
)
def test_kept_epoch_is_the_latest_within_one_standard_error(monkeypatch, member_data, losses, se, kept,
                                                           stopped_after):
    model = small_model()
    state = MemberState(model, torch.optim.SGD(model.parameters(), lr=0.0))
    settings = TrainSettings(epochs=len(losses), patience=2)
    for loss in losses:
        monkeypatch.setattr(selection_mod, "validation_scores",
                            lambda *a, loss=loss, **k: ValidationScores(-loss, se, 10, 0.0))
        selection_mod.end_epoch(state, model, member_data, settings, {}, torch.device("cpu"), DistContext())
        if state.done:
            break
    assert state.best_epoch == kept
    assert state.best_nll == pytest.approx(losses[kept])
    assert state.best_loss == pytest.approx(min(losses[: state.epoch]))
    assert state.epoch == (stopped_after or len(losses))


def test_kept_epoch_is_chosen_on_the_calibrated_likelihood(monkeypatch, member_data):
    # raw NLL rises after epoch 0 (the head sharpens), but with each epoch's best widths epoch 2 is the best
    raw = [1.4, 1.9, 2.4]
    calibrated = [1.4, 1.2, 1.0]
    model = small_model()

    def run(calibrate):
        state = MemberState(model, torch.optim.SGD(model.parameters(), lr=0.0))
        settings = TrainSettings(epochs=3, patience=3, calibrate_widths=calibrate)
        history = []
        for r, c in zip(raw, calibrated):
            def scores(*a, r=r, c=c, fit_widths=False, **k):
                assert fit_widths == calibrate
                return ValidationScores(-r, 0.01, 40, 0.5, *((-c, 0.01, 0.6) if fit_widths else ()))
            monkeypatch.setattr(selection_mod, "validation_scores", scores)
            record = {}
            selection_mod.end_epoch(state, model, member_data, settings, record, torch.device("cpu"), DistContext())
            history.append(record)
        return state, history

    state, history = run(True)
    assert state.best_epoch == 2 and state.best_nll == pytest.approx(1.0)
    assert [h["val_nll"] for h in history] == raw  # the raw curve is still recorded
    assert [h["val_nll_calibrated"] for h in history] == calibrated and history[0]["val_width_factor"] == 0.6
    state, history = run(False)
    assert state.best_epoch == 0 and "val_nll_calibrated" not in history[0]


def test_validation_scores_with_fitted_widths_match_the_calibration(member_data):
    model = small_model()
    model.normaliser.set_statistics([0.1] * 4, [3.0] * 4)
    fitted = validation_scores(model, member_data, batch_size=2, device=torch.device("cpu"), fit_widths=True)
    plain = validation_scores(model, member_data, batch_size=2, device=torch.device("cpu"))
    assert math.isnan(plain.calibrated_log_likelihood) and plain.width_factor == 1.0
    assert fitted.log_likelihood == pytest.approx(plain.log_likelihood)
    scale, ll = calibrate_widths(model, member_data, batch_size=2, device=torch.device("cpu"))
    assert fitted.width_factor == pytest.approx(scale, rel=1e-6) and scale != 1.0
    assert fitted.calibrated_log_likelihood == pytest.approx(ll, abs=1e-5)
    assert fitted.calibrated_log_likelihood > fitted.log_likelihood and fitted.calibrated_log_likelihood_se > 0


@pytest.mark.parametrize("true_factor", [0.5, 1.0, 2.0])
def test_fit_std_scale_recovers_the_factor_the_widths_are_off_by(true_factor):
    rng = np.random.default_rng(4)
    n = 4000
    means = rng.uniform(0.5, 5.0, (n, 2))
    stds = rng.uniform(0.05, 0.3, (n, 2))
    pick = rng.integers(0, 2, n)
    z = means[np.arange(n), pick] + true_factor * stds[np.arange(n), pick] * rng.standard_normal(n)
    params = MixtureParams(torch.full((n, 2), 0.5, dtype=torch.float64), torch.from_numpy(means),
                           torch.from_numpy(stds))
    assert fit_std_scale(params, torch.from_numpy(z)) == pytest.approx(true_factor, rel=0.05)
    assert fit_std_scale(MixtureParams(*(t[:0] for t in params)), torch.zeros(0)) == 1.0


def test_head_widths_follow_its_scale_buffer_and_it_travels_in_the_weights():
    model = small_model()
    model.eval()
    features = torch.randn(3, sum(model.redshift_head.groups))
    extra = torch.zeros(3, 1)
    with torch.no_grad():
        raw = model.redshift_head(features, extra)
        model.redshift_head.std_scale.fill_(3.0)
        wide = model.redshift_head(features, extra)
    assert torch.allclose(wide.stds, 3 * raw.stds) and torch.equal(wide.means, raw.means)
    assert float(model.state_dict()["redshift_head.std_scale"]) == 3.0


def test_calibration_sets_the_factor_of_best_validation_likelihood(member_data):
    model = small_model()
    model.normaliser.set_statistics([0.1] * 4, [3.0] * 4)
    model.redshift_head.std_scale.fill_(7.0)  # ignored: calibration starts from the raw widths
    scale, ll = calibrate_widths(model, member_data, batch_size=2, device=torch.device("cpu"))
    assert float(model.redshift_head.std_scale) == pytest.approx(scale) and scale != 1.0
    again, n = validation_log_likelihood(model, member_data, batch_size=2, device=torch.device("cpu"))
    assert n >= MIN_CALIBRATION_OBJECTS and again == pytest.approx(ll, abs=1e-5)
    model.redshift_head.std_scale.fill_(1.0)
    raw, _ = validation_log_likelihood(model, member_data, batch_size=2, device=torch.device("cpu"))
    assert ll > raw
    for nearby in (0.9 * scale, 1.1 * scale):  # a maximum
        model.redshift_head.std_scale.fill_(nearby)
        assert validation_log_likelihood(model, member_data, batch_size=2, device=torch.device("cpu"))[0] < ll


def test_trained_members_record_their_calibrated_widths():
    tiles = make_colour_tileset(n_tiles=8, seed=6, labelled_fraction=1.0)
    art = train_from_options(tiles, {**FAST, "epochs": 1, "val_fraction": 0.5})
    member = art["members"][0]
    assert float(member["state_dict"]["redshift_head.std_scale"]) == pytest.approx(member["std_scale"])
    assert member["std_scale"] != 1.0
    assert member["val_log_likelihood"] >= -member["history"][member["best_epoch"]]["val_nll"]
    raw = train_from_options(tiles, {**FAST, "epochs": 1, "val_fraction": 0.5, "calibrate_widths": False})
    assert raw["members"][0]["std_scale"] == 1.0
    assert float(raw["members"][0]["state_dict"]["redshift_head.std_scale"]) == 1.0

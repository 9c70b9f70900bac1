"""The redshift head's training levers: pixel features, its learning-rate group, extra head-only steps."""

import math

import pytest
import torch

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.network import COLOUR_SOFTENING, HeadInputs, NetworkConfig, build_model, pixel_features
from rail.deepdisc.model.normalise import InputNormaliser
from rail.deepdisc.training.epoch import head_updates
from rail.deepdisc.training.optimiser import learning_rate_at, make_optimizer
from rail.deepdisc.training.settings import TrainSettings

BANDS = ("F115W", "F200W", "F277W", "F444W")
SIZE = 32


def small_model(**kw):
    torch.manual_seed(0)
    return build_model(NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(32, 16), **kw))


def one_target(z):
    boxes = torch.tensor([[4.0, 4.0, 12.0, 12.0], [15.0, 18.0, 25.0, 28.0]])
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.uint8)
    masks[0, 4:12, 4:12] = 1
    masks[1, 18:28, 15:25] = 1
    return {
        "boxes": boxes,
        "labels": torch.ones(2, dtype=torch.int64),
        "masks": masks,
        "redshift": torch.tensor(z, dtype=torch.float32),
        "ebv": torch.full((2,), 0.02),
    }


@pytest.mark.parametrize("kind", ["zscore", "asinh"])
def test_normaliser_inverse_undoes_forward(kind):
    norm = InputNormaliser(3, kind=kind)
    norm.set_statistics([1.0, -2.0, 0.5], [2.0, 0.5, 3.0])
    x = torch.randn(2, 3, 5, 5) * 50
    assert torch.allclose(norm.inverse(norm(x)), x, rtol=1e-5, atol=1e-3)


def test_pixel_features_are_colours_independent_of_brightness():
    sed = torch.tensor([1.0, 2.0, 4.0, 8.0])
    flux = sed[None, :, None, None] * torch.ones(1, 4, 16, 16)
    boxes = [torch.tensor([[2.0, 2.0, 10.0, 10.0]])]
    f1 = pixel_features(flux, boxes, pool_size=2)
    f2 = pixel_features(1000.0 * flux, boxes, pool_size=2)
    assert f1.shape == (1, 4 + 4 * 2 * 2)
    assert torch.allclose(f1, f2, atol=1e-5)  # brightness-free
    # hand-computed colours: asinh(f / (0.05 * max f)) minus its band mean
    a = torch.asinh(sed / (COLOUR_SOFTENING * 8.0))
    assert torch.allclose(f1[0, :4], a - a.mean(), atol=1e-5)
    # the shape block: the patch over its total |flux|, times its length -> mean |value| is 1
    assert math.isclose(float(f1[0, 4:].abs().mean()), 1.0, rel_tol=1e-5)


def test_pixel_features_of_an_empty_box_are_finite():
    flux = torch.zeros(1, 4, 16, 16)
    out = pixel_features(flux, [torch.tensor([[2.0, 2.0, 6.0, 6.0]])], pool_size=2)
    assert torch.isfinite(out).all()


def test_model_pixel_path_is_consistent_between_training_and_inference():
    """The head sees the same features from the training loss path and from `redshift` (inference)."""
    model = small_model()
    model.normaliser.set_statistics([0.1] * 4, [2.0] * 4)
    model.eval()
    images = torch.rand(1, 4, SIZE, SIZE) * 10
    target = one_target([1.0, 2.0])
    with torch.no_grad():
        enc = model.encode(images)
        inputs = model.redshift_inputs(enc, [target])
        via_loss = model.redshift_head(inputs.features, inputs.extra)
        via_inference = model.redshift(enc, [target["boxes"]], [target["ebv"]])
    assert torch.allclose(via_loss.means, via_inference.means)
    assert torch.allclose(inputs.z, torch.tensor([1.0, 2.0]))


def test_head_param_group_gets_its_learning_rate_factor():
    model = small_model()
    settings = TrainSettings(learning_rate=1e-3, head_lr_factor=5.0)
    opt = make_optimizer(model, settings)
    head_ids = {id(p) for p in model.redshift_head.parameters()}
    by_scale = {g["lr_scale"]: g for g in opt.param_groups}
    assert {id(p) for p in by_scale[5.0]["params"]} == head_ids
    assert by_scale[5.0]["lr"] == pytest.approx(5e-3) and by_scale[1.0]["lr"] == pytest.approx(1e-3)
    n_all = sum(1 for _ in model.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == n_all
    assert learning_rate_at(0, settings) * by_scale[5.0]["lr_scale"] == pytest.approx(5e-3)


def test_extra_head_steps_touch_only_the_head_and_lower_its_loss():
    model = small_model()
    model.train()
    images = torch.randn(1, 4, SIZE, SIZE)
    losses, inputs = model(images, [one_target([1.0, 3.0])], head_inputs=True)
    assert isinstance(inputs, HeadInputs) and not inputs.features.requires_grad
    assert len(inputs.z) == 2
    opt = make_optimizer(model, TrainSettings(learning_rate=1e-2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from rail.deepdisc.model.redshift_head import mixture_nll

    with torch.no_grad():
        nll0 = float(mixture_nll(model.redshift_head(inputs.features, inputs.extra), inputs.z))
    mean_nll = head_updates(model, inputs, opt, steps=20)
    with torch.no_grad():
        nll1 = float(mixture_nll(model.redshift_head(inputs.features, inputs.extra), inputs.z))
    assert math.isfinite(mean_nll) and nll1 < nll0
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("redshift_head.") for k in changed)
    assert all(p.grad is None for p in model.parameters())


def test_head_updates_without_labels_or_steps_do_nothing():
    model = small_model()
    opt = make_optimizer(model, TrainSettings())
    empty = HeadInputs(torch.zeros(0, 5), torch.zeros(0, 1), torch.zeros(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert math.isnan(head_updates(model, empty, opt, steps=3))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"head_steps": -1}, "head_steps must be >= 0"),
        ({"head_lr_factor": 0.0}, "head_lr_factor must be > 0"),
        ({"head_lr_factor": math.inf}, "head_lr_factor must be > 0"),
        ({"head_replay": 0}, "head_replay must be >= 1"),
        ({"head_dropout": 1.0}, r"head_dropout must be in \[0, 1\)"),
        ({"head_dropout": -0.1}, r"head_dropout must be in \[0, 1\)"),
    ],
)
def test_bad_head_settings(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainSettings(**bad)


def test_head_settings_travel_in_the_artifact_dict():
    d = TrainSettings(head_lr_factor=2.0, head_steps=3, head_replay=5, head_dropout=0.2).to_dict()
    assert (d["head_lr_factor"], d["head_steps"], d["head_replay"], d["head_dropout"]) == (2.0, 3, 5, 0.2)


def test_head_dropout_acts_in_training_only():
    head = small_model().redshift_head
    x = torch.randn(64, sum(head.groups))
    extra = torch.zeros(64, 1)
    head.eval()
    with torch.no_grad():
        plain = head(x, extra)
        head.dropout = 0.5
        assert all(torch.equal(a, b) for a, b in zip(head(x, extra), plain))  # inference: no dropout
        head.train()
        torch.manual_seed(1)
        first = head(x, extra).means
        torch.manual_seed(2)
        second = head(x, extra).means
        head.dropout = 0.0
        undropped = head(x, extra).means
    assert not torch.allclose(first, second) and not torch.allclose(first, undropped)
    assert torch.allclose(undropped, plain.means)


def test_training_passes_its_head_dropout_to_the_model():
    from rail.deepdisc.training.run import train_from_options
    from tests.helpers.nethelpers import FAST, make_colour_tileset

    tiles = make_colour_tileset(n_tiles=4, seed=3, labelled_fraction=1.0)
    seen = []
    original = torch.nn.functional.dropout

    def spy(x, p=0.5, training=True, inplace=False):
        seen.append((p, training))
        return original(x, p, training, inplace)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "dropout", spy)
        art = train_from_options(tiles, {**FAST, "epochs": 1, "members": 1, "head_dropout": 0.25})
    assert art["config"]["training"]["head_dropout"] == 0.25
    assert seen and all(p == 0.25 and training for p, training in seen)

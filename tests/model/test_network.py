"""The DeepDISC network: config, shapes, losses, mixture head, normalisation, backbone weights, artifact
load."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision

from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.model.artifact import load_artifact, save_artifact
from rail.deepdisc.model.backbone import build_backbone, load_backbone_weights
from rail.deepdisc.model.network import MixtureParams, NetworkConfig, build_model, model_from_artifact
from rail.deepdisc.model.normalise import InputNormaliser, band_statistics
from rail.deepdisc.model.redshift_head import MIN_STD, RedshiftMixtureHead, mixture_log_prob, mixture_nll
from rail.deepdisc.training.data import dihedral

BANDS = ("F115W", "F200W", "F277W", "F444W")
SIZE = 32


def small_config(**kw):
    return NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(32, 16), **kw)


def target(boxes, z, size=SIZE):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    masks = torch.zeros(len(boxes), size, size, dtype=torch.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
        masks[k, y0:y1, x0:x1] = 1
    return {
        "boxes": boxes,
        "labels": torch.ones(len(boxes), dtype=torch.int64),
        "masks": masks,
        "redshift": torch.tensor(z, dtype=torch.float32),
        "ebv": torch.full((len(boxes),), 0.02),
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(small_config())


def test_loss_has_every_term(model):
    model.train()
    images = torch.randn(2, len(BANDS), SIZE, SIZE)
    losses = model(
        images,
        [target([[4, 4, 12, 12], [15, 18, 25, 28]], [1.2, float("nan")]), target([[2, 20, 9, 30]], [0.5])],
    )
    assert set(losses) == {
        "loss_objectness",
        "loss_rpn_box_reg",
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_redshift",
    }
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert losses["loss_redshift"] > 0


def test_unlabelled_batch_trains_detection_only(model):
    model.train()
    model.zero_grad()
    images = torch.randn(2, len(BANDS), SIZE, SIZE)
    losses = model(images, [target([[4, 4, 12, 12]], [float("nan")]), target(np.zeros((0, 4)), [])])
    assert losses["loss_redshift"].item() == 0.0
    sum(losses.values()).backward()
    head_grads = [p.grad for p in model.redshift_head.parameters()]
    assert all(g is not None and torch.all(g == 0) for g in head_grads)  # in the graph, zero gradient
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_mixture_nll_known_values():
    one = MixtureParams(torch.tensor([[1.0]]), torch.tensor([[1.0]]), torch.tensor([[0.5]]))
    expected = 0.5 * 1.0**2 + math.log(0.5) + 0.5 * math.log(2 * math.pi)  # z = 1.5 is one sigma away
    assert mixture_nll(one, torch.tensor([1.5])).item() == pytest.approx(expected, rel=1e-6)
    two = MixtureParams(torch.tensor([[0.25, 0.75]]), torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 1.0]]))
    dens = 0.25 * math.exp(-0.5) / math.sqrt(2 * math.pi) + 0.75 * math.exp(-0.5) / math.sqrt(2 * math.pi)
    assert mixture_log_prob(two, torch.tensor([1.0])).item() == pytest.approx(math.log(dens), rel=1e-6)
    both = MixtureParams(*(torch.cat([a, a]) for a in one))
    assert mixture_nll(both, torch.tensor([1.5, float("nan")])).item() == pytest.approx(expected, rel=1e-6)


def test_mixture_nll_without_labels_is_zero_with_graph():
    means = torch.tensor([[1.0, 2.0]], requires_grad=True)
    params = MixtureParams(torch.tensor([[0.5, 0.5]]), means, torch.tensor([[0.1, 0.1]]))
    loss = mixture_nll(params, torch.tensor([float("nan")]))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.all(means.grad == 0)
    empty = MixtureParams(torch.zeros(0, 2), torch.zeros(0, 2, requires_grad=True), torch.ones(0, 2))
    assert mixture_nll(empty, torch.zeros(0)).item() == 0.0


def test_mixture_params_shapes_and_ranges(model):
    model.eval()
    images = torch.randn(3, len(BANDS), SIZE, SIZE) * 5
    boxes = [
        torch.tensor([[1.0, 1, 9, 9], [10, 12, 30, 31]]),
        torch.zeros(0, 4),
        torch.tensor([[5.0, 5, 8, 7]]),
    ]
    ebv = [torch.tensor([0.0, 0.1]), torch.zeros(0), torch.tensor([0.05])]
    with torch.inference_mode():
        enc = model.encode(images)
        params = model.redshift(enc, boxes, ebv)
        alone = model.redshift(model.encode(images[2:]), boxes[2:], ebv[2:])
    k = model.redshift_head.n_components
    assert params.weights.shape == params.means.shape == params.stds.shape == (3, k)
    assert torch.allclose(params.weights.sum(dim=1), torch.ones(3))
    assert torch.all(params.stds >= MIN_STD) and torch.all(params.means > 0)
    assert torch.allclose(params.means[2], alone.means[0], atol=1e-5)  # rows in concatenated-box order
    with torch.inference_mode():
        none = model.redshift(enc, [torch.zeros(0, 4)] * 3, [torch.zeros(0)] * 3)
    assert none.means.shape == (0, k)


def test_tiles_are_not_resized(model):
    model.eval()
    with torch.inference_mode():
        enc = model.encode(torch.randn(1, len(BANDS), 48, 48))
        dets = model.detect(enc)
    assert enc.images.tensors.shape[-2:] == (48, 48)
    assert enc.features["0"].shape[-2:] == (12, 12)  # stride 4
    assert dets[0]["boxes"].shape[1] == 4 and dets[0]["boxes"].max() <= 48
    assert torch.all(dets[0]["scores"][:-1] >= dets[0]["scores"][1:])


def test_detect_with_masks(model):
    model.eval()
    with torch.inference_mode():
        det = model.detect(model.encode(torch.randn(1, len(BANDS), SIZE, SIZE)), masks=True)[0]
    assert det["masks"].shape == (len(det["boxes"]), 1, SIZE, SIZE)


def test_head_starts_at_label_distribution():
    head = RedshiftMixtureHead(8, n_components=4, hidden=(16,))
    z = torch.linspace(0.5, 4.5, 101)
    head.init_from_labels(z)
    with torch.no_grad():
        head.output.weight.zero_()  # isolate the bias: the initial weights are small but random
    params = head(torch.randn(3, 8), torch.zeros(3, 1))
    expected = torch.quantile(z, torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(params.means, expected.expand(3, 4), atol=1e-4)
    assert torch.allclose(params.weights, torch.full((3, 4), 0.25))


@pytest.mark.parametrize("new", [10, 7])
def test_split_components_keeps_the_mixture_and_lets_the_copies_part(new):
    torch.manual_seed(0)
    head = RedshiftMixtureHead(8, n_components=5, hidden=(16,)).eval()
    head.std_scale.fill_(0.8)
    x, e = torch.randn(64, 8), torch.rand(64, 1)
    z = torch.linspace(0.0, 8.0, 801)
    grid = z.expand(64, -1)

    def density(h):
        p = h(x, e)
        return torch.exp(-0.5 * ((grid[..., None] - p.means[:, None]) / p.stds[:, None]) ** 2).mul(
            p.weights[:, None] / p.stds[:, None]).sum(-1) / math.sqrt(2 * math.pi), p

    before, _ = density(head)
    exact = RedshiftMixtureHead(8, n_components=5, hidden=(16,)).eval()
    exact.load_state_dict(head.state_dict())
    exact.split_components(new, jitter=0.0)
    after, p = density(exact)
    assert exact.n_components == new and p.weights.shape == (64, new)
    assert torch.allclose(p.weights.sum(1), torch.ones(64))
    assert torch.allclose(after, before, atol=1e-5)  # the same mixture, component for component split
    jittered = RedshiftMixtureHead(8, n_components=5, hidden=(16,)).eval()
    jittered.load_state_dict(head.state_dict())
    jittered.split_components(new, generator=torch.Generator().manual_seed(3))
    moved, q = density(jittered)
    assert torch.abs(moved - before).sum(1).mul(z[1] - z[0]).max() < 0.05  # total variation: a small move
    assert not torch.allclose(q.means[:, 0], q.means[:, 5])  # a copy differs from its source: it can part
    with pytest.raises(ValueError, match="fewer"):
        jittered.split_components(4)


def test_config_round_trip_and_artifact_normalisation_dict():
    cfg = small_config(backbone="resnet34", normalisation="asinh")
    d = cfg.to_dict()
    assert all(isinstance(v, (str, int, float, bool, list)) for v in d.values())
    assert NetworkConfig.from_dict(d) == cfg
    d["normalisation"] = {"kind": "asinh", "center": [0.0] * 4, "scale": [1.0] * 4}
    d["training"] = {"epochs": 3}
    assert NetworkConfig.from_dict(d) == cfg
    with pytest.raises(ModelError, match="unknown key"):
        NetworkConfig.from_dict({**cfg.to_dict(), "magic": 1})


def test_config_differences_names_every_changed_option_and_only_those():
    cfg = small_config(backbone="resnet34")
    assert cfg.differences(cfg) == []
    other = replace(small_config(backbone="resnet18", n_components=3), bands=("F150W", "F200W", "F356W", "F444W"))
    assert cfg.differences(other) == ["backbone", "bands", "n_components"]
    assert other.differences(cfg) == ["backbone", "bands", "n_components"]  # symmetric
    assert cfg.differences(other, ignore=("bands",)) == ["backbone", "n_components"]
    # an optional field at its default is left out of the artifact form: a file that writes it equals one without
    assert "tile_size" not in cfg.to_dict()
    assert cfg.differences(NetworkConfig.from_dict({**cfg.to_dict(), "tile_size": 0})) == []
    r50 = small_config(backbone="resnet50")
    assert r50.differences(replace(r50, stride_in_1x1=True)) == ["stride_in_1x1"]  # the same field set: named


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"backbone": "resnet101"}, "backbone must be one of"),
        ({"normalisation": "log"}, "normalisation must be one of"),
        ({"anchor_sizes": (4, 8)}, "anchor_sizes must be 5"),
        ({"n_components": 0}, "n_components must be >= 1"),
        ({"box_nms_threshold": 1.5}, "box_nms_threshold must be in"),
        ({"backbone_norm": "layer"}, "backbone_norm must be one of"),
    ],
)
def test_bad_network_config(bad, match):
    with pytest.raises(ConfigError, match=match):
        small_config(**bad)


def test_model_from_artifact_weights_only(tmp_path, model):
    model.normaliser.set_statistics([1.0, 2, 3, 4], [2.0, 2, 2, 2])
    art = {
        "config": model_config_dict(),
        "members": [
            {
                "state_dict": model.state_dict(),
                "weight": 1.0,
                "val_log_likelihood": -1.0,
                "seed": 1,
                "best_epoch": 0,
            }
        ],
    }
    path = save_artifact(art, tmp_path / "m.pt")
    torch.load(path, weights_only=True)  # plain tensors and data only
    rebuilt = model_from_artifact(load_artifact(path), 0)
    assert not rebuilt.training
    assert torch.equal(rebuilt.normaliser.center, torch.tensor([1.0, 2, 3, 4]))
    model.eval()
    x = torch.randn(1, len(BANDS), SIZE, SIZE)
    box, ebv = [torch.tensor([[3.0, 3, 11, 11]])], [torch.tensor([0.01])]
    with torch.inference_mode():
        a = model.redshift(model.encode(x), box, ebv)
        b = rebuilt.redshift(rebuilt.encode(x), box, ebv)
    assert torch.equal(a.means, b.means)
    with pytest.raises(ModelError, match="member 3 out of range"):
        model_from_artifact(art, 3)


@pytest.mark.parametrize(("version", "fix"), [(1, "retrain it with `deepdisc train`"), (99, "upgrade")])
def test_artifacts_of_other_versions_are_refused_with_the_fix(tmp_path, version, fix):
    path = tmp_path / "old.pt"
    torch.save({"format": "deepdisc-model", "version": version, "config": {}, "members": []}, path)
    with pytest.raises(ModelError, match=rf"old.pt: model artifact version {version} is not supported.*{fix}"):
        load_artifact(path)


def model_config_dict():
    return small_config().to_dict()


def test_normaliser_kinds():
    norm = InputNormaliser(2, kind="zscore")
    norm.set_statistics([1.0, -1.0], [2.0, 0.5])
    x = torch.tensor([[3.0, 0.0]]).reshape(1, 2, 1, 1)
    assert torch.allclose(norm(x).flatten(), torch.tensor([1.0, 2.0]))
    asinh = InputNormaliser(2, kind="asinh")
    asinh.set_statistics([1.0, -1.0], [2.0, 0.5])
    assert torch.allclose(asinh(x).flatten(), torch.asinh(torch.tensor([1.0, 2.0])))
    with pytest.raises(ConfigError, match="normalisation must be one of"):
        InputNormaliser(2, kind="minmax")


def test_band_statistics_hand_made():
    images = np.zeros((1, 2, 4, 4), np.float32)
    images[0, 0] = np.arange(16).reshape(4, 4)
    images[0, 1] = 5.0
    segmaps = np.zeros((1, 4, 4), np.int32)
    segmaps[0, 3, :] = 7  # the last row is an object
    stats = band_statistics(images, segmaps)
    assert stats.mean[0] == pytest.approx(7.5) and stats.std[0] == pytest.approx(np.std(np.arange(16)))
    assert stats.sky_median[0] == pytest.approx(5.5)  # median of 0..11
    assert stats.sky_sigma[0] == pytest.approx(1.4826 * 3.0)  # MAD of 0..11 is 3
    assert stats.std[1] > 0 and stats.sky_sigma[1] > 0  # a constant band does not divide by zero


def test_backbone_weights_from_local_checkpoint(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)  # a 3-band, ImageNet-style state_dict
    path = tmp_path / "r18.pth"
    torch.save(resnet.state_dict(), path)
    backbone = build_backbone("resnet18", 4, norm="batch")
    missing = load_backbone_weights(backbone, path)
    assert missing == []
    conv = backbone.body.conv1.weight
    expected = resnet.conv1.weight.mean(dim=1, keepdim=True) * 3 / 4
    assert conv.shape[1] == 4 and torch.allclose(conv, expected.repeat(1, 4, 1, 1))
    assert torch.equal(backbone.body.layer1[0].conv1.weight, resnet.layer1[0].conv1.weight)


def test_backbone_weights_errors(tmp_path):
    backbone = build_backbone("resnet18", 4)
    with pytest.raises(ModelError, match="not found"):
        load_backbone_weights(backbone, tmp_path / "none.pth")
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "obj": _Opaque()}, pickled)
    with pytest.raises(ModelError, match="not a weights-only"):
        load_backbone_weights(backbone, pickled)
    unrelated = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, unrelated)
    with pytest.raises(ModelError, match="none of its keys"):
        load_backbone_weights(backbone, unrelated)
    wrong = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), wrong)
    with pytest.raises(ModelError, match="same ResNet depth"):
        load_backbone_weights(backbone, wrong)


class _Opaque:
    pass


@pytest.mark.parametrize("element", range(8))
def test_dihedral_moves_boxes_with_masks(element):
    rng = np.random.default_rng(element)
    masks = np.zeros((2, 16, 16), np.uint8)
    masks[0, 2:5, 3:9] = 1
    masks[1, 10:16, 0:2] = 1
    boxes = np.array([[3, 2, 9, 5], [0, 10, 2, 16]], np.float32)
    image = rng.normal(size=(3, 16, 16)).astype(np.float32)
    new_image, new_masks, new_boxes = dihedral(image, masks, boxes, element)
    for m, b in zip(new_masks, new_boxes):
        ys, xs = np.nonzero(m)
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == b.tolist()
    assert np.isclose(new_image.sum(), image.sum()) and new_image.shape == image.shape


def test_jitter_boxes_stays_inside_and_moves_little():
    from rail.deepdisc.training.data import MIN_BOX_PX, jitter_boxes

    rng = np.random.default_rng(0)
    boxes = np.tile(np.array([[0.0, 10.0, 8.0, 20.0]]), (2000, 1))
    out = jitter_boxes(boxes, 0.1, rng, (32, 32))
    assert np.all(out[:, :2] >= 0) and np.all(out[:, 2] <= 32) and np.all(out[:, 3] <= 32)
    assert np.all(out[:, 2:] - out[:, :2] >= MIN_BOX_PX - 1e-9)
    centre_y = 0.5 * (out[:, 1] + out[:, 3])
    assert abs(np.median(centre_y) - 15.0) < 0.2 and 0.5 < np.std(centre_y) < 1.5  # 10% of a 10 px box
    assert np.array_equal(jitter_boxes(boxes, 0.0, rng, (32, 32)), boxes)

"""Import of detectron2-format DeepDISC checkpoints: key layout, class conventions, refusals, command line."""

import pytest
import torch

from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ModelError
from rail.deepdisc.model.artifact import load_artifact
from rail.deepdisc.model.config import LEGACY_DEFAULTS
from rail.deepdisc.model.detectron2 import convert_detectron2, detectron2_config, to_detectron2
from rail.deepdisc.model.detectron2_io import import_detectron2, load_detectron2_state
from rail.deepdisc.model.network import NetworkConfig, build_model, model_from_artifact

BANDS = ("F115W", "F200W", "F444W")
MEAN, STD = [0.5, 1.0, -0.2], [2.0, 3.0, 1.5]
SIZE = 64
#: detectron2 names of a Mask R-CNN R-FPN with grantmerz/deepdisc's redshift head (``RedshiftPDFCasROIHeads``)
D2_NAMES = (
    "backbone.bottom_up.stem.conv1.weight", "backbone.bottom_up.stem.conv1.norm.running_var",
    "backbone.bottom_up.res2.0.conv1.weight", "backbone.bottom_up.res2.0.conv1.norm.weight",
    "backbone.bottom_up.res3.0.shortcut.weight", "backbone.bottom_up.res5.1.conv2.norm.bias",
    "backbone.fpn_lateral2.weight", "backbone.fpn_output5.bias", "proposal_generator.rpn_head.conv.weight",
    "proposal_generator.rpn_head.objectness_logits.weight", "proposal_generator.rpn_head.anchor_deltas.bias",
    "roi_heads.box_head.fc1.weight", "roi_heads.box_head.fc2.bias", "roi_heads.box_predictor.cls_score.weight",
    "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.mask_head.mask_fcn1.weight",
    "roi_heads.mask_head.mask_fcn4.bias", "roi_heads.mask_head.deconv.weight", "roi_heads.mask_head.predictor.weight",
    "roi_heads.redshift_fc.0.weight", "roi_heads.redshift_fc.2.weight", "roi_heads.redshift_fc.4.bias",
)


def d2_like_config(backbone="resnet18", **kw):
    """A small network of detectron2's architecture (BatchNorm, the paper's head, no pixel features, one anchor
    size per level)."""
    return NetworkConfig(bands=BANDS, pixel_scale=0.03, backbone=backbone, backbone_norm="batch",
                         head_kind="merz25", pixel_pool_size=0, fpn_channels=16, representation_size=32,
                         mask_channels=8, head_hidden=(24, 12), n_components=3,
                         stride_in_1x1=backbone == "resnet50", anchor_sizes=(4.0, 8.0, 16.0, 32.0, 64.0),
                         **{**LEGACY_DEFAULTS, **kw})


def random_network(config, seed=0):
    """Our network with random weights everywhere (BatchNorm statistics and biases included), in eval mode."""
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.is_floating_point() and not name.startswith("normaliser") and "std_scale" not in name:
                t.normal_(0.0, 0.05 if t.ndim > 1 else 0.2)
        model.roi_heads.box_predictor.cls_score.bias.copy_(torch.tensor([-1.0, 1.0]))  # detections above 0.05
    model.normaliser.set_statistics(MEAN, STD)
    return model.eval()


def write_checkpoint(path, state, **extra):
    torch.save({"model": state, "iteration": 1234, **extra}, path)
    return path


def outputs(model, images):
    boxes = [torch.tensor([[5.0, 6, 20, 25], [30, 30, 50, 44]]), torch.tensor([[10.0, 40, 30, 60]])]
    ebv = [torch.tensor([0.01, 0.05]), torch.tensor([0.2])]
    with torch.inference_mode():
        enc = model.encode(images)
        return model.detect(enc, masks=True), model.redshift(enc, boxes, ebv)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_imported_weights_give_the_native_networks_detections_and_mixtures(tmp_path, backbone):
    config = d2_like_config(backbone)
    native = random_network(config)
    state = to_detectron2(native.state_dict(), config)
    if backbone == "resnet50":
        assert set(D2_NAMES) <= set(state)
    path = write_checkpoint(tmp_path / "model_final.pth", state)
    out = import_detectron2(path, tmp_path / "model.pt", bands=BANDS, pixel_scale=0.03, mean=MEAN, std=STD,
                            anchor_sizes=config.anchor_sizes)
    art = load_artifact(out)
    assert NetworkConfig.from_dict(art["config"]) == config
    imported = model_from_artifact(art, 0)
    images = torch.randn(2, len(BANDS), SIZE, SIZE) * 3
    (dets_a, mix_a), (dets_b, mix_b) = outputs(native, images), outputs(imported, images)
    assert sum(len(d["boxes"]) for d in dets_a) > 0
    for a, b in zip(dets_a, dets_b):
        for key in ("boxes", "scores", "masks"):
            assert torch.equal(a[key], b[key]), key
    for key in ("weights", "means", "stds"):
        assert torch.equal(getattr(mix_a, key), getattr(mix_b, key)), key


def test_class_conventions_and_ebv_units():
    config = d2_like_config()
    state = to_detectron2(random_network(config).state_dict(), config)
    state["roi_heads.box_predictor.cls_score.bias"] = torch.tensor([3.0, -3.0])  # detectron2: object, background
    ours = convert_detectron2(state, config)
    assert ours["roi_heads.box_predictor.cls_score.bias"].tolist() == [-3.0, 3.0]  # torchvision: background first
    assert torch.equal(ours["roi_heads.box_predictor.bbox_pred.weight"][:4], torch.zeros(4, 32))
    assert torch.equal(ours["roi_heads.box_predictor.bbox_pred.weight"][4:],
                       state["roi_heads.box_predictor.bbox_pred.weight"])
    assert torch.equal(ours["roi_heads.mask_predictor.mask_fcn_logits.bias"][1:],
                       state["roi_heads.mask_head.predictor.bias"])
    d2_first, our_first = state["roi_heads.redshift_fc.0.weight"], ours["redshift_head.mlp.0.weight"]
    assert torch.allclose(our_first[:, -1], d2_first[:, -1] * 0.1)  # we feed E(B-V) / 0.1
    assert torch.equal(our_first[:, :-1], d2_first[:, :-1])


def test_architecture_is_read_from_the_weights():
    config = d2_like_config("resnet50")
    state = to_detectron2(random_network(config).state_dict(), config)
    found = detectron2_config(state, BANDS, 0.03)
    assert (found.backbone, found.stride_in_1x1, found.fpn_channels, found.representation_size) == (
        "resnet50", True, 16, 32)
    assert (found.mask_channels, found.head_hidden, found.n_components) == (8, (24, 12), 3)
    assert found.anchor_sizes == (8.0, 16.0, 32.0, 64.0, 128.0)
    assert not detectron2_config(state, BANDS, 0.03, stride_in_1x1=False).stride_in_1x1
    body = build_model(found).backbone.body
    assert body.layer2[0].conv1.stride == (2, 2) and body.layer2[0].conv2.stride == (1, 1)


def test_unmappable_checkpoints_are_refused_naming_the_keys(tmp_path):
    config = d2_like_config()
    state = to_detectron2(random_network(config).state_dict(), config)
    extra = {**state, "roi_heads.keypoint_head.conv_fcn1.weight": torch.zeros(1)}
    with pytest.raises(ModelError, match="map to nothing in this network: roi_heads.keypoint_head.conv_fcn1.weight"):
        convert_detectron2(extra, config, source="x.pth")
    no_mask = {k: v for k, v in state.items() if not k.startswith("roi_heads.mask_head.mask_fcn2")}
    with pytest.raises(ModelError, match="lacks 2 tensor.*roi_heads.mask_head.mask_fcn2.bias"):
        convert_detectron2(no_mask, config)
    two_classes = {**state, "roi_heads.box_predictor.cls_score.weight": torch.zeros(3, 32),
                   "roi_heads.box_predictor.cls_score.bias": torch.zeros(3)}
    with pytest.raises(ModelError, match="cls_score.weight has shape \\(3, 32\\)"):
        convert_detectron2(two_classes, config)
    cascade = {k: v for k, v in state.items() if not k.startswith(("roi_heads.box_head", "roi_heads.box_predictor"))}
    for stage in range(3):
        for k, v in state.items():
            for part in ("box_head", "box_predictor"):
                if k.startswith(f"roi_heads.{part}."):
                    cascade[k.replace(f"roi_heads.{part}.", f"roi_heads.{part}.{stage}.")] = v
    with pytest.raises(ModelError, match="Cascade R-CNN checkpoint \\(3 box heads.*--cascade-stage 0"):
        detectron2_config(cascade, BANDS, 0.03)
    cfg = detectron2_config(cascade, BANDS, 0.03, cascade_stage=0, anchor_sizes=config.anchor_sizes)
    assert torch.equal(convert_detectron2(cascade, cfg)["roi_heads.box_head.fc6.weight"],
                       state["roi_heads.box_head.fc1.weight"])
    no_head = {k: v for k, v in state.items() if not k.startswith("roi_heads.redshift_fc")}
    with pytest.raises(ModelError, match="has no redshift head"):
        detectron2_config(no_head, BANDS, 0.03)
    path = write_checkpoint(tmp_path / "m.pth", state)
    with pytest.raises(ModelError, match="reads 3 channels, 2 bands were given"):
        import_detectron2(path, tmp_path / "o.pt", bands=BANDS[:2], pixel_scale=0.03, mean=MEAN[:2], std=STD[:2])
    with pytest.raises(ModelError, match="no pixel_mean/pixel_std: give the input normalisation"):
        import_detectron2(path, tmp_path / "o.pt", bands=BANDS, pixel_scale=0.03)


class Scheduler:
    """Stands in for a trainer object pickled into a checkpoint."""

    milestones = (10, 20)


def test_weights_only_loading(tmp_path):
    config = d2_like_config()
    state = to_detectron2(random_network(config).state_dict(), config)
    pickled = tmp_path / "trainer.pth"
    write_checkpoint(pickled, state, scheduler=Scheduler())
    with pytest.raises(ModelError, match="trainer.pth: not readable with torch.load\\(weights_only=True\\).*pickled"):
        load_detectron2_state(pickled)
    stats = {**state, "pixel_mean": torch.tensor(MEAN).reshape(3, 1, 1),
             "pixel_std": torch.tensor(STD).reshape(3, 1, 1)}
    art = load_artifact(import_detectron2(write_checkpoint(tmp_path / "s.pth", stats), tmp_path / "s.pt",
                                          bands=BANDS, pixel_scale=0.03, anchor_sizes=config.anchor_sizes))
    assert art["config"]["normalisation"]["center"] == pytest.approx(MEAN)
    assert art["config"]["normalisation"]["scale"] == pytest.approx(STD)
    torch.save(state, tmp_path / "bare.pth")
    assert set(load_detectron2_state(tmp_path / "bare.pth")) == set(state)


def test_cli(tmp_path, capsys):
    config = d2_like_config()
    path = write_checkpoint(tmp_path / "model_final.pth", to_detectron2(random_network(config).state_dict(), config))
    args = ["import-detectron2", str(path), "-o", str(tmp_path / "m.pt"), "--bands", *BANDS, "--pixel-scale", "0.03",
            "--mean", *map(str, MEAN), "--std", *map(str, STD), "--anchor-sizes", "4", "8", "16", "32", "64",
            "--score-threshold", "0.3"]
    assert main(args) == 0
    cfg = load_artifact(tmp_path / "m.pt")["config"]
    assert cfg["head_kind"] == "merz25" and cfg["box_score_threshold"] == 0.3
    assert main(["info", str(tmp_path / "m.pt")]) == 0
    assert "imported_from" in capsys.readouterr().out
    assert main([*args[:6], "--bands", "a", "--pixel-scale", "0.03", "--mean", "0", "--std", "1"]) == 2
    assert "reads 3 channels, 1 bands were given" in capsys.readouterr().err


def test_paper_head_outputs_raw_means_and_exp_widths():
    from rail.deepdisc.model.redshift_head import RedshiftMixtureHead

    head = RedshiftMixtureHead(6, n_extra=1, n_components=2, hidden=(4,), kind="merz25").eval()
    assert not list(head.input_norms) and isinstance(head.mlp[1], torch.nn.Tanh)
    with torch.no_grad():
        head.output.weight.zero_()
        head.output.bias.copy_(torch.tensor([0.0, 1.0, -0.3, 2.0, -1.0, 0.5]))
    params = head(torch.randn(3, 6), torch.zeros(3, 1))
    assert torch.allclose(params.means, torch.tensor([-0.3, 2.0]).expand(3, 2))  # no softplus: as detectron2
    assert torch.allclose(params.stds, torch.exp(torch.tensor([-1.0, 0.5])).expand(3, 2))
    assert torch.allclose(params.weights[0], torch.softmax(torch.tensor([0.0, 1.0]), 0))
    head.init_from_labels(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.allclose(head(torch.zeros(1, 6), torch.zeros(1, 1)).means, torch.tensor([[1.75, 3.25]]), atol=0.2)


def test_transformer_backbones_in_detectron2_layout_are_refused():
    config = d2_like_config()
    state = {k: v for k, v in to_detectron2(random_network(config).state_dict(), config).items()
             if not k.startswith("backbone.bottom_up.")}
    state["backbone.bottom_up.patch_embed.proj.weight"] = torch.zeros(96, 3, 7, 7)
    with pytest.raises(ModelError, match="not a detectron2 ResNet.*backbone.bottom_up.patch_embed.proj.weight.*"
                                         "MViTv2/Swin/ViT backbones"):
        detectron2_config(state, BANDS, 0.03)

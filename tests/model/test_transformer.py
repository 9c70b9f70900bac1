"""Transformer backbones (MViTv2, Swin from timm): band counts, tile sizes, local weights, artifact round trip,
and (slow) training and estimation through the command line."""

import warnings

import numpy as np
import pytest
import qp
import torch

from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ConfigError, ModelError, NoDetectionsWarning
from rail.deepdisc.model.artifact import load_artifact, save_artifact
from rail.deepdisc.model.backbone import BACKBONES, build_backbone, first_layer_key, load_backbone_weights
from rail.deepdisc.model.backbone_names import TRANSFORMERS
from rail.deepdisc.model.network import NetworkConfig, build_model, model_from_artifact
from rail.deepdisc.tileset.io import write_tileset
from tests.helpers.nethelpers import FAST_CLI, make_colour_tileset

SIZE = 64
TRANSFORMER_NAMES = ("mvitv2_tiny", "swin_tiny")


def config(backbone, n_bands=4, **kw):
    bands = tuple(f"B{k}" for k in range(n_bands))
    return NetworkConfig(bands=bands, pixel_scale=0.03, backbone=backbone, head_hidden=(32, 16), **kw)


def test_registry_lists_resnets_and_transformers():
    assert {"resnet18", "resnet50", "mvitv2_tiny", "swin_tiny"} <= set(BACKBONES)
    assert all(BACKBONES[name] == spec.channels for name, spec in TRANSFORMERS.items())


def test_transformers_are_backbone_option_choices_without_torch_and_file_only_fields_no_flags():
    import subprocess
    import sys

    code = ("import sys; from rail.deepdisc.training.settings import TRAIN_OPTIONS; "
            "print(TRAIN_OPTIONS['backbone'].choices, 'torch' in sys.modules, 'timm' in sys.modules, "
            "sorted({'transformer_tile_size', 'tile_size', 'head_kind', 'stride_in_1x1'} & set(TRAIN_OPTIONS)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"{tuple(BACKBONES)} False False []"
    with pytest.raises(ConfigError, match="backbone-only pretraining trains a ResNet, not swin_tiny"):
        from rail.deepdisc.pretraining.settings import BackboneSettings

        BackboneSettings(backbone="swin_tiny")
    with pytest.raises(ConfigError, match="head_kind must be one of normed, merz25, got 'x'"):
        NetworkConfig(bands=("F444W",), pixel_scale=0.03, head_kind="x")


@pytest.mark.parametrize("name", TRANSFORMER_NAMES)
@pytest.mark.parametrize("n_bands", [1, 4, 9])
def test_backbone_takes_any_band_count(name, n_bands):
    torch.manual_seed(0)
    backbone = build_backbone(name, n_bands, fpn_channels=16, tile_size=SIZE).eval()
    first = backbone.body.trunk.state_dict()["patch_embed.proj.weight"]
    assert first.shape[1] == n_bands
    with torch.inference_mode():
        levels = backbone(torch.randn(2, n_bands, SIZE, SIZE))
    assert list(levels) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape[-2:]) for v in levels.values()] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert all(v.shape[:2] == (2, 16) and torch.isfinite(v).all() for v in levels.values())
    assert backbone.out_channels == 16


@pytest.mark.parametrize("name", TRANSFORMER_NAMES)
def test_tile_sizes(name):
    cfg = config(name)
    assert cfg.tile_size == 0 and "tile_size" not in cfg.to_dict()
    fitted = cfg.for_tiles((7, 4, 96, 96))
    assert fitted.tile_size == 96 and NetworkConfig.from_dict(fitted.to_dict()) == fitted
    with pytest.raises(ConfigError, match="square tiles, got 64 x 96"):
        cfg.for_tiles((64, 96))
    with pytest.raises(ConfigError, match="multiple of 32 px.*got 80 px"):
        cfg.for_tiles((80, 80))
    with pytest.raises(ConfigError, match="built for 96 px tiles, these are 128 px"):
        fitted.for_tiles((128, 128))
    with pytest.raises(ConfigError, match="built for one tile size"):
        build_model(cfg)
    with pytest.raises(ConfigError, match="uses LayerNorm"):
        config(name, backbone_norm="batch", tile_size=64)
    model = build_model(config(name, tile_size=SIZE)).eval()
    with pytest.raises(ModelError, match="built for 64 x 64 px tiles, got 32 x 32.*re-tile"):
        model.encode(torch.zeros(1, 4, 32, 32))


def test_resnets_ignore_tile_size():
    cfg = config("resnet18")
    assert cfg.for_tiles((50, 70)) is cfg
    with pytest.raises(ConfigError, match="tile_size is set for transformer backbones only"):
        config("resnet18", tile_size=64)


@pytest.mark.parametrize("name", TRANSFORMER_NAMES)
def test_artifact_round_trip_gives_identical_outputs(tmp_path, name):
    torch.manual_seed(1)
    cfg = config(name, tile_size=SIZE)
    model = build_model(cfg)
    model.normaliser.set_statistics([1.0, 2, 3, 4], [2.0, 2, 2, 2])
    art = {"config": cfg.to_dict(), "members": [{"state_dict": model.state_dict(), "weight": 1.0}]}
    path = save_artifact(art, tmp_path / "m.pt")
    rebuilt = model_from_artifact(load_artifact(path), 0)
    model.eval()
    x = torch.randn(2, 4, SIZE, SIZE) * 5
    boxes, ebv = [torch.tensor([[3.0, 3, 20, 20]]), torch.tensor([[30.0, 10, 50, 40]])], [torch.zeros(1)] * 2
    with torch.inference_mode():
        enc_a, enc_b = model.encode(x), rebuilt.encode(x)
        a, b = model.redshift(enc_a, boxes, ebv), rebuilt.redshift(enc_b, boxes, ebv)
        det_a, det_b = model.detect(enc_a), rebuilt.detect(enc_b)
    for key in ("weights", "means", "stds"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    assert all(torch.equal(p["boxes"], q["boxes"]) for p, q in zip(det_a, det_b))


def timm_state(name, in_chans, img_size):
    """A timm state dict as a user would save ImageNet weights (3 bands, 224 px, classifier head)."""
    import timm

    spec = TRANSFORMERS[name]
    torch.manual_seed(3)
    return timm.create_model(spec.timm_name, pretrained=False, in_chans=in_chans, img_size=img_size).state_dict()


@pytest.mark.parametrize("name", TRANSFORMER_NAMES)
def test_local_timm_weights_load_into_other_bands_and_tile_size(tmp_path, name):
    state = timm_state(name, 3, 224)
    path = tmp_path / "imagenet.pth"
    torch.save({"state_dict": state}, path)
    backbone = build_backbone(name, 5, fpn_channels=16, tile_size=SIZE)
    missing = load_backbone_weights(backbone, path)
    assert missing == []
    own = backbone.body.trunk.state_dict()
    expected = state["patch_embed.proj.weight"].mean(dim=1, keepdim=True) * 3 / 5
    assert torch.allclose(own["patch_embed.proj.weight"], expected.repeat(1, 5, 1, 1))
    same = [k for k in own if own[k].shape == state[k].shape and k != "patch_embed.proj.weight"]
    resized = [k for k in own if own[k].shape != state[k].shape and k != "patch_embed.proj.weight"]
    assert resized, "a 224 px checkpoint has other relative-position tables than a 64 px model"
    assert all(torch.equal(own[k], state[k]) for k in same)
    with torch.inference_mode():
        assert all(torch.isfinite(v).all() for v in backbone.eval()(torch.randn(1, 5, SIZE, SIZE)).values())


def test_local_weights_of_another_model_size_are_refused(tmp_path):
    path = tmp_path / "small.pth"
    torch.save(timm_state("mvitv2_tiny", 3, 224), path)
    with pytest.raises(ModelError, match="none of its keys match a ResNet"):
        load_backbone_weights(build_backbone("resnet18", 3), path)
    bad = dict(timm_state("swin_tiny", 3, 224))
    bad["layers.0.blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    torch.save(bad, path)
    with pytest.raises(ModelError, match="small.pth: weight 'layers.0.blocks.0.attn.qkv.weight' has shape"):
        load_backbone_weights(build_backbone("swin_tiny", 3, tile_size=SIZE), path)


def test_first_layer_keys_exist():
    for name in ("resnet18", "swin_tiny"):
        model = build_model(config(name, tile_size=SIZE if name != "resnet18" else 0))
        assert first_layer_key(name) in model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("name", TRANSFORMER_NAMES)
def test_train_and_estimate_through_the_cli(tmp_path, name, capsys):
    tiles = make_colour_tileset(n_tiles=6, size=SIZE, objects_per_tile=3, seed=5, labelled_fraction=1.0)
    path = write_tileset(tiles, tmp_path / "tiles.h5")
    model = tmp_path / "model.pt"
    args = ["train", str(path), "-o", str(model), "--backbone", name, "--epochs", "1", "--members", "1",
            "--batch-size", "2", "--head-hidden", "32", "16", *FAST_CLI]
    assert main(args) == 0, capsys.readouterr().err
    art = load_artifact(model)
    assert art["config"]["backbone"] == name and art["config"]["tile_size"] == SIZE
    out = tmp_path / "pz.hdf5"
    with warnings.catch_warnings():  # one epoch may detect nothing: objects then get forced redshifts
        warnings.simplefilter("ignore", NoDetectionsWarning)
        assert main(["estimate", str(model), str(path), "-o", str(out), "--no-progress"]) == 0
    ens = qp.read(str(out))
    assert ens.npdf == tiles.n_primary
    assert np.isfinite(ens.ancil["zmode"]).all()
    small = make_colour_tileset(n_tiles=2, size=32, seed=6)
    other = write_tileset(small, tmp_path / "small.h5")
    capsys.readouterr()
    assert main(["estimate", str(model), str(other), "-o", str(tmp_path / "x.hdf5"), "--no-progress"]) == 2
    assert "built for 64 x 64 px tiles" in capsys.readouterr().err


def test_fine_tuning_to_other_bands_adapts_the_patch_embedding():
    from rail.deepdisc.training.finetune import load_pretrained

    torch.manual_seed(4)
    pretrained = build_model(config("swin_tiny", n_bands=4, tile_size=SIZE)).state_dict()
    model = build_model(config("swin_tiny", n_bands=2, tile_size=SIZE))
    kept = load_pretrained(model, pretrained, same_bands=False, first_conv="adapt")
    key = first_layer_key("swin_tiny")
    assert key not in kept
    own = model.state_dict()
    expected = pretrained[key].mean(dim=1, keepdim=True) * 4 / 2
    assert torch.allclose(own[key], expected.repeat(1, 2, 1, 1))
    block = "backbone.body.trunk.layers.1.blocks.0.attn.qkv.weight"
    assert torch.equal(own[block], pretrained[block])

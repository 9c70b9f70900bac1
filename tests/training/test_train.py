"""Training: partitions, member weights, checkpoints and resume, artifact, options, stage and CLI."""

import json
import math

import numpy as np
import pytest
import torch

from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ConfigError, TileSetError
from rail.deepdisc.model.artifact import load_artifact
from rail.deepdisc.model.network import model_from_artifact
from rail.deepdisc.tileset.io import write_tileset
from rail.deepdisc.training.data import hide_labels, labelled_tiles, partition_tiles, tile_targets
from rail.deepdisc.training.ddp import DistContext
from rail.deepdisc.training.ensemble import member_seed, member_weights, merge_artifacts
from rail.deepdisc.training.optimiser import learning_rate_at
from rail.deepdisc.training.run import check_train_options, loss_curve_paths, train_from_options
from rail.deepdisc.training.settings import TrainSettings
from tests.helpers.nethelpers import FAST, FAST_CLI, make_colour_tileset


@pytest.fixture(scope="module")
def tiles():
    return make_colour_tileset(n_tiles=8, size=32, seed=3)


def test_learning_rate_steps():
    s = TrainSettings(learning_rate=1e-3, lr_steps=(45, 75, 105), lr_gamma=0.1, lr_schedule="steps")
    assert learning_rate_at(0, s) == 1e-3 and learning_rate_at(44, s) == 1e-3
    assert learning_rate_at(45, s) == pytest.approx(1e-4)
    assert learning_rate_at(149, s) == pytest.approx(1e-6)


def test_member_weights_normalised_likelihoods():
    ll = [-1.0, -2.0, -1.5]
    w = member_weights(ll)
    assert w.sum() == pytest.approx(1.0)
    assert np.allclose(w, np.exp(ll) / np.exp(ll).sum())
    assert list(np.argsort(w)) == list(np.argsort(ll))  # higher likelihood, higher weight
    assert np.allclose(member_weights([-1000.0, -1001.0]), [1 / (1 + math.exp(-1)), 1 / (1 + math.e)])
    assert np.allclose(member_weights([float("nan"), 0.0]), [0.0, 1.0])


def test_partitions_are_seeded_distinct_and_validate_only_labelled(tiles):
    targets = tile_targets(tiles)
    lab = labelled_tiles(targets)
    a = partition_tiles(tiles.n_tiles, lab, val_fraction=0.25, seed=member_seed(1, 0))
    b = partition_tiles(tiles.n_tiles, lab, val_fraction=0.25, seed=member_seed(1, 0))
    c = partition_tiles(tiles.n_tiles, lab, val_fraction=0.25, seed=member_seed(1, 1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert member_seed(1, 0) != member_seed(1, 1) and member_seed(1, 0) != member_seed(2, 0)
    train, val = a
    assert len(val) == round(0.25 * len(lab)) and set(val) <= set(lab)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(tiles.n_tiles))
    assert len(c[1]) == len(val)
    with pytest.raises(TileSetError, match="at least 2 tiles"):
        partition_tiles(5, np.array([3]), val_fraction=0.1, seed=0)


def test_hide_labels_of_validation_objects_in_training_tiles():
    targets = [
        {"object_id": np.array([1, 2]), "redshift": np.array([0.5, 1.0], np.float32)},
        {"object_id": np.array([2, 3]), "redshift": np.array([1.0, 2.0], np.float32)},
    ]
    out = hide_labels(targets, train=np.array([0]), val=np.array([1]))
    assert out[0]["redshift"][0] == 0.5 and np.isnan(out[0]["redshift"][1])
    assert out[1] is targets[1] and not np.isnan(targets[0]["redshift"][1])


def test_shards_equal_batches_per_rank():
    order = np.arange(11)
    shards = [DistContext(rank=r, world_size=2).shard(order, 2) for r in range(2)]
    assert len(shards[0]) == len(shards[1])
    every = np.concatenate(shards[0] + shards[1])
    assert len(every) == 12 and set(every.tolist()) == set(range(11))  # padded by wrapping around
    single = DistContext().shard(np.arange(5), 2)
    assert [len(b) for b in single] == [2, 3]  # a lone last tile joins the batch before


def test_artifact_members_weights_and_loss_curves(tmp_path, tiles):
    model_path = tmp_path / "model.pt"
    art = train_from_options(tiles, {**FAST, "members": 2, "epochs": 2, "seed": 5}, model_path=model_path)
    from rail.deepdisc.model.artifact import save_artifact

    save_artifact(art, model_path)
    raw = torch.load(model_path, weights_only=True)
    assert raw["format"] == "deepdisc-model" and len(raw["members"]) == 2
    weights = np.array([m["weight"] for m in raw["members"]])
    assert weights.sum() == pytest.approx(1.0)
    assert np.allclose(weights, member_weights([m["val_log_likelihood"] for m in raw["members"]]))
    for m in raw["members"]:
        assert m["val_log_likelihood"] == pytest.approx(-min(r["val_nll"] for r in m["history"]))
        assert m["history"][m["best_epoch"]]["val_nll"] == pytest.approx(-m["val_log_likelihood"])
    norm = raw["config"]["normalisation"]
    assert norm["kind"] == "zscore" and len(norm["center"]) == len(tiles.bands)
    assert raw["config"]["training"]["members"] == 2 and raw["config"]["bands"] == list(tiles.bands)
    model = model_from_artifact(load_artifact(model_path), 1)
    assert torch.allclose(model.normaliser.center.double(), torch.tensor(norm["center"], dtype=torch.float64))
    json_path, png_path = loss_curve_paths(model_path)
    curves = json.loads(json_path.read_text())
    assert len(curves["members"]) == 2 and len(curves["members"][0]["history"]) == 2
    assert {"loss_redshift", "loss_mask", "val_nll", "lr"} <= set(curves["members"][0]["history"][0])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "model_checkpoints").iterdir()) == [
        "member_000.pt",
        "member_001.pt",
    ]


class _Killed(Exception):
    pass


def _kill_after(epoch_to_die):
    def hook(epoch, record):
        if epoch == epoch_to_die:
            raise _Killed

    return hook


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, tiles):
    opts = {
        **FAST,
        "members": 2,
        "epochs": 3,
        "patience": 5,
        "seed": 11,
        "augment_noise": 0.5,
        "augment_ebv": 0.01,
    }
    full = train_from_options(tiles, {**opts, "checkpoint_dir": str(tmp_path / "a")})
    calls = []

    def die_in_member_1(epoch, record):  # after member 0 (3 epochs) and member 1's first checkpoint
        calls.append(epoch)
        if len(calls) == 4:
            raise _Killed

    with pytest.raises(_Killed):
        train_from_options(
            tiles, {**opts, "checkpoint_dir": str(tmp_path / "b")}, on_epoch_end=die_in_member_1
        )
    resumed = train_from_options(tiles, {**opts, "checkpoint_dir": str(tmp_path / "b"), "resume": True})
    for m_full, m_res in zip(full["members"], resumed["members"]):
        assert m_full["weight"] == m_res["weight"]
        assert m_full["best_epoch"] == m_res["best_epoch"]
        assert all(torch.equal(v, m_res["state_dict"][k]) for k, v in m_full["state_dict"].items())
        assert [r["val_nll"] for r in m_full["history"]] == [r["val_nll"] for r in m_res["history"]]


def test_resume_refuses_other_options(tmp_path, tiles):
    opts = {**FAST, "epochs": 2, "checkpoint_dir": str(tmp_path)}
    with pytest.raises(_Killed):
        train_from_options(tiles, opts, on_epoch_end=_kill_after(0))
    with pytest.raises(Exception, match="other options or data"):
        train_from_options(tiles, {**opts, "learning_rate": 0.5, "resume": True})


def test_unlabelled_tileset_is_refused(tiles):
    from dataclasses import replace

    objects = {**tiles.objects, "redshift": np.full(tiles.n_objects, np.nan)}
    with pytest.raises(TileSetError, match="no object has a spec-z label"):
        train_from_options(replace(tiles, objects=objects), FAST)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"epoch": 3}, "did you mean 'epochs'"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"val_fraction": 1.5}, r"val_fraction must be in \(0, 1\)"),
        ({"optimizer": "adam"}, "optimizer must be one of"),
        ({"backbone": "vgg16"}, "backbone must be one of"),
        ({"normalisation": "log"}, "normalisation must be one of"),
        ({"lr_steps": [10, 5]}, "lr_steps must be increasing"),
        ({"augment_noise": -1.0}, "augment_noise must be >= 0"),
        ({"augment_box_jitter": 0.9}, r"augment_box_jitter must be in \[0, 0.5\]"),
        ({"device": "tpu"}, "device must be auto, cpu"),
        ({"members": 0}, "members must be >= 1"),
        ({"head_hidden": 64}, "head_hidden must be a list"),
        ({"backbone_weights": "a.pth", "init_model": "b.pt"}, "not both"),
    ],
)
def test_bad_options_are_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        check_train_options(bad)


def test_member_indices_and_merge(tmp_path, tiles):
    opts = {**FAST, "members": 3, "epochs": 1, "seed": 2}
    a = train_from_options(tiles, {**opts, "member_indices": [0, 2]})
    b = train_from_options(tiles, {**opts, "member_indices": [1]})
    merged = merge_artifacts([a, b])
    assert [m["seed"] for m in merged["members"]] == [member_seed(2, k) for k in (0, 2, 1)]
    assert sum(m["weight"] for m in merged["members"]) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="member indices"):
        train_from_options(tiles, {**opts, "member_indices": [3]})
    other = train_from_options(tiles, {**opts, "member_indices": [0], "n_components": 3})
    with pytest.raises(Exception, match="differs from artifact 0 in n_components"):
        merge_artifacts([a, other])


def test_informer_stage_trains_and_writes_model(tmp_path, tiles):
    from rail.deepdisc import DeepDiscInformer

    stage = DeepDiscInformer.make_stage(
        name="inform_net_test", model=str(tmp_path / "stage_model.pt"), **{**FAST, "epochs": 1}
    )
    handle = stage.inform(tiles)
    art = load_artifact(tmp_path / "stage_model.pt")
    assert len(art["members"]) == 1 and handle.data["members"][0]["weight"] == 1.0
    assert (tmp_path / "stage_model_loss.png").exists()


def test_informer_validate_refuses_unlabelled_tiles(tmp_path, tiles):
    from dataclasses import replace

    from rail.deepdisc import DeepDiscInformer

    unlabelled = replace(tiles, objects={**tiles.objects, "redshift": np.full(tiles.n_objects, np.nan)})
    stage = DeepDiscInformer.make_stage(name="inform_net_nolabels", model=str(tmp_path / "x.pt"), **FAST)
    with pytest.raises(TileSetError, match="no object has a spec-z"):
        stage.inform(unlabelled)
    bad = DeepDiscInformer.make_stage(
        name="inform_net_badvalue", model=str(tmp_path / "y.pt"), **{**FAST, "val_fraction": 2.0}
    )
    with pytest.raises(ConfigError, match="val_fraction"):
        bad.inform(tiles)


def test_cli_train_merge_and_errors(tmp_path, tiles, capsys):
    path = write_tileset(tiles, tmp_path / "tiles.h5")
    common = [
        "--epochs",
        "1",
        "--members",
        "2",
        *FAST_CLI,
        "--head-hidden",
        "32",
        "16",
    ]
    assert main(["train", str(path), "-o", str(tmp_path / "p0.pt"), "--member-index", "0", *common]) == 0
    assert main(["train", str(path), "-o", str(tmp_path / "p1.pt"), "--member-index", "1", *common]) == 0
    assert (
        main(
            [
                "train",
                "--merge",
                str(tmp_path / "p0.pt"),
                str(tmp_path / "p1.pt"),
                "-o",
                str(tmp_path / "m.pt"),
            ]
        )
        == 0
    )
    assert len(load_artifact(tmp_path / "m.pt")["members"]) == 2
    capsys.readouterr()
    assert main(["train", str(path), "-o", str(tmp_path / "x.pt"), "--epochs", "0"]) == 2
    assert "epochs must be >= 1" in capsys.readouterr().err
    assert main(["train", "-o", str(tmp_path / "x.pt")]) == 2
    assert "needs a TileSet" in capsys.readouterr().err


def test_checkpoints_load_weights_only(tmp_path, tiles):
    train_from_options(tiles, {**FAST, "epochs": 1, "checkpoint_dir": str(tmp_path)})
    ckpt = torch.load(tmp_path / "member_000.pt", weights_only=True)
    assert ckpt["done"] and ckpt["epoch"] == 1 and len(ckpt["history"]) == 1


def test_init_model_starts_every_member_from_it(tmp_path, tiles):
    from rail.deepdisc.model.artifact import save_artifact

    base = train_from_options(tiles, {**FAST, "epochs": 1, "seed": 1})
    path = save_artifact(base, tmp_path / "pre.pt")
    tuned = train_from_options(
        tiles, {**FAST, "members": 2, "epochs": 1, "seed": 2, "init_model": str(path), "learning_rate": 1e-12}
    )
    start = base["members"][0]["state_dict"]
    for member in tuned["members"]:
        state = member["state_dict"]
        assert all(torch.allclose(v.float(), state[k].float(), atol=1e-6) for k, v in start.items())
    with pytest.raises(ConfigError, match="differs from the requested one in backbone"):
        train_from_options(tiles, {**FAST, "init_model": str(path), "backbone": "resnet34"})


def test_the_papers_recipe_is_one_set_of_options(tiles):
    paper = {"pixel_pool_size": 0, "optimizer": "sgd", "lr_schedule": "steps", "head_steps": 0,
             "head_lr_factor": 1.0, "redshift_backbone_grad": 1.0, "calibrate_widths": False}
    art = train_from_options(tiles, {**FAST, "epochs": 1, **paper})
    assert art["config"]["pixel_pool_size"] == 0
    assert {k: art["config"]["training"][k] for k in paper if k != "pixel_pool_size"} == {
        k: v for k, v in paper.items() if k != "pixel_pool_size"}
    first = art["members"][0]["state_dict"]["redshift_head.mlp.0.weight"]
    fpn = art["config"]["fpn_channels"]
    assert first.shape[1] == fpn * 7 * 7 + 1  # RoI features and E(B-V) only


def test_informer_declares_every_training_option_with_the_same_default():
    from rail.deepdisc import DeepDiscInformer
    from rail.deepdisc.training.run import TRAIN_DEFAULTS

    declared = DeepDiscInformer.config_options
    assert set(TRAIN_DEFAULTS) <= set(declared)
    assert {k: declared[k].default for k in TRAIN_DEFAULTS} == TRAIN_DEFAULTS


def test_asinh_normalisation_uses_sky_statistics(tiles):
    from rail.deepdisc.model.normalise import band_statistics

    art = train_from_options(tiles, {**FAST, "epochs": 1, "normalisation": "asinh"})
    norm = art["config"]["normalisation"]
    stats = band_statistics(tiles.images, tiles.segmaps, seed=art["config"]["training"]["seed"])
    assert norm["kind"] == "asinh"
    assert np.allclose(norm["center"], stats.sky_median) and np.allclose(norm["scale"], stats.sky_sigma)
    assert 0.5 < np.mean(norm["scale"]) < 2.0  # the test tiles have unit sky noise

"""Pretraining on label-complete chunks, fine-tuning from a pretrained artifact, backbone-only pretraining."""

import dataclasses

import numpy as np
import pytest
import torch

from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ConfigError, ModelError, TileSetError
from rail.deepdisc.model.artifact import load_artifact, save_artifact
from rail.deepdisc.model.backbone import load_backbone_weights
from rail.deepdisc.model.network import NetworkConfig, build_model
from rail.deepdisc.pretraining.backbone import extract_cutouts, pretrain_backbone, save_backbone
from rail.deepdisc.pretraining.randomise import FileChunks, NuisanceRanges, chunk_seed, label_complete
from rail.deepdisc.pretraining.run import check_pretrain_options, pretrain_from_options, pretraining_source
from rail.deepdisc.pretraining.settings import BackboneSettings
from rail.deepdisc.tileset.io import write_tileset
from rail.deepdisc.training.run import train_from_options
from tests.helpers.nethelpers import FAST, make_colour_tileset

PRE = {"epochs": 2, "batch_size": 2, "num_threads": 1, "progress_bar": False, "device": "cpu",
       "head_hidden": [64, 32], "validation_tiles": 2, "tiles_per_chunk": 3, "seed": 5}


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory):
    """Two label-complete TileSet files (the colour blobs carry redshift_true)."""
    folder = tmp_path_factory.mktemp("sim")
    return [str(write_tileset(make_colour_tileset(n_tiles=6, size=32, seed=s), folder / f"sim{s}.h5"))
            for s in (1, 2)]


@pytest.fixture(scope="module")
def pretrained(sim_files, tmp_path_factory):
    path = tmp_path_factory.mktemp("pre") / "pretrained.pt"
    art = pretrain_from_options({**PRE, "tile_files": sim_files, "epochs": 1}, model_path=path)
    save_artifact(art, path)
    return path


@pytest.fixture(scope="module")
def specz():
    return make_colour_tileset(n_tiles=6, size=32, seed=9)


def test_nuisance_ranges_draw_inside_and_are_validated():
    ranges = NuisanceRanges(psf_fwhm_scale=(0.9, 1.1), depth_offset=(-0.5, -0.5))
    draws = [ranges.draw(np.random.default_rng(k)) for k in range(50)]
    assert all(0.9 <= d["psf_fwhm_scale"] <= 1.1 and d["depth_offset"] == -0.5 for d in draws)
    assert len({d["size_scale"] for d in draws}) == 50  # every chunk gets its own value
    assert NuisanceRanges.fixed().psf_fwhm_scale == (1.0, 1.0)
    with pytest.raises(ConfigError, match="low <= high"):
        NuisanceRanges(size_scale=(1.2, 0.8))
    with pytest.raises(ConfigError):
        NuisanceRanges(size_scale=(-1.0, 1.0))  # the simulator refuses a negative size scale
    assert chunk_seed(1, 0, 0) == chunk_seed(1, 0, 0) != chunk_seed(1, 0, 1) != chunk_seed(1, 1, 0)
    assert chunk_seed(1, 0, 0) != chunk_seed(1, 0, 0, rank=1) != chunk_seed(1, 0, 0, stream=1)


def test_pretraining_defaults_agree_with_training_and_ranges_and_the_stage():
    from rail.deepdisc.pretraining.run import DEFAULT_RANGES, PRETRAIN_DEFAULTS, SHARED_DEFAULTS
    from rail.deepdisc.training.run import TRAIN_DEFAULTS
    from rail.estimation.algos.deepdisc_pretrain import DeepDiscPretrainer

    assert SHARED_DEFAULTS == {key: TRAIN_DEFAULTS[key] for key in SHARED_DEFAULTS}
    assert DEFAULT_RANGES == NuisanceRanges().to_dict()
    declared = DeepDiscPretrainer.config_options
    assert all(declared[key].default == value for key, value in PRETRAIN_DEFAULTS.items())


def test_label_complete_uses_true_redshifts(specz):
    assert np.isnan(specz.objects["redshift"]).any()
    full = label_complete(specz)
    assert np.array_equal(full.objects["redshift"], specz.objects["redshift_true"])
    bare = dataclasses.replace(specz, objects={k: v for k, v in specz.objects.items() if k != "redshift_true"})
    with pytest.raises(TileSetError, match="no 'redshift_true' column"):
        label_complete(bare)


def test_file_chunks_cover_every_tile_in_chunks(sim_files):
    source = FileChunks(sim_files, tiles_per_chunk=4)
    assert source.chunks_per_epoch == 4  # 6 tiles per file: 4 + 2, twice
    sizes = [source.chunk(0, c).n_tiles for c in range(source.chunks_per_epoch)]
    assert sizes == [4, 2, 4, 2]
    assert np.isfinite(source.chunk(0, 1).objects["redshift"]).all()


def test_pretraining_resumed_after_a_kill_equals_an_uninterrupted_run(tmp_path, sim_files):
    opts = {**PRE, "tile_files": sim_files, "augment_noise": 0.3}
    full = pretrain_from_options({**opts, "checkpoint": str(tmp_path / "a.pt")})
    calls = []

    def die(epoch, chunk, record):  # killed in the second epoch, after its first chunk
        calls.append((epoch, chunk))
        if len(calls) == 5:
            raise _Killed

    with pytest.raises(_Killed):
        pretrain_from_options({**opts, "checkpoint": str(tmp_path / "b.pt")}, on_chunk_end=die)
    resumed = pretrain_from_options({**opts, "checkpoint": str(tmp_path / "b.pt"), "resume": True})
    a, b = full["members"][0], resumed["members"][0]
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    assert [r["val_nll"] for r in a["history"]] == [r["val_nll"] for r in b["history"]]
    assert full["provenance"]["tiles_seen"] == resumed["provenance"]["tiles_seen"] == 2 * 12
    with pytest.raises(ModelError, match="other training"):
        pretrain_from_options({**opts, "checkpoint": str(tmp_path / "b.pt"), "resume": True, "learning_rate": 0.1})


def test_pretrained_artifact_records_provenance(pretrained, sim_files):
    art = load_artifact(pretrained)
    prov = art["provenance"]
    assert prov["kind"] == "pretrained" and prov["seed"] == 5 and prov["epochs"] == 1
    assert prov["pretraining_data"]["files"] == sim_files
    assert prov["tiles_seen"] == 12 and prov["objects_seen"] == 36
    assert 0 < prov["cpu_seconds"] < 600  # this process's CPU over the run (the fixture trains seconds)
    assert len(art["members"]) == 1 and art["config"]["training"]["pretraining"] is True


def _weights(state):
    """The learnt tensors (batch-norm running statistics move with any learning rate)."""
    return {k: v for k, v in state.items() if v.is_floating_point() and "running_" not in k}


def test_a_continued_pretraining_starts_from_the_earlier_weights_on_new_chunks(pretrained, sim_files, tmp_path,
                                                                                  monkeypatch):
    from rail.deepdisc.model.artifact import weights_digest

    epochs_read = []
    chunk = FileChunks.chunk

    def spy(self, epoch, index, rank=0):
        epochs_read.append(epoch)
        return chunk(self, epoch, index, rank)

    monkeypatch.setattr(FileChunks, "chunk", spy)
    init = load_artifact(pretrained)
    before = _weights(init["members"][0]["state_dict"])
    opts = {**PRE, "tile_files": sim_files, "epochs": 1, "init_model": str(pretrained)}
    still = pretrain_from_options({**opts, "learning_rate": 1e-12, "checkpoint": str(tmp_path / "s.pt")})
    kept = _weights(still["members"][0]["state_dict"])
    assert all(torch.allclose(kept[k], v, atol=1e-6) for k, v in before.items())  # the earlier weights, not new ones
    assert set(epochs_read) == {1}  # numbered after the earlier run's one epoch: its chunks are not read again
    art = pretrain_from_options({**opts, "checkpoint": str(tmp_path / "c.pt")})
    after = _weights(art["members"][0]["state_dict"])
    assert any(not torch.allclose(after[k], v) for k, v in before.items())  # and it trains them further
    prov, earlier = art["provenance"], init["provenance"]
    assert prov["epochs"] == 2 and prov["tiles_seen"] == 24 and prov["objects_seen"] == 72  # totals of both runs
    assert prov["cpu_seconds"] > earlier["cpu_seconds"]
    assert prov["continued_from"]["weights"] == weights_digest(init["members"][0]["state_dict"])
    assert prov["continued_from"]["epochs"] == 1 and prov["continued_from"]["path"] == str(pretrained)
    assert [r["epoch"] for r in art["members"][0]["history"]] == [0, 1]  # the loss curves of both runs
    assert art["members"][0]["best_epoch"] == 1
    assert art["config"]["normalisation"] == init["config"]["normalisation"]  # the weights' own input scaling


def test_a_continued_pretraining_resumes_and_refuses_other_models(pretrained, sim_files, tmp_path, caplog):
    opts = {**PRE, "tile_files": sim_files, "init_model": str(pretrained)}
    with caplog.at_level("WARNING", logger="rail.deepdisc.pretraining.loop"):
        full = pretrain_from_options({**opts, "checkpoint": str(tmp_path / "a.pt")})
        assert not caplog.records  # the same data as the earlier run
        pretrain_from_options({**opts, "tile_files": sim_files[:1], "epochs": 1})
        assert "pretrained on other data (chunks_per_epoch, files differ)" in caplog.text
    calls = []

    def die(epoch, chunk, record):
        calls.append(chunk)
        if len(calls) == 5:
            raise _Killed

    with pytest.raises(_Killed):
        pretrain_from_options({**opts, "checkpoint": str(tmp_path / "b.pt")}, on_chunk_end=die)
    resumed = pretrain_from_options({**opts, "checkpoint": str(tmp_path / "b.pt"), "resume": True})
    a, b = full["members"][0]["state_dict"], resumed["members"][0]["state_dict"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    other = save_artifact(full, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="init_weights"):  # the checkpoint continued other weights
        pretrain_from_options({**opts, "init_model": str(other), "checkpoint": str(tmp_path / "b.pt"),
                               "resume": True})
    with pytest.raises(ConfigError, match="head_hidden"):
        pretrain_from_options({**opts, "head_hidden": [32]})
    tuned = load_artifact(pretrained)
    tuned["provenance"] = {"kind": "trained"}
    save_artifact(tuned, tmp_path / "tuned.pt")
    with pytest.raises(ConfigError, match="tuned.pt: not a pretrained model"):
        pretrain_from_options({**opts, "init_model": str(tmp_path / "tuned.pt")})


def _layer(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_fine_tuning_with_other_bands_reinitialises_only_the_band_dependent_weights(pretrained, specz):
    three = specz.select_bands(("F115W", "F277W", "F444W"))
    start = load_artifact(pretrained)["members"][0]["state_dict"]
    for mode in ("reinit", "adapt"):
        tuned = train_from_options(three, {**FAST, "epochs": 1, "init_model": str(pretrained),
                                           "learning_rate": 1e-12, "first_conv": mode})
        state = tuned["members"][0]["state_dict"]
        conv1 = state["backbone.body.conv1.weight"]
        assert conv1.shape == (64, 3, 7, 7)
        expected = start["backbone.body.conv1.weight"].mean(dim=1, keepdim=True).repeat(1, 3, 1, 1) * 4 / 3
        assert torch.allclose(conv1, expected, atol=1e-6) == (mode == "adapt")
        for prefix in ("backbone.body.layer", "backbone.fpn.", "rpn.", "roi_heads.", "redshift_head.output"):
            assert all(torch.allclose(v, start[k], atol=1e-6) for k, v in _layer(state, prefix).items())
        n_fpn = 64 * 7 * 7
        head, head0 = state["redshift_head.mlp.0.weight"], start["redshift_head.mlp.0.weight"]
        assert torch.allclose(head[:, :n_fpn], head0[:, :n_fpn], atol=1e-6)
        n_pixel = 3 + 3 * 16  # pixel path: 3 colours, 3 bands x 4 x 4 normalised pixels; then E(B-V)
        assert head.shape[1] == n_fpn + n_pixel + 1
        assert not torch.allclose(head[:, n_fpn:-1], head0[:, n_fpn : n_fpn + n_pixel])
        assert torch.allclose(head[:, -1], head0[:, -1], atol=1e-6)
        assert not torch.equal(state["normaliser.center"][:1], start["normaliser.center"][:1])


def test_a_pretraining_chunk_holds_galaxies_of_every_family_of_its_library():
    source = pretraining_source({"sed_library": "cww+cosmos", "bands": ["F150W", "F277W", "F444W"],
                                 "tile_size": 96, "tiles_per_chunk": 4, "seed": 3, "device": "cpu"})
    assert source.base.sed_library == "cosmos+cww"
    assert source.describe()["fixed_settings"]["sed_library"] == "cosmos+cww"  # the artifact's provenance
    chunk = source.chunk(0, 0)
    gal = ~chunk.objects["true_is_star"].astype(bool)
    families, counts = np.unique(chunk.objects["true_sed_family"][gal], return_counts=True)
    assert families.tolist() == ["cosmos", "cww"] and counts.min() >= 3  # per galaxy, not per chunk
    assert np.isfinite(chunk.objects["redshift"][gal]).all()
    assert pretraining_source({"device": "cpu"}).base.sed_library == "cosmos+fsps+cww"  # default: every family


def test_fine_tuning_trains_every_part_by_default(pretrained, specz):
    start = load_artifact(pretrained)["members"][0]["state_dict"]
    tuned = train_from_options(specz, {**FAST, "epochs": 1, "init_model": str(pretrained)})
    assert tuned["config"]["training"]["freeze"] == [] and tuned["members"][0]["best_epoch"] == 0
    state = tuned["members"][0]["state_dict"]
    for prefix in ("backbone.body.", "backbone.fpn.", "rpn.", "roi_heads.", "redshift_head.mlp.",
                   "redshift_head.output."):
        moved = [k for k, v in _layer(state, prefix).items() if v.is_floating_point() and not torch.equal(v, start[k])]
        assert moved, f"{prefix} did not train"


def test_fine_tuning_records_its_source_and_info_shows_it(pretrained, specz, tmp_path, capsys):
    tuned = train_from_options(specz, {**FAST, "epochs": 1, "init_model": str(pretrained)})
    source = tuned["provenance"]["fine_tuned_from"]
    assert source["path"] == str(pretrained) and source["provenance"]["kind"] == "pretrained"
    path = save_artifact(tuned, tmp_path / "tuned.pt")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "fine_tuned_from:" in out and "kind: pretrained" in out and "tiles_seen: 12" in out
    assert main(["info", str(pretrained)]) == 0
    assert "history" not in capsys.readouterr().out


def test_freezing_keeps_backbone_and_fpn_fixed_for_the_first_epochs(pretrained, specz, tmp_path):
    start = load_artifact(pretrained)["members"][0]["state_dict"]
    snapshots = []

    def snap(epoch, record):
        ckpt = torch.load(tmp_path / "ck" / "member_000.pt", weights_only=True)
        snapshots.append((record["frozen"], ckpt["model"]))

    train_from_options(specz, {**FAST, "epochs": 2, "patience": 5, "init_model": str(pretrained),
                               "learning_rate": 1e-2, "freeze": ["backbone", "fpn"], "freeze_epochs": 1,
                               "checkpoint_dir": str(tmp_path / "ck")}, on_epoch_end=snap)
    (frozen0, after0), (frozen1, after1) = snapshots
    assert frozen0 == ["backbone", "fpn"] and frozen1 == []
    for prefix in ("backbone.body.", "backbone.fpn."):
        assert all(torch.equal(v, start[k]) for k, v in _layer(after0, prefix).items())
        assert any(not torch.equal(v, start[k]) for k, v in _layer(after1, prefix).items())
    assert any(not torch.equal(v, start[k]) for k, v in _layer(after0, "rpn.").items())


def test_a_frozen_redshift_head_keeps_the_pretrained_mapping_and_only_its_widths_change(pretrained, specz):
    start = load_artifact(pretrained)["members"][0]["state_dict"]
    tuned = train_from_options(specz, {**FAST, "epochs": 2, "init_model": str(pretrained), "learning_rate": 1e-2,
                                       "freeze": ["redshift_head"], "freeze_epochs": 2, "val_fraction": 0.5})
    member = tuned["members"][0]
    state = member["state_dict"]
    head = {k: v for k, v in _layer(state, "redshift_head.").items() if k != "redshift_head.std_scale"}
    assert head and all(torch.equal(v, start[k]) for k, v in head.items())  # no step, no extra head updates
    assert float(state["redshift_head.std_scale"]) == pytest.approx(member["std_scale"])
    assert any(not torch.equal(v, start[k]) for k, v in _layer(state, "backbone.body.").items())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"freeze": ["backbone"]}, "freeze only makes sense"),
        ({"first_conv": "zero"}, "first_conv must be one of"),
        ({"init_model": "x.pt", "freeze": ["head"]}, "freeze must list distinct values"),
        ({"init_model": "x.pt", "freeze_epochs": -1}, "freeze_epochs must be >= 0"),
    ],
)
def test_fine_tuning_options_are_checked(options, match, specz):
    with pytest.raises(ConfigError, match=match):
        train_from_options(specz, {**FAST, **options})


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"epoch": 3}, "did you mean 'epochs'"),
        ({"size_scale": [1.0]}, r"size_scale must be a \[low, high\] range"),
        ({"psf_fwhm_scale": [1.3, 0.9]}, "low <= high"),
        ({"tiles_per_chunk": 1}, "tiles_per_chunk must be >= 2"),
        ({"validation_tiles": 1}, "validation_tiles must be >= 2"),
        ({"tile_files": "a.h5"}, "tile_files must be a list"),
        ({"sed_library": "cosmos+eazy"}, "unknown family 'eazy'; give one of cosmos, fsps, cww"),
    ],
)
def test_pretraining_options_are_checked(options, match):
    with pytest.raises(ConfigError, match=match):
        check_pretrain_options(options)


def test_extract_cutouts_are_centred_and_padded(specz):
    tiles = label_complete(specz)
    cut, z, mags, oid = extract_cutouts(tiles, 32)
    assert cut.shape == (tiles.n_objects, 4, 32, 32)
    assert np.array_equal(np.sort(oid), np.sort(tiles.objects["object_id"]))
    row = int(np.flatnonzero(tiles.objects["object_id"] == oid[0])[0])
    x, y, t = (int(round(tiles.objects[c][row])) for c in ("x", "y", "tile"))
    assert cut[0, :, 16, 16].tolist() == tiles.images[t, :, y, x].tolist()
    assert z[0] == tiles.objects["redshift_true"][row] and mags.shape == (tiles.n_objects, 4)
    assert (cut[0, :, :16 - y, :] == 0).all()  # rows above the tile are zero padding
    with pytest.raises(ConfigError, match="cutout_size must be >= 32"):
        extract_cutouts(tiles, 16)


def test_backbone_only_weights_load_into_the_detector(sim_files, tmp_path):
    source = FileChunks(sim_files, tiles_per_chunk=6)
    settings = BackboneSettings(cutout_size=32, epochs=1, batch_size=8, seed=3)
    result = pretrain_backbone(source, settings, progress=False, checkpoint=tmp_path / "ck.pt")
    assert np.isfinite(result["provenance"]["val_redshift_rmse"])
    path = save_backbone(result, tmp_path / "resnet.pt")
    model = build_model(NetworkConfig(bands=source.bands, pixel_scale=source.pixel_scale))
    assert load_backbone_weights(model.backbone, path) == []
    body = model.backbone.body.state_dict()
    assert all(torch.equal(body[k], v) for k, v in result["state_dict"].items())
    tuned = train_from_options(make_colour_tileset(n_tiles=4, size=32, seed=4),
                               {**FAST, "epochs": 1, "learning_rate": 1e-12, "backbone_weights": str(path)})
    state = tuned["members"][0]["state_dict"]
    assert torch.allclose(state["backbone.body.layer4.1.conv2.weight"], result["state_dict"]["layer4.1.conv2.weight"],
                          atol=1e-6)


def test_cli_backbone_only_needs_tile_files(tmp_path, capsys):
    assert main(["pretrain", "--backbone-only", "-o", str(tmp_path / "r.pt")]) == 2
    assert "needs tile_files" in capsys.readouterr().err
    assert main(["pretrain", "-o", str(tmp_path / "r.pt"), "--cutout-size", "32"]) == 2
    assert "belongs to --backbone-only" in capsys.readouterr().err


def test_pretrainer_stage_is_strict_and_writes_a_model(sim_files, tmp_path):
    from rail.estimation.algos.deepdisc_pretrain import DeepDiscPretrainer

    with pytest.raises(ConfigError, match="tiles_per_chunks"):
        DeepDiscPretrainer.make_stage(name="pre_bad", tiles_per_chunks=3)
    stage = DeepDiscPretrainer.make_stage(name="pre_ok", model=str(tmp_path / "pre.pt"),
                                          **{**PRE, "epochs": 1}, tile_files=sim_files)
    handle = stage.pretrain()
    art = load_artifact(tmp_path / "pre.pt")
    assert art["provenance"]["kind"] == "pretrained" and handle.data["provenance"]["tiles_seen"] == 12


@pytest.mark.slow
def test_cli_pretrains_on_simulations_with_randomisation(tmp_path, capsys):
    out = tmp_path / "pre.pt"
    code = main(["pretrain", "-o", str(out), "--bands", "F150W", "F277W", "F444W", "--tile-size", "64",
                 "--tiles-per-chunk", "2", "--chunks-per-epoch", "2", "--epochs", "1", "--validation-tiles", "2",
                 "--batch-size", "2", "--head-hidden", "32", "--threads", "1", "--device", "cpu", "--no-progress",
                 "--psf-fwhm-scale", "0.9", "1.2"])
    assert code == 0
    assert "pretrained on 4 tiles" in capsys.readouterr().out
    prov = load_artifact(out)["provenance"]
    assert prov["pretraining_data"]["randomisation"]["psf_fwhm_scale"] == [0.9, 1.2]
    assert main(["info", str(out)]) == 0
    assert "psf_fwhm_scale: 0.9 .. 1.2" in capsys.readouterr().out


@pytest.mark.slow
def test_pretraining_under_ddp_simulates_a_chunk_per_rank(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "rail.deepdisc.cli", "pretrain", "-o", str(out), "--bands", "F200W", "F444W", "--tile-size", "64",
           "--tiles-per-chunk", "2", "--chunks-per-epoch", "1", "--epochs", "1", "--validation-tiles", "2",
           "--batch-size", "2", "--head-hidden", "32", "--threads", "1", "--device", "cpu", "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    prov = load_artifact(out)["provenance"]
    assert prov["world_size"] == 2 and prov["tiles_seen"] == 4  # 2 ranks x 2 tiles each
    assert prov["cpu_seconds"] > 0  # summed over the ranks

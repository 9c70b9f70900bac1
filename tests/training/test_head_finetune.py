"""Fine-tuning the redshift head alone on a pretrained network's frozen features (``finetune="head"``)."""

import numpy as np
import pytest
import torch

from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.model.artifact import load_artifact, save_artifact
from rail.deepdisc.model.network import model_from_artifact
from rail.deepdisc.model.redshift_head import mixture_log_prob
from rail.deepdisc.pretraining.run import pretrain_from_options
from rail.deepdisc.tileset.io import write_tileset
from rail.deepdisc.training.data import MemberData, hide_labels, labelled_tiles, partition_tiles, tile_targets
from rail.deepdisc.training.head_finetune import labelled_head_features
from rail.deepdisc.training.run import train_from_options
from rail.deepdisc.training.settings import Augmentation
from tests.helpers.nethelpers import FAST, make_colour_tileset

PRE = {"epochs": 1, "batch_size": 2, "num_threads": 1, "progress_bar": False, "device": "cpu",
       "head_hidden": [64, 32], "validation_tiles": 2, "tiles_per_chunk": 3, "seed": 5}
HEAD = {**FAST, "finetune": "head", "learning_rate": 2e-2, "val_fraction": 0.3}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pre")
    files = [str(write_tileset(make_colour_tileset(n_tiles=6, size=32, seed=s), folder / f"sim{s}.h5"))
             for s in (1, 2)]
    path = folder / "pretrained.pt"
    save_artifact(pretrain_from_options({**PRE, "tile_files": files}, model_path=path), path)
    return path


@pytest.fixture(scope="module")
def specz():
    return make_colour_tileset(n_tiles=8, size=32, seed=9)


def _labelled_nll(artifact, tileset) -> float:
    """Mean NLL of every labelled object's spec-z under the member's head (ground-truth boxes)."""
    model = model_from_artifact(artifact, 0)
    inputs = labelled_head_features(model, tileset.images, tileset.segmaps, tile_targets(tileset),
                                    np.arange(tileset.n_tiles), batch_size=4, device=torch.device("cpu")).inputs
    assert len(inputs.z) >= 10
    with torch.no_grad():
        return -float(mixture_log_prob(model.redshift_head(inputs.features, inputs.extra), inputs.z).mean())


def test_head_finetuning_moves_the_head_alone_and_fits_the_labels(pretrained, specz):
    start = load_artifact(pretrained)
    tuned = train_from_options(specz, {**HEAD, "epochs": 12, "patience": 12, "init_model": str(pretrained)})
    member = tuned["members"][0]
    state, before = member["state_dict"], start["members"][0]["state_dict"]
    others = [k for k in state if not k.startswith("redshift_head.")]
    assert others and all(torch.equal(state[k], before[k]) for k in others)  # backbone, FPN, detector, normaliser
    moved = [k for k in ("redshift_head.mlp.0.weight", "redshift_head.output.weight", "redshift_head.output.bias")
             if not torch.equal(state[k], before[k])]
    assert len(moved) == 3
    assert float(state["redshift_head.std_scale"]) == pytest.approx(member["std_scale"])
    assert tuned["config"]["training"]["finetune"] == "head"
    assert all(r["frozen"] == ["backbone", "fpn", "detector"] for r in member["history"])
    # the tuned head explains the spec-z of these tiles better than the pretrained one
    assert _labelled_nll(tuned, specz) < _labelled_nll(start, specz) - 0.1


def _killed_after_epoch_1(specz, options: dict, folder) -> None:
    """Run ``options`` with checkpoints in ``folder``, killed after its second epoch."""

    def kill(epoch, record):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_from_options(specz, {**options, "checkpoint_dir": str(folder)}, on_epoch_end=kill)


def _same_member(reference: dict, resumed: dict) -> None:
    """A resumed 4-epoch member equals the uninterrupted one: history, weights, validation likelihood."""
    assert [r["epoch"] for r in resumed["history"]] == [0, 1, 2, 3]
    assert all(torch.equal(v, resumed["state_dict"][k]) for k, v in reference["state_dict"].items())
    assert resumed["val_log_likelihood"] == reference["val_log_likelihood"]


def test_a_killed_head_finetuning_resumes_to_the_uninterrupted_result(pretrained, specz, tmp_path):
    options = {**HEAD, "epochs": 4, "patience": 4, "init_model": str(pretrained)}
    reference = train_from_options(specz, {**options, "checkpoint_dir": str(tmp_path / "a")})
    _killed_after_epoch_1(specz, options, tmp_path / "b")
    resumed = train_from_options(specz, {**options, "checkpoint_dir": str(tmp_path / "b"), "resume": True})
    _same_member(reference["members"][0], resumed["members"][0])


def test_each_member_takes_its_own_objects_from_the_features_computed_once(pretrained, specz):
    model = model_from_artifact(load_artifact(pretrained), 0)
    targets = tile_targets(specz)
    cpu = torch.device("cpu")
    once = labelled_head_features(model, specz.images, specz.segmaps, targets, np.arange(specz.n_tiles), batch_size=3,
                                  device=cpu)
    train, val = partition_tiles(specz.n_tiles, labelled_tiles(targets), val_fraction=0.4, seed=3)
    member = MemberData(specz.images, specz.segmaps, hide_labels(targets, train, val), train, val,
                        np.ones(len(specz.bands)))
    for tiles in (member.train, member.val):
        own = labelled_head_features(model, member.images, member.segmaps, member.targets, tiles, batch_size=2,
                                     device=cpu).inputs
        taken = once.select(member.targets, tiles).inputs
        assert len(own.z) > 3 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(own, taken))
    n_train, n_val = (len(once.select(member.targets, tiles).inputs.z) for tiles in (train, val))
    assert n_train + n_val <= len(once.inputs.z)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"finetune": "head"}, "give init_model"),
        ({"finetune": "head", "init_model": "x.pt", "freeze": ["backbone"], "freeze_epochs": 1}, "leave freeze empty"),
        ({"finetune": "heads", "init_model": "x.pt"}, "finetune must be one of"),
    ],
)
def test_head_finetuning_options_are_checked(options, match, specz):
    with pytest.raises(ConfigError, match=match):
        train_from_options(specz, {**FAST, **options})


def _views(model, tileset, augment, views=2, seed=0):
    return labelled_head_features(model, tileset.images, tileset.segmaps, tile_targets(tileset),
                                  np.arange(tileset.n_tiles), batch_size=3, device=torch.device("cpu"),
                                  augment=augment, views=views, seed=seed, sky_sigma=np.ones(len(tileset.bands)))


def test_head_views_are_the_training_augmentations_of_the_same_objects(pretrained, specz):
    model = model_from_artifact(load_artifact(pretrained), 0)
    n_bands, pool = len(specz.bands), model.pixel_pool_size
    colours = slice(-(n_bands + n_bands * pool * pool), -n_bands * pool * pool)  # the pixel path's colours
    plain = _views(model, specz, Augmentation(dihedral=False, box_jitter=0.0))
    assert plain.views.features.shape[:2] == (2, len(plain.inputs.z))
    for view in plain.views.features:  # the identity transformation gives back the unaugmented inputs
        assert torch.allclose(view, plain.inputs.features, atol=1e-5)
    turned = _views(model, specz, Augmentation(dihedral=True, box_jitter=0.0), views=3)
    assert torch.equal(turned.views.z, turned.inputs.z) and torch.equal(turned.views.extra[1], turned.inputs.extra)
    changed = [not torch.allclose(v, turned.inputs.features, atol=1e-3) for v in turned.views.features]
    assert any(changed)  # rotations and flips move the backbone's features ...
    some = turned.select(tile_targets(specz), np.arange(0, specz.n_tiles, 2))  # a member's tiles keep their views
    assert 0 < len(some.inputs.z) < len(turned.inputs.z) and torch.equal(some.views.z, some.inputs.z)
    assert some.views.features.shape[:2] == (3, len(some.inputs.z))
    for view in turned.views.features:  # ... not a box's colours (every pixel of the box, rotated with it)
        assert torch.allclose(view[:, colours], turned.inputs.features[:, colours], atol=1e-3)
    jittered = _views(model, specz, Augmentation(dihedral=False, box_jitter=0.2), seed=1)
    shift = (jittered.views.features[0, :, colours] - jittered.inputs.features[:, colours]).abs().amax(dim=1)
    assert (shift > 1e-3).float().mean() > 0.5  # other boxes, other pixels: the colours move too
    again = _views(model, specz, Augmentation(dihedral=False, box_jitter=0.2), seed=1)
    assert torch.equal(again.views.features, jittered.views.features)  # seeded by (seed, view)


def test_head_finetuning_on_views_trains_on_them(pretrained, specz):
    options = {**HEAD, "epochs": 3, "patience": 3, "init_model": str(pretrained)}
    plain = train_from_options(specz, options)["members"][0]["state_dict"]
    views = train_from_options(specz, {**options, "head_views": 3})
    member = views["members"][0]["state_dict"]
    assert views["config"]["training"]["head_views"] == 3
    assert not torch.equal(member["redshift_head.output.weight"], plain["redshift_head.output.weight"])
    with pytest.raises(ConfigError, match="leave head_views at 0"):
        train_from_options(specz, {**FAST, "head_views": 2, "init_model": str(pretrained)})


def test_head_checkpoints_hold_the_head_alone_and_belong_to_their_initial_model(pretrained, specz, tmp_path):
    options = {**HEAD, "epochs": 2, "patience": 2, "init_model": str(pretrained), "checkpoint_dir": str(tmp_path / "c")}
    train_from_options(specz, options)
    ckpt = torch.load(tmp_path / "c" / "member_000.pt", weights_only=True)
    head_keys = set(model_from_artifact(load_artifact(pretrained), 0).redshift_head.state_dict())
    assert ckpt["scope"] == "redshift_head"
    assert set(ckpt["model"]) == head_keys and set(ckpt["best_state"]) == head_keys  # no backbone, FPN, detector
    # the same options from other initial weights: the head was trained on the other network's features
    other = load_artifact(pretrained)
    state = other["members"][0]["state_dict"]
    name = next(k for k in state if k.startswith("backbone.") and state[k].is_floating_point())
    state[name] = state[name] + 0.01
    save_artifact(other, tmp_path / "other.pt")
    with pytest.raises(ModelError, match=r"member_000\.pt: checkpoint was written with other options or data "
                                         r"\(other init_weights\)"):
        train_from_options(specz, {**options, "init_model": str(tmp_path / "other.pt"), "resume": True})


def test_a_whole_network_checkpoint_of_an_earlier_version_still_resumes(pretrained, specz, tmp_path):
    options = {**HEAD, "epochs": 4, "patience": 4, "init_model": str(pretrained)}
    reference = train_from_options(specz, options)["members"][0]
    folder = tmp_path / "c"
    _killed_after_epoch_1(specz, options, folder)
    path = folder / "member_000.pt"
    ckpt = torch.load(path, weights_only=True)
    whole = load_artifact(pretrained)["members"][0]["state_dict"]
    for key in ("model", "best_state"):  # what earlier versions wrote: the whole network, no scope, no digest
        ckpt[key] = {**whole, **{f"redshift_head.{k}": v for k, v in ckpt[key].items()}}
    del ckpt["scope"], ckpt["fingerprint"]["init_weights"]
    torch.save(ckpt, path)
    resumed = train_from_options(specz, {**options, "checkpoint_dir": str(folder), "resume": True})["members"][0]
    _same_member(reference, resumed)


def test_unlabelled_inputs_are_those_of_the_objects_without_spec_z(pretrained, specz):
    model = model_from_artifact(load_artifact(pretrained), 0)
    targets = tile_targets(specz)
    cpu = torch.device("cpu")
    tiles = np.arange(specz.n_tiles)
    got = labelled_head_features(model, specz.images, specz.segmaps, targets, tiles, batch_size=3, device=cpu,
                                 unlabelled=True)
    used = [t for t in tiles if np.isfinite(targets[t]["redshift"]).any()]  # tiles with a label
    missing = np.concatenate([~np.isfinite(targets[t]["redshift"]) for t in used])
    assert 0 < missing.sum() == len(got.unlabelled.z) and torch.isnan(got.unlabelled.z).all()
    # the same objects labelled: their inputs are the rows of the objects that had no spec-z
    every = [dict(t, redshift=np.where(np.isfinite(t["redshift"]), t["redshift"], 1.0)) for t in targets]
    all_rows = labelled_head_features(model, specz.images, specz.segmaps, every, np.asarray(used), batch_size=3,
                                      device=cpu).inputs
    assert torch.allclose(all_rows.features[torch.from_numpy(missing)], got.unlabelled.features, atol=1e-5)
    plain = labelled_head_features(model, specz.images, specz.segmaps, targets, tiles, batch_size=3, device=cpu)
    assert plain.unlabelled is None  # only on request
    assert torch.equal(plain.inputs.z, got.inputs.z)  # the labelled objects' inputs as without them
    assert torch.allclose(plain.inputs.features, got.inputs.features, atol=1e-5)
    assert torch.equal(plain.inputs.extra, got.inputs.extra)


def test_head_distill_keeps_the_initial_mixtures_of_unlabelled_objects(pretrained):
    import copy

    from rail.deepdisc.training.distill import mixture_kl
    from rail.deepdisc.training.head_distill import Distillation
    from rail.deepdisc.training.head_finetune import head_pass

    specz = make_colour_tileset(n_tiles=12, size=32, seed=9, labelled_fraction=0.5, objects_per_tile=4)
    start = model_from_artifact(load_artifact(pretrained), 0)
    features = labelled_head_features(start, specz.images, specz.segmaps, tile_targets(specz),
                                      np.arange(specz.n_tiles), batch_size=4, device=torch.device("cpu"),
                                      unlabelled=True)
    lab, unl = features.inputs, features.unlabelled
    assert len(lab.z) >= 15 and len(unl.z) >= 10
    with torch.no_grad():
        initial = start.redshift_head(unl.features, unl.extra)

    def tuned(weight: float):
        head = copy.deepcopy(start.redshift_head)
        distill = Distillation.of(head, unl, weight)
        assert (distill is None) == (weight == 0)
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2)
        rng = np.random.default_rng(0)
        torch.manual_seed(0)
        for _ in range(30):
            head_pass(head, lab.features, lab.extra, lab.z, rng.permutation(len(lab.z)), optimizer, lr=1e-2,
                      dropout=0.0, batch_size=8, clip_grad_norm=10.0, distill=distill, rng=rng)
        with torch.no_grad():
            drift = float(mixture_kl(initial, head(unl.features, unl.extra)).mean())
            nll = -float(mixture_log_prob(head(lab.features, lab.extra), lab.z).mean())
        return drift, nll

    with torch.no_grad():
        nll0 = -float(mixture_log_prob(start.redshift_head(lab.features, lab.extra), lab.z).mean())
    free, nll_free = tuned(0.0)
    kept, nll_kept = tuned(3.0)
    assert kept < 0.5 * free  # the unlabelled objects' mixtures stay near the initial head's ...
    assert max(nll_free, nll_kept) < nll0 - 0.1  # ... while the labels are learnt with it or without


def test_head_distill_is_recorded_and_refused_without_finetune_head(pretrained, specz):
    options = {**HEAD, "epochs": 2, "patience": 2, "init_model": str(pretrained)}
    plain = train_from_options(specz, options)["members"][0]["state_dict"]
    distilled = train_from_options(specz, {**options, "head_distill": 1.0})
    assert distilled["config"]["training"]["head_distill"] == 1.0
    member = distilled["members"][0]
    assert not torch.equal(member["state_dict"]["redshift_head.output.weight"], plain["redshift_head.output.weight"])
    with pytest.raises(ConfigError, match="leave it at 0 with finetune all"):
        train_from_options(specz, {**FAST, "head_distill": 1.0, "init_model": str(pretrained)})


def test_a_few_tiles_hold_the_unlabelled_objects_beyond_the_cap(pretrained, specz, monkeypatch):
    import rail.deepdisc.training.head_finetune as hf

    model = model_from_artifact(load_artifact(pretrained), 0)
    targets = tile_targets(specz)
    args = (model, specz.images, specz.segmaps, targets, np.arange(specz.n_tiles))
    kw = {"batch_size": 4, "device": torch.device("cpu"), "unlabelled": True}
    every = labelled_head_features(*args, **kw).unlabelled
    monkeypatch.setattr(hf, "MAX_UNLABELLED", 3)
    few = labelled_head_features(*args, **kw).unlabelled
    per_tile = max(int((~np.isfinite(t["redshift"])).sum()) for t in targets)
    assert len(every.z) > 3 + per_tile and 3 <= len(few.z) <= 3 + per_tile  # whole tiles, just past the cap
    matches = [(torch.cdist(row[None], every.features).min() < 1e-4).item() for row in few.features]
    assert all(matches)  # the same objects' inputs, a subset of them
    again = labelled_head_features(*args, **kw).unlabelled
    assert torch.equal(again.features, few.features)  # seeded


def test_a_distilled_epoch_records_both_terms(pretrained, specz):
    tuned = train_from_options(specz, {**HEAD, "epochs": 2, "patience": 2, "init_model": str(pretrained),
                                       "head_distill": 1.0})
    for record in tuned["members"][0]["history"]:
        assert np.isfinite(record["loss_distill"]) and record["loss_distill"] != 0
        assert record["loss"] == pytest.approx(record["loss_redshift"] + record["loss_distill"])

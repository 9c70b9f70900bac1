"""Members one at a time: one network refilled per member gives the all-members-in-memory outputs bit for bit."""

import sys

import numpy as np
import pytest
import torch

import rail.deepdisc.inference.predictor as infer
from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings, holds_all_members
from rail.deepdisc.model.artifact import load_artifact, save_artifact
from tests.helpers.memory import rss_file_mb
from tests.helpers.tilesets import make_tileset
from tests.inference.test_estimate import BANDS

MEMBER_WEIGHTS = (0.2, 0.5, 0.3)
SETTINGS = {
    "default": InferenceSettings(batch_size=2),
    "shared_detection": InferenceSettings(batch_size=2, shared_detection=True, score_threshold=0.6),
    "bf16": InferenceSettings(batch_size=2, bf16=True),
    "forced_all": InferenceSettings(batch_size=2, forced_all=True),
}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny random 3-member artifact of the real network, on disk."""
    from rail.deepdisc.model.network import NetworkConfig, build_model

    cfg = NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(32, 16))
    members = []
    for seed, weight in enumerate(MEMBER_WEIGHTS):
        torch.manual_seed(seed)
        members.append({"state_dict": build_model(cfg).state_dict(), "weight": weight})
    return save_artifact({"config": cfg.to_dict(), "members": members},
                         tmp_path_factory.mktemp("members") / "m.pt")


@pytest.mark.parametrize("name", list(SETTINGS))
def test_one_network_gives_the_resident_outputs_bit_for_bit(model_file, name):
    settings = SETTINGS[name]
    ts = make_tileset(n_tiles=3, size=64, bands=BANDS, objects_per_tile=4, seed=3)
    resident = EnsemblePredictor.from_artifact(load_artifact(model_file), device="cpu", resident=True)
    streamed = EnsemblePredictor.from_artifact(load_artifact(model_file, mmap=True), device="cpu")
    assert resident.members.resident and not streamed.members.resident
    want = resident.predict(ts, settings)
    for _ in range(2):  # the second chunk refills the network again
        got = streamed.predict(ts, settings)
        for field in ("weights", "means", "stds"):
            np.testing.assert_array_equal(getattr(got.mixture, field), getattr(want.mixture, field))
        for field in ("object_id", "zmode", "zmean", "zmedian", "detected", "forced", "score"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    if name == "shared_detection":
        assert 0 < want.detected.sum() < want.n_objects  # matched and forced objects both exercised


def _fingerprint(network) -> float:
    return float(sum(p.double().sum() for p in network.state_dict().values()))


def test_only_one_member_network_is_ever_in_memory(model_file, monkeypatch):
    """Count the networks built and check which weights each member's run sees."""
    built = []
    build = infer.model_from_artifact

    def counting_build(artifact, member, *, device="cpu"):
        built.append(build(artifact, member, device=device))
        return built[-1]

    calls = []
    run = infer.run_member

    def recording_run(network, *args, **kwargs):
        calls.append((id(network), _fingerprint(network)))
        return run(network, *args, **kwargs)

    monkeypatch.setattr(infer, "model_from_artifact", counting_build)
    monkeypatch.setattr(infer, "run_member", recording_run)
    art = load_artifact(model_file, mmap=True)
    member_prints = [float(sum(t.double().sum() for t in m["state_dict"].values())) for m in art["members"]]
    predictor = EnsemblePredictor.from_artifact(art, device="cpu")
    ts = make_tileset(n_tiles=2, size=64, bands=BANDS, objects_per_tile=3, seed=1)
    predictor.predict(ts, InferenceSettings(batch_size=2))
    predictor.predict(ts, InferenceSettings(batch_size=2, shared_detection=True))

    assert len(built) == 1  # one network for the three members
    assert {net for net, _ in calls} == {id(built[0])}
    seen = [fp for _, fp in calls]
    # each member's run reads that member's weights: first the member left in the network (2, the last one
    # checked at construction), then 0 and 1; with shared detection the detector (1) first, then 0 and 2
    np.testing.assert_allclose(seen, [member_prints[k] for k in (2, 0, 1, 1, 0, 2)], rtol=1e-12)
    assert len(set(member_prints)) == 3
    # three loads at construction (each member checked against the network), then one per member and chunk
    # except the member the network already holds
    assert predictor.members.loads == 3 + 2 + 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page release is Linux only")
@pytest.mark.parametrize("resident", [False, True])
def test_a_mapped_ensemble_keeps_no_members_weights_resident(model_file, resident):
    member_mb = model_file.stat().st_size / len(MEMBER_WEIGHTS) / 2**20
    before = rss_file_mb()
    predictor = EnsemblePredictor.from_artifact(load_artifact(model_file, mmap=True), device="cpu",
                                                resident=resident)
    ts = make_tileset(n_tiles=2, size=64, bands=BANDS, objects_per_tile=3, seed=1)
    for _ in range(2):
        predictor.predict(ts, InferenceSettings(batch_size=2))
    # every member's weights were read (copied into the network) and their pages released again: all three
    # would stay resident otherwise
    assert rss_file_mb() - before < 0.5 * member_mb


def test_members_are_held_all_at_once_only_on_a_gpu():
    assert not holds_all_members(torch.device("cpu"))
    assert holds_all_members(torch.device("cuda:0"))


def test_resident_ensembles_hold_every_network(model_file):
    art = load_artifact(model_file)
    resident = EnsemblePredictor.from_artifact(art, device="cpu", resident=True)
    assert len({id(net) for net in resident.models}) == 3
    streamed = EnsemblePredictor.from_artifact(art, device="cpu")
    with pytest.raises(Exception, match="share one network"):
        streamed.models  # noqa: B018
    assert len({id(net) for _, net in streamed.networks()}) == 1


def test_a_member_that_does_not_fit_fails_when_the_ensemble_is_built(model_file):
    art = load_artifact(model_file)
    bad = dict(art["members"][2]["state_dict"])
    bad.pop(next(iter(bad)))
    art["members"][2] = {**art["members"][2], "state_dict": bad}
    with pytest.raises(Exception, match="do not fit the network config"):
        EnsemblePredictor.from_artifact(art, device="cpu")


def test_weights_equal_in_every_member_are_stored_once_and_read_back(tmp_path, monkeypatch):
    """Heads fine-tuned alone share the rest: the file holds it once, and every member reads back whole."""
    import rail.deepdisc.model.artifact as artifact_module
    from rail.deepdisc.model.network import NetworkConfig, build_model

    cfg = NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(32, 16))
    torch.manual_seed(0)
    base = build_model(cfg).state_dict()
    members = []
    for seed, weight in enumerate(MEMBER_WEIGHTS):
        torch.manual_seed(10 + seed)
        head = {f"redshift_head.{k}": v for k, v in build_model(cfg).redshift_head.state_dict().items()}
        members.append({"state_dict": {k: head.get(k, v.clone()) for k, v in base.items()}, "weight": weight})
    originals = [dict(m["state_dict"]) for m in members]
    artifact = {"config": cfg.to_dict(), "members": members}
    shared = save_artifact(artifact, tmp_path / "shared.pt")
    with monkeypatch.context() as patch:  # every member written whole, as before
        patch.setattr(artifact_module, "shared_members", lambda m: m)
        whole = save_artifact(artifact, tmp_path / "whole.pt")
    head_bytes = sum(v.numel() * v.element_size() for k, v in base.items() if k.startswith("redshift_head."))
    network_bytes = whole.stat().st_size / len(members)
    assert shared.stat().st_size < network_bytes + 2.5 * head_bytes  # one network and two more heads
    for member, original in zip(members, originals):  # the caller's members are left as they were
        assert all(member["state_dict"][k] is v for k, v in original.items())
    ts = make_tileset(n_tiles=2, size=64, bands=BANDS, objects_per_tile=3, seed=1)
    settings = InferenceSettings(batch_size=2)
    want = EnsemblePredictor.from_artifact(load_artifact(whole), device="cpu").predict(ts, settings)
    for mmap in (False, True):
        loaded = load_artifact(shared, mmap=mmap)
        for member, original in zip(loaded["members"], originals):
            assert member["state_dict"].keys() == original.keys()
            assert all(torch.equal(member["state_dict"][k], v) for k, v in original.items())
        got = EnsemblePredictor.from_artifact(loaded, device="cpu").predict(ts, settings)
        for field in ("weights", "means", "stds"):
            np.testing.assert_array_equal(getattr(got.mixture, field), getattr(want.mixture, field))
        np.testing.assert_array_equal(got.zmode, want.zmode)

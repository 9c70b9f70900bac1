"""``shared_detection``: one member detects and matches, every member reads its boxes (real and stand-in networks)."""

import numpy as np
import pytest
import torch
from rail.core.data import DataStore

from rail.deepdisc.inference.chunk import plan_chunk, tile_boxes
from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
from rail.deepdisc.tileset.io import write_tileset
from tests.helpers import fakenet
from tests.helpers.tilesets import make_tileset
from tests.inference.test_estimate import BANDS, SQUARE_FLUX, estimate, square_tileset

MEMBER_WEIGHTS = (0.2, 0.5, 0.3)  # member 1 detects for all
SCORE_THRESHOLD = 0.6


@pytest.fixture(scope="module")
def predictor():
    from rail.deepdisc.model.network import NetworkConfig, build_model

    cfg = NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(32, 16))
    members = []
    for seed, weight in enumerate(MEMBER_WEIGHTS):
        torch.manual_seed(seed)
        members.append({"state_dict": build_model(cfg).state_dict(), "weight": weight})
    # all members held, so that the tests can take single networks (`models`)
    return EnsemblePredictor.from_artifact({"config": cfg.to_dict(), "members": members}, device="cpu",
                                           resident=True)


def detector_boxes(model, ts, settings):
    """The detector's boxes per tile, its matched flags and scores, computed here with today's per-tile steps."""
    plan = plan_chunk(ts)
    with torch.inference_mode():
        enc = model.encode(torch.from_numpy(ts.images))
        detections = model.detect(enc)
    per_tile = [tile_boxes(plan, t, detections[t], settings) for t in range(ts.n_tiles)]
    return plan, per_tile


def test_detector_is_the_highest_weight_member(predictor):
    assert predictor.detector == 1
    tie = EnsemblePredictor(predictor.models[:2], [1.0, 1.0], bands=BANDS, pixel_scale=0.03)
    assert tie.detector == 0


def test_shared_path_reads_the_detectors_boxes_in_every_member(predictor):
    ts = make_tileset(n_tiles=3, size=64, bands=BANDS, objects_per_tile=4, seed=3)
    # random networks score every box ~0.55; a threshold above some of them leaves both matched and forced
    # objects (the anchors and proposal budgets of issue 18 let 0.05 match all twelve)
    settings = InferenceSettings(batch_size=2, shared_detection=True, score_threshold=SCORE_THRESHOLD)
    shared = predictor.predict(ts, settings)
    full = predictor.predict(ts, InferenceSettings(batch_size=2, score_threshold=SCORE_THRESHOLD))
    detector = predictor.models[predictor.detector]
    alone = EnsemblePredictor([detector], [1.0], bands=BANDS, pixel_scale=0.03).predict(ts, settings)

    # rows, flags and score are those of the detector run alone through today's path
    np.testing.assert_array_equal(shared.object_id, full.object_id)
    for name in ("object_id", "detected", "forced", "recentred"):
        np.testing.assert_array_equal(getattr(shared, name), getattr(alone, name))
    np.testing.assert_allclose(shared.score, alone.score, rtol=1e-12)
    assert 0 < shared.detected.sum() < shared.n_objects  # both matched and forced objects are exercised

    # every member's mixture is its redshift head on the detector's boxes
    plan, per_tile = detector_boxes(detector, ts, settings)
    boxes = [torch.as_tensor(b, dtype=torch.float32) for b, _, _ in per_tile]
    np.testing.assert_array_equal(np.concatenate([m for _, m, _ in per_tile]), shared.detected.astype(bool))
    ebv = [torch.as_tensor(e, dtype=torch.float32) for e in plan.ebv]
    rows = np.concatenate(plan.out_rows)
    k = shared.mixture.weights.shape[1] // len(MEMBER_WEIGHTS)
    for m, (model, w) in enumerate(zip(predictor.models, predictor.weights)):
        with torch.inference_mode():
            params = model.redshift(model.encode(torch.from_numpy(ts.images)), boxes, ebv)
        cols = slice(m * k, (m + 1) * k)
        for got, want in ((shared.mixture.weights[:, cols] / w, params.weights),
                          (shared.mixture.means[:, cols], params.means),
                          (shared.mixture.stds[:, cols], params.stds)):
            np.testing.assert_allclose(got[rows], want.double().numpy(), rtol=1e-4, atol=1e-5)

    # the detector's own columns are today's; the other members' differ where their own detections differ
    det_cols = slice(predictor.detector * k, (predictor.detector + 1) * k)
    np.testing.assert_allclose(shared.mixture.means[:, det_cols], full.mixture.means[:, det_cols], rtol=1e-6)
    assert not np.allclose(shared.mixture.means, full.mixture.means, rtol=1e-4)


def test_one_member_and_forced_all_are_unchanged(predictor):
    ts = make_tileset(n_tiles=2, size=64, bands=BANDS, objects_per_tile=3, seed=4)
    one = EnsemblePredictor(predictor.models[:1], [1.0], bands=BANDS, pixel_scale=0.03)
    for ens, forced_all in ((one, False), (predictor, True)):
        a = ens.predict(ts, InferenceSettings(shared_detection=True, forced_all=forced_all))
        b = ens.predict(ts, InferenceSettings(forced_all=forced_all))
        np.testing.assert_array_equal(a.mixture.means, b.mixture.means)
        np.testing.assert_array_equal(a.detected, b.detected)


def test_flags_follow_the_detector_not_any_member(monkeypatch):
    """Stand-in members with different detection thresholds: a faint square only the light member detects."""
    faint_flux = 0.5 * SQUARE_FLUX  # 20 summed over 4 bands: above a threshold of 10, below 30
    ts = square_tileset([(1, 0, True, (4, 4, 10, 10), (4, 4, 10, 10)),
                         (2, 0, True, (20, 20, 26, 26), (19, 19, 27, 27))], n_tiles=1)
    ts.images[0, :, 20:26, 20:26] = faint_flux
    members = [fakenet.FakeNet(detect_threshold=10.0), fakenet.FakeNet(detect_threshold=30.0)]
    with torch.no_grad():
        members[1].offset.fill_(0.3)
    ens = EnsemblePredictor(members, [0.25, 0.75], bands=BANDS, pixel_scale=0.03)
    full = ens.predict(ts, InferenceSettings())
    shared = ens.predict(ts, InferenceSettings(shared_detection=True))
    assert full.detected.tolist() == [1, 1]  # any member matched
    assert shared.detected.tolist() == [1, 0] and shared.forced.tolist() == [0, 1]  # the detector (1) did not
    ebv = ts.objects["ebv"]
    boxes = np.array([[4, 4, 10, 10], [19, 19, 27, 27]], float)  # detection box, catalog box (forced)
    for m, offset in enumerate((0.0, 0.3)):
        want = fakenet.expected_mixture(boxes, ebv, offset=offset)[1]
        np.testing.assert_allclose(shared.mixture.means[:, 2 * m:2 * m + 2], want, rtol=1e-12)
    # in today's path member 0 read its own detection of the faint square
    own = fakenet.expected_mixture(np.array([[20, 20, 26, 26]], float), ebv[1:])[1]
    np.testing.assert_allclose(full.mixture.means[1, :2], own[0], rtol=1e-12)


def test_stage_option_gives_todays_output_when_members_detect_alike(tmp_path, monkeypatch):
    fakenet.install(monkeypatch)
    monkeypatch.setattr(DataStore, "allow_overwrite", True)
    ts = make_tileset(n_tiles=3, size=32, bands=BANDS, seed=5)
    tiles = write_tileset(ts, tmp_path / "t.h5")
    model = fakenet.make_fake_artifact(tmp_path / "m.pt", BANDS, offsets=(0.0, 0.2, 0.4), weights=(1, 2, 1))
    a = estimate(tmp_path, model, tiles, name="full")
    b = estimate(tmp_path, model, tiles, name="shared", shared_detection=True)
    assert a.ancil["detected"].sum() > 0
    for key in ("weights", "means", "stds"):
        np.testing.assert_array_equal(a.objdata[key], b.objdata[key])
    for key in ("zmode", "detected", "forced", "score"):
        np.testing.assert_array_equal(a.ancil[key], b.ancil[key])

"""The estimator's channels_last inference path gives the default layout's outputs (real, untrained network)."""

import numpy as np
import pytest

from rail.deepdisc.inference.predictor import EnsemblePredictor, InferenceSettings
from tests.helpers.tilesets import make_tileset

BANDS = ("F115W", "F150W", "F277W", "F444W")


@pytest.fixture(scope="module")
def predictor():
    torch = pytest.importorskip("torch")
    from rail.deepdisc.model.network import NetworkConfig, build_model

    cfg = NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(32, 16))
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append({"state_dict": build_model(cfg).state_dict(), "weight": 0.5})
    artifact = {"config": cfg.to_dict(), "members": members}
    return EnsemblePredictor.from_artifact(artifact, device="cpu")


def test_channels_last_is_the_default():
    assert InferenceSettings().channels_last is True


@pytest.mark.parametrize("forced_all", [False, True])
def test_channels_last_matches_the_default_layout(predictor, forced_all):
    ts = make_tileset(n_tiles=3, size=64, bands=BANDS, objects_per_tile=4, seed=3)
    fast = predictor.predict(ts, InferenceSettings(batch_size=2, forced_all=forced_all))
    plain = predictor.predict(ts, InferenceSettings(batch_size=2, forced_all=forced_all, channels_last=False))
    again = predictor.predict(ts, InferenceSettings(batch_size=2, forced_all=forced_all))
    np.testing.assert_array_equal(fast.object_id, plain.object_id)
    np.testing.assert_array_equal(fast.detected, plain.detected)
    for name in ("weights", "means", "stds"):
        a, b = getattr(fast.mixture, name), getattr(plain.mixture, name)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(a, getattr(again.mixture, name))  # switching layouts back is exact
    np.testing.assert_allclose(fast.zmean, plain.zmean, rtol=1e-4, atol=1e-5)


def test_bf16_backbone_stays_close_to_float32(predictor):
    ts = make_tileset(n_tiles=2, size=64, bands=BANDS, objects_per_tile=4, seed=3)
    half = predictor.predict(ts, InferenceSettings(forced_all=True, bf16=True))
    full = predictor.predict(ts, InferenceSettings(forced_all=True))
    for name in ("weights", "means", "stds"):
        a, b = getattr(half.mixture, name), getattr(full.mixture, name)
        scale = np.abs(b).max()
        assert 1e-5 * scale < np.abs(a - b).max() < 0.05 * scale  # bf16 ran, and only rounds

"""Feature analysis: the mutual-information bound on known cases, per-object features, ``deepdisc features``."""

import json

import numpy as np
import pytest
import torch

from rail.deepdisc.analysis.features import object_features
from rail.deepdisc.analysis.information import model_information_bound, mutual_information_bound
from rail.deepdisc.analysis.report import plot_embedding, reduce_features
from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.model.artifact import save_artifact
from rail.deepdisc.model.network import EBV_SCALE, NetworkConfig, build_model
from rail.deepdisc.model.redshift_head import mixture_log_prob
from rail.deepdisc.tileset.io import write_tileset
from tests.helpers.nethelpers import make_colour_tileset


def test_bound_is_near_zero_for_independent_and_clearly_positive_for_dependent_redshift():
    rng = np.random.default_rng(3)
    n = 600
    f = rng.normal(size=(n, 2))
    dependent = mutual_information_bound(f, 1.0 + f[:, 0] + 0.1 * rng.normal(size=n), seed=1)
    independent = mutual_information_bound(f, rng.gamma(3.0, 0.7, n), seed=1)
    exact = 0.5 * np.log(1 + 1 / 0.01)  # Gaussian channel: 2.31 nats
    assert 1.2 < dependent.bound <= exact + 3 * dependent.bound_error
    assert abs(independent.bound) < 0.15
    assert dependent.bound_bits == pytest.approx(dependent.bound / np.log(2))
    assert dependent.n_test == 180 and dependent.n_train == 420
    with pytest.raises(ConfigError, match=">= 20 objects with finite redshift"):
        mutual_information_bound(f[:10], np.ones(10))


def test_model_bound_recovers_a_known_channel_in_redshift_units():
    rng = np.random.default_rng(5)
    n = 800
    x, noise = rng.normal(size=n), 0.1 * rng.normal(size=n)
    z = 2.0 + 3.0 * (x + noise)  # std ~3: a bound in the wrong units would be off by ln 3 ~ 1.1 nats
    exact = 0.5 * np.log(1 + 1 / 0.01)  # 2.31 nats, whatever the affine map of z
    sharp = -0.5 * ((z - 2.0 - 3.0 * x) / 0.3) ** 2 - np.log(0.3 * np.sqrt(2 * np.pi))  # the true p(z | x)
    known = model_information_bound(sharp, z, seed=2)
    assert abs(known.bound - exact) < 3 * known.bound_error + 0.1
    assert known.n_features == 0 and known.n_test == 240
    scaled = model_information_bound(sharp - np.log(10.0), 10.0 * z, seed=2)  # z in other units
    assert scaled.bound == pytest.approx(known.bound, abs=1e-6)
    # a head that knows nothing (the population's Gaussian) certifies nothing
    blind = -0.5 * ((z - z.mean()) / z.std()) ** 2 - np.log(z.std() * np.sqrt(2 * np.pi))
    assert abs(model_information_bound(blind, z, seed=2).bound) < 0.1
    # the same objects as the reduced-feature bound: the same H(z)
    assert known.h_z == pytest.approx(mutual_information_bound(x[:, None], z, seed=2).h_z)
    with pytest.raises(ConfigError, match="log_density must be"):
        model_information_bound(sharp[:-1], z)


def test_pca_reduction_and_figure(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) * [10, 1, 1, 1, 1, 0.1]
    reduced, used = reduce_features(x, 2, method="pca")
    assert used == "pca" and reduced.shape == (50, 2)
    assert np.allclose(reduced.T @ reduced, np.diag(np.diag(reduced.T @ reduced)), atol=1e-8)  # uncorrelated
    with pytest.raises(ConfigError, match="reduce must be one of"):
        reduce_features(x, 2, method="tsne")
    z = np.where(np.arange(50) % 7 == 0, np.nan, rng.uniform(0, 5, 50))
    png = plot_embedding(reduced, z, rng.uniform(24, 29, 50), tmp_path / "e.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scene():
    tiles = make_colour_tileset(n_tiles=12, size=32, objects_per_tile=3, seed=4)
    for b in tiles.bands:
        tiles.objects[f"mag_{b}"][:] = np.linspace(24, 28, tiles.n_objects)
    torch.manual_seed(0)
    config = NetworkConfig(bands=tiles.bands, pixel_scale=0.03, head_hidden=(16, 8), fpn_channels=8)
    return tiles, config, build_model(config).eval()


def test_object_features_are_the_heads_inputs_in_catalog_order(scene):
    tiles, config, model = scene
    feats = object_features(model, tiles, boxes="catalog", batch_size=5)
    prim = tiles.primary_objects()
    assert feats.object_id.tolist() == prim["object_id"].tolist()
    assert feats.roi.shape == (tiles.n_primary, 8 * 49)
    assert feats.pixel.shape == (tiles.n_primary, 4 + 4 * 16) and not feats.detected.any()
    np.testing.assert_array_equal(feats.redshift, prim["redshift_true"])
    k = 7  # one object by hand: its tile alone, its catalog box
    box = torch.tensor([[prim[f"bbox_{c}"][k] for c in ("x0", "y0", "x1", "y1")]], dtype=torch.float32)
    with torch.inference_mode():
        enc = model.encode(torch.from_numpy(tiles.images[prim["tile"][k]][None]))
        pooled = model.redshift_pool(enc.features, [box], enc.images.image_sizes).flatten(1)
    np.testing.assert_allclose(feats.roi[k], pooled[0].numpy(), rtol=1e-5, atol=1e-6)
    head_in = torch.from_numpy(np.concatenate([feats.roi[k], feats.pixel[k]])[None])
    ebv = torch.tensor([[float(prim["ebv"][k]) / EBV_SCALE]])
    with torch.inference_mode():
        log_q = mixture_log_prob(model.redshift_head(head_in, ebv), torch.tensor([float(prim["redshift_true"][k])]))
    assert feats.head_log_density[k] == pytest.approx(float(log_q[0]), abs=1e-4)
    assert np.isfinite(feats.head_log_density).all()
    matched = object_features(model, tiles, boxes="matched")
    assert matched.roi.shape == feats.roi.shape
    with pytest.raises(ConfigError, match="mag_band 'F999W'"):
        object_features(model, tiles, mag_band="F999W")


def test_cli_features(tmp_path, scene, capsys):
    tiles, config, model = scene
    model.normaliser.set_statistics([0.0] * 4, [5.0] * 4)
    art = {"config": {**config.to_dict(), "normalisation": {"kind": "zscore", "center": [0.0] * 4,
                                                            "scale": [5.0] * 4}},
           "members": [{"state_dict": model.state_dict(), "weight": 1.0}]}
    model_path = save_artifact(art, tmp_path / "m.pt")
    tiles_path = write_tileset(tiles, tmp_path / "t.h5")
    out = tmp_path / "feat"
    args = ["features", str(model_path), str(tiles_path), "-o", str(out), "--reduce", "pca", "--dims", "3",
            "--boxes", "catalog"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "I(roi features; z) >=" in printed and "the network's own redshift PDF" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reducer"] == "pca" and set(summary["mutual_information"]) == {"roi", "roi+pixel", "head"}
    assert np.isfinite(summary["mutual_information"]["roi"]["bound"])
    head = summary["mutual_information"]["head"]
    assert head["n_test"] == summary["mutual_information"]["roi"]["n_test"] and np.isfinite(head["bound"])
    with np.load(out / "features.npz") as data:
        assert data["embedding"].shape == (tiles.n_primary, 2)
    assert (out / "embedding.png").stat().st_size > 10_000
    assert main([*args[:5], "--boxes", "catalog", "--mag-band", "nope"]) == 2


@pytest.mark.slow
def test_umap_reduction():
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(8, 1, (40, 5))])
    reduced, used = reduce_features(x, 2, method="umap")
    assert used == "umap" and reduced.shape == (80, 2)
    a, b = reduced[:40].mean(axis=0), reduced[40:].mean(axis=0)
    spread = max(np.linalg.norm(reduced[:40].std(axis=0)), np.linalg.norm(reduced[40:].std(axis=0)))
    assert np.linalg.norm(a - b) > 3 * spread  # the two clusters stay apart

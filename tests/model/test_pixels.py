"""The head's pixel path measures colours from the sky level (issue 18: the pixel colours were biased)."""

import numpy as np
import pytest
import torch

from rail.deepdisc.model.config import LEGACY_DEFAULTS, NetworkConfig
from rail.deepdisc.model.network import build_model
from rail.deepdisc.model.pixels import head_pixel_features, tile_sky

BANDS = ("F115W", "F200W", "F277W", "F444W")
SED = torch.tensor([1.0, 2.0, 4.0, 8.0])  # per-pixel source flux in each band
SIZE = 64
BOX = torch.tensor([[12.0, 12.0, 52.0, 52.0]])  # a 40 px box: 1600 pixels, most of them sky


def _field(seed, *, sky=0.0, noise=1.0):
    """A tile: a 10 x 10 px flat source of colours ``SED`` inside ``BOX``, Gaussian sky noise, a sky level."""
    g = torch.Generator().manual_seed(seed)
    image = sky + noise * torch.randn(1, len(BANDS), SIZE, SIZE, generator=g)
    image[..., 27:37, 27:37] += SED[None, :, None, None]
    return image


def _colours(image, zero, center):
    return head_pixel_features(image, center, [BOX], pool_size=4, zero=zero)[0, : len(BANDS)]


def test_tile_sky_ignores_sources():
    image = _field(0, sky=3.0, noise=0.5)
    image[..., :28, :28] += 40.0  # a bright galaxy over a fifth of the tile
    np.testing.assert_allclose(tile_sky(image).numpy(), 3.0, atol=0.05)  # 0.1 sky sigma
    assert float(image.median()) > 3.15  # the plain median is pulled up


def test_colours_from_the_sky_do_not_depend_on_the_training_mean():
    """Measured from the normaliser's centre (a training-pixel mean above the sky) the colours are biased."""
    truth = torch.asinh(SED / (0.05 * SED.max()))
    truth = truth - truth.mean()
    center = torch.tensor([0.3, 0.3, 0.3, 0.3])  # the training pixels' mean: sources lift it above the sky
    errors = {"tile_sky": [], "mean": []}
    for seed in range(20):
        image = _field(seed, noise=0.3)
        for zero in errors:
            errors[zero].append((_colours(image, zero, center) - truth).abs().max())
    sky, mean = torch.stack(errors["tile_sky"]), torch.stack(errors["mean"])
    assert float(sky.median()) < 0.1 < float(mean.median())
    # a sky pedestal (another field's background) leaves the sky-measured colours as they were
    image = _field(1, noise=0.3)
    torch.testing.assert_close(_colours(image + torch.tensor([0.5, -0.2, 0.1, 0.3])[None, :, None, None], "tile_sky",
                                        center), _colours(image, "tile_sky", center), atol=0.03, rtol=0)


def test_every_pixel_of_a_large_box_counts():
    """8 x 8 samples of a 40 px box see 4% of its pixels: the colours of a noisy source scatter more."""
    center = torch.zeros(len(BANDS))
    spread = {}
    for zero in ("tile_sky", "mean"):
        colours = torch.stack([_colours(_field(seed, noise=1.0), zero, center) for seed in range(30)])
        spread[zero] = float(colours.std(dim=0).mean())
    assert spread["tile_sky"] < 0.6 * spread["mean"]


def test_old_model_files_keep_their_pixel_path():
    cfg = NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(16, 8))
    assert cfg.pixel_zero == "tile_sky" and cfg.to_dict()["pixel_zero"] == "tile_sky"
    old = {k: v for k, v in cfg.to_dict().items() if k not in LEGACY_DEFAULTS}
    assert NetworkConfig.from_dict(old).pixel_zero == "mean"
    assert build_model(NetworkConfig.from_dict(old)).pixel_zero == "mean"
    assert cfg.keeping_anchors_of(NetworkConfig.from_dict(old)).pixel_zero == "mean"  # fine-tuning an old model


@pytest.mark.parametrize("zero", ["tile_sky", "mean"])
def test_the_model_reads_its_pixel_path(zero):
    torch.manual_seed(0)
    model = build_model(NetworkConfig(bands=BANDS, pixel_scale=0.03, head_hidden=(16, 8), pixel_zero=zero))
    model.normaliser.set_statistics([0.3] * 4, [1.0] * 4)
    model.eval()
    image = _field(2, noise=0.3)
    with torch.no_grad():
        enc = model.encode(image)
        pooled, _ = model._head_features(enc, [BOX], [torch.zeros(1)])
    expected = head_pixel_features(image, model.normaliser.center, [BOX], pool_size=model.pixel_pool_size, zero=zero)
    torch.testing.assert_close(pooled[:, -expected.shape[1]:], expected, atol=1e-5, rtol=1e-5)

"""The dimming augmentation: sources fainter by the drawn magnitudes, the noise level unchanged."""

import numpy as np
import pytest

from rail.deepdisc.training.data import dim_image, make_batch
from rail.deepdisc.training.settings import Augmentation

SIGMA = np.array([1.0, 2.0, 0.5], dtype=np.float32)


def _tile(rng, sky=3.0, amplitude=400.0, size=96):
    """Gaussian blob of known flux on a sky level with white sky noise."""
    yy, xx = np.mgrid[:size, :size]
    blob = amplitude * np.exp(-((xx - 48.0) ** 2 + (yy - 48.0) ** 2) / (2 * 4.0**2))
    noise = rng.standard_normal((3, size, size)).astype(np.float32) * SIGMA[:, None, None]
    return (sky + blob[None] * np.array([1.0, 2.0, 3.0])[:, None, None] + noise).astype(np.float32), blob


@pytest.mark.parametrize("dm", [0.5, 1.5, 3.0])
def test_dimming_scales_source_flux_and_keeps_the_noise_level(dm):
    rng = np.random.default_rng(4)
    image, blob = _tile(rng)
    out = dim_image(image, dm, SIGMA, np.random.default_rng(5))
    s = 10 ** (-0.4 * dm)
    core = blob > 1.0
    for band, colour in enumerate((1.0, 2.0, 3.0)):
        flux_in = (image[band][core] - 3.0).sum()
        flux_out = (out[band][core] - 3.0).sum()
        # the flux ratio is the dimming, so the colours are kept
        assert flux_out / flux_in == pytest.approx(s, rel=0.06)  # pixel noise and the median sky
        # far from the source only sky: the noise is topped up to its old level, the sky level is kept
        sky = out[band][:, :20]
        assert float(sky.std()) == pytest.approx(float(SIGMA[band]), rel=0.05)
        assert sky.mean() == pytest.approx(3.0, abs=0.2 * float(SIGMA[band]))  # the median is the sky to ~0.1 sigma


def test_no_dimming_is_the_identity():
    image, _ = _tile(np.random.default_rng(1))
    assert dim_image(image, 0.0, SIGMA, np.random.default_rng(2)) is image


def test_make_batch_dims_within_the_range():
    rng = np.random.default_rng(7)
    image, blob = _tile(rng)
    segmap = (blob > 1.0).astype(np.int64)
    targets = [{"boxes": np.array([[36.0, 36.0, 60.0, 60.0]], np.float32), "object_id": np.array([1]),
                "redshift": np.array([1.2], np.float32), "ebv": np.array([0.01], np.float32)}]
    augment = Augmentation(dihedral=False, box_jitter=0.0, dim_mag=2.0)
    ratios = []
    for seed in range(40):
        batch, out_targets = make_batch(image[None], segmap[None], targets, np.array([0]), augment=augment,
                                        rng=np.random.default_rng(seed), sky_sigma=SIGMA)
        core = blob > 1.0
        ratios.append(float((batch[0, 2].numpy()[core] - 3.0).sum() / (image[2][core] - 3.0).sum()))
        assert out_targets[0]["redshift"].item() == pytest.approx(1.2)  # the label is kept
    dm = -2.5 * np.log10(ratios)
    assert dm.min() > -0.05 and dm.max() < 2.05
    assert dm.max() - dm.min() > 1.0  # the draws spread over the range

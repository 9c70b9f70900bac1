"""Detection on the noisy images with photutils: one to one for isolated objects, blends, spurious sources."""

import numpy as np
import pytest

from rail.deepdisc.simulation import SimulationSettings, cut_field, make_wcs, psf_fwhm, simulate_tileset
from rail.deepdisc.simulation.detection import detect_segments
from rail.deepdisc.simulation.field import FieldContext, simulate_field
from rail.deepdisc.simulation.morphology import Morphology
from rail.deepdisc.simulation.noise import draw_noise, pixel_sigma
from rail.deepdisc.simulation.render import make_psf_transfer, render_field
from rail.deepdisc.tileset.io import write_tileset
from rail.deepdisc.tileset.validation import validate_tileset

BANDS = ("F150W", "F277W", "F356W", "F444W")


def _settings(**kw):
    return SimulationSettings(bands=BANDS, detection="photutils", **kw)


def _points(settings, xy, flux_njy, shape=(128, 128), seed=0):
    n = len(xy)
    morph = Morphology(r_e=np.full(n, 0.02), sersic_n=np.full(n, 1.0), q=np.ones(n), beta=np.zeros(n))
    flux = np.full((n, len(settings.bands)), flux_njy)
    return render_field(np.asarray(xy, float), flux, morph, settings, shape, np.random.default_rng(seed),
                        make_psf_transfer(settings))


def test_isolated_bright_objects_are_found_one_to_one():
    xy = [[20.3, 25.0], [90.0, 30.6], [40.0, 100.2], [100.7, 95.0]]
    f = _points(_settings(), xy, 200.0)
    real = f.segment_object >= 0
    assert sorted(f.segment_object[real].tolist()) == [0, 1, 2, 3]  # one segment per object
    assert np.all(f.detected) and np.all(f.seg_id[f.segment_object[real]] == np.flatnonzero(real) + 1)
    np.testing.assert_allclose(f.segment_xy[real], np.asarray(xy)[f.segment_object[real]], atol=0.5)
    assert np.all(f.segment_fraction[real] > 0.8) and np.all(f.segment_fraction <= 1.0)
    # anything else is a small noise peak (0.3 expected per 128x128 tile), flagged spurious
    assert (~real).sum() <= 2 and np.all(f.segment_npix[~real] < 15) and np.all(f.segment_snr[~real] == 0)


def test_close_pair_merges_without_deblending_and_splits_with_it():
    s = _settings()
    sep = 2.0 * psf_fwhm("F444W", s) / s.pixel_scale  # two FWHM of the reddest PSF apart
    xy = [[64.0 - sep / 2, 64.0], [64.0 + sep / 2, 64.0]]
    merged = _points(_settings(deblend_contrast=1.0), xy, 100.0)  # contrast 1: no deblending
    real = merged.segment_object[merged.segment_object >= 0]
    assert len(real) == 1 and merged.detected.sum() == 1  # one segment; the other object of the blend is missed
    assert abs(merged.segment_xy[merged.segment_object >= 0][0, 0] - 64.0) < sep / 4  # centroid between them
    split = _points(s, xy, 100.0)
    real = split.segment_object >= 0
    assert sorted(split.segment_object[real].tolist()) == [0, 1]
    left, right = (np.flatnonzero(split.segment_object == k)[0] for k in (0, 1))
    assert split.segment_xy[left, 0] < 64.0 < split.segment_xy[right, 0]


@pytest.mark.parametrize("threshold, correlation", [(3.0, 0.0), (3.5, 1.0)])
def test_pure_noise_gives_no_more_segments_than_the_gaussian_false_rate(threshold, correlation):
    """Segments on noise only: at most the expected number of excursions of the smoothed Gaussian noise.

    The expected Euler characteristic of the excursion set above u of a smooth 2-D Gaussian field (Adler 1981)
    is A lambda u exp(-u^2 / 2) / (2 pi)^(3/2), with lambda = 1 / (2 s^2) for white noise smoothed by a
    Gaussian of sigma s pixels; at these thresholds it counts the upcrossing blobs, an upper bound for segments
    of >= 5 pixels. Correlated input noise is smoother, so the bound (white) holds there too.
    """
    s = _settings(detection_threshold=threshold, noise_correlation_px=correlation)
    sigma = pixel_sigma(s.depths, pixel_scale=s.pixel_scale, aperture_diameter=0.2, correlation_px=correlation)
    fwhm = np.mean([psf_fwhm(b, s) for b in s.active_detection_bands]) / s.pixel_scale
    rng = np.random.default_rng(5)
    shape, n_fields = (256, 256), 6
    counts = [detect_segments(draw_noise(rng, (len(BANDS), *shape), sigma, correlation), sigma, s)[0].max()
              for _ in range(n_fields)]
    lam = 1.0 / (2.0 * (fwhm / 2.3548) ** 2)
    expected = shape[0] * shape[1] * lam * threshold * np.exp(-(threshold**2) / 2) / (2 * np.pi) ** 1.5
    assert np.mean(counts) <= expected
    lower = _settings(detection_threshold=1.5, noise_correlation_px=correlation)  # the test can fail
    assert detect_segments(draw_noise(rng, (len(BANDS), *shape), sigma, correlation), sigma, lower)[0].max() > expected


def test_noise_segments_are_spurious_rows_without_truth():
    s = _settings(density=1e-9, star_fraction=0.0, detection_threshold=2.5)
    shape = (128, 128)
    f = simulate_field(FieldContext(s), shape, make_wcs(shape, s.pixel_scale), np.random.default_rng(2))
    cat = f.catalog
    assert len(cat["x"]) >= 1 and np.all(cat["spurious"])
    assert np.all(np.isnan(cat["redshift_true"])) and np.all(np.isnan(cat["redshift"]))  # never labelled
    assert np.all(np.isnan(cat["true_mag_F444W"])) and not cat["true_is_star"].any()
    np.testing.assert_array_equal(np.unique(f.rendered.segmap[f.rendered.segmap > 0]), cat["seg_id"])


def test_photutils_fields_keep_the_tileset_contract(tmp_path):
    """Tiles and mosaic cuts: segment ids are catalog rows; objects and spurious rows validate."""
    s = _settings(n_tiles=3, tile_size=96, seed=6, density=3.0)
    ts = simulate_tileset(s, progress_bar=False, path=tmp_path / "tiles.h5")
    validate_tileset(tmp_path / "tiles.h5")
    obj = ts.objects
    assert obj["spurious"].dtype == bool and (~obj["spurious"]).sum() >= 5
    real = ~obj["spurious"]
    assert np.all(np.isfinite(obj["redshift_true"][real])) and np.all(np.isnan(obj["redshift_true"][~real]))
    for t in range(ts.n_tiles):
        seg = ts.segmaps[t]
        np.testing.assert_array_equal(np.unique(seg[seg > 0]), np.sort(obj["object_id"][obj["tile"] == t]))
    big = SimulationSettings(bands=BANDS, detection="photutils", tile_size=64, seed=6)
    field = simulate_field(FieldContext(big), (128, 128), make_wcs((128, 128), big.pixel_scale),
                           np.random.default_rng(6))
    cut = cut_field(field, big)
    write_tileset(cut, tmp_path / "cut.h5")
    validate_tileset(tmp_path / "cut.h5")
    assert cut.n_tiles == 4 and len(np.unique(cut.objects["object_id"])) == len(field.catalog["x"])

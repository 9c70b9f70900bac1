"""Simulator physics: SEDs, dropouts, PSF widths, noise vs depth, photometry, labels."""

import numpy as np
import pytest

from rail.deepdisc.simulation import FieldContext, SimulationSettings, make_wcs, psf_fwhm, simulate_field
from rail.deepdisc.simulation.morphology import Morphology
from rail.deepdisc.simulation.noise import flux_njy, pixel_sigma
from rail.deepdisc.simulation.population import draw_population
from rail.deepdisc.simulation.render import make_psf_transfer, render_field
from rail.deepdisc.simulation.seds import calzetti_k, madau_igm_transmission, photometry_grid
from tests.helpers.simdata import default_tileset, fields


def test_calzetti_normalisation_and_shape():
    assert calzetti_k(np.array(5500.0)) == pytest.approx(4.05, abs=0.01)
    k = calzetti_k(np.array([1500.0, 3000.0, 8000.0, 22000.0, 40000.0]))
    assert np.all(np.diff(k) < 0) or k[-1] == 0.0
    assert k[-1] == 0.0 and k[0] > 9.0


def test_madau_transmission_known_value():
    # z = 6.5, observed 1100 A rest: only Lyman-alpha blanketing, tau = 0.0036 (8250 / 1215.67)^3.46
    expected = np.exp(-0.0036 * (8250.0 / 1215.67) ** 3.46)
    assert madau_igm_transmission(np.array(8250.0), 6.5) == pytest.approx(expected, rel=1e-6)
    assert madau_igm_transmission(np.array(1216.0 * 7.6), 6.5) == 1.0  # redward of Lyman-alpha
    assert madau_igm_transmission(np.array(900.0 * 7.5), 6.5) < 0.01  # Lyman continuum


def _population(**overrides):
    settings = SimulationSettings(**overrides)
    grid = photometry_grid(
        settings.bands + ("F444W",), z_max=settings.z_max, ebv_max=settings.ebv_internal_max
    )
    return settings, draw_population(np.random.default_rng(3), settings, grid, 12000.0)


def test_lyman_break_dropouts_follow_redshift():
    settings, pop = _population()
    gal = ~pop.is_star
    b = settings.bands
    c1 = pop.mag[:, b.index("F090W")] - pop.mag[:, b.index("F115W")]
    c2 = pop.mag[:, b.index("F115W")] - pop.mag[:, b.index("F150W")]
    low, f090_drop, f115_drop = gal & (pop.z < 5), gal & (pop.z > 7.2) & (pop.z < 8.5), gal & (pop.z > 9.5)
    assert low.sum() > 1000 and f090_drop.sum() > 20 and f115_drop.sum() > 5
    assert np.mean(c1[low]) < 0.8
    assert np.mean(c1[f090_drop]) > 2.0 and np.mean(c2[f090_drop]) < 0.8
    assert np.mean(c2[f115_drop]) > 2.0
    bins = [(0.5, 3), (3, 5), (6.0, 6.5), (7.0, 7.5), (8.0, 9.0)]
    means = [np.mean(c1[gal & (pop.z >= lo) & (pop.z < hi)]) for lo, hi in bins[2:]]
    assert np.all(np.diff(means) > 0)  # the F090W break deepens with z


def test_population_redshifts_and_magnitudes_are_jades_like():
    settings, pop = _population()
    gal = ~pop.is_star
    assert 2.5 < np.median(pop.z[gal]) < 3.8
    assert (pop.z[gal] > 6).mean() > 0.03 and pop.z.max() <= settings.z_max
    assert pop.mag_ref.max() <= settings.mag_limit + 1e-6
    assert np.mean((pop.mag_ref > 24) & (pop.mag_ref < 30.8)) > 0.85
    assert pop.is_star.mean() == pytest.approx(settings.star_fraction, abs=0.01)
    high = gal & (pop.z > 5)
    assert np.all(pop.galaxy_class[high] != 0)  # no passive galaxies at z > 5


def test_catalog_colours_move_with_redshift():
    """Catalogued F090W-F115W of z ~ 7.5 galaxies shows the Lyman break; z ~ 3.6 galaxies do not."""
    _, low = fields(n=1, seed=21, nz_shape=60.0, nz_scale=0.06, star_fraction=0.0)
    _, high = fields(n=2, seed=22, nz_shape=200.0, nz_scale=0.0375, star_fraction=0.0, density=2.0)

    def colour(fs):
        c = np.concatenate([f.catalog["mag_F090W"] - f.catalog["mag_F115W"] for f in fs])
        snr = np.concatenate([f.catalog["flux_F115W"] / f.catalog["flux_err_F115W"] for f in fs])
        return c[snr > 5]

    c_low, c_high = colour(low), colour(high)
    assert len(c_low) > 5 and len(c_high) > 3
    assert np.median(c_low) < 0.8 and np.median(c_high) > 1.5 and np.median(c_high) > np.median(c_low) + 1.0


def _star_image(settings, band_index, shape=(64, 64)):
    morph = Morphology(r_e=np.zeros(1), sersic_n=np.full(1, np.nan), q=np.ones(1), beta=np.zeros(1))
    xy = np.array([[shape[1] / 2, shape[0] / 2]])
    flux = np.full((1, len(settings.bands)), 1e4)
    f = render_field(xy, flux, morph, settings, shape, np.random.default_rng(0), make_psf_transfer(settings))
    return f.model[band_index]


@pytest.mark.parametrize("pixel_scale, bands", [(0.006, "JADES9"), (0.03, ("F277W", "F356W", "F444W"))])
def test_psf_fwhm_per_band_within_15_percent(pixel_scale, bands):
    import galsim

    s = SimulationSettings(pixel_scale=pixel_scale, bands=bands, oversampling=2)
    measured = []
    for b, band in enumerate(s.bands):
        img = galsim.Image(_star_image(s, b, (96, 96)).astype(float), scale=pixel_scale)
        fwhm = img.calculateFWHM(center=galsim.PositionD(49.0, 49.0))  # the star sits on 0-based pixel 48
        pix_corrected = np.sqrt(max(fwhm**2 - (0.5 * pixel_scale) ** 2, 0.0))  # remove the box's broadening
        measured.append(pix_corrected)
        assert pix_corrected == pytest.approx(psf_fwhm(band, s), rel=0.15), band
    assert np.all(np.diff(measured) > 0)


def test_intended_psf_fwhm_range_and_scale():
    s = SimulationSettings()
    assert psf_fwhm("F090W", s) == pytest.approx(0.033, abs=0.006)
    assert psf_fwhm("F444W", s) == pytest.approx(0.145, abs=0.015)
    wide = SimulationSettings(psf_fwhm_scale=1.3)
    assert psf_fwhm("F444W", wide) == pytest.approx(1.3 * psf_fwhm("F444W", s), rel=1e-3)


def _aperture_depth(images, pixel_scale, rng, n=300):
    r = 0.1 / pixel_scale
    half = int(np.ceil(r)) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    mask = xx**2 + yy**2 <= r**2
    h, w = images.shape[1:]
    sums = []
    for _ in range(n):
        y, x = rng.integers(half, h - half), rng.integers(half, w - half)
        sums.append(images[:, y - half : y + half + 1, x - half : x + half + 1][:, mask].sum(axis=1))
    sums = np.array(sums)
    # discrete mask area differs from pi r^2: rescale to the nominal aperture
    scale = np.sqrt(np.pi * r**2 / mask.sum())
    return 31.4 - 2.5 * np.log10(5 * sums.std(axis=0) * scale)


@pytest.mark.parametrize("correlation", [0.0, 1.0])
def test_noise_matches_depth(correlation):
    s = SimulationSettings(
        density=1e-9, star_fraction=0.0, bands="COSMOSWEB4", noise_correlation_px=correlation
    )
    ctx = FieldContext(s)
    f = simulate_field(ctx, (300, 300), make_wcs((300, 300), s.pixel_scale), np.random.default_rng(1))
    assert not f.catalog["x"].size
    expected = pixel_sigma(
        s.depths, pixel_scale=s.pixel_scale, aperture_diameter=0.2, correlation_px=correlation
    )
    np.testing.assert_allclose(f.rendered.images.std(axis=(1, 2)), expected, rtol=0.03)
    depth = _aperture_depth(f.rendered.images, s.pixel_scale, np.random.default_rng(2))
    np.testing.assert_allclose(depth, s.depths, atol=0.12)


def _isolated(field, margin=6):
    seg = field.rendered.segmap
    cat = field.catalog
    keep = []
    for i, sid in enumerate(cat["seg_id"]):
        x0, x1 = int(cat["bbox_x0"][i]) - margin, int(cat["bbox_x1"][i]) + margin
        y0, y1 = int(cat["bbox_y0"][i]) - margin, int(cat["bbox_y1"][i]) + margin
        if x0 < 0 or y0 < 0 or x1 > seg.shape[1] or y1 > seg.shape[0]:
            continue
        ids = np.unique(seg[y0:y1, x0:x1])
        keep.append(set(ids.tolist()) <= {0, int(sid)})
    return np.array(keep + [False] * (len(cat["seg_id"]) - len(keep)), bool)


@pytest.mark.parametrize("band", ["F150W", "F444W"])
def test_footprint_flux_matches_catalog_and_truth(band):
    settings, fs = fields()
    b = settings.bands.index(band)
    pulls, noise_pulls = [], []
    for f in fs:
        cat, r = f.catalog, f.rendered
        for i in np.flatnonzero(_isolated(f)):
            mine = r.segmap == cat["seg_id"][i]
            frac = r.footprint_fraction[r.seg_id == cat["seg_id"][i]][0, b]
            err = cat[f"flux_err_{band}"][i]
            assert r.images[b][mine].sum() / frac == pytest.approx(cat[f"flux_{band}"][i], rel=1e-4)
            noise_pulls.append((r.images[b] - r.model[b])[mine].sum() / frac / err)
            pulls.append((cat[f"flux_{band}"][i] - flux_njy(cat[f"true_mag_{band}"][i])) / err)
    pulls = np.array(pulls)
    assert len(pulls) > 15
    assert 0.75 < np.std(noise_pulls) < 1.3  # the quoted errors are the footprint noise
    # undetected neighbours inside footprints add a little light, as in real catalogs
    assert -0.5 < np.median(pulls) < 1.0
    assert np.mean(np.abs(pulls) < 3) > 0.8


def test_label_fraction_and_brightness_bias():
    ts = default_tileset()
    o = ts.objects
    gal = ~o["true_is_star"].astype(bool)
    labelled = np.isfinite(o["redshift"])
    assert not labelled[~gal].any()  # stars are not targeted
    assert labelled[gal].mean() == pytest.approx(0.1, abs=0.04)
    assert np.median(o["mag_F444W"][labelled]) < np.median(o["mag_F444W"][gal & ~labelled]) - 1.0
    right = labelled & ~o["true_label_wrong"].astype(bool)
    np.testing.assert_allclose(o["redshift"][right], o["redshift_true"][right])


def test_labels_configurable():
    _, fs = fields(n=2, seed=9, label_fraction=0.5, label_bias_mag=float("inf"), wrong_label_fraction=1.0)
    cat = {
        k: np.concatenate([f.catalog[k] for f in fs]) for k in ("redshift", "redshift_true", "true_is_star")
    }
    gal = ~cat["true_is_star"]
    labelled = np.isfinite(cat["redshift"])
    assert labelled[gal].mean() == pytest.approx(0.5, abs=0.15)
    assert np.all(np.abs(cat["redshift"][labelled] - cat["redshift_true"][labelled]) > 1e-3)
    _, none = fields(n=1, seed=9, label_fraction=0.0)
    assert not np.isfinite(none[0].catalog["redshift"]).any()


def test_sizes_shrink_with_redshift_and_grow_with_luminosity():
    from rail.deepdisc.simulation.morphology import draw_morphology
    from rail.deepdisc.simulation.population import Population

    n = 4000
    z = np.repeat([1.0, 4.0, 1.0], n)
    lum = np.repeat([1.0, 1.0, 0.01], n)
    nan = np.full(3 * n, np.nan)
    pop = Population(
        is_star=np.zeros(3 * n, bool),
        is_brown_dwarf=np.zeros(3 * n, bool),
        z=z,
        galaxy_class=np.ones(3 * n, int),
        template=nan,
        sed_family=np.full(3 * n, "cosmos"),
        temperature=nan,
        ebv_internal=nan,
        ew_halpha=nan,
        abs_mag_v=nan,
        luminosity_ratio=lum,
        mag=np.zeros((3 * n, 1)),
        mag_ref=nan,
    )
    r = draw_morphology(np.random.default_rng(0), pop).r_e.reshape(3, n)
    med = np.median(r, axis=1)
    assert med[0] > 1.3 * med[1]  # smaller at higher z at fixed luminosity
    assert med[0] > 1.5 * med[2]  # larger when more luminous
    assert 0.1 < med[0] < 0.6  # an L* disk at z = 1 spans a few tenths of an arcsec
    ts = default_tileset()
    o = ts.objects
    gal = ~o["true_is_star"].astype(bool)
    r, z = o["true_r_e_arcsec"][gal], o["redshift_true"][gal]
    assert np.median(r[z < 1.5]) > 1.2 * np.median(r[z > 4])


def test_milky_way_dust_is_smooth_and_small():
    ts = default_tileset()
    ebv = ts.objects["ebv"]
    assert np.all((ebv >= 0) & (ebv < 0.03))
    assert ebv.std() > 0


def test_milky_way_extinction_follows_the_package_law():
    """Same seed with and without Milky-Way dust: true magnitudes differ by E(B-V) x A_band / E(B-V)."""
    from rail.deepdisc.dust import band_extinction

    bands = ("F090W", "F150W", "F444W")
    cats = []
    for mean in (0.0, 0.1):
        s = SimulationSettings(n_tiles=1, tile_size=128, seed=8, bands=bands, ebv_mw_mean=mean)
        shape = (128, 128)
        field = simulate_field(FieldContext(s), shape, make_wcs(shape, s.pixel_scale), np.random.default_rng(8))
        cats.append(field.catalog)
    clear, dusty = cats
    common, i, j = np.intersect1d(clear["x"], dusty["x"], return_indices=True)  # positions do not depend on dust
    assert len(common) >= 3 and np.all(clear["ebv"] == 0) and np.all(dusty["ebv"] > 0.05)
    for band, coeff in zip(bands, band_extinction(bands)):
        dimming = dusty[f"true_mag_{band}"][j] - clear[f"true_mag_{band}"][i]
        np.testing.assert_allclose(dimming, dusty["ebv"][j] * coeff, rtol=1e-9)

"""Two-component galaxies: a passive bulge and a disc, colour gradients, totals unchanged."""

import dataclasses

import numpy as np
import pytest

from rail.deepdisc.simulation import FieldContext, SimulationSettings, make_wcs, simulate_field
from rail.deepdisc.simulation.components import draw_bulge_disc
from rail.deepdisc.simulation.morphology import Morphology
from rail.deepdisc.simulation.population import Population
from rail.deepdisc.simulation.render import make_psf_transfer, render_field
from rail.deepdisc.simulation.seds import photometry_grid

BANDS = ("F090W", "F150W", "F277W", "F444W")
SHAPE = (128, 128)


def _galaxies(galaxy_class, template, z=2.0, n=1):
    nan = np.full(n, np.nan)
    return Population(
        is_star=np.zeros(n, bool),
        is_brown_dwarf=np.zeros(n, bool),
        z=np.full(n, z),
        galaxy_class=np.full(n, galaxy_class),
        template=np.full(n, float(template)),
        sed_family=np.full(n, "cosmos"),
        temperature=nan,
        ebv_internal=np.full(n, 0.1),
        ew_halpha=np.full(n, 50.0),
        abs_mag_v=nan,
        luminosity_ratio=np.ones(n),
        mag=np.zeros((n, len(BANDS))),
        mag_ref=nan,
    )


def _grid():
    return photometry_grid(BANDS, z_max=12.0, ebv_max=1.0)


def test_bulge_fraction_per_class_and_sizes():
    grid = _grid()
    rng = np.random.default_rng(0)
    fracs = {}
    for cls, template in ((0, 3.0), (1, 12.0), (2, 25.0)):
        pop = _galaxies(cls, template, n=2000)
        morph = Morphology(r_e=np.full(2000, 0.3), sersic_n=np.ones(2000), q=np.full(2000, 0.5),
                           beta=np.zeros(2000))
        parts = draw_bulge_disc(rng, pop, morph, grid)
        fracs[cls] = parts.bulge_to_total.mean()
        assert np.all(parts.bulge.r_e < parts.disc.r_e)  # compact bulges
        mean_r = parts.bulge_to_total * parts.bulge.r_e + (1 - parts.bulge_to_total) * parts.disc.r_e
        np.testing.assert_allclose(mean_r, 0.3)  # the drawn size is kept (light-weighted mean radius)
        assert np.all(parts.bulge.q >= morph.q) and np.all(parts.band_share <= 0.98)
        if cls > 0:  # a passive bulge in a star-forming galaxy: its share is lower in the rest UV (F090W at
            # z = 2) than in the rest near-infrared (F277W)
            assert np.median(parts.band_share[:, 0]) < np.median(parts.band_share[:, 2])
    assert fracs[0] > 0.65 and 0.2 < fracs[1] < 0.4 and fracs[2] < 0.2  # passive galaxies are bulge-dominated


def test_colour_gradient_and_total_flux_is_the_sum():
    """A z = 2 star-forming galaxy with a passive bulge: centre redder (rest UV - near-IR) than outskirts,
    beyond what the wider red PSF does to a one-SED galaxy; image = bulge image + disc image."""
    settings = SimulationSettings(bands=BANDS, photon_noise=False)
    grid = _grid()
    pop = _galaxies(2, 22.0)
    morph = Morphology(r_e=np.full(1, 0.2), sersic_n=np.ones(1), q=np.full(1, 0.8), beta=np.zeros(1))
    parts = draw_bulge_disc(np.random.default_rng(2), pop, morph, grid)
    parts.band_share[:] = np.clip(parts.band_share * 0.4 / parts.bulge_to_total[:, None], 0, 0.98)
    parts.bulge_to_total[:] = 0.4  # a visible bulge (band shares scale with B/T)
    xy = np.array([[SHAPE[1] / 2, SHAPE[0] / 2]])
    flux = np.full((1, len(BANDS)), 500.0)
    transfer = make_psf_transfer(settings)

    def model(**kw):
        return render_field(xy, kw.pop("flux", flux), kw.pop("morph", morph), settings, SHAPE,
                            np.random.default_rng(0), transfer, **kw).model

    both = model(parts=parts)
    bulge = model(morph=parts.bulge, flux=flux * parts.band_share)
    disc = model(morph=parts.disc, flux=flux * (1 - parts.band_share))
    core = (slice(None), slice(SHAPE[0] // 2 - 8, SHAPE[0] // 2 + 9), slice(SHAPE[1] // 2 - 8, SHAPE[1] // 2 + 9))
    # the same light as the two drawn apart (up to the PSF wings that a bulge's own smaller stamp wraps)
    np.testing.assert_allclose(both[core], (bulge + disc)[core], atol=2e-3 * both.max())
    # totals are the galaxy's (less the far PSF and disc wings beyond the field's edge)
    np.testing.assert_allclose(both.sum(axis=(1, 2)), flux[0], rtol=0.02)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    r = np.hypot(xx - xy[0, 0], yy - xy[0, 1]) * settings.pixel_scale
    centre, outskirts = r < 0.1, (r > 0.3) & (r < 0.6)

    def gradient(img):  # F090W - F277W colour of the centre minus that of the outskirts, mag
        colour = [-2.5 * np.log10(img[0][sel].sum() / img[2][sel].sum()) for sel in (centre, outskirts)]
        return colour[0] - colour[1]

    single = model()  # one profile, one SED: a gradient only from the PSFs' wavelength dependence
    assert gradient(both) > 0.5 and gradient(both) > gradient(single) + 0.5  # a red core


def test_bulge_disc_changes_only_the_structure():
    """Same seed with and without bulges: same objects, truth and total magnitudes; different pixels."""
    fields = []
    for on in (False, True):
        s = SimulationSettings(seed=4, bands=BANDS, bulge_disc=on, density=3.0)
        shape = (128, 128)
        fields.append(simulate_field(FieldContext(s), shape, make_wcs(shape, s.pixel_scale), np.random.default_rng(4)))
    off, on = fields
    assert not np.allclose(off.rendered.model, on.rendered.model)
    np.testing.assert_allclose(off.rendered.model.sum(axis=(1, 2)), on.rendered.model.sum(axis=(1, 2)), rtol=0.02)
    common, i, j = np.intersect1d(off.catalog["redshift_true"], on.catalog["redshift_true"], return_indices=True)
    assert len(common) >= 0.8 * len(off.catalog["x"]) and len(common) >= 5
    np.testing.assert_array_equal(off.catalog["true_mag_F444W"][i], on.catalog["true_mag_F444W"][j])
    bt = on.catalog["true_bulge_to_total"]
    gal = ~on.catalog["true_is_star"]
    assert np.all((bt[gal] > 0) & (bt[gal] < 1)) and "true_bulge_to_total" not in off.catalog


def test_bulge_disc_is_an_option():
    s = SimulationSettings()
    assert s.bulge_disc is True and dataclasses.replace(s, bulge_disc=False).bulge_disc is False
    with pytest.raises(Exception, match="detection"):
        SimulationSettings(detection="sextractor")


def test_bulge_share_uses_each_galaxys_own_sed_family():
    """In a ``mixed`` library an FSPS galaxy's bulge share is the one an FSPS-only grid gives, not COSMOS's."""
    pop = _galaxies(1, 12.0, n=400)
    pop = dataclasses.replace(pop, sed_family=np.full(400, "fsps"))
    morph = Morphology(r_e=np.full(400, 0.3), sersic_n=np.ones(400), q=np.full(400, 0.5), beta=np.zeros(400))
    shares = {}
    for library in ("mixed", "fsps", "cosmos"):
        grid = photometry_grid(BANDS, z_max=12.0, ebv_max=1.0, sed_library=library)
        shares[library] = draw_bulge_disc(np.random.default_rng(5), pop, morph, grid).band_share
    np.testing.assert_allclose(shares["mixed"], shares["fsps"], rtol=1e-10)
    assert np.abs(shares["mixed"] - shares["cosmos"]).max() > 1e-3  # the families differ, so the test can fail

"""The simulator's SED library: COSMOS templates (default, unchanged) and random FSPS combinations."""

import numpy as np
import pytest

from rail.deepdisc.simulation import SimulationSettings, simulate_tileset
from rail.deepdisc.simulation.population import draw_population
from rail.deepdisc.simulation.sed_library import load_cosmos_templates, sed_family
from rail.deepdisc.simulation.seds import photometry_grid
from rail.deepdisc.tileset.io import read_tileset

BANDS = ("F115W", "F150W", "F277W", "F444W")


def test_cosmos_family_is_the_cosmos_templates():
    names, wave, fnu = load_cosmos_templates()
    fam = sed_family("cosmos")
    assert fam.names == names
    np.testing.assert_array_equal(fam.fnu, fnu)
    np.testing.assert_array_equal(fam.halpha_continuum, [np.interp(6563.0, wave, f) for f in fnu])


def test_fsps_family_spans_red_to_blue_like_cosmos_but_is_another_family():
    cosmos, fsps = sed_family("cosmos"), sed_family("fsps")
    assert fsps.fnu.shape[0] == cosmos.fnu.shape[0]  # the population's class ranges index both
    assert np.all(fsps.fnu >= 0) and np.all(np.isfinite(fsps.fnu))
    uv = np.array([np.interp(2800.0, fsps.wave, f) for f in fsps.fnu])
    assert np.corrcoef(np.arange(len(uv)), uv)[0, 1] > 0.9  # red (passive) first, blue last
    # the shapes differ away from the matched colours (2800 A, 2.2 micron): far-UV, Balmer break, 4 micron
    at = [np.array([[np.interp(x, fam.wave, f) for x in (1500.0, 3700.0, 4200.0, 40000.0)] for f in fam.fnu])
          for fam in (cosmos, fsps)]
    assert np.median(np.abs(np.log(at[1] / at[0])).max(axis=1)) > 0.3


def test_mixed_grid_stacks_the_two_families():
    cos, fsps, mixed = (photometry_grid(BANDS, z_max=8.0, sed_library=lib) for lib in ("cosmos", "fsps", "mixed"))
    assert mixed.families == ("cosmos", "fsps") and mixed.n_templates == cos.n_templates
    np.testing.assert_array_equal(mixed.galaxy[: cos.n_templates], cos.galaxy)
    np.testing.assert_array_equal(mixed.galaxy[cos.n_templates:], fsps.galaxy)
    np.testing.assert_array_equal(mixed.lines[cos.n_templates:], fsps.lines)
    t, z, e = np.array([3.5, 20.2]), np.array([1.3, 4.1]), np.array([0.1, 0.3])
    np.testing.assert_allclose(mixed.galaxy_fnu(t, z, e, family=np.array([1, 1])), fsps.galaxy_fnu(t, z, e))


def test_fsps_galaxies_have_other_colours_than_the_same_cosmos_galaxies():
    settings = SimulationSettings(seed=3)
    grids = [photometry_grid(BANDS, z_max=settings.z_max, sed_library=lib) for lib in ("cosmos", "fsps")]
    pops = [draw_population(np.random.default_rng(4), settings, g, 20000.0) for g in grids]
    # one family each: the same random numbers, so the same galaxies (z, class, dust) with other SEDs
    np.testing.assert_array_equal(pops[0].z, pops[1].z)
    np.testing.assert_array_equal(pops[0].template, pops[1].template)
    gal = ~pops[0].is_star & (pops[0].z < 6)
    colour = [p.mag[gal, 1] - p.mag[gal, 2] for p in pops]  # F150W - F277W
    assert np.median(np.abs(colour[1] - colour[0])) > 0.1
    assert set(pops[1].sed_family[gal]) == {"fsps"} and set(pops[1].sed_family[pops[1].is_star]) <= {""}


@pytest.mark.parametrize("library", ["fsps", "mixed"])
def test_fsps_fields_render_finite_and_record_the_family(tmp_path, library):
    path = tmp_path / "t.h5"
    simulate_tileset(SimulationSettings(n_tiles=3, tile_size=96, seed=5, sed_library=library), path=path)
    ts = read_tileset(path)
    o = ts.objects
    assert np.isfinite(ts.images).all()
    bands = ts.bands
    assert all(np.isfinite(o[f"flux_{b}"]).all() and np.isfinite(o[f"true_mag_{b}"]).all() for b in bands)
    gal = ~o["true_is_star"].astype(bool)
    families = set(o["true_sed_family"][gal])
    assert families == ({"fsps"} if library == "fsps" else {"cosmos", "fsps"})
    assert set(o["true_sed_family"][~gal]) <= {""}


def test_cosmos_is_the_default_and_draws_no_family():
    a = simulate_tileset(SimulationSettings(n_tiles=2, tile_size=64, seed=8), progress_bar=False)
    b = simulate_tileset(SimulationSettings(n_tiles=2, tile_size=64, seed=8, sed_library="cosmos"),
                         progress_bar=False)
    np.testing.assert_array_equal(a.images, b.images)
    gal = ~a.objects["true_is_star"].astype(bool)
    assert set(a.objects["true_sed_family"][gal]) == {"cosmos"}

"""The simulator's SED library: COSMOS templates (default, unchanged), random FSPS combinations, BPZ's CWWSB4."""

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.simulation import SimulationSettings, sed_library, simulate_tileset
from rail.deepdisc.simulation.population import PASSIVE_TEMPLATES, STARBURST_TEMPLATES, draw_population
from rail.deepdisc.simulation.sed_library import (
    CWW_NIR_JOIN,
    CWW_NIR_SLOPE,
    REFERENCE_WAVELENGTH,
    SedFamily,
    cww_basis,
    cww_positions,
    library_families,
    load_cosmos_templates,
    parse_sed_library,
    sed_family,
)
from rail.deepdisc.simulation.seds import check_coverage, photometry_grid
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


def _colour(fam, wave):
    """ln f_nu(wave) / f_nu(5500 A) of every SED of a family."""
    return np.log([np.interp(wave, fam.wave, f) / np.interp(REFERENCE_WAVELENGTH, fam.wave, f) for f in fam.fnu])


def test_cww_family_interpolates_bpzs_cwwsb4_red_to_blue_with_the_cosmos_classes():
    names, wave, basis = cww_basis()
    assert names[:6] == ("El_B2004a", "Sbc_B2004a", "Scd_B2004a", "Im_B2004a", "SB3_B2004a", "SB2_B2004a")
    cww, cosmos = sed_family("cww"), sed_family("cosmos")
    assert cww.fnu.shape[0] == cosmos.fnu.shape[0]  # the population's class ranges index both
    assert np.all(cww.fnu >= 0) and np.all(np.isfinite(cww.fnu))
    np.testing.assert_allclose([np.interp(REFERENCE_WAVELENGTH, cww.wave, f) for f in cww.fnu], 1.0, rtol=1e-9)
    # every SED mixes two adjacent CWWSB4 templates, in BPZ's red-to-blue order
    pos = cww_positions()
    assert np.all(np.diff(pos) >= 0) and pos[0] == 0.0 and pos[-1] > len(names) - 3
    i = np.minimum(pos.astype(int), len(names) - 2)
    np.testing.assert_allclose(cww.fnu, (1 - (pos - i))[:, None] * basis[i] + (pos - i)[:, None] * basis[i + 1])
    # class meaning: passive SEDs are CWW's elliptical, starbursts are bluer in the UV than every spiral, and
    # where COSMOS is bluer than El the UV-optical colours match COSMOS's
    uv_cww, uv_cos = _colour(cww, 2800.0), _colour(cosmos, 2800.0)
    passive = np.arange(31) <= PASSIVE_TEMPLATES[1]
    burst = np.arange(31) >= STARBURST_TEMPLATES[0]
    np.testing.assert_array_equal(cww.fnu[passive], np.broadcast_to(basis[0], cww.fnu[passive].shape))
    assert uv_cww[burst].min() > uv_cww[~burst].max() - 0.05
    bluer = uv_cos > uv_cww[0]
    assert bluer.sum() >= 18 and np.abs(uv_cww[bluer] - uv_cos[bluer]).max() < 0.25
    # but it is another family: the far-UV and the Balmer-break region differ from COSMOS's
    far_uv = np.abs(_colour(cww, 1500.0) - _colour(cosmos, 1500.0))
    assert np.median(far_uv) > 0.3


def test_cww_near_infrared_continues_as_a_stellar_photosphere_to_5_micron():
    cww, cosmos = sed_family("cww"), sed_family("cosmos")
    assert cww.wave[0] <= 912.0 and cww.wave[-1] >= 50000.0  # F444W's red edge at z = 0
    assert np.all(cww.fnu[:, cww.wave < 911.0] == 0)  # no Lyman continuum, as in the COSMOS templates
    for k in (0, 15):  # B2004a galaxy templates: the power law beyond the join
        lam = np.array([20000.0, 40000.0])
        slope = np.diff(np.log(np.interp(lam, cww.wave, cww.fnu[k]))) / np.diff(np.log(lam))
        assert slope[0] == pytest.approx(CWW_NIR_SLOPE, abs=0.01)
        assert np.interp(CWW_NIR_JOIN * 0.999, cww.wave, cww.fnu[k]) > 0
    # near-infrared colours within COSMOS's range (the raw El file falls tenfold from 1.9 to 2.56 micron)
    nir = _colour(cww, 40000.0) - _colour(cww, 16000.0)
    ref = _colour(cosmos, 40000.0) - _colour(cosmos, 16000.0)
    assert ref.min() - 0.3 < nir.min() and nir.max() < ref.max() + 0.3


def test_cww_galaxies_get_other_colours_than_cosmos_and_sane_low_z_f444w():
    settings = SimulationSettings(seed=3)
    grids = [photometry_grid(BANDS, z_max=settings.z_max, sed_library=lib) for lib in ("cosmos", "cww")]
    pops = [draw_population(np.random.default_rng(4), settings, g, 20000.0) for g in grids]
    np.testing.assert_array_equal(pops[0].z, pops[1].z)  # one family each: the same galaxies, other SEDs
    gal = ~pops[0].is_star & (pops[0].z < 6)
    colour = [p.mag[gal, 1] - p.mag[gal, 2] for p in pops]  # F150W - F277W
    assert np.median(np.abs(colour[1] - colour[0])) > 0.05
    assert set(pops[1].sed_family[~pops[1].is_star]) == {"cww"}
    # at low z F444W samples the rest-frame 3-4 micron continuation: F277W - F444W like COSMOS's (the raw
    # CWW files' extrapolated tail would make F444W ~2-5 mag fainter)
    t, z = np.repeat(np.arange(31.0), 3), np.tile([0.1, 0.25, 0.4], 31)
    red = [-2.5 * np.log10(g.galaxy_fnu(t, z, np.zeros_like(t))[:, 2] / g.galaxy_fnu(t, z, np.zeros_like(t))[:, 3])
           for g in grids]
    assert np.all(np.isfinite(red[1])) and np.abs(np.median(red[1]) - np.median(red[0])) < 0.3
    assert np.abs(red[1] - red[0]).max() < 1.0


def test_libraries_join_families_with_plus_in_one_canonical_order():
    assert library_families("cww+cosmos") == ("cosmos", "cww") == library_families(" Cosmos + CWW ")
    assert library_families("mixed") == library_families("fsps+cosmos") == ("cosmos", "fsps")
    assert parse_sed_library("cww+fsps+cosmos") == "cosmos+fsps+cww" and parse_sed_library("mixed") == "mixed"
    assert SimulationSettings(sed_library="cww+cosmos").sed_library == "cosmos+cww"
    for bad, problem in (("cosmos+bpz", "unknown family 'bpz'"), ("cww+cww", "a family named twice"),
                         ("mixed+fsps", "a family named twice"), ("", "unknown family ''")):
        with pytest.raises(ConfigError, match=problem) as err:
            SimulationSettings(sed_library=bad)
        assert str(err.value).count("\n") == 0 and "cosmos, fsps, cww" in str(err.value)
    joined = photometry_grid(BANDS, z_max=8.0, sed_library="cosmos+cww")
    cww = photometry_grid(BANDS, z_max=8.0, sed_library="cww")
    assert joined.families == ("cosmos", "cww")
    np.testing.assert_array_equal(joined.galaxy[cww.n_templates:], cww.galaxy)


def test_cww_templates_missing_give_one_clear_error(monkeypatch, tmp_path):
    def no_package(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(sed_library.resources, "files", no_package)
    with pytest.raises(ConfigError, match="desc_bpz, which is not installed: install pz-rail-bpz"):
        sed_library.cww_sed_list()
    monkeypatch.setattr(sed_library.resources, "files", lambda name: tmp_path)
    with pytest.raises(ConfigError, match="CWWSB4.list: BPZ's CWWSB4 template list not found"):
        sed_library.cww_sed_list()


def test_a_family_short_of_the_bands_rest_frame_range_is_refused():
    cww = sed_family("cww")
    check_coverage(cww, ("F090W", "F444W"), 12.0)  # the real family covers JADES's bands to z = 12
    keep = cww.wave <= 25600.0  # the B2004a files' own range
    short = SedFamily("short", cww.names, cww.wave[keep], cww.fnu[:, keep], cww.halpha_continuum)
    with pytest.raises(ConfigError, match=r"'short' covers rest-frame 91-25600 A, but bands F090W F444W at z = "
                                          r"0-12 need 912-5\d{4} A"):
        check_coverage(short, ("F090W", "F444W"), 12.0)
    check_coverage(short, ("F090W", "F200W"), 12.0)  # enough for bands bluer than 2.56 micron

"""Template mismatch (``sed_mismatch``): galaxy SEDs departing from the templates by EAZY's template error."""

import numpy as np
import pytest
from scipy.optimize import nnls

from rail.deepdisc.simulation import SimulationSettings, simulate_tileset
from rail.deepdisc.simulation.sed_library import _fsps_basis, sed_family
from rail.deepdisc.simulation.sed_mismatch import (
    MISMATCH_LENGTH_DEX,
    mismatch_field,
    mismatched,
    template_error_function,
)
from rail.deepdisc.simulation.seds import photometry_grid

BANDS = ("F115W", "F150W", "F277W", "F444W")
#: Rest wavelengths where NIRCam sees the benchmark's galaxies (0.2 < z < 10).
REST = (1000.0, 30000.0)


def _log_ratio(family: str, amplitude: float):
    fam = sed_family(family)
    out = mismatched(fam, amplitude)
    sel = (fam.wave > REST[0]) & (fam.wave < REST[1])
    tef_wave, tef = template_error_function()
    return fam.wave[sel], np.log(out.fnu[:, sel] / fam.fnu[:, sel]), np.interp(fam.wave[sel], tef_wave, tef)


def test_no_mismatch_is_the_templates_and_the_default():
    fam = sed_family("fsps")
    assert mismatched(fam, 0.0) is fam
    assert SimulationSettings().sed_mismatch == 0.0
    a = photometry_grid(BANDS, z_max=8.0, sed_library="fsps")
    b = photometry_grid(BANDS, z_max=8.0, sed_library="fsps", sed_mismatch=0.0)
    np.testing.assert_array_equal(a.galaxy, b.galaxy)
    with pytest.raises(ValueError, match="sed_mismatch"):
        mismatched(fam, -1.0)


@pytest.mark.parametrize("family", ["cosmos", "fsps"])
def test_the_mismatch_has_the_template_errors_size_and_scales_one_fixed_pattern(family):
    wave, r1, sigma = _log_ratio(family, 1.0)
    rms = np.sqrt(np.mean((r1 / sigma) ** 2))
    assert 0.75 < rms < 1.25  # 31 SEDs x ~14 correlation lengths: the unit variance to ~15%
    _, r_half, _ = _log_ratio(family, 0.5)
    np.testing.assert_allclose(r_half, 0.5 * r1, rtol=1e-9, atol=1e-12)
    _, again, _ = _log_ratio(family, 1.0)
    np.testing.assert_array_equal(again, r1)  # the same family's pattern in every run


def test_the_random_field_has_unit_variance_and_the_stated_correlation_length():
    wave = 10 ** np.arange(3.0, 4.5, 0.01)
    g = mismatch_field(4000, wave, seed=(1, 2))
    assert abs(g.var() - 1.0) < 0.05
    lag = int(round(MISMATCH_LENGTH_DEX / 0.01))
    corr = np.mean(g[:, :-lag] * g[:, lag:])
    assert abs(corr - np.exp(-0.5)) < 0.05  # exp(-d^2 / 2 l^2) at d = l
    assert abs(np.mean(g[:, :-5 * lag] * g[:, 5 * lag:])) < 0.05  # independent five lengths away


def test_families_get_their_own_patterns():
    cos, fsps = (_log_ratio(f, 1.0) for f in ("cosmos", "fsps"))
    a = np.interp(np.log10(3000.0), np.log10(cos[0]), cos[1][0] / cos[2])
    b = np.interp(np.log10(3000.0), np.log10(fsps[0]), fsps[1][0] / fsps[2])
    assert a != b


def test_eazys_templates_fit_the_fsps_family_exactly_but_not_its_mismatched_seds():
    names, wave, basis = _fsps_basis()
    x = 10 ** np.arange(np.log10(1500.0), np.log10(25000.0), 0.01)
    design = np.array([np.interp(x, wave, f) for f in basis]).T
    residual = {}
    for amplitude in (0.0, 1.0):
        fam = mismatched(sed_family("fsps"), amplitude)
        rel = []
        for f in fam.fnu:
            y = np.interp(x, fam.wave, f)
            w = 1.0 / y  # fit in relative flux, as a template error budget is relative
            coef, _ = nnls(design * w[:, None], y * w)
            rel.append(np.sqrt(np.mean((design @ coef / y - 1.0) ** 2)))
        residual[amplitude] = np.median(rel)
    assert residual[0.0] < 1e-3
    assert residual[1.0] > 0.01  # beyond what 12 non-negative templates can absorb


def test_mismatched_fields_keep_the_galaxies_and_change_their_colours(tmp_path):
    base = dict(n_tiles=2, tile_size=64, seed=9, sed_library="fsps", bands=BANDS)
    a = simulate_tileset(SimulationSettings(**base), progress_bar=False)
    b = simulate_tileset(SimulationSettings(**base, sed_mismatch=1.0), progress_bar=False)
    oa, ob = a.objects, b.objects
    for key in ("x", "y", "redshift_true", "true_template", "true_r_e_arcsec"):
        np.testing.assert_array_equal(oa[key], ob[key])
    gal = ~oa["true_is_star"].astype(bool)
    colour = [o["true_mag_F150W"][gal] - o["true_mag_F444W"][gal] for o in (oa, ob)]
    shift = np.abs(colour[1] - colour[0])
    assert np.all(np.isfinite(shift)) and 0.01 < np.median(shift) < 0.3
    assert np.all(np.isfinite(b.images))

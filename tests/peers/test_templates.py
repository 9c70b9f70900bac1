"""Peer template sets: loading, red extension, IGM, redshifted photometry; fairness against the simulator."""

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.filters import ab_magnitudes
from rail.deepdisc.peers.templates import (
    RED_LIMIT_ANGSTROM,
    TemplateSet,
    extend_red,
    igm_transmission,
    load_template_set,
    rail_sed_dir,
    template_fluxes,
)

CWWSB4 = (
    "El_B2004a",
    "Sbc_B2004a",
    "Scd_B2004a",
    "Im_B2004a",
    "SB3_B2004a",
    "SB2_B2004a",
    "ssp_25Myr_z008",
    "ssp_5Myr_z008",
)


def test_default_set_is_cwwsb4_and_not_the_simulators_cosmos_set():
    tset = load_template_set()
    assert tset.names == CWWSB4
    cosmos = {line.strip()[:-4] for line in (rail_sed_dir() / "COSMOS_seds.list").read_text().split()}
    assert not cosmos & set(tset.names)
    assert all(w[-1] >= RED_LIMIT_ANGSTROM for w in tset.waves)


def test_extend_red_continues_a_power_law():
    wave = np.linspace(1.0e4, 2.0e4, 200)
    flux = (wave / 1.0e4) ** -3.0
    w2, f2 = extend_red(wave, flux, max_wave=5.0e4)
    assert w2[-1] >= 5.0e4 and np.all(np.diff(w2) > 0)
    new = w2 > wave[-1]
    np.testing.assert_allclose(f2[new], (w2[new] / 1.0e4) ** -3.0, rtol=1e-6)


def test_extend_red_never_rises():
    wave = np.linspace(1.0e4, 2.0e4, 50)
    w2, f2 = extend_red(wave, wave / 1.0e4, max_wave=4.0e4)
    np.testing.assert_allclose(f2[w2 > wave[-1]], 2.0)


def test_extend_red_leaves_long_seds_alone():
    wave = np.linspace(1.0e3, 1.0e5, 10)
    w2, f2 = extend_red(wave, np.ones(10), max_wave=5.0e4)
    assert w2 is wave and len(f2) == 10


@pytest.mark.parametrize("layout", ["list", "param", "folder"])
def test_load_template_set_layouts(tmp_path, layout):
    for k in range(2):
        np.savetxt(tmp_path / f"t{k}.sed", np.column_stack([[1000.0, 5000.0, 9000.0], [1.0, 2.0 + k, 1.0]]))
    if layout == "list":
        (tmp_path / "my.list").write_text("t0.sed\nt1.sed\n")
        spec = tmp_path / "my.list"
    elif layout == "param":
        (tmp_path / "my.param").write_text(f"1 {tmp_path / 't0.sed'} 1.0\n2 t1.sed 10.0\n")
        spec = tmp_path / "my.param"
    else:
        spec = tmp_path
    tset = load_template_set(spec, extend=False)
    assert tset.names == ("t0", "t1")
    assert tset.waves[1][-1] == (90000.0 if layout == "param" else 9000.0)


def test_load_template_set_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_template_set(tmp_path / "nope.list")
    (tmp_path / "bad.list").write_text("missing.sed\n")
    with pytest.raises(ConfigError, match="missing SED file"):
        load_template_set(tmp_path / "bad.list")
    with pytest.raises(ConfigError, match="no .sed or .dat"):
        load_template_set(tmp_path)


def test_template_set_rejects_unsorted_wavelengths():
    with pytest.raises(ConfigError, match="wavelengths must increase"):
        TemplateSet(("a",), (np.array([2.0, 1.0]),), (np.array([1.0, 1.0]),))


@pytest.mark.parametrize("model", ["eazy", "madau"])
def test_igm_absorbs_only_blueward_of_lyman_alpha(model):
    z = 6.0
    wave = np.array([800.0, 1100.0, 1300.0, 3000.0]) * (1 + z)
    t = igm_transmission(wave, z, model=model)
    assert t[0] < 0.01 and t[1] < 0.5
    np.testing.assert_allclose(t[2:], 1.0, atol=1e-6)
    np.testing.assert_allclose(igm_transmission(wave, 0.0, model=model), 1.0)


def test_igm_unknown_model():
    with pytest.raises(ConfigError, match="igm model 'inoue' unknown"):
        igm_transmission(np.ones(2), 1.0, model="inoue")


def test_template_fluxes_match_ab_magnitudes():
    # away from the Lyman-alpha break, where the two integrations sample the IGM on different grids
    tset = load_template_set()
    bands = ("F115W", "F200W", "F444W")
    for z, k in [(0.5, 0), (3.2, 3), (7.0, 7)]:
        wave = tset.waves[k] * (1 + z)
        mags = ab_magnitudes(wave, tset.fluxes[k] * igm_transmission(wave, z), bands)
        grid = -2.5 * np.log10(template_fluxes(tset, [z], bands)[0, k])
        np.testing.assert_allclose(mags - mags[-1], grid - grid[-1], atol=2e-3)

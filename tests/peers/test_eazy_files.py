"""eazy input files: readable by eazy-py itself, with the numbers we wrote."""

import numpy as np
import pytest

from rail.deepdisc.filters import pivot_wavelength
from rail.deepdisc.peers.eazy_files import (
    write_filter_res,
    write_prior,
    write_templates,
    write_translate,
)
from rail.deepdisc.peers.eazy_paths import DEFAULT_TEMPLATE_ERROR, PACKAGED_EAZY_ROOT
from rail.deepdisc.peers.templates import load_template_set

BANDS = ("F115W", "F277W", "F444W")


def test_filter_res_is_read_by_eazy(tmp_path):
    from eazy.filters import FilterFile

    res = FilterFile(str(write_filter_res(BANDS, tmp_path / "FILTER.RES")))
    assert res.NFILT == 3
    for k, band in enumerate(BANDS):
        assert band in res[k + 1].name
        assert res[k + 1].pivot == pytest.approx(pivot_wavelength(band), rel=2e-3)


def test_translate_file_is_read_by_eazy(tmp_path):
    from eazy.param import TranslateFile

    trans = TranslateFile(str(write_translate(BANDS, tmp_path / "zphot.translate")))
    assert trans.trans["flux_F277W"] == "F2" and trans.trans["err_F444W"] == "E3"


def test_templates_are_read_by_eazy(tmp_path):
    from eazy.templates import read_templates_file

    tset = load_template_set("CWWSB4")
    templates = read_templates_file(str(write_templates(tset, tmp_path)))
    assert [t.name for t in templates] == [f"{n}.dat" for n in tset.names]
    np.testing.assert_allclose(templates[0].wave, tset.waves[0], rtol=1e-5)


def test_default_template_error_is_eazys():
    from eazy.templates import TemplateError

    tef = TemplateError(str(PACKAGED_EAZY_ROOT / DEFAULT_TEMPLATE_ERROR), filter_wavelengths=[1.5e4], scale=1.0)
    # template_error_10.def: small in the rest optical, large in the rest UV
    wave, value = np.loadtxt(PACKAGED_EAZY_ROOT / DEFAULT_TEMPLATE_ERROR, unpack=True)
    assert tef(2.0)[0] == pytest.approx(np.interp(1.5e4 / 3.0, wave, value), rel=0.01)
    assert tef(2.0)[0] < tef(12.0)[0]


def test_prior_file_round_trip_through_eazy(tmp_path):
    from eazy.photoz import PhotoZ

    z = np.linspace(0.01, 6, 300)
    density = np.column_stack([np.exp(-0.5 * ((z - c) / 0.3) ** 2) for c in (1.0, 3.0)])
    density /= np.trapezoid(density, z, axis=0)
    path = write_prior(z, np.array([24.0, 28.0]), density, tmp_path / "prior.dat")
    mags, data = PhotoZ.read_prior(zgrid=z, prior_file=str(path), prior_floor=0.0)
    np.testing.assert_allclose(mags, [24.0, 28.0])
    np.testing.assert_allclose(data, density, rtol=1e-4, atol=1e-6)

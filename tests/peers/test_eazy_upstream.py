"""The EAZY stage against eazy-py driven directly, as its users drive it (same templates and settings).

eazy-py is run from the package's eazy-photoz folder with its own parameter defaults (``zphot.param.default``),
a catalog in its own layout and a translate file: ``PhotoZ``, ``fit_catalog``, ``zml``. Our stage must give
the same p(z) and its ``zmode`` must be eazy's ``zml``.
"""

import numpy as np
import pytest

from rail.deepdisc.peers.eazy_files import write_filter_res
from rail.deepdisc.peers.eazy_fit import EazyRunner, EazySettings
from rail.deepdisc.peers.eazy_grid import integrate_like_eazy
from rail.deepdisc.peers.eazy_model import EazyModel
from rail.deepdisc.peers.eazy_paths import DEFAULT_EAZY_TEMPLATES, PACKAGED_EAZY_ROOT
from rail.deepdisc.peers.model_io import save_npz_model
from rail.deepdisc.peers.pdfs import max_lnp_redshift, normalise_pdfs, resample_pdfs
from rail.deepdisc.presets import get_preset
from rail.estimation.algos.deepdisc_eazy import EazyEstimator
from tests.helpers.simphot import simulated_photometry

BANDS = get_preset("JADES9")


def _eazy_directly(catalog, bands, workdir, monkeypatch, *, tempfilt=None, **params):
    """Run eazy-py as a user does: PhotoZ from its defaults, fit_catalog, zml."""
    from astropy.table import Table
    from eazy.photoz import PhotoZ

    workdir.mkdir()
    res = write_filter_res(bands, workdir / "FILTER.RES")
    (workdir / "zphot.translate").write_text(
        "".join(f"flux_{b} F{k + 1}\nfluxerr_{b} E{k + 1}\n" for k, b in enumerate(bands))
    )
    n = len(catalog["object_id"])
    table = Table({"id": catalog["object_id"], "z_spec": np.full(n, -1.0), "ra": np.zeros(n), "dec": np.zeros(n)})
    for b in bands:
        ok = np.isfinite(catalog[f"flux_{b}"])
        table[f"flux_{b}"] = np.where(ok, catalog[f"flux_{b}"], -99.0)
        table[f"fluxerr_{b}"] = np.where(ok, catalog[f"fluxerr_{b}"], -99.0)
    monkeypatch.chdir(PACKAGED_EAZY_ROOT)  # eazy's template paths are relative to the eazy-photoz folder
    pz = PhotoZ(
        param_file=None,
        translate_file=str(workdir / "zphot.translate"),
        params=dict(CATALOG_FILE=table, FILTERS_RES=str(res), PRIOR_ABZP=31.4, APPLY_PRIOR="n", **params),
        load_prior=False,
        tempfilt=tempfilt,
        n_proc=-1,
    )
    pz.fit_catalog(n_proc=0, prior=False, verbose=False)
    return pz


def _catalog(n_bright=12, n_faint=28, seed=3):
    cat = simulated_photometry(BANDS, area_arcsec2=2500.0, seed=seed)
    mag = cat["true_mag_F444W"]
    idx = np.r_[np.flatnonzero(mag < 25)[:n_bright], np.flatnonzero((mag >= 25) & (mag < 28))[:n_faint]]
    cat = {k: v[idx] for k, v in cat.items()}
    cat["flux_F090W"][0] = np.nan  # a band not observed
    return cat


def _stage_output(cat, tmp_path, **options):
    model = save_npz_model(EazyModel(bands=BANDS, zero_points=np.ones(len(BANDS))).to_dict(), tmp_path / "m.npz")
    est = EazyEstimator.make_stage(
        name=f"eazy_upstream_{len(options)}", model=str(model), output=str(tmp_path / "pz.hdf5"), **options
    )
    return est.estimate(cat).data


def test_template_grid_is_eazys_integration(tmp_path, monkeypatch):
    """`integrate_like_eazy` against eazy's own Template.integrate_filter, as eazy's TemplateGrid calls it."""
    from eazy import filters as eazy_filters
    from eazy.templates import read_templates_file

    res = eazy_filters.FilterFile(str(write_filter_res(BANDS, tmp_path / "FILTER.RES")))
    filters = [res[k + 1] for k in range(len(BANDS))]
    monkeypatch.chdir(PACKAGED_EAZY_ROOT)
    templates = read_templates_file(DEFAULT_EAZY_TEMPLATES, scale_tau=1.0, add_cgm=True)[::5]
    zgrid = np.array([0.2, 1.7, 4.3, 7.9], np.float32)
    ours = integrate_like_eazy(templates, filters, zgrid, add_igm=True)
    for t, templ in enumerate(templates):
        for iz, z in enumerate(zgrid):
            igm = templ.igm_absorption(z=z)
            theirs = [templ.integrate_filter(f, scale=igm, z=z, include_igm=False) for f in filters]
            np.testing.assert_allclose(ours[iz, t], theirs, rtol=1e-10)


def test_stage_equals_eazy_driven_directly(tmp_path, monkeypatch):
    """Default settings, full default grid: eazy's p(z) on its grid and its zml; eazy fits with our grid."""
    cat = _catalog()
    runner = EazyRunner(EazySettings(bands=BANDS), tmp_path)
    pz = _eazy_directly(cat, BANDS, tmp_path / "eazy", monkeypatch, tempfilt=runner.template_grid())
    assert pz.param["TEMPLATE_COMBOS"] == "a" and pz.param["TEMP_ERR_A2"] == 0.2 and pz.param["SYS_ERR"] == 0.01
    monkeypatch.chdir(tmp_path)
    out = _stage_output(cat, tmp_path)
    ours = runner.log_posterior(*_fluxes(cat))
    np.testing.assert_allclose(np.exp(ours), np.exp(pz.lnp), rtol=1e-4, atol=1e-6 * np.exp(pz.lnp).max())
    zout = np.linspace(0.0, 12.0, 1201)
    theirs = resample_pdfs(pz.zgrid, normalise_pdfs(pz.zgrid, np.exp(pz.lnp)), zout)
    np.testing.assert_allclose(out.objdata["yvals"], theirs, rtol=1e-3, atol=1e-4 * theirs.max())
    zml = np.asarray(pz.zml, float)
    fitted = zml > 0
    assert fitted.sum() >= len(zml) - 1
    np.testing.assert_allclose(np.ravel(out.ancil["zmode"])[fitted], zml[fitted], atol=1e-4)


@pytest.mark.slow
def test_stage_equals_eazy_with_its_own_template_grid(tmp_path, monkeypatch):
    """eazy integrates the templates itself (minutes at full size: a coarse grid and four bands here)."""
    bands = ("F115W", "F200W", "F356W", "F444W")
    cat = _catalog(n_bright=8, n_faint=12, seed=4)
    grid = dict(Z_MAX=8.0, Z_STEP=0.05)
    pz = _eazy_directly(cat, bands, tmp_path / "eazy", monkeypatch, **grid)
    monkeypatch.chdir(tmp_path)
    runner = EazyRunner(EazySettings(bands=bands, z_max=8.0, z_step=0.05), tmp_path)
    np.testing.assert_allclose(runner.template_grid().tempfilt, pz.tempfilt.tempfilt, rtol=1e-5)
    flux = np.column_stack([cat[f"flux_{b}"] for b in bands])
    err = np.column_stack([cat[f"fluxerr_{b}"] for b in bands])
    ours = runner.log_posterior(flux, err)
    np.testing.assert_allclose(np.exp(ours), np.exp(pz.lnp), rtol=1e-3, atol=1e-5 * np.exp(pz.lnp).max())


def _fluxes(cat):
    return (
        np.column_stack([cat[f"flux_{b}"] for b in BANDS]),
        np.column_stack([cat[f"fluxerr_{b}"] for b in BANDS]),
    )


def test_brightest_bin_is_no_worse_than_the_next(tmp_path):
    """On photometry drawn from the simulator at its depths, F444W < 25 is fitted at least as well as 25-27."""
    cat = simulated_photometry(BANDS, area_arcsec2=5000.0, seed=1)
    mag = cat["true_mag_F444W"]
    bright, faint = np.flatnonzero(mag < 25)[:100], np.flatnonzero((mag >= 25) & (mag < 27))[:150]
    runner = EazyRunner(EazySettings(bands=BANDS), tmp_path)
    stats = []
    for idx in (bright, faint):
        flux, err = (np.column_stack([cat[f"{c}_{b}"][idx] for b in BANDS]) for c in ("flux", "fluxerr"))
        zml = max_lnp_redshift(runner.zgrid, runner.log_posterior(flux, err))
        dz = (zml - cat["redshift"][idx]) / (1 + cat["redshift"][idx])
        q25, q75 = np.percentile(dz, [25, 75])
        stats.append(((q75 - q25) / 1.349, float(np.mean(np.abs(dz) > 0.15))))
    (sig_b, eta_b), (sig_f, eta_f) = stats
    assert sig_b <= sig_f and eta_b <= eta_f, stats
    assert sig_b < 0.05 and eta_b < 0.1, stats

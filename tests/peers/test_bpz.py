"""BPZ peer (pz-rail-bpz for NIRCam): data folder, options, corrected zero points, stages, accuracy."""

from pathlib import Path

import numpy as np
import pytest

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.bpz_inputs import bpz_flux_inputs
from rail.deepdisc.peers.bpz_setup import (
    BPZPriorWarning,
    bpz_prior_problems,
    bpz_zero_point_offsets,
    broad_types,
    nircam_bpz_options,
    write_bpz_data_dir,
)
from rail.deepdisc.peers.model_io import load_npz_model
from rail.deepdisc.peers.templates import load_template_set, rail_sed_dir, template_fluxes
from rail.deepdisc.presets import get_preset
from rail.estimation.algos.deepdisc_bpz import NIRCamBPZEstimator, NIRCamBPZInformer
from tests.helpers.peers_helpers import (
    assert_worse_with_noise,
    max_likelihood_redshifts,
    outlier_stats,
    synthetic_catalog,
)

BANDS = get_preset("JADES9")
# pz-rail-bpz's unbounded prior fit takes powers of negative numbers on some samples
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in power:RuntimeWarning")


@pytest.fixture(scope="module")
def bpz_root(tmp_path_factory):
    return tmp_path_factory.mktemp("bpzdata")


def test_nircam_options_replace_lsst_defaults():
    opts = nircam_bpz_options(["F115W", "F444W"], mag_limit=29.5, zp_error=0.03)
    assert opts["bands"] == ["mag_F115W", "mag_F444W"]
    assert opts["err_bands"] == ["magerr_F115W", "magerr_F444W"]
    assert opts["filter_list"] == ["NIRCam_F115W", "NIRCam_F444W"]
    assert opts["ref_band"] == "mag_F444W"
    assert opts["mag_limits"] == {"mag_F115W": 29.5, "mag_F444W": 29.5}
    assert opts["zp_errors"] == [0.03, 0.03] and opts["zp_offsets"] == [0.0, 0.0]
    assert np.isnan(opts["unobserved_val"]) and opts["nondetect_val"] == 99.0
    with pytest.raises(ConfigError, match="ref_band 'F090W' is not one of the bands"):
        nircam_bpz_options(["F115W"], ref_band="F090W")


def test_data_dir_holds_bpz_files_and_is_reused(bpz_root):
    tset = load_template_set("CWWSB4")
    path = write_bpz_data_dir(tset, ("F150W", "F444W"), list_name="CWWSB4", root=bpz_root)
    assert (path / "SED" / "CWWSB4.list").read_text().split() == [f"{n}.sed" for n in tset.names]
    assert (path / "FILTER" / "NIRCam_F444W.res").is_file()
    ab = np.loadtxt(path / "AB" / "Sbc_B2004a.NIRCam_F150W.withmadau.AB")
    assert ab[0, 0] == 0.0 and ab[-1, 0] == pytest.approx(12.0)
    expected = template_fluxes(tset, ab[[100, 500], 0], ("F150W",), igm="madau")[:, 1, 0]
    np.testing.assert_allclose(ab[[100, 500], 1], expected, rtol=1e-4)
    stamp = (path / "SED" / "CWWSB4.list").stat().st_mtime_ns
    assert write_bpz_data_dir(tset, ("F150W", "F444W"), list_name="CWWSB4", root=bpz_root) == path
    assert (path / "SED" / "CWWSB4.list").stat().st_mtime_ns == stamp
    assert write_bpz_data_dir(tset, ("F150W",), list_name="CWWSB4", root=bpz_root) != path


def test_zero_point_offsets_use_each_objects_own_reference_flux():
    # pz-rail-bpz's pre-estimator scales every object's model by another object's reference flux; objects of
    # very different brightness expose it. Here the exact answer is known.
    rng = np.random.default_rng(5)
    n, offsets = 200, np.array([0.0, 0.08, -0.05, 0.02])
    model = rng.uniform(0.5, 2.0, size=(n, 3, 4))
    best_true = rng.integers(0, 3, n)
    amp = 10 ** rng.uniform(-2, 2, n)
    flux = amp[:, None] * model[np.arange(n), best_true] * 10 ** (-0.4 * offsets)
    got, best = bpz_zero_point_offsets(flux, flux / 1000.0, model, ref_index=0)
    np.testing.assert_allclose(got, offsets, atol=1e-9)
    np.testing.assert_array_equal(best, best_true)


def test_broad_types():
    np.testing.assert_array_equal(broad_types(np.array([0, 1, 2, 3, 7]), [1, 2, 5]), [0, 1, 1, 2, 2])
    with pytest.raises(ConfigError, match="beyond the 8 templates"):
        broad_types(np.array([8]), [1, 2, 5])


def _stages(tmp_path, bpz_root, name, **inform_options):
    """The informer on the synthetic catalogs' own templates (CWWSB4): these tests measure BPZ's machinery."""
    inform_options.setdefault("templates", "CWWSB4")
    inform_options.setdefault("output_hdfn", True)
    inf = NIRCamBPZInformer.make_stage(
        name=f"bpz_inf_{name}",
        model=str(tmp_path / f"bpz_{name}.npz"),
        data_dir=str(bpz_root),
        **inform_options,
    )
    return inf


def _estimate(tmp_path, bpz_root, inf, table, name, **options):
    """Run the estimator with the informer's in-memory model (or a model file, when ``inf`` is a path)."""
    options.setdefault("templates", "CWWSB4")
    options.setdefault("no_prior", True)
    est = NIRCamBPZEstimator.make_stage(
        name=f"bpz_est_{name}",
        model=str(inf) if isinstance(inf, Path) else inf.get_handle("model"),
        data_dir=str(bpz_root),
        zmax=8.0,
        nzbins=801,
        output=str(tmp_path / f"bpz_{name}.hdf5"),
        **options,
    )
    return est.estimate(table).data


def test_informer_fits_offsets_and_high_snr_recovers_redshifts(tmp_path, bpz_root):
    offsets = np.zeros(len(BANDS))
    offsets[BANDS.index("F277W")] = 0.1
    train = synthetic_catalog(BANDS, 150, snr=100.0, seed=31, igm="madau", offsets_mag=offsets)
    inf = _stages(tmp_path, bpz_root, "acc", output_hdfn=False)
    with pytest.warns(BPZPriorWarning, match="fitted BPZ prior is unphysical.*HDF-N prior"):  # uniform z
        inf.inform(train)
    assert inf.model["priormodel"]["fo_arr"].tolist() == [0.35, 0.5]  # the HDF-N prior stands in
    assert np.load(tmp_path / "bpz_acc.npz")["priormodel/zo_arr"].tolist() == [0.431, 0.39, 0.0626]
    np.testing.assert_allclose(inf.model["zp_offsets"]["offsets"], offsets, atol=0.01)
    test = synthetic_catalog(BANDS, 150, snr=100.0, seed=32, igm="madau", offsets_mag=offsets)
    out = _estimate(tmp_path, bpz_root, inf, test, "acc")
    assert out.npdf == 150
    frac, _ = outlier_stats(np.ravel(out.ancil["zmode"]), test["redshift"])
    assert frac >= 0.95
    for key in ("zmean", "zmedian"):
        assert outlier_stats(np.ravel(out.ancil[key]), test["redshift"], threshold=0.05)[0] > 0.9


def test_scatter_grows_with_noise(tmp_path, bpz_root):
    inf = _stages(tmp_path, bpz_root, "noise")
    inf.inform(synthetic_catalog(BANDS, 20, snr=100.0, seed=40, igm="madau"))
    gappy = synthetic_catalog(BANDS, 4, snr=50.0, seed=42, igm="madau")
    gappy["mag_F090W"][:2] = np.nan  # not observed
    out = _estimate(tmp_path, bpz_root, inf, gappy, "gappy")
    assert out.npdf == 4 and np.all(np.isfinite(np.ravel(out.ancil["zmedian"])))
    stats = []
    for snr in (100.0, 20.0, 5.0):
        test = synthetic_catalog(BANDS, 100, snr=snr, seed=41, igm="madau")
        out = _estimate(tmp_path, bpz_root, inf, test, f"noise{int(snr)}")
        stats.append(outlier_stats(np.ravel(out.ancil["zmode"]), test["redshift"]))
    assert_worse_with_noise(stats)


def test_noisy_photometry_is_fitted_as_well_as_the_photometry_allows(tmp_path, bpz_root):
    """As for EAZY: at S/N 20 and 50, BPZ comes within 5 points of the maximum-likelihood limit (the generating
    templates' chi^2 minimum), which is itself far below 95% at S/N 20."""
    inf = _stages(tmp_path, bpz_root, "limit")
    inf.inform(synthetic_catalog(BANDS, 20, snr=100.0, seed=60, igm="madau"))
    for snr in (20.0, 50.0):
        test = synthetic_catalog(BANDS, 200, snr=snr, seed=61, igm="madau")
        limit, _ = outlier_stats(max_likelihood_redshifts(test, BANDS, igm="madau"), test["redshift"])
        out = _estimate(tmp_path, bpz_root, inf, test, f"limit{int(snr)}")
        frac, _ = outlier_stats(np.ravel(out.ancil["zmode"]), test["redshift"])
        assert frac >= limit - 0.05, (snr, frac, limit)


def test_model_file_is_pickle_free_and_round_trips(tmp_path, bpz_root):
    inf = _stages(tmp_path, bpz_root, "npz")
    inf.inform(synthetic_catalog(BANDS, 20, snr=100.0, seed=50, igm="madau"))
    path = tmp_path / "bpz_npz.npz"
    prior_keys = ("fo_arr", "kt_arr", "zo_arr", "km_arr", "a_arr", "mo", "nt_array")
    with np.load(path, allow_pickle=False) as raw:  # raises if any member needs pickle
        assert sorted(raw.files) == sorted([f"priormodel/{k}" for k in prior_keys] + ["zp_offsets/offsets"])
    back = load_npz_model(path)
    for key in prior_keys:
        np.testing.assert_array_equal(back["priormodel"][key], inf.model["priormodel"][key])
    np.testing.assert_array_equal(back["zp_offsets"]["offsets"], inf.model["zp_offsets"]["offsets"])
    test = synthetic_catalog(BANDS, 6, snr=30.0, seed=51, igm="madau")
    from_memory = _estimate(tmp_path, bpz_root, inf, test, "memory", no_prior=False)
    from_file = _estimate(tmp_path, bpz_root, path, test, "file", no_prior=False)
    np.testing.assert_array_equal(from_file.objdata["yvals"], from_memory.objdata["yvals"])


def test_option_errors(bpz_root):
    with pytest.raises(ConfigError, match="did you mean 'nircam_bands'"):
        NIRCamBPZEstimator.make_stage(name="bpz_bad1", nircam_band=["F444W"])
    with pytest.raises(ConfigError, match="nt_array \\[1, 2\\] sums to 3"):
        NIRCamBPZEstimator.make_stage(name="bpz_bad2", nt_array=[1, 2], data_dir=str(bpz_root))
    with pytest.raises(ConfigError, match="nt_array: give the templates per broad type"):
        NIRCamBPZEstimator.make_stage(
            name="bpz_bad3", templates=str(rail_sed_dir()), data_dir=str(bpz_root), nircam_bands=["F444W"]
        )


def test_prior_problems():
    good = dict(fo_arr=[0.35, 0.5], zo_arr=[0.4, 0.4, 0.06], a_arr=[2.5, 1.8, 0.9])
    assert bpz_prior_problems(good) == []
    bad = dict(good, fo_arr=[-0.8, 0.1], zo_arr=[-0.3, 0.4, 0.1])
    problems = bpz_prior_problems(bad)
    assert len(problems) == 2 and "fo=" in problems[0] and "zo_arr" in problems[1]


def test_nircam_bands_drive_the_lsst_options(bpz_root):
    bands = ["F115W", "F150W", "F277W", "F444W"]
    est = NIRCamBPZEstimator.make_stage(
        name="bpz_cw4", nircam_bands=bands, data_dir=str(bpz_root), mag_limit=29.0
    )
    assert est.config.bands == [f"mag_{b}" for b in bands]
    assert est.config.filter_list == [f"NIRCam_{b}" for b in bands]
    assert est.config.ref_band == "mag_F444W" and est.config.mag_limits["mag_F444W"] == 29.0
    assert np.isnan(est.config.unobserved_val) and est.config.spectra_file == "COSMOS_seds.list"
    assert est.config.nt_array == [10, 9, 12] and est.config.no_prior is False
    assert str(est.bpz_ref_data_path).startswith(str(bpz_root))
    kept = NIRCamBPZEstimator.make_stage(
        name="bpz_cw4_ref", nircam_bands=bands, nircam_ref_band="F115W", data_dir=str(bpz_root)
    )
    assert kept.config.ref_band == "mag_F115W"


def test_flux_inputs_keep_measured_fluxes():
    flux = np.array([[1000.0, -5.0, np.nan]])
    err = np.array([[10.0, 4.0, 3.0]])
    out = bpz_flux_inputs(flux, err, zp_offsets=[0.1, 0.0, 0.0], zp_errors=[0.0, 0.0, 0.0], mag_err_min=0.0,
                          ref_index=0)
    unit = 10 ** (-0.4 * 31.4)
    np.testing.assert_allclose(out["flux"][0, :2], [1000.0 * unit * 10**0.04, -5.0 * unit])
    np.testing.assert_allclose(out["flux_err"][0, :2], [10.0 * unit * 10**0.04, 4.0 * unit])
    assert out["flux"][0, 2] == 0.0 and out["flux_err"][0, 2] == 1e28  # not observed: flat likelihood
    assert out["mag0"][0] == pytest.approx(31.4 - 2.5 * np.log10(1000.0 * 10**0.04))
    with_zp = bpz_flux_inputs(flux, err, zp_offsets=[0.0] * 3, zp_errors=[0.05] * 3, mag_err_min=0.0, ref_index=1)
    assert with_zp["flux_err"][0, 0] > 10.0 * unit and with_zp["mag0"][0] == 99.0


def test_fluxes_and_magnitudes_agree_for_detections(tmp_path, bpz_root):
    inf = _stages(tmp_path, bpz_root, "fluxmag")
    inf.inform(synthetic_catalog(BANDS, 20, snr=100.0, seed=70, igm="madau"))
    test = synthetic_catalog(BANDS, 30, snr=30.0, seed=71, igm="madau")
    for band in BANDS:
        mag, err = test[f"mag_{band}"], test[f"magerr_{band}"]
        det = mag < 90
        test[f"flux_{band}"] = np.where(det, 10 ** (-0.4 * (mag - 31.4)), 0.0)
        test[f"fluxerr_{band}"] = np.where(
            det, test[f"flux_{band}"] * (10 ** (0.4 * err) - 1), 10 ** (-0.4 * (err - 31.4))
        )
    from_flux = _estimate(tmp_path, bpz_root, inf, test, "viaflux")
    from_mag = _estimate(tmp_path, bpz_root, inf, test, "viamag", use_fluxes=False)
    np.testing.assert_allclose(np.ravel(from_flux.ancil["zmode"]), np.ravel(from_mag.ancil["zmode"]), atol=0.011)

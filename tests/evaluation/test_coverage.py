"""Coverage and PIT: calibrated ensembles reach the nominal coverage, overconfident ones fall short."""

import numpy as np
import pytest
import qp
from scipy.stats import norm

from rail.deepdisc.evaluation.coverage import (
    CREDIBILITY_LEVELS,
    calibration_error,
    central_interval_coverage,
    coverage_from_pit,
    ensemble_moments,
    ensemble_quantiles,
    gridded_ensemble,
    pit_values,
)
from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.mixture import from_qp
from tests.helpers.evalhelpers import gaussian_mixture_ensemble

N_OBJECTS = 4000
MAX_PULL = 4.0  # binomial standard errors allowed for a calibrated ensemble


@pytest.fixture(scope="module")
def truth():
    return np.random.default_rng(11).uniform(0.2, 6.0, N_OBJECTS)


def test_coverage_from_pit_known_values():
    res = coverage_from_pit([0.5, 0.2, 0.9, 0.99], [0.5, 0.9])
    np.testing.assert_allclose(res.coverage, [0.25, 0.75])
    assert res.n == 4
    np.testing.assert_allclose(res.stderr, np.sqrt([0.25 / 4, 0.09 / 4]))


def test_calibrated_gaussian_mixtures_give_nominal_coverage(truth):
    ens, _ = gaussian_mixture_ensemble(truth, sigma=0.05 * (1 + truth), seed=1)
    res = central_interval_coverage(ens, truth)
    pulls = np.abs(res.coverage - res.levels) / res.stderr
    assert pulls.max() < MAX_PULL, (res.coverage, res.levels)
    assert calibration_error(res)["mean_abs"] < 0.02


def test_overconfident_pdfs_under_cover_and_underconfident_over_cover(truth):
    narrow, _ = gaussian_mixture_ensemble(truth, sigma=0.05 * (1 + truth), width_factor=0.5, seed=2)
    wide, _ = gaussian_mixture_ensemble(truth, sigma=0.05 * (1 + truth), width_factor=2.0, seed=2)
    low, high = central_interval_coverage(narrow, truth), central_interval_coverage(wide, truth)
    mid = (low.levels >= 0.3) & (low.levels <= 0.95)
    assert np.all(low.coverage[mid] < low.levels[mid] - 5 * low.stderr[mid])
    assert np.all(high.coverage[mid] > high.levels[mid] + 5 * high.stderr[mid])
    # a Gaussian half as wide as the truth covers 2 Phi(z_c / 2) - 1 at credibility c
    expected = 2 * norm.cdf(norm.ppf(0.5 + low.levels / 2) / 2) - 1
    np.testing.assert_allclose(low.coverage, expected, atol=MAX_PULL * low.stderr.max())
    assert calibration_error(low)["mean_signed"] < 0 < calibration_error(high)["mean_signed"]


def test_mixture_pit_matches_qp_cdf_and_norm_path(truth):
    z = truth[:200]
    ens, centre = gaussian_mixture_ensemble(z, sigma=0.1, n_components=3, seed=4)
    fast = pit_values(ens, z)
    np.testing.assert_allclose(fast, np.asarray(ens.cdf(z[:, None])).ravel(), atol=1e-10)
    gauss = qp.Ensemble(qp.stats.norm, data=dict(loc=centre[:, None], scale=np.full((200, 1), 0.1)))
    assert from_qp(gauss) is None
    np.testing.assert_allclose(pit_values(gauss, z), fast, atol=1e-10)


def test_nan_truth_is_skipped():
    ens, _ = gaussian_mixture_ensemble(np.array([1.0, 2.0, 3.0]), sigma=0.1)
    pit = pit_values(ens, [1.0, np.nan, 3.0])
    assert np.isnan(pit[1]) and np.isfinite(pit[[0, 2]]).all()
    assert coverage_from_pit(pit, [0.5]).n == 2


def test_moments_and_quantiles_of_a_mixture():
    ens = qp.Ensemble(qp.mixmod, data=dict(means=np.array([[0.0, 2.0], [1.0, 1.0]]),
                                           stds=np.array([[1.0, 1.0], [0.2, 0.2]]),
                                           weights=np.array([[1.0, 1.0], [0.3, 0.7]])))
    mean, std = ensemble_moments(ens)
    np.testing.assert_allclose(mean, [1.0, 1.0])
    np.testing.assert_allclose(std, [np.sqrt(2.0), 0.2])  # variance = 1 + (spread of means)^2 = 2
    q = ensemble_quantiles(ens, [0.16, 0.5, 0.84])
    np.testing.assert_allclose(q[1], 1.0 + 0.2 * norm.ppf([0.16, 0.5, 0.84]), atol=1e-9)
    np.testing.assert_allclose(q[0, 1], 1.0, atol=1e-9)  # symmetric mixture: median at the centre
    np.testing.assert_allclose(from_qp(ens).cdf(q[:, :1]).ravel(), [0.16, 0.16], atol=1e-9)


def test_default_levels_span_the_issue_range():
    assert min(CREDIBILITY_LEVELS) == 0.1 and max(CREDIBILITY_LEVELS) == 0.99


@pytest.mark.parametrize("call, match", [
    (lambda ens: coverage_from_pit([0.5], [0.0, 0.5]), "strictly between 0 and 1"),
    (lambda ens: pit_values(ens, [1.0]), "ztrue has shape"),
    (lambda ens: ensemble_quantiles(ens, [1.0]), "quantiles must lie strictly"),
])
def test_errors(call, match):
    ens, _ = gaussian_mixture_ensemble(np.array([1.0, 2.0]), sigma=0.1)
    with pytest.raises(DeepDiscError, match=match):
        call(ens)


def test_gridded_ensemble_matches_qp_pdf():
    z = np.array([0.5, 2.0, 4.0])
    ens, _ = gaussian_mixture_ensemble(z, sigma=np.array([0.1, 0.3, 0.5]), n_components=3, seed=6)
    ens.set_ancil(dict(zmode=z))
    grid = np.linspace(0, 8, 801)
    gridded = gridded_ensemble(ens, grid)
    np.testing.assert_allclose(np.asarray(gridded.objdata["yvals"]), ens.pdf(grid), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(gridded.ancil["zmode"], z)
    with pytest.raises(DeepDiscError, match="increasing 1-D grid"):
        gridded_ensemble(ens, [1.0, 0.5])


def test_gridded_ensemble_keeps_pdfs_narrower_than_the_grid():
    import qp

    from rail.deepdisc.evaluation.coverage import gridded_ensemble

    fine = np.linspace(0.0, 4.0, 401)  # step 0.01, as the peers write
    spike = np.where(np.isclose(fine, 1.01), 1.0, 0.0)  # one point wide, between two 0.02-grid points
    wide = np.exp(-0.5 * ((fine - 2.0) / 0.3) ** 2)
    ens = qp.Ensemble(qp.interp, data=dict(xvals=fine, yvals=np.stack([spike, wide])))
    coarse = np.linspace(0.0, 4.0, 201)
    out = gridded_ensemble(ens, coarse)
    y = out.objdata["yvals"]
    np.testing.assert_allclose(np.trapezoid(y, coarse, axis=1), 1.0, rtol=1e-6)
    assert abs(coarse[np.argmax(y[0])] - 1.01) <= 0.02  # the spike stays where it was
    direct = np.asarray(ens.pdf(coarse))[1]  # an ordinary PDF is sampled as before
    np.testing.assert_allclose(y[1], direct / np.trapezoid(direct, coarse), rtol=1e-6)

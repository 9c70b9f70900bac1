"""Known-answer cases of the hierarchical Bayesian combination."""

import numpy as np
import pytest

from rail.deepdisc.consensus import ConsensusModel, ConsensusSettings, combine_pdfs, fit_consensus
from rail.deepdisc.consensus.fit import calibrated_pdfs
from rail.deepdisc.consensus.grid import pdfs_on_grid, values_at
from rail.deepdisc.consensus.hb import bin_index, fit_bad_fraction, magnitude_bins
from rail.deepdisc.constants import redshift_grid
from rail.deepdisc.evaluation.coverage import coverage_from_pit
from rail.deepdisc.exceptions import DeepDiscError
from tests.helpers.consensus_helpers import gaussian_rows, two_methods

ZGRID = redshift_grid()


def _std(p):
    mean = np.trapezoid(p * ZGRID, ZGRID, axis=1)
    return np.sqrt(np.trapezoid(p * (ZGRID - mean[:, None]) ** 2, ZGRID, axis=1)), mean


def _fixed_model(n_methods=2, beta=1.0, bad=1e-3):
    return ConsensusModel(methods=tuple(f"m{k}" for k in range(n_methods)), temperature=np.ones(n_methods),
                          bad_fraction=np.full((n_methods, 1), bad), bad_fraction_all=np.full(n_methods, bad),
                          beta=beta, mag_band="F444W", mag_edges=np.zeros(0))


def _pit(p, z):
    from rail.deepdisc.consensus.calibration import pit_of

    return pit_of(ZGRID, p, z)


def test_two_agreeing_gaussians_combine_narrower():
    means = np.array([1.0, 2.5, 4.0])
    sigma = np.array([0.1, 0.2, 0.15])
    a = gaussian_rows(ZGRID, means, sigma)
    out = combine_pdfs(_fixed_model(bad=0.0), [a, a.copy()])
    std, mean = _std(out)
    np.testing.assert_allclose(std, sigma / np.sqrt(2), rtol=2e-3)  # product of two equal Gaussians
    np.testing.assert_allclose(mean, means, atol=1e-6)


def test_fitted_consensus_of_independent_methods_is_narrower_than_either():
    rng = np.random.default_rng(4)
    n = 600
    z = rng.uniform(0.5, 5.0, n)
    sig = 0.05 * (1 + z)
    a = gaussian_rows(ZGRID, z + rng.normal(0, 1, n) * sig, sig)
    b = gaussian_rows(ZGRID, z + rng.normal(0, 1, n) * sig, sig)
    model = fit_consensus([a, b], z, methods=["a", "b"])
    assert 0.8 < model.beta < 1.25  # independent methods
    out = combine_pdfs(model, [a, b])
    std, _ = _std(out)
    assert np.all(std < 0.85 * np.minimum(_std(a)[0], _std(b)[0]))
    cov = coverage_from_pit(_pit(out, z), [0.68]).coverage[0]
    assert abs(cov - 0.68) < 0.06


def test_confidently_wrong_method_is_down_weighted():
    data = two_methods(3000, seed=1, bad_fraction=0.2)
    a, b = pdfs_on_grid(data["A"], ZGRID), pdfs_on_grid(data["B"], ZGRID)
    lab = np.isfinite(data["labels"])
    model = fit_consensus([a[lab], b[lab]], data["labels"][lab], methods=["A", "B"])
    assert model.bad_fraction_all[0] < 0.02
    assert 0.14 < model.bad_fraction_all[1] < 0.24  # ~20% wrong (minus chance hits)
    test = ~lab
    out = combine_pdfs(model, [a[test], b[test]])
    z, wrong = data["ztrue"][test], data["bad"][test]
    pit = _pit(out, z)
    inside95 = np.abs(pit - 0.5) <= 0.475
    assert inside95[wrong].mean() > 0.9  # the consensus covers the truth where B is confidently wrong
    assert (np.abs(_pit(b[test], z) - 0.5) <= 0.475)[wrong].mean() < 0.05  # B alone does not
    # and its peak sits at the truth, not at B's wrong peak
    zmode = ZGRID[np.argmax(out, axis=1)]
    assert np.mean(np.abs(zmode - z)[wrong] / (1 + z[wrong]) < 0.15) > 0.9


def test_flat_method_leaves_the_other_unchanged():
    rng = np.random.default_rng(2)
    n = 400
    z = rng.uniform(0.5, 5.0, n)
    sig = 0.05 * (1 + z)
    a = gaussian_rows(ZGRID, z + rng.normal(0, 1, n) * sig, sig)
    flat = np.full_like(a, 1.0 / (ZGRID[-1] - ZGRID[0]))
    fixed = _fixed_model(bad=0.05)
    exact = combine_pdfs(fixed, [a, flat])
    np.testing.assert_allclose(exact, calibrated_pdfs(fixed, 0, a), rtol=1e-9, atol=1e-12)
    model = fit_consensus([a, flat], z, methods=["a", "flat"])
    alone = fit_consensus([a], z, methods=["a"])
    assert model.temperature[0] == pytest.approx(alone.temperature[0], rel=1e-6)
    assert model.bad_fraction_all[0] == pytest.approx(alone.bad_fraction_all[0], rel=1e-6)
    assert model.beta == pytest.approx(alone.beta, rel=1e-3) and model.beta == pytest.approx(1.0, abs=0.1)
    out, ref = combine_pdfs(model, [a, flat]), combine_pdfs(alone, [a])
    assert np.max(np.abs(out - ref)) < 1e-3 * np.min(ref.max(axis=1))


def test_every_row_is_a_normalised_pdf():
    data = two_methods(300, seed=3)
    a, b = pdfs_on_grid(data["A"], ZGRID), pdfs_on_grid(data["B"], ZGRID)
    b[:5] = 0.0  # rows without information
    b[5, 100] = np.inf
    model = fit_consensus([a, b], data["labels"], data["mag"], methods=["A", "B"])
    out = combine_pdfs(model, [a, b], data["mag"])
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    np.testing.assert_allclose(np.trapezoid(out, ZGRID, axis=1), 1.0, rtol=1e-12)


def test_bad_fraction_known_answer():
    u = 1.0 / 12.0
    a = np.r_[np.zeros(300), np.full(700, 10 * u)]  # 0.3/f = 6.3/(10 - 9f)  =>  f = 1/3
    assert fit_bad_fraction(a, u) == pytest.approx(1 / 3, abs=1e-9)
    assert fit_bad_fraction(np.full(50, 10 * u), u, 1e-3) == 1e-3  # never wrong: the floor
    assert fit_bad_fraction(np.zeros(50), u) == 1.0


def test_magnitude_bins_merge_until_each_has_enough_labels():
    mag = np.r_[np.full(100, 23.5), np.full(10, 24.5), np.full(60, 25.5), np.full(100, 26.5), [np.nan]]
    edges = magnitude_bins(mag, [24.0, 25.0, 26.0], 50)
    assert edges.tolist() == [24.0, 26.0]  # the sparse 24-25 bin joins its sparser neighbour
    assert magnitude_bins(mag, [24.0, 25.0, 26.0], 1000).tolist() == []
    np.testing.assert_array_equal(bin_index(np.array([23.0, 25.0, 27.0, np.nan]), edges), [0, 1, 2, -1])


def test_per_bin_bad_fractions_follow_the_data():
    data = two_methods(4000, seed=5, bad_fraction=0.0)
    a, b = pdfs_on_grid(data["A"], ZGRID), pdfs_on_grid(data["B"], ZGRID)
    faint = data["mag"] > 27.0
    rng = np.random.default_rng(0)
    wrong = faint & (rng.uniform(size=len(faint)) < 0.4)
    b[wrong] = np.roll(b[wrong], 250, axis=1)  # B fails only on faint objects: 2.5 off in z
    model = fit_consensus([a, b], data["ztrue"], data["mag"], methods=["A", "B"],  # (selection: test_selection)
                          settings=ConsensusSettings(mag_edges=(25.0, 27.0), select_methods=False,
                                                    beta_by_magnitude=False))
    assert model.bad_fraction[1, 0] < 0.02 and model.bad_fraction[1, 1] < 0.02
    assert 0.3 < model.bad_fraction[1, 2] < 0.45


def test_too_few_labels_is_an_error():
    a = gaussian_rows(ZGRID, np.ones(20), np.full(20, 0.1))
    labels = np.full(20, np.nan)
    labels[:3] = 1.0
    with pytest.raises(DeepDiscError, match="only 3 labelled objects"):
        fit_consensus([a, a], labels, methods=["a", "b"])
    prior = fit_consensus([a, a], labels, methods=["a", "b"], settings=ConsensusSettings(prior_without_labels=True))
    assert prior.n_labelled == 0 and prior.beta == 2.0 and np.all(prior.temperature == 1.0)
    out = combine_pdfs(prior, [a, a])
    np.testing.assert_allclose(out, calibrated_pdfs(prior, 0, a), rtol=1e-9)  # beta = M: geometric mean


def test_values_at_interpolates_rows():
    rows = np.vstack([ZGRID, 2 * ZGRID])
    np.testing.assert_allclose(values_at(ZGRID, rows, np.array([1.005, 3.0])), [1.005, 6.0])
    assert values_at(ZGRID, rows, np.array([13.0, -1.0])).tolist() == [0.0, 0.0]

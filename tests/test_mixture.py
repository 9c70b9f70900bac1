"""Gaussian-mixture combination and point estimates, checked against numeric integration on a fine grid."""

import numpy as np
import pytest

from rail.deepdisc.mixture import (
    Mixture,
    combine_members,
    mixture_cdf,
    mixture_mean,
    mixture_median,
    mixture_mode,
    mixture_pdf,
    to_qp,
)

FINE = np.linspace(-4.0, 12.0, 320_001)


def _random_mixtures(n=6, k=4, seed=3):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(k), size=n)
    return Mixture(w, rng.uniform(0.2, 5.0, (n, k)), rng.uniform(0.05, 0.8, (n, k)))


def test_pdf_normalised_and_cdf_is_its_integral():
    mix = _random_mixtures()
    pdf = mixture_pdf(mix, FINE)
    np.testing.assert_allclose(np.trapezoid(pdf, FINE, axis=1), 1.0, atol=1e-8)
    z = np.full(mix.n_objects, 1.7)
    numeric = np.trapezoid(np.where(FINE <= 1.7, pdf, 0.0), FINE, axis=1)
    np.testing.assert_allclose(mixture_cdf(mix, z), numeric, atol=1e-4)


def test_mean_matches_integration():
    mix = _random_mixtures()
    pdf = mixture_pdf(mix, FINE)
    numeric = np.trapezoid(pdf * FINE, FINE, axis=1)
    np.testing.assert_allclose(mixture_mean(mix), numeric, atol=1e-7)


def test_median_matches_integrated_cdf():
    mix = _random_mixtures()
    pdf = mixture_pdf(mix, FINE)
    cdf = np.cumsum(pdf, axis=1) * (FINE[1] - FINE[0])
    numeric = FINE[np.argmax(cdf >= 0.5, axis=1)]
    med = mixture_median(mix)
    np.testing.assert_allclose(med, numeric, atol=1e-3)
    np.testing.assert_allclose(mixture_cdf(mix, med), 0.5, atol=1e-9)


def test_mode_is_highest_grid_point():
    mix = _random_mixtures()
    grid = np.linspace(0.0, 6.0, 601)
    expected = grid[np.argmax(mixture_pdf(mix, grid), axis=1)]
    np.testing.assert_array_equal(mixture_mode(mix, grid), expected)
    fine_mode = FINE[np.argmax(mixture_pdf(mix, FINE), axis=1)]
    inside = (fine_mode > 0) & (fine_mode < 6)
    np.testing.assert_allclose(mixture_mode(mix, grid)[inside], fine_mode[inside], atol=0.01)


@pytest.mark.parametrize("seed", range(4))
def test_mode_window_equals_full_grid_search(seed):
    # wide and narrow mixtures, some partly or wholly outside the grid, some with zero-weight components
    rng = np.random.default_rng(seed)
    n, k = 300, 6
    w = rng.dirichlet(np.ones(k), size=n)
    w[rng.uniform(size=(n, k)) < 0.2] = 0.0
    w[w.sum(axis=1) == 0, 0] = 1.0
    mix = Mixture(w, rng.uniform(-2.0, 9.0, (n, k)), rng.uniform(0.01, 2.0, (n, k)))
    grid = np.linspace(0.0, 6.0, 601)
    full = grid[np.argmax(mixture_pdf(mix, grid), axis=1)]
    np.testing.assert_array_equal(mixture_mode(mix, grid), full)


def test_mode_grid_must_increase():
    mix = _random_mixtures(n=1)
    with pytest.raises(ValueError, match="strictly increasing"):
        mixture_mode(mix, np.array([1.0, 0.5]))


def test_bimodal_point_estimates_by_hand():
    # 0.7 N(1, 0.1) + 0.3 N(3, 0.1): mean 1.6, mode 1, median at 1 + 0.1 * Phi^-1(0.5/0.7)
    from scipy.stats import norm

    mix = Mixture(np.array([[0.7, 0.3]]), np.array([[1.0, 3.0]]), np.array([[0.1, 0.1]]))
    assert mixture_mean(mix)[0] == pytest.approx(1.6)
    assert mixture_mode(mix, np.linspace(0, 4, 401))[0] == pytest.approx(1.0)
    assert mixture_median(mix)[0] == pytest.approx(1.0 + 0.1 * norm.ppf(0.5 / 0.7), abs=1e-8)


def test_combine_weights_are_member_times_component():
    a = Mixture(np.array([[0.2, 0.8]]), np.array([[1.0, 2.0]]), np.array([[0.1, 0.2]]))
    b = Mixture(np.array([[1.0]]), np.array([[4.0]]), np.array([[0.3]]))
    c = combine_members([a, b], [3.0, 1.0])
    np.testing.assert_allclose(c.weights, [[0.75 * 0.2, 0.75 * 0.8, 0.25]])
    np.testing.assert_allclose(c.means, [[1.0, 2.0, 4.0]])
    np.testing.assert_allclose(c.stds, [[0.1, 0.2, 0.3]])
    # the combined pdf is the weighted sum of the members' pdfs
    z = np.linspace(0, 5, 101)
    np.testing.assert_allclose(mixture_pdf(c, z), 0.75 * mixture_pdf(a, z) + 0.25 * mixture_pdf(b, z))
    assert mixture_mean(c)[0] == pytest.approx(0.75 * 1.8 + 0.25 * 4.0)


def test_combine_errors():
    a = Mixture(np.ones((2, 1)), np.ones((2, 1)), np.ones((2, 1)))
    b = Mixture(np.ones((3, 1)), np.ones((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="different object counts"):
        combine_members([a, b], [0.5, 0.5])
    with pytest.raises(ValueError, match="one weight per member"):
        combine_members([a], [0.5, 0.5])
    with pytest.raises(ValueError, match="not all zero"):
        combine_members([a], [0.0])


def test_bad_stds_rejected():
    with pytest.raises(ValueError, match="stds must be finite and > 0"):
        mixture_mean(Mixture(np.ones((1, 1)), np.ones((1, 1)), np.zeros((1, 1))))


def test_to_qp_pdf_and_roundtrip(tmp_path):
    import qp

    mix = _random_mixtures(n=3)
    ens = to_qp(mix, {"object_id": np.arange(3)})
    z = np.linspace(0, 6, 61)
    np.testing.assert_allclose(ens.pdf(z), mixture_pdf(mix, z), rtol=1e-10)
    ens.write_to(str(tmp_path / "pz.hdf5"))
    back = qp.read(str(tmp_path / "pz.hdf5"))
    np.testing.assert_array_equal(back.objdata["means"], mix.means)
    np.testing.assert_array_equal(back.ancil["object_id"], np.arange(3))


def test_std_and_quantiles_match_integration():
    mix = _random_mixtures()
    pdf = mixture_pdf(mix, FINE)
    mean = np.trapezoid(pdf * FINE, FINE, axis=1)
    np.testing.assert_allclose(mix.std(), np.sqrt(np.trapezoid(pdf * (FINE - mean[:, None]) ** 2, FINE, axis=1)),
                               atol=1e-6)
    cdf = np.cumsum(pdf, axis=1) * (FINE[1] - FINE[0])
    for q in (0.16, 0.84):
        got = mix.quantile(q, 1e-12)
        np.testing.assert_allclose(got, FINE[np.argmax(cdf >= q, axis=1)], atol=1e-3)
        np.testing.assert_allclose(mixture_cdf(mix, got), q, atol=1e-11)
    np.testing.assert_array_equal(mix.median(), mixture_median(mix))


def test_from_qp_normalises_and_skips_other_representations():
    import qp

    from rail.deepdisc.exceptions import DeepDiscError
    from rail.deepdisc.mixture import from_qp

    mix = _random_mixtures(n=3)
    back = from_qp(to_qp(Mixture(2.0 * mix.weights, mix.means, mix.stds)))
    np.testing.assert_allclose(back.weights, mix.weights, rtol=1e-12)
    np.testing.assert_array_equal(back.means, mix.means)
    norm = qp.Ensemble(qp.stats.norm, data=dict(loc=np.zeros((2, 1)), scale=np.ones((2, 1))))
    assert from_qp(norm) is None
    with pytest.warns(RuntimeWarning), pytest.raises(DeepDiscError, match="non-positive or NaN total weight"):
        from_qp(qp.Ensemble(qp.mixmod, data=dict(means=np.zeros((1, 2)), stds=np.ones((1, 2)),
                                                 weights=np.zeros((1, 2)))))

"""Paper metrics: hand-computed known answers, binning, flag subsets and errors."""

import numpy as np
import pytest

from rail.deepdisc.evaluation.binned import (
    BOX_SIZE_EDGES,
    binned_point_metrics,
    detection_completeness,
    flag_subsets,
    metrics_table,
)
from rail.deepdisc.evaluation.metrics import (
    IQR_PER_SIGMA,
    bootstrap_errors,
    normalised_residuals,
    outlier_fraction,
    photoz_bias,
    point_metrics,
    scaled_residuals,
    sigma_iqr,
)
from rail.deepdisc.exceptions import DeepDiscError

# ez = dz / (1 + z) = [0.05, 0, -0.25, 1/3, 0]; sorted [-0.25, 0, 0, 0.05, 1/3]
ZPHOT = np.array([1.1, 2.0, 0.5, 3.0, 1.0])
ZTRUE = np.array([1.0, 2.0, 1.0, 2.0, 1.0])
SIGMA = np.array([0.1, 0.2, 0.25, 0.5, 0.1])  # dz / sigma = [1, 0, -2, 2, 0]


def test_scaled_residuals_known_values():
    np.testing.assert_allclose(scaled_residuals(ZPHOT, ZTRUE), [0.05, 0.0, -0.25, 1 / 3, 0.0])


def test_bias_sigma_iqr_outliers_hand_computed():
    assert photoz_bias(ZPHOT, ZTRUE) == pytest.approx(0.0)
    # numpy linear percentiles of 5 values: q25 = 2nd value (0), q75 = 4th value (0.05)
    assert sigma_iqr(ZPHOT, ZTRUE) == pytest.approx(0.05 / 1.349)
    assert outlier_fraction(ZPHOT, ZTRUE) == pytest.approx(0.4)
    assert outlier_fraction(ZPHOT, ZTRUE, threshold=0.3) == pytest.approx(0.2)


def test_normalised_residuals_and_summary():
    np.testing.assert_allclose(normalised_residuals(ZPHOT, ZTRUE, SIGMA), [1, 0, -2, 2, 0])
    m = point_metrics(ZPHOT, ZTRUE, SIGMA)
    assert m.n == 5 and m.norm_median == pytest.approx(0.0)
    assert m.norm_sigma_iqr == pytest.approx(1.0 / IQR_PER_SIGMA)  # q25 = 0, q75 = 1


def test_nan_truth_is_ignored():
    zt = np.append(ZTRUE, np.nan)
    zp = np.append(ZPHOT, 7.0)
    m = point_metrics(zp, zt)
    assert m.n == 5 and m.outlier_fraction == pytest.approx(0.4)
    assert np.isnan(normalised_residuals([1.0], [1.0], [0.0])[0])


def test_empty_selection_gives_nan():
    m = point_metrics([], [])
    assert m.n == 0 and np.isnan(m.bias) and np.isnan(m.sigma_iqr) and np.isnan(m.outlier_fraction)


def test_binned_metrics_known_values():
    mags = [24.0, 25.0, 26.0, 27.0, 28.0]
    rows = binned_point_metrics(ZPHOT, ZTRUE, mags, [24, 26, 28])
    assert [r["n"] for r in rows] == [2, 3]  # the right edge 28 belongs to the last bin
    assert rows[0]["bias"] == pytest.approx(0.025) and rows[0]["outlier_fraction"] == 0.0
    assert rows[1]["bias"] == pytest.approx(0.0) and rows[1]["outlier_fraction"] == pytest.approx(2 / 3)
    assert rows[0]["centre"] == 25.0


def test_completeness_known_values():
    rows = detection_completeness([True, False, True, True, False], [24.5, 28.5, 25.0, 28.1, np.nan],
                                  [24, 26, 30])
    assert [(r["n"], r["n_detected"]) for r in rows] == [(2, 2), (2, 1)]
    assert rows[1]["completeness"] == 0.5 and rows[1]["completeness_err"] == pytest.approx(np.sqrt(0.25 / 2))


def test_completeness_by_box_size_known_values():
    # a constructed catalog: small boxes all detected, mid-size half, the large ones (bright galaxies) none
    side = np.array([3.0, 6.0, 6.0, 12.0, 20.0, 20.0, 40.0, 40.0, 80.0, 100.0, 128.0])
    detected = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0], bool)
    rows = {(r["lo"], r["hi"]): r for r in detection_completeness(detected, side, BOX_SIZE_EDGES)}
    assert rows[(1.0, 4.0)]["completeness"] == 1.0 and rows[(4.0, 8.0)]["n"] == 2
    assert rows[(16.0, 32.0)]["completeness"] == 0.5 and rows[(32.0, 64.0)]["completeness"] == 0.5
    assert rows[(64.0, 128.0)]["n"] == 2 and rows[(64.0, 128.0)]["completeness"] == 0.0
    assert rows[(128.0, 1024.0)]["n"] == 1  # a box as large as the tile has its own bin
    assert sum(r["n"] for r in rows.values()) == len(side)


def test_flag_subsets_and_table():
    flags = {"detected": np.array([1, 1, 0, 0, 1], bool), "forced": np.array([0, 0, 1, 1, 0], bool),
             "spec_rep": np.array([1, 0, 1, 0, 1], bool)}
    subsets = flag_subsets(flags, 5)
    assert list(subsets) == ["all", "detected", "forced", "spec_rep", "not_spec_rep"]
    np.testing.assert_array_equal(subsets["not_spec_rep"], [False, True, False, True, False])
    rows = metrics_table(ZPHOT, ZTRUE, sigma=SIGMA, magnitude=np.arange(24.0, 29.0), mag_edges=[24, 26, 29],
                         z_edges=[0, 1.5, 3], flags=flags)
    overall = {r["subset"]: r for r in rows if r["binning"] == "all"}
    assert overall["forced"]["n"] == 2
    # forced: ez = [-0.25, 1/3] -> both outliers
    assert overall["forced"]["outlier_fraction"] == 1.0
    zrows = [r for r in rows if r["subset"] == "all" and r["binning"] == "z"]
    assert [r["n"] for r in zrows] == [3, 2]


@pytest.mark.parametrize("call, match", [
    (lambda: scaled_residuals([1.0, 2.0], [1.0]), "zphot has 2 values, expected 1"),
    (lambda: scaled_residuals([1.0], [-1.0]), "ztrue must be > -1"),
    (lambda: outlier_fraction([1.0], [1.0], threshold=0), "threshold must be positive"),
    (lambda: binned_point_metrics([1.0], [1.0], [1.0], [2, 1]), "strictly increasing"),
    (lambda: metrics_table([1.0], [1.0], mag_edges=[1, 2]), "mag_edges given without magnitude"),
    (lambda: flag_subsets({"detected": [True]}, 2), "flag 'detected' has shape"),
    (lambda: detection_completeness([True], [1.0, 2.0], [0, 3]), "detected has shape"),
])
def test_errors(call, match):
    with pytest.raises(DeepDiscError, match=match):
        call()


def test_bootstrap_errors_match_the_known_sampling_errors():
    rng = np.random.default_rng(3)
    n, sigma, eta = 4000, 0.05, 0.2
    ztrue = rng.uniform(0.5, 3.0, n)
    ez = np.where(rng.uniform(size=n) < eta, rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 0.6, n),
                  rng.normal(0.0, sigma, n))
    err = bootstrap_errors(ztrue + ez * (1 + ztrue), ztrue, n_boot=300, seed=1)
    assert err["outlier_fraction"] == pytest.approx(np.sqrt(eta * (1 - eta) / n), rel=0.2)  # binomial
    # the median's error 1 / (2 f(0) sqrt(n)), f(0) = (1 - eta) / (sigma sqrt(2 pi)) (outliers are far off)
    assert err["bias"] == pytest.approx(np.sqrt(2 * np.pi) * sigma / (2 * (1 - eta) * np.sqrt(n)), rel=0.3)
    assert 0.0 < err["sigma_iqr"] < 0.01
    small = bootstrap_errors(ztrue[:100] + ez[:100] * (1 + ztrue[:100]), ztrue[:100], seed=1)
    assert small["outlier_fraction"] > 4 * err["outlier_fraction"]  # ~ 1 / sqrt(n)
    assert np.isnan(bootstrap_errors([1.0], [1.0])["bias"])
    with pytest.raises(DeepDiscError):
        bootstrap_errors([1.0, 2.0], [1.0, 2.0], n_boot=1)

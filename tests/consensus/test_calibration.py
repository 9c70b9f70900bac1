"""Calibration of one method: the temperature widens an over-confident method, the PIT map removes a bias."""

import numpy as np
import pytest

from rail.deepdisc.consensus import ConsensusSettings, fit_consensus
from rail.deepdisc.consensus.calibration import fit_pit_map, pit_of, temper
from rail.deepdisc.consensus.fit import calibrated_pdfs
from rail.deepdisc.consensus.grid import pdfs_on_grid
from rail.deepdisc.constants import redshift_grid
from rail.deepdisc.evaluation.coverage import coverage_from_pit
from tests.helpers.consensus_helpers import gaussian_rows, two_methods

ZGRID = redshift_grid()


def _coverage(p, z, levels=(0.68, 0.95)):
    return coverage_from_pit(pit_of(ZGRID, p, z), levels).coverage


def test_temperature_of_a_gaussian_scales_its_variance():
    p = gaussian_rows(ZGRID, np.array([2.0]), np.array([0.1]))
    wide = temper(ZGRID, p, 4.0)
    mean = np.trapezoid(wide * ZGRID, ZGRID, axis=1)
    std = np.sqrt(np.trapezoid(wide * (ZGRID - mean[:, None]) ** 2, ZGRID, axis=1))
    assert std[0] == pytest.approx(0.2, rel=1e-3) and mean[0] == pytest.approx(2.0, abs=1e-9)


def test_calibration_widens_an_overconfident_method():
    data = two_methods(3000, seed=7, bad_fraction=0.1, overconfidence=2.0)  # B's PDFs half as wide as its errors
    b = pdfs_on_grid(data["B"], ZGRID)
    lab = np.isfinite(data["labels"])
    model = fit_consensus([b[lab]], data["labels"][lab], methods=["B"], settings=ConsensusSettings(fit_beta=False))
    assert model.temperature[0] == pytest.approx(4.0, rel=0.15)  # sigma x 2 = variance x 4
    test = ~lab & ~data["bad"]
    z = data["ztrue"][test]
    before = _coverage(b[test], z)
    after = _coverage(calibrated_pdfs(model, 0, b[test], with_bad=False), z)
    assert before[0] < 0.45  # over-confident
    assert np.all(np.abs(after - [0.68, 0.95]) < 0.04)
    assert np.all(np.abs(after - [0.68, 0.95]) < np.abs(before - [0.68, 0.95]))


def test_pit_correction_removes_a_common_bias():
    rng = np.random.default_rng(8)
    n = 3000
    z = rng.uniform(0.5, 5.0, n)
    sig = 0.05 * (1 + z)
    p = gaussian_rows(ZGRID, z + rng.normal(0, 1, n) * sig + 0.8 * sig, sig)  # biased high by 0.8 sigma
    lab = np.arange(n) < n // 2
    settings = ConsensusSettings(fit_beta=False, pit_correction=True)
    model = fit_consensus([p[lab]], z[lab], methods=["biased"], settings=settings)
    assert model.pit_knots.shape == (1, settings.pit_knots + 1)
    raw_pit = pit_of(ZGRID, p[~lab], z[~lab])
    fixed_pit = pit_of(ZGRID, calibrated_pdfs(model, 0, p[~lab], with_bad=False), z[~lab])
    assert np.median(raw_pit) < 0.3
    assert np.median(fixed_pit) == pytest.approx(0.5, abs=0.04)


def test_pit_map_of_uniform_pits_is_the_identity():
    pit = (np.arange(10_000) + 0.5) / 10_000
    knots = fit_pit_map(pit, 10).knots
    np.testing.assert_allclose(knots, np.linspace(0, 1, 11), atol=1e-3)
    assert np.all(np.diff(fit_pit_map(np.zeros(5), 10).knots) > 0)  # strictly increasing even when degenerate

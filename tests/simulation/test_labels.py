"""Spectroscopic labels as real spec-z are: a few percent, bright, low redshift, a desert, some wrong."""

from types import SimpleNamespace

import numpy as np
import pytest

from rail.deepdisc.simulation.labels import REDSHIFT_DESERT, assign_labels, label_probability
from tests.helpers.simdata import fields


def _catalog(n=60000, seed=0):
    """A catalog-like sample: Gamma N(z), fainter at higher z, 3% stars."""
    rng = np.random.default_rng(seed)
    z = rng.gamma(3.0, 1.0, n)
    mag = np.clip(26.0 + 0.5 * np.log1p(z) + rng.normal(0.0, 1.3, n), 20.0, 31.0)
    return z, mag, rng.uniform(size=n) < 0.03


def _settings(**kw):
    base = dict(label_fraction=0.03, label_bias_mag=1.5, label_z_scale=2.5, label_desert_success=0.3,
                wrong_label_fraction=0.04, z_max=12.0)
    return SimpleNamespace(**{**base, **kw})


def _ratio_in(z_lab, z_all, lo, hi):
    return np.mean((z_lab > lo) & (z_lab < hi)) / np.mean((z_all > lo) & (z_all < hi))


def test_realistic_labels_are_few_bright_low_z_with_a_desert_and_some_wrong():
    z, mag, star = _catalog()
    s = _settings()
    redshift, wrong, flag = assign_labels(np.random.default_rng(1), z, mag, star, s)
    lab = np.isfinite(redshift)
    gal = ~star
    assert lab[gal].mean() == pytest.approx(0.03, abs=0.004)  # the fraction asked for is achieved
    assert not lab[star].any()
    assert np.median(mag[lab]) < np.median(mag[gal]) - 1.0  # brighter
    assert np.mean(z[lab]) < np.mean(z[gal]) - 0.5  # lower redshift
    lo, hi = REDSHIFT_DESERT
    # the desert dip: the labelled share of the catalog falls inside the desert relative to its edges
    desert = _ratio_in(z[lab], z[gal], lo, hi)
    edges = 0.5 * (_ratio_in(z[lab], z[gal], lo - 0.5, lo) + _ratio_in(z[lab], z[gal], hi, hi + 0.5))
    assert desert < 0.6 * edges
    assert wrong[lab].mean() == pytest.approx(0.04, abs=0.02)
    assert np.all(np.abs(redshift[wrong] - z[wrong]) > 1e-3) and np.all(redshift[lab & ~wrong] == z[lab & ~wrong])
    assert set(flag[lab]) <= {"A", "B", "C"} and set(flag[~lab]) == {""}


def test_without_redshift_terms_there_is_no_desert_and_no_redshift_bias_at_fixed_magnitude():
    z, mag, star = _catalog()
    p = label_probability(mag, star, label_fraction=0.03, bias_mag=1.5, z=z)
    p_z = label_probability(mag, star, label_fraction=0.03, bias_mag=1.5, z=z, z_scale=2.5, desert_success=0.3)
    np.testing.assert_allclose(p, label_probability(mag, star, label_fraction=0.03, bias_mag=1.5))
    assert p.sum() == pytest.approx(p_z.sum())  # both fill the same share
    lo, hi = REDSHIFT_DESERT
    desert, near = (z > lo) & (z < hi), (z > hi) & (z < hi + 0.5)
    same_mag = (mag > 26.5) & (mag < 27.5)
    assert p[desert & same_mag].mean() == pytest.approx(p[near & same_mag].mean(), rel=0.05)
    assert p_z[desert & same_mag].mean() < 0.5 * p_z[near & same_mag].mean()


def test_simulator_options_reach_the_labels():
    _, fs = fields(n=2, seed=9, label_fraction=0.5, label_bias_mag=float("inf"), label_desert_success=0.0)
    z_lab = np.concatenate([f.catalog["redshift_true"][np.isfinite(f.catalog["redshift"])] for f in fs])
    lo, hi = REDSHIFT_DESERT
    assert len(z_lab) > 10 and not np.any((z_lab > lo) & (z_lab < hi))

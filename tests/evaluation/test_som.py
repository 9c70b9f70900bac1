"""SOM spec_rep flag: a colour region without training objects is unrepresented; missing photometry."""

import numpy as np
import pytest

from rail.deepdisc.evaluation.som import (
    MISSING_MAGNITUDE,
    SOMSettings,
    best_matching_cells,
    flag_catalogs,
    som_features,
    spec_represented,
)
from rail.deepdisc.exceptions import ConfigError, DeepDiscError

BANDS = ("F115W", "F150W", "F277W", "F444W")


def _population(n, colours, mag, rng):
    """Objects with F444W ~ N(mag, 0.5) and fixed sequential colours (F115-F150, F150-F277, F277-F444)."""
    m444 = rng.normal(mag, 0.5, n)
    m277 = m444 + colours[2] + rng.normal(0, 0.03, n)
    m150 = m277 + colours[1] + rng.normal(0, 0.03, n)
    m115 = m150 + colours[0] + rng.normal(0, 0.03, n)
    return {"mag_F115W": m115, "mag_F150W": m150, "mag_F277W": m277, "mag_F444W": m444}


def _join(*tables):
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


@pytest.fixture(scope="module")
def constructed():
    """Targets in two colour regions; spectroscopic objects only in region A."""
    rng = np.random.default_rng(5)
    region_a = _population(400, (0.1, 0.2, 0.3), 25.0, rng)
    region_b = _population(400, (1.6, -1.2, 1.4), 27.5, rng)
    spec = _population(600, (0.1, 0.2, 0.3), 25.0, rng)
    spec["redshift"] = rng.uniform(0.5, 3, 600)
    targets = _join(region_a, region_b)
    return targets, spec, flag_catalogs(targets, spec, BANDS)


def test_region_without_training_objects_is_unrepresented(constructed):
    _, _, flags = constructed
    assert not flags.spec_rep[400:].any()
    assert flags.spec_rep[:400].mean() > 0.5
    assert flags.weights.shape == (32, 32, len(BANDS))


def test_spec_objects_cells_are_the_represented_cells(constructed):
    _, _, flags = constructed
    assert np.all(np.isin(flags.cell[flags.spec_rep], flags.spec_cells))
    assert not np.isin(flags.cell[~flags.spec_rep], flags.spec_cells).any()


def test_features_are_reference_magnitude_and_sequential_colours():
    table = {"mag_F115W": np.array([26.0, 99.0]), "mag_F150W": np.array([25.5, 25.0]),
             "mag_F277W": np.array([25.0, np.nan]), "mag_F444W": np.array([24.0, 24.5])}
    f = som_features(table, BANDS)
    np.testing.assert_allclose(f[0], [24.0, 0.5, 0.5, 1.0])
    assert 99.0 >= MISSING_MAGNITUDE  # the sentinel counts as missing
    assert f[1, 0] == 24.5 and np.isnan(f[1, 1:]).all()
    # reference band absent: the reddest band is used
    np.testing.assert_allclose(som_features(table, BANDS[:3], reference_band="F444W")[0, 0], 25.0)


def test_missing_photometry_still_gets_a_cell_and_all_missing_gets_none():
    weights = np.zeros((2, 2, 3))
    weights[1, 1] = [5.0, 5.0, 5.0]
    feats = np.array([[4.9, np.nan, 5.2], [np.nan, np.nan, np.nan], [0.1, 0.0, np.nan]])
    np.testing.assert_array_equal(best_matching_cells(feats, weights), [3, -1, 0])


def test_target_with_a_missing_band_is_flagged_by_its_other_features(constructed):
    targets, spec, _ = constructed
    holed = {k: v.copy() for k, v in targets.items()}
    holed["mag_F115W"][:50] = np.nan  # region A objects lose a band
    holed["mag_F150W"][400:450] = 99.0  # region B objects carry a sentinel
    flags = flag_catalogs(holed, spec, BANDS, settings=SOMSettings(n_iterations=5000))
    assert (flags.cell >= 0).all()
    assert not flags.spec_rep[400:].any()
    assert flags.spec_rep[:50].mean() > 0.3


@pytest.mark.parametrize("call, exc, match", [
    (lambda: som_features({"mag_F444W": np.ones(2)}, ["F444W"]), DeepDiscError, "at least two bands"),
    (lambda: som_features({"mag_F444W": np.ones(2)}, ["F277W", "F444W"]), DeepDiscError, "mag_F277W"),
    (lambda: spec_represented(np.ones((3, 2)), np.ones((3, 3))), DeepDiscError, "2 SOM features"),
    (lambda: spec_represented(np.ones((3, 2)), np.ones((0, 2))), DeepDiscError, "no spectroscopic object"),
    (lambda: flag_catalogs({}, {"mag_F444W": np.ones(1)}, BANDS), DeepDiscError, "no 'redshift' column"),
    (lambda: SOMSettings(shape=(1, 32)), ConfigError, "shape"),
    (lambda: SOMSettings(sigma=0), ConfigError, "sigma"),
    (lambda: SOMSettings(n_iterations=0), ConfigError, "n_iterations"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()

"""``beta`` that grows with magnitude (Duncan et al. 2018): spec-z are bright, the faint objects' PDFs are
over-confident, and the slope fitted on the faintest labels carries the widening to the fainter objects."""

import numpy as np
import pytest

from rail.deepdisc.consensus import ConsensusSettings, fit_consensus
from rail.deepdisc.consensus.calibration import pit_of
from rail.deepdisc.consensus.fit import combine_pdfs
from rail.deepdisc.consensus.model import ConsensusModel, load_consensus_model, save_consensus_model
from rail.deepdisc.constants import redshift_grid
from rail.deepdisc.evaluation.coverage import coverage_from_pit
from tests.helpers.consensus_helpers import gaussian_rows

ZGRID = redshift_grid()
PIVOT = 25.0


def _field(n, mag_range, growth, seed):
    """Two independent methods whose claimed sigma is right up to ``PIVOT`` and too small by
    ``1 + growth * (m - PIVOT)`` fainter."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 4.0, n)
    mag = rng.uniform(*mag_range, n)
    sig = 0.04 * (1 + z)
    true_sig = sig * (1 + growth * np.maximum(mag - PIVOT, 0))
    pdfs = [gaussian_rows(ZGRID, z + rng.normal(0, 1, n) * true_sig, sig) for _ in range(2)]
    return pdfs, z, mag


def _cov68(model, pdfs, z, mag):
    return coverage_from_pit(pit_of(ZGRID, combine_pdfs(model, pdfs, mag), z), (0.68,)).coverage[0]


def _fit(pdfs, z, mag, by_magnitude):
    # no output PIT maps: the tests weigh the growth of beta alone
    return fit_consensus(pdfs, z, mag, methods=["A", "B"],
                         settings=ConsensusSettings(beta_by_magnitude=by_magnitude, output_pit="none"))


def test_beta_grows_where_faint_pdfs_are_overconfident():
    # labels from 22 to 28 (median 25): the faint half says how fast the errors outgrow the PDFs
    pdfs, z, mag = _field(800, (22.0, 28.0), growth=0.3, seed=11)
    grown, flat = _fit(pdfs, z, mag, True), _fit(pdfs, z, mag, False)
    assert grown.beta_slope > 0.2
    assert grown.beta_pivot == pytest.approx(np.median(mag))
    # objects fainter than every label: the slope extrapolates, one beta does not
    test, zt, mt = _field(1500, (28.0, 30.0), growth=0.3, seed=12)
    assert _cov68(grown, test, zt, mt) == pytest.approx(0.68, abs=0.05)
    assert _cov68(flat, test, zt, mt) < 0.55


def test_beta_does_not_grow_when_calibration_is_the_same_at_every_magnitude():
    pdfs, z, mag = _field(800, (22.0, 28.0), growth=0.0, seed=13)
    model = _fit(pdfs, z, mag, True)
    assert model.beta_slope < 0.05
    test, zt, mt = _field(1500, (28.0, 30.0), growth=0.0, seed=14)
    assert _cov68(model, test, zt, mt) == pytest.approx(0.68, abs=0.05)


def test_beta_of_unknown_magnitude_is_the_pivot_value():
    model = ConsensusModel(methods=("A",), temperature=np.ones(1), bad_fraction=np.full((1, 1), 0.01),
                           bad_fraction_all=np.full(1, 0.01), beta=2.0, mag_band="F444W", mag_edges=np.zeros(0),
                           beta_slope=0.5, beta_pivot=26.0)
    np.testing.assert_allclose(model.beta_of([np.nan, 25.0, 26.0, 28.0]), [2.0, 2.0, 2.0, 4.0])
    np.testing.assert_allclose(model.beta_of(None, 3), [2.0, 2.0, 2.0])


def test_model_with_growth_round_trips_and_old_files_read_without_growth(tmp_path):
    pdfs, z, mag = _field(300, (22.0, 28.0), growth=0.3, seed=15)
    model = _fit(pdfs, z, mag, True)
    back = load_consensus_model(save_consensus_model(model, tmp_path / "m.npz"))
    np.testing.assert_allclose(back.beta_of(mag), model.beta_of(mag))
    old = {k: v for k, v in model.to_dict().items() if k not in ("beta_slope", "beta_pivot")}
    old["format"] = "deepdisc-consensus-1"
    legacy = ConsensusModel.from_dict(old, "legacy.npz")
    assert legacy.beta_slope == 0.0
    np.testing.assert_allclose(legacy.beta_of(mag), model.beta)

"""Method selection: a method whose bias its calibration cannot mend is left out by the labels' cross-validated
likelihood; independent honest methods all stay."""

import numpy as np

from rail.deepdisc.consensus import ConsensusSettings, fit_consensus
from rail.deepdisc.consensus.calibration import pit_of
from rail.deepdisc.consensus.fit import combine_pdfs
from rail.deepdisc.consensus.grid import grid_point_estimates
from rail.deepdisc.constants import redshift_grid
from tests.helpers.consensus_helpers import gaussian_rows

ZGRID = redshift_grid()


def _methods(n, seed, bias_c):
    """A and B honest and independent; C sharp and biased by ``bias_c`` of its own width."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 4.0, n)
    sig = 0.05 * (1 + z)
    rows = [gaussian_rows(ZGRID, z + rng.normal(0, 1, n) * sig, sig) for _ in range(2)]
    sig_c = 0.02 * (1 + z)
    rows.append(gaussian_rows(ZGRID, z + (bias_c + rng.normal(0, 1, n)) * sig_c, sig_c))
    return rows, z, rng.uniform(23.0, 28.0, n)


def _scatter(pdfs, z):
    dz = (grid_point_estimates(ZGRID, pdfs)["zmode"] - z) / (1 + z)
    return np.subtract(*np.percentile(dz, [75, 25])) / 1.349


def test_selection_leaves_out_a_biased_method():
    pdfs, z, mag = _methods(300, seed=1, bias_c=8.0)
    # no output PIT map here: it would take out much of the whole consensus's bias too, hiding the selection's part
    chosen = fit_consensus(pdfs, z, mag, methods=["A", "B", "C"], settings=ConsensusSettings(output_pit="none"))
    everything = fit_consensus(pdfs, z, mag, methods=["A", "B", "C"],
                               settings=ConsensusSettings(select_methods=False, output_pit="none"))
    assert chosen.used.tolist() == [True, True, False]
    assert everything.used.all()
    test, zt, mt = _methods(1500, seed=2, bias_c=8.0)
    pit_chosen = pit_of(ZGRID, combine_pdfs(chosen, test, mt), zt)
    pit_all = pit_of(ZGRID, combine_pdfs(everything, test, mt), zt)
    assert abs(np.median(pit_chosen) - 0.5) < 0.05 < abs(np.median(pit_all) - 0.5)  # the bias is gone
    # C's rows are still required and read, but change nothing
    shifted = [test[0], test[1], np.roll(test[2], 100, axis=1)]
    np.testing.assert_allclose(combine_pdfs(chosen, shifted, mt), combine_pdfs(chosen, test, mt))


def test_selection_keeps_honest_independent_methods():
    pdfs, z, mag = _methods(300, seed=3, bias_c=0.0)
    model = fit_consensus(pdfs, z, mag, methods=["A", "B", "C"])
    assert model.used.all()
    test, zt, mt = _methods(1500, seed=4, bias_c=0.0)
    # all three together beat the best one alone (C, the sharpest)
    assert _scatter(combine_pdfs(model, test, mt), zt) < _scatter(test[2], zt)

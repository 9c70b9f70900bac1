"""The PIT shape correction of the combined PDFs (``output_pit``): fitted on the labels' held-out PIT values,
taken by the cross-validated likelihood only where it helps, one map or one per magnitude group."""

import numpy as np
import pytest

from rail.deepdisc.consensus import (
    ConsensusModel,
    ConsensusSettings,
    combine_ensembles,
    combine_pdfs,
    combined_posterior,
    fit_consensus,
    load_consensus_model,
)
from rail.deepdisc.consensus.calibration import pit_of
from rail.deepdisc.consensus.grid import cumulative, row_integrals
from rail.deepdisc.consensus.model import OUTPUT_PIT_POSITIONS, save_consensus_model
from rail.deepdisc.consensus.output_maps import symmetric
from rail.deepdisc.exceptions import ModelError
from tests.helpers.consensus_helpers import ZGRID, gaussian_rows, grid_ensemble


def _field(kind, n, seed, bright_share=None):
    """One method's Gaussian PDFs of width ``0.05 (1 + z)`` and truths drawn around their means.

    ``calibrated``: Gaussian scatter of the PDFs' width; ``heavy``: Student-t (2 d.o.f.) scatter of half a width,
    whose too wide core and too narrow tails no width factor mends; ``groups``: half a width of scatter for
    magnitudes below 25.5 (too wide PDFs) and 1.8 widths above (too narrow), opposite errors that no single map
    mends; ``shifted``: the Student-t scatter below 25.5, calibrated Gaussian scatter above; ``selected``: the
    Student-t scatter with the truths half a width below the PDFs' centres (spec-z, a selection at any magnitude).
    Magnitudes are uniform from 22 to 29, or with ``bright_share`` that share of the objects brighter than 25.5
    (spec-z: most; the objects estimated: few).
    """
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 4.0, n)
    sig = 0.05 * (1 + z)
    if bright_share is None:
        mag = rng.uniform(22.0, 29.0, n)
    else:
        mag = np.where(rng.random(n) < bright_share, rng.uniform(22.0, 25.5, n), rng.uniform(25.5, 29.0, n))
    if kind == "calibrated":
        noise = rng.normal(0.0, 1.0, n)
    elif kind == "heavy":
        noise = 0.5 * rng.standard_t(2, n)
    elif kind == "selected":
        noise = 0.5 * rng.standard_t(2, n) + 0.5
    elif kind == "groups":
        noise = np.where(mag < 25.5, 0.5, 1.8) * rng.normal(0.0, 1.0, n)
    else:
        noise = np.where(mag < 25.5, 0.5 * rng.standard_t(2, n), rng.normal(0.0, 1.0, n))
    return [gaussian_rows(ZGRID, z + noise * sig, sig)], z, mag


def _coverage(model, kind, mask=None, seed=99):
    pdfs, z, mag = _field(kind, 3000, seed)
    pit = pit_of(ZGRID, combine_pdfs(model, pdfs, mag), z)
    pit = pit if mask is None else pit[mask(mag)]
    return np.mean(np.abs(pit - 0.5) <= 0.34), np.mean(np.abs(pit - 0.5) <= 0.475)


def _fit(kind, output_pit="auto", n=1000, seed=0, magnitudes=True):
    pdfs, z, mag = _field(kind, n, seed)
    return fit_consensus(pdfs, z, mag if magnitudes else None, methods=["A"],
                         settings=ConsensusSettings(output_pit=output_pit))


def test_one_map_mends_a_shape_that_the_width_cannot():
    without = _fit("heavy", "none")
    raw68, raw95 = _coverage(without, "heavy")
    assert raw68 - 0.68 > 0.06 and 0.95 - raw95 > 0.015  # the temperature alone: core too wide, tails too narrow
    one = _fit("heavy", "one")
    auto = _fit("heavy")  # labels with magnitudes: `auto` weighs maps by magnitude (here all alike), never one map
    assert one.output_pit_knots.shape[0] == 1 and one.output_pit_edges.size == 0
    assert auto.output_pit_edges.size >= 1 and auto.output_pit_knots.shape[0] == auto.output_pit_edges.size + 2
    for model in (one, auto):
        cov68, cov95 = _coverage(model, "heavy")
        # within the labels' sampling noise (their held-out 68% coverage is 0.742 where the population's is 0.758)
        assert abs(cov68 - 0.68) < 0.04 and abs(cov95 - 0.95) < 0.02
        assert abs(cov68 - 0.68) < abs(raw68 - 0.68) - 0.03 and abs(cov95 - 0.95) < abs(raw95 - 0.95)
    blind = _fit("heavy", magnitudes=False)  # labels without magnitudes: `auto` weighs one map
    assert blind.output_pit_knots.shape[0] == 1
    assert abs(_coverage(blind, "heavy")[0] - 0.68) < abs(raw68 - 0.68) - 0.03


def test_with_magnitudes_auto_conditions_the_map_on_them_so_bright_labels_do_not_miscalibrate_faint_objects():
    pdfs, z, mag = _field("shifted", 1000, 0, 0.8)  # labels: 80% bright
    auto, one = (fit_consensus(pdfs, z, mag, methods=["A"], settings=ConsensusSettings(output_pit=choice))
                 for choice in ("auto", "one"))
    assert auto.output_pit_edges.size >= 1 and auto.output_pit_knots.shape[0] == auto.output_pit_edges.size + 2
    objects, ztrue, omag = _field("shifted", 4000, 99, 0.3)  # the objects estimated: 70% faint

    def coverage(model, sel):
        pit = pit_of(ZGRID, combine_pdfs(model, objects, omag), ztrue)[sel]
        return np.mean(np.abs(pit - 0.5) <= 0.34), np.mean(np.abs(pit - 0.5) <= 0.475)

    faint, bright = omag >= 25.5, omag < 25.5
    a68, a95 = coverage(auto, faint)
    o68, _ = coverage(one, faint)
    assert abs(a68 - 0.68) < 0.05 and abs(a95 - 0.95) < 0.03
    assert 0.68 - o68 > 0.07  # one map of the bright-dominated labels narrows the calibrated faint objects' core
    assert abs(coverage(auto, bright)[0] - 0.68) < 0.04


def test_a_calibrated_consensus_gets_no_map_and_the_file_says_so(tmp_path):
    model = _fit("calibrated")
    assert model.output_pit_knots.shape[0] == 0
    back = load_consensus_model(save_consensus_model(model, tmp_path / "m.npz"))
    assert back.output_pit_knots.shape[0] == 0


def test_maps_keep_pdfs_normalised_round_trip_and_unknown_magnitudes_take_all_labels_map(tmp_path):
    model = _fit("groups")
    pdfs, z, mag = _field("groups", 200, 5)
    out = combine_pdfs(model, pdfs, mag)
    np.testing.assert_allclose(row_integrals(ZGRID, out), 1.0, atol=1e-9)
    assert np.all(out >= 0)
    back = load_consensus_model(save_consensus_model(model, tmp_path / "m.npz"))
    np.testing.assert_allclose(combine_pdfs(back, pdfs, mag), out)
    only_all = ConsensusModel.from_dict({**model.to_dict(), "output_pit_knots": model.output_pit_knots[:1],
                                         "output_pit_edges": np.zeros(0)})
    np.testing.assert_allclose(combine_pdfs(model, pdfs, None), combine_pdfs(only_all, pdfs, None))
    assert not np.allclose(combine_pdfs(only_all, pdfs, mag), out)  # the groups' maps differ from all labels' map


def test_version_2_files_read_without_a_map_and_bad_maps_are_refused():
    model = _fit("heavy", "one", n=300)
    old = {k: v for k, v in model.to_dict().items() if not k.startswith("output_pit")}
    old["format"] = "deepdisc-consensus-2"
    legacy = ConsensusModel.from_dict(old, "v2.npz")
    assert legacy.output_pit_knots.shape[0] == 0
    pdfs, z, mag = _field("heavy", 50, 3)
    np.testing.assert_allclose(combine_pdfs(legacy, pdfs, mag),
                               combine_pdfs(_fit("heavy", "none", n=300), pdfs, mag))
    base = model.to_dict()
    with pytest.raises(ModelError, match="output PIT maps do not fit"):
        ConsensusModel.from_dict({**base, "output_pit_knots": np.tile(model.output_pit_knots, (2, 1))})
    with pytest.raises(ModelError, match="rise strictly"):
        ConsensusModel.from_dict({**base, "output_pit_knots": model.output_pit_knots[:, ::-1]})


def test_symmetric_maps_keep_the_median_and_the_identity():
    u = np.asarray(OUTPUT_PIT_POSITIONS)
    np.testing.assert_allclose(symmetric(u, u), u)
    skewed = u ** 1.5  # labels' truths low in their PDFs: a shift plus a change of width
    sym = symmetric(skewed, u)
    assert np.all(np.diff(sym) > 0) and sym[0] == 0 and sym[-1] == 1
    np.testing.assert_allclose(sym, 1 - sym[::-1], atol=1e-12)  # G(1 - u) = 1 - G(u): the median stays
    assert abs(sym[u == 0.5][0] - 0.5) < 1e-12 and abs(skewed[u == 0.5][0] - 0.5) > 0.1


def test_maps_widen_or_narrow_but_do_not_move_the_pdfs_unless_asked():
    # spec-z whose truths lie half a width below the PDFs' centres (a selection), objects estimated without it
    pdfs, z, mag = _field("selected", 1000, 0)
    fits = {shift: fit_consensus(pdfs, z, mag, methods=["A"], settings=ConsensusSettings(
        output_pit="magnitude", output_pit_shift=shift)) for shift in (False, True)}
    objects, ztrue, omag = _field("heavy", 3000, 99)
    raw = pit_of(ZGRID, combine_pdfs(_fit("selected", "none"), objects, omag), ztrue)
    for shift, model in fits.items():
        pit = pit_of(ZGRID, combine_pdfs(model, objects, omag), ztrue)
        if shift:  # the labels' offset moves every PDF down: the objects' truths now lie high in them
            assert np.median(pit) - 0.5 > 0.08
        else:
            assert abs(np.median(pit) - 0.5) < 0.03
            np.testing.assert_allclose(model.output_pit_knots[:, OUTPUT_PIT_POSITIONS.index(0.5)], 0.5)
            # the core, too wide, still narrowed (partly: the labels' offset looks like spread to any width fit)
            cov68, raw68 = (np.mean(np.abs(p - 0.5) <= 0.34) for p in (pit, raw))
            assert abs(cov68 - 0.68) < abs(raw68 - 0.68) - 0.02


def test_point_estimates_are_the_posteriors_so_a_widening_map_does_not_jump_to_a_secondary_peak():
    base = _fit("calibrated", "none")
    u = np.asarray(OUTPUT_PIT_POSITIONS)
    widen = u + 0.6 * np.sin(2 * np.pi * u) / (2 * np.pi)  # slope 1.6 in the tails, 0.4 at the median
    model = ConsensusModel.from_dict({**base.to_dict(), "output_pit_knots": widen[None, :],
                                      "output_pit_edges": np.zeros(0)})
    main, second = (gaussian_rows(ZGRID, np.full(5, z), np.full(5, s)) for z, s in ((2.0, 0.2), (4.0, 0.05)))
    pdfs = 0.85 * main + 0.15 * second  # a broad main peak and a narrow, lower one (2/3 of its height) above it
    mag = np.full(5, 26.0)
    mapped = combine_pdfs(model, [pdfs], mag)
    assert np.allclose(ZGRID[np.argmax(mapped, axis=1)], 4.0, atol=0.05)  # the map lifts the secondary peak
    ens = combine_ensembles([grid_ensemble(pdfs, np.arange(5))], model, mag)
    posterior = combined_posterior(model, [pdfs], mag)
    np.testing.assert_allclose(ens.ancil["zmode"], ZGRID[np.argmax(posterior, axis=1)])
    np.testing.assert_allclose(ens.ancil["zmode"], 2.0, atol=0.05)
    np.testing.assert_allclose(ens.objdata["yvals"], mapped, rtol=1e-9)  # the PDFs written are the mapped ones
    def median(p):
        return np.array([np.interp(0.5, c, ZGRID) for c in cumulative(ZGRID, p)])

    np.testing.assert_allclose(median(mapped), median(posterior), atol=0.005)  # the symmetric map keeps the median
    np.testing.assert_allclose(ens.ancil["zmedian"], median(posterior), atol=0.01)  # to the grid's step

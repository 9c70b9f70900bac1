"""Estimators side by side (``peer_bins``, ``peer_pit``): the consensus beside its inputs in the evaluation and
report."""

import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.evaluation.directory import load_evaluation
from rail.deepdisc.evaluation.evaluate import EvaluationSettings
from rail.deepdisc.evaluation.io import PhotoZTable
from rail.deepdisc.evaluation.report import REPORT_FILE
from rail.deepdisc.evaluation.side_by_side import PIT_BINS, estimator_tables
from rail.deepdisc.tileset.io import write_tileset
from tests.helpers.evalhelpers import gaussian_mixture_ensemble, make_photoz_for, varied_tileset

SIDE_PNGS = ("pit_estimators.png", "metrics_estimators_vs_magnitude.png", "metrics_estimators_vs_redshift.png",
             "coverage_estimators_vs_magnitude.png", "coverage_estimators_vs_redshift.png")


def test_estimator_tables_known_answers():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.5, 4.0, 4000)
    mag = rng.uniform(23.0, 29.0, 4000)
    calibrated, _ = gaussian_mixture_ensemble(z, sigma=0.05 * (1 + z), seed=1)
    narrow, _ = gaussian_mixture_ensemble(z, sigma=0.05 * (1 + z), width_factor=0.5, seed=2)
    settings = EvaluationSettings(point_estimate="zmean", mag_edges=(23.0, 25.0, 27.0, 29.0))
    ests = {"calibrated": PhotoZTable(calibrated), "narrow": PhotoZTable(narrow)}
    bins, pit = estimator_tables(ests, z, mag, settings)
    by = {(r["estimator"], r["binning"], r["lo"]): r for r in bins}
    overall = {r["estimator"]: r for r in bins if r["binning"] == "all"}
    assert abs(overall["calibrated"]["cov68"] - 0.68) < 0.03 and abs(overall["calibrated"]["cov95"] - 0.95) < 0.02
    assert overall["narrow"]["cov68"] < 0.45  # half-width PDFs: 2 x 0.5-sigma interval, ~38%
    for name in ests:
        mags = [r for r in bins if r["estimator"] == name and r["binning"] == "mag"]
        assert [(r["lo"], r["hi"]) for r in mags] == [(23.0, 25.0), (25.0, 27.0), (27.0, 29.0)]
        assert sum(r["n"] for r in mags) == 4000
        assert by[(name, "mag", 25.0)]["centre"] == 26.0
        dens = [r["density"] for r in pit if r["estimator"] == name]
        assert len(dens) == PIT_BINS and np.mean(dens) == pytest.approx(1.0)
    calib_pit = [r["density"] for r in pit if r["estimator"] == "calibrated"]
    narrow_pit = [r["density"] for r in pit if r["estimator"] == "narrow"]
    assert max(abs(d - 1) for d in calib_pit) < 0.3
    assert narrow_pit[0] > 3 and narrow_pit[-1] > 3  # over-confident: PIT piles up at 0 and 1


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("side")
    ts = varied_tileset(n_tiles=30, objects_per_tile=10, seed=4)
    write_tileset(ts, root / "tiles.h5")
    make_photoz_for(ts, seed=1).write_to(str(root / "pz.hdf5"))
    make_photoz_for(ts, seed=9, width_factor=0.5).write_to(str(root / "narrow.hdf5"))
    assert main(["combine", f"DeepDISC={root / 'pz.hdf5'}", f"narrow={root / 'narrow.hdf5'}", "--truth",
                 str(root / "tiles.h5"), "-o", str(root / "consensus.hdf5")]) == 0
    assert main(["evaluate", str(root / "pz.hdf5"), str(root / "tiles.h5"), "-o", str(root / "eval"),
                 "--peer", f"narrow={root / 'narrow.hdf5'}", "--peer", f"consensus={root / 'consensus.hdf5'}",
                 "--label", "run"]) == 0
    return root


def test_consensus_beside_its_inputs_in_the_evaluation(folder):
    ev = load_evaluation(folder / "eval")
    assert (folder / "eval" / "peer_bins.csv").stat().st_size and (folder / "eval" / "peer_pit.csv").stat().st_size
    names = ["DeepDISC (run)", "narrow", "consensus"]
    assert [r["estimator"] for r in ev.table("peers")] == names
    rows = ev.table("peer_bins")
    assert list(dict.fromkeys(r["estimator"] for r in rows)) == names
    overall = {r["estimator"]: r for r in rows if r["binning"] == "all"}
    assert overall["narrow"]["cov68"] < 0.5
    assert abs(overall["consensus"]["cov68"] - 0.68) < abs(overall["narrow"]["cov68"] - 0.68)
    assert {r["binning"] for r in rows} == {"all", "mag", "z"}


def test_report_shows_the_estimators_side_by_side(folder):
    assert main(["report", str(folder / "eval"), "-o", str(folder / "report"), "--example-tiles", "0"]) == 0
    text = (folder / "report" / REPORT_FILE).read_text()
    assert "## Estimators side by side by F444W magnitude" in text
    assert "## Estimators side by side by true redshift" in text
    assert "| consensus |" in text and "68% coverage" in text
    for name in SIDE_PNGS:
        assert (folder / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

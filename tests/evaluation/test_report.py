"""deepdisc evaluate + deepdisc report on a small synthetic case; evaluation folder, peers, loss curves."""

import json

import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.evaluation.directory import compare_evaluations, load_evaluation, read_loss_curves
from rail.deepdisc.evaluation.evaluate import EvaluationSettings, evaluate_photoz
from rail.deepdisc.evaluation.io import PhotoZTable, TruthTable
from rail.deepdisc.evaluation.report import REPORT_FILE, markdown_table
from rail.deepdisc.exceptions import ConfigError, DeepDiscError
from rail.deepdisc.tileset.io import write_tileset
from tests.helpers.evalhelpers import make_photoz_for, varied_tileset

EVAL_FILES = ("summary.json", "objects.h5", "metrics.csv", "coverage.csv", "completeness.csv", "completeness_size.csv",
              "nz.csv",
              "peers.csv", "peer_coverage.csv", "loss_curves.json")
REPORT_PNGS = ("zphot_vs_ztrue.png", "pit.png", "coverage.png", "nz.png", "normalised_residuals.png",
               "metrics_vs_magnitude.png", "metrics_vs_redshift.png", "completeness.png", "example_tiles.png",
               "loss_curves.png", "coverage_peers.png")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcase")
    ts = varied_tileset(n_tiles=6, objects_per_tile=10)
    write_tileset(ts, root / "tiles.h5")
    make_photoz_for(ts, seed=1).write_to(str(root / "pz.hdf5"))
    peer = make_photoz_for(ts, seed=9, width_factor=0.5)
    order = np.random.default_rng(0).permutation(peer.npdf)  # peers are matched by object_id
    peer[order].write_to(str(root / "peer.hdf5"))
    (root / "losses.json").write_text(json.dumps(
        {"members": [{"train_loss": [3.0, 2.0, 1.5], "val_nll": [2.5, 1.9, 1.7]},
                     {"train_loss": [3.1, 2.2, 1.6], "val_nll": [2.6, 2.0, None]}]}))
    return root, ts


def test_evaluate_and_report_cli(case, capsys):
    root, ts = case
    evaldir, reportdir = root / "eval", root / "report"
    assert main(["evaluate", str(root / "pz.hdf5"), str(root / "tiles.h5"), "-o", str(evaldir),
                 "--peer", f"narrow={root / 'peer.hdf5'}", "--spec-tiles", str(root / "tiles.h5"),
                 "--loss-curves", str(root / "losses.json"), "--label", "test-run"]) == 0
    for name in EVAL_FILES:
        assert (evaldir / name).stat().st_size > 0, name
    assert not list(evaldir.glob(".*tmp"))  # atomic writes leave no temporary file
    ev = load_evaluation(evaldir)
    assert ev.summary["label"] == "test-run" and ev.summary["n_objects"] == ts.n_primary
    assert ev.summary["truth_column"] == "redshift_true" and "spec_rep" in ev.summary["flag_counts"]
    peers = ev.table("peers")
    assert [p["estimator"] for p in peers] == ["DeepDISC (test-run)", "narrow"]
    # the half-width peer is overconfident: its coverage error is far larger
    assert peers[1]["calibration_mean_abs"] > 3 * peers[0]["calibration_mean_abs"]
    narrow = [r for r in ev.table("peer_coverage") if r["estimator"] == "narrow"]
    assert all(r["coverage"] < r["level"] for r in narrow if 0.3 <= r["level"] <= 0.95)
    assert main(["report", str(evaldir), "-o", str(reportdir)]) == 0
    for name in REPORT_PNGS:
        assert (reportdir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    text = (reportdir / REPORT_FILE).read_text()
    assert "## Comparison with peers" in text and "| narrow |" in text and "![" in text
    assert "spec_rep" in text and "PIT Kolmogorov-Smirnov" in text
    assert "## Detection completeness by size" in text and "| from (px) |" in text
    assert "report written to" in capsys.readouterr().out


def test_report_compares_several_runs_and_defaults_to_evaldir(case, tmp_path):
    root, _ = case
    dirs = []
    for label, seed in (("JADES9", 3), ("NEXUS6", 4)):
        dirs.append(tmp_path / label)
        assert main(["evaluate", str(root / "pz.hdf5"), str(root / "tiles.h5"), "-o", str(dirs[-1]),
                     "--label", label]) == 0
    assert main(["report", *map(str, dirs), "--example-tiles", "0"]) == 0
    text = (dirs[0] / "report" / REPORT_FILE).read_text()
    assert "## Runs compared" in text and "| NEXUS6 |" in text and "### NEXUS6: metrics per subset" in text
    assert not (dirs[0] / "report" / "example_tiles.png").exists()
    rows = compare_evaluations([load_evaluation(d) for d in dirs])
    assert [r["label"] for r in rows] == ["JADES9", "NEXUS6"] and rows[0]["n_bands"] == 4


def test_evaluate_photoz_spec_z_truth(case):
    _, ts = case
    truth = TruthTable.from_tileset(ts)
    res = evaluate_photoz(PhotoZTable(make_photoz_for(ts)), truth,
                          settings=EvaluationSettings(truth_column="redshift", point_estimate="zmedian"))
    n_spec = int(np.isfinite(truth.columns["redshift"]).sum())
    assert res.summary["n_with_truth"] == n_spec and res.summary["metrics"]["all"]["n"] == n_spec
    assert res.coverage[0]["n"] == n_spec
    assert np.isnan(res.objects["pit"][~np.isfinite(truth.columns["redshift"])]).all()
    assert res.nz["stacked_pdf"].sum() * (res.nz["z"][1] - res.nz["z"][0]) == pytest.approx(1.0, abs=0.02)


def test_completeness_by_size_follows_the_catalog_boxes(case):
    _, ts = case
    c = dict(TruthTable.from_tileset(ts).columns)
    n = len(c["object_id"])
    width, height = np.geomspace(2, 120, n), np.r_[np.geomspace(2, 120, n)[1:], 1.0]  # varied, one tall
    c["bbox_x1"], c["bbox_y1"] = c["bbox_x0"] + width, c["bbox_y0"] + height
    truth = TruthTable(c, tuple(ts.bands))
    side = truth.box_size()
    assert np.allclose(side, np.maximum(width, height))
    photoz = make_photoz_for(ts, seed=2)
    large = side >= np.median(side)
    photoz.set_ancil({**photoz.ancil, "detected": ~large, "forced": large})  # only the small objects detected
    res = evaluate_photoz(PhotoZTable(photoz), truth)
    rows = [r for r in res.completeness_size if r["n"]]
    assert sum(r["n"] for r in rows) == truth.n and np.array_equal(res.objects["box_size"], side)
    for r in rows:
        sel = (side >= r["lo"]) & (side < r["hi"])
        assert r["completeness"] == pytest.approx(np.mean(~large[sel]))
    assert rows[0]["completeness"] > rows[-1]["completeness"]
    no_boxes = TruthTable({k: v for k, v in c.items() if not k.startswith("bbox_")}, truth.bands)
    assert evaluate_photoz(PhotoZTable(photoz), no_boxes).completeness_size == []


@pytest.mark.parametrize("shape", [
    {"members": [{"train_loss": [1, 2], "val_nll": [3, 4]}]},
    [{"train_loss": [1, 2], "val_nll": [3, 4]}],
    {"train_loss": [1, 2], "val_nll": [3, 4]},
    {"members": [[{"epoch": 0, "train_loss": 1, "val_nll": 3}, {"epoch": 1, "train_loss": 2, "val_nll": 4}]]},
])
def test_loss_curve_reader_is_tolerant(tmp_path, shape):
    path = tmp_path / "curves.json"
    path.write_text(json.dumps(shape))
    (member,) = read_loss_curves(path)
    np.testing.assert_array_equal(member["train_loss"], [1, 2])
    np.testing.assert_array_equal(member["val_nll"], [3, 4])


def test_loss_curves_written_by_the_trainer_are_read(tmp_path):
    from rail.deepdisc.training.loss_curves import write_loss_curves

    history = [{"epoch": e, "loss": 3.0 - e, "loss_redshift": 2.0 - e / 2, "loss_mask": 0.5, "lr": 1e-3,
                "val_nll": 1.5 - e / 4, "n_val": 10} for e in range(3)]
    artifact = {"members": [{"weight": 1.0, "best_epoch": 2, "val_log_likelihood": -1.0, "history": history}]}
    write_loss_curves(artifact, tmp_path / "model_loss.json", tmp_path / "model_loss.png")
    (member,) = read_loss_curves(tmp_path / "model_loss.json")
    assert set(member) == {"train_loss", "train_redshift_nll", "val_nll"}
    np.testing.assert_array_equal(member["train_loss"], [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(member["val_nll"], [1.5, 1.25, 1.0])


def test_markdown_table_escapes_and_formats():
    text = markdown_table([{"a": "x|y", "b": np.nan, "c": 3}], ["a", "b", "c"])
    assert text.splitlines()[2] == "| x\\|y | – | 3 |"


def test_cli_errors_exit_2(case, tmp_path, capsys):
    root, ts = case
    short = make_photoz_for(ts)
    short[np.arange(5)].write_to(str(tmp_path / "short.hdf5"))
    cases = [
        (["evaluate", str(tmp_path / "short.hdf5"), str(root / "tiles.h5"), "-o", str(tmp_path / "e")],
         "holds 5 PDFs but"),
        (["evaluate", str(root / "pz.hdf5"), str(root / "tiles.h5"), "-o", str(tmp_path / "e"),
          "--peer", "x"], "expected NAME=FILE"),
        (["evaluate", str(root / "missing.hdf5"), str(root / "tiles.h5"), "-o", str(tmp_path / "e")],
         "no such photo-z file"),
        (["evaluate", str(root / "pz.hdf5"), str(root / "pz.hdf5"), "-o", str(tmp_path / "e")],
         "expected 'deepdisc-tiles' (is this a TileSet file?)"),
        (["report", str(tmp_path)], "not an evaluation folder"),
        (["evaluate", str(root / "pz.hdf5"), str(root / "tiles.h5"), "-o", str(tmp_path / "e"),
          "--loss-curves", str(root / "pz.hdf5")], "not valid JSON"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err


def test_settings_validation(tmp_path):
    with pytest.raises(ConfigError, match="point_estimate"):
        EvaluationSettings(point_estimate="zbest")
    with pytest.raises(ConfigError, match="mag_edges"):
        EvaluationSettings(mag_edges=(25.0, 24.0))
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"members": [{"note": "no series"}]}))
    with pytest.raises(DeepDiscError, match="no numeric loss series"):
        read_loss_curves(path)


def test_with_ancil_adds_a_column_and_checks_its_length(case):
    from rail.deepdisc.evaluation.io import with_ancil

    _, ts = case
    ens = make_photoz_for(ts)
    out = with_ancil(ens, {"spec_rep": np.ones(ens.npdf, np.int64)})
    assert out.ancil["spec_rep"].sum() == ens.npdf and "spec_rep" not in ens.ancil
    np.testing.assert_array_equal(out.ancil["zmode"], ens.ancil["zmode"])
    with pytest.raises(DeepDiscError, match="ancil column 'spec_rep' has shape"):
        with_ancil(ens, {"spec_rep": np.ones(3)})


def test_tileset_without_any_truth_still_evaluates_and_reports(tmp_path):
    ts = varied_tileset(n_tiles=2, objects_per_tile=6)
    ens = make_photoz_for(ts)
    del ts.objects["redshift_true"]
    ts.objects["redshift"][:] = np.nan
    write_tileset(ts, tmp_path / "tiles.h5")
    ens.write_to(str(tmp_path / "pz.hdf5"))
    argv = ["evaluate", str(tmp_path / "pz.hdf5"), str(tmp_path / "tiles.h5"), "-o", str(tmp_path / "ev")]
    assert main(argv) == 0
    ev = load_evaluation(tmp_path / "ev")
    assert ev.summary["truth_column"] == "redshift" and ev.summary["n_with_truth"] == 0
    assert ev.summary["metrics"]["all"]["n"] == 0 and np.isnan(ev.summary["metrics"]["all"]["bias"])
    assert ev.summary["rail"] == {} and ev.table("completeness")  # completeness needs no truth
    assert main(["report", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "report" / "completeness.png").exists()
    assert not (tmp_path / "ev" / "report" / "pit.png").exists()
    assert "No object has a truth redshift" in (tmp_path / "ev" / "report" / REPORT_FILE).read_text()


def test_per_bin_figures_say_when_no_bin_is_drawn():
    from rail.deepdisc.evaluation.plots import MIN_PER_BIN, plot_metrics_vs_bin

    def rows(n):
        return [dict(subset="all", binning="mag", n=n, centre=25.0, lo=24.5, hi=25.5, bias=0.01, sigma_iqr=0.05,
                     outlier_fraction=0.1)]

    def notes(fig):
        return [t.get_text() for ax in fig.axes for t in ax.texts]

    assert notes(plot_metrics_vs_bin(rows(MIN_PER_BIN - 1), "mag", xlabel="F444W")) == [
        f"no bin holds {MIN_PER_BIN} or more objects"] * 3
    assert notes(plot_metrics_vs_bin(rows(MIN_PER_BIN), "mag", xlabel="F444W")) == []

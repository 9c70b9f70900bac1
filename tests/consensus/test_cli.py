"""``deepdisc combine`` end to end on small files: fit, save the model, re-apply it; refuse mismatched files."""

import numpy as np
import qp
import tables_io

from rail.deepdisc.cli import main
from rail.deepdisc.consensus import load_consensus_model
from tests.helpers.consensus_helpers import ZGRID, check_output, gaussian_rows, grid_ensemble


def test_cli_fits_saves_and_reapplies(inputs, tmp_path, capsys):
    paths = inputs["paths"]
    out = tmp_path / "consensus.hdf5"
    args = [f"DeepDISC={paths['deepdisc']}", f"EAZY={paths['eazy']}"]
    assert main(["combine", *args, "--truth", str(inputs["tiles"]), "-o", str(out)]) == 0
    assert "consensus of" in capsys.readouterr().out
    model_path = tmp_path / "consensus_model.npz"
    assert load_consensus_model(model_path).methods == ("DeepDISC", "EAZY")
    first = qp.read(str(out))
    check_output(first, inputs["ids"])
    again = tmp_path / "again.hdf5"
    assert main(["combine", *args, "--model", str(model_path), "--tiles", str(inputs["tiles"]), "-o",
                 str(again)]) == 0
    np.testing.assert_allclose(qp.read(str(again)).objdata["yvals"], first.objdata["yvals"], rtol=1e-12)


def test_cli_truth_from_a_table_file(inputs, tmp_path):
    prim = inputs["ts"].primary_objects()
    table = tmp_path / "specz.hdf5"
    tables_io.write({"object_id": prim["object_id"], "zspec": prim["redshift"], "mag_F444W": prim["mag_F444W"]},
                    str(table))
    out = tmp_path / "c.hdf5"
    assert main(["combine", f"A={inputs['paths']['deepdisc']}", f"B={inputs['paths']['bpz']}", "--truth",
                 str(table), "--truth-column", "zspec", "-o", str(out), "--save-model",
                 str(tmp_path / "m.npz")]) == 0
    check_output(qp.read(str(out)), inputs["ids"])
    assert load_consensus_model(tmp_path / "m.npz").n_labelled == int(np.isfinite(prim["redshift"]).sum())


def test_cli_refuses_mismatched_files_in_one_line(inputs, tmp_path, capsys):
    short = tmp_path / "short.hdf5"
    inputs["ensembles"]["eazy"][np.arange(10)].write_to(str(short))
    code = main(["combine", f"DeepDISC={inputs['paths']['deepdisc']}", f"EAZY={short}", "--truth",
                 str(inputs["tiles"]), "-o", str(tmp_path / "x.hdf5")])
    err = capsys.readouterr().err
    assert code == 2 and str(short) in err and len(err.strip().splitlines()) == 1
    code = main(["combine", f"DeepDISC={inputs['paths']['deepdisc']}", "DeepDISC=other.hdf5", "--truth",
                 str(inputs["tiles"]), "-o", str(tmp_path / "x.hdf5")])
    assert code == 2 and "twice" in capsys.readouterr().err
    assert not (tmp_path / "x.hdf5").exists()


def test_cli_recalibrates_one_method(inputs, tmp_path):
    """One input: the method alone, recalibrated on the labels; an over-confident one is widened."""
    prim = inputs["ts"].primary_objects()
    z = np.asarray(prim["redshift_true"], float)
    rng = np.random.default_rng(3)
    sig = 0.06 * (1 + z)
    narrow = gaussian_rows(ZGRID, z + rng.normal(0, 1, len(z)) * sig, sig / 2.5)  # widths 2.5x too small
    path = tmp_path / "narrow.hdf5"
    grid_ensemble(narrow, inputs["ids"]).write_to(str(path))
    out = tmp_path / "recal.hdf5"
    assert main(["combine", f"Narrow={path}", "--truth", str(inputs["tiles"]), "-o", str(out)]) == 0
    model = load_consensus_model(tmp_path / "recal_model.npz")
    assert model.methods == ("Narrow",)
    assert model.temperature[0] * model.beta > 2.5  # variance ~6x too small; T and beta multiply it
    recal = qp.read(str(out))
    np.testing.assert_array_equal(np.asarray(recal.ancil["object_id"]).ravel(), inputs["ids"])
    assert all(col in recal.ancil for col in ("zmode", "zmean", "zmedian"))
    np.testing.assert_allclose(np.trapezoid(recal.objdata["yvals"], ZGRID, axis=1), 1.0, rtol=1e-6)
    width_in = np.mean(np.diff(grid_ensemble(narrow, inputs["ids"]).ppf(np.array([0.16, 0.84])), axis=1))
    width_out = np.mean(np.diff(recal.ppf(np.array([0.16, 0.84])), axis=1))
    assert width_out > 1.5 * width_in


def test_cli_constant_beta_keeps_one_beta(inputs, tmp_path):
    from rail.deepdisc.consensus.model import MIN_SLOPE_LABELS

    args = [f"DeepDISC={inputs['paths']['deepdisc']}", f"EAZY={inputs['paths']['eazy']}", "--truth",
            str(inputs["tiles"])]
    assert main(["combine", *args, "-o", str(tmp_path / "grown.hdf5")]) == 0
    grown = load_consensus_model(tmp_path / "grown_model.npz")
    assert grown.n_labelled >= MIN_SLOPE_LABELS  # enough labels: the slope was fitted, around their median
    mags = np.asarray(inputs["ts"].primary_objects()["mag_F444W"], float)
    labelled = np.isfinite(np.asarray(inputs["ts"].primary_objects()["redshift"], float))
    assert grown.beta_slope == 0 or grown.beta_pivot == np.median(mags[labelled])
    assert main(["combine", *args, "--constant-beta", "-o", str(tmp_path / "flat.hdf5")]) == 0
    flat = load_consensus_model(tmp_path / "flat_model.npz")
    assert flat.beta_slope == 0 and np.isnan(flat.beta_pivot)
    np.testing.assert_allclose(flat.beta_of(mags), flat.beta)


def test_cli_keep_all_uses_every_input(inputs, tmp_path):
    args = [f"{m}={inputs['paths'][m]}" for m in ("deepdisc", "eazy", "bpz")]
    assert main(["combine", *args, "--truth", str(inputs["tiles"]), "--keep-all", "-o", str(tmp_path / "a.hdf5")]) == 0
    assert load_consensus_model(tmp_path / "a_model.npz").used.all()

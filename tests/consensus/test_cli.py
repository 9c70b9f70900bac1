"""``deepdisc combine`` end to end on small files: fit, save the model, re-apply it; refuse mismatched files."""

import numpy as np
import qp
import tables_io

from rail.deepdisc.cli import main
from rail.deepdisc.consensus import load_consensus_model
from tests.helpers.consensus_helpers import check_output


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
    code = main(["combine", f"DeepDISC={inputs['paths']['deepdisc']}", "--truth", str(inputs["tiles"]), "-o",
                 str(tmp_path / "x.hdf5")])
    assert code == 2 and "two or more" in capsys.readouterr().err
    assert not (tmp_path / "x.hdf5").exists()

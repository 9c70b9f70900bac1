"""Plugin contract: stage discovery, strict options, handles, CLI info."""

import numpy as np
import pytest
import rail.stages

from rail.deepdisc import DeepDiscEstimator, DeepDiscInformer
from rail.deepdisc.cli import main
from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.options import check_stage_options
from rail.deepdisc.tileset.handles import TileSetHandle


def test_import_and_attach_all_finds_stages():
    rail.stages.import_and_attach_all(silent=True)
    assert rail.stages.DeepDiscEstimator is DeepDiscEstimator
    assert rail.stages.DeepDiscInformer is DeepDiscInformer


def test_fresh_process_attaches_every_stage():
    """RAIL imports only the ``rail.deepdisc`` package: it must bring every stage module with it."""
    import subprocess
    import sys

    from rail.deepdisc import STAGE_MODULES

    code = ("import importlib, rail.stages; rail.stages.import_and_attach_all(silent=True); "
            "from rail.core.stage import RailStage; "
            f"mods = {list(STAGE_MODULES)!r}; "
            "names = [n for n, (c, _) in RailStage.pipeline_stages.items() if c.__module__ in mods]; "
            "missing = [n for n in names if not hasattr(rail.stages, n)]; "
            "print(len(names), missing)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    count, missing = out.strip().split(" ", 1)
    assert int(count) >= 2 and missing == "[]"


def test_no_namespace_init():
    import rail

    assert not hasattr(rail, "__file__") or rail.__file__ is None


@pytest.mark.parametrize("stage, bad, hint", [
    (DeepDiscInformer, {"epoch": 3}, "did you mean 'epochs'"),
    (DeepDiscEstimator, {"iou_treshold": 0.5}, "did you mean 'iou_threshold'"),
])
def test_misspelled_option_is_an_error(stage, bad, hint):
    with pytest.raises(ConfigError, match=hint):
        stage.make_stage(name=f"strict_{stage.name}", **bad)


def test_check_stage_options_reads_positional_config_and_data_tags():
    check_stage_options(DeepDiscEstimator, {"iou_threshold": 0.5, "model": "m.pt"}, {"input": "t.h5"})
    check_stage_options(DeepDiscEstimator, None, {"output": "pz.hdf5", "name": "x", "config": "c.yml"})
    with pytest.raises(ConfigError, match="^DeepDiscEstimator: unknown option 'zmaxx' \\(did you mean 'zmax'"):
        check_stage_options(DeepDiscEstimator, {"zmaxx": 3.0}, {})
    with pytest.raises(ConfigError, match="unknown options 'foo', 'batchsize' \\(did you mean 'batch_size'"):
        check_stage_options(DeepDiscInformer, {}, {"foo": 1, "batchsize": 2})


def test_declared_options_are_accepted():
    est = DeepDiscEstimator.make_stage(name="est_ok", iou_threshold=0.5, zmax=8.0, model="m.pt")
    assert est.config.iou_threshold == 0.5 and est.config.zmax == 8.0


def test_tileset_handle_size_and_chunks(tileset_file, small_tileset):
    handle = TileSetHandle("input", path=str(tileset_file))
    assert handle.size() == small_tileset.n_primary
    chunks = list(handle.iterator(chunk_size=4))
    starts = [s for s, _, _ in chunks]
    ends = [e for _, e, _ in chunks]
    assert starts[0] == 0 and ends[-1] == small_tileset.n_primary
    assert starts[1:] == ends[:-1]
    assert all(e - s == c.n_primary for s, e, c in chunks)
    mine = list(handle.iterator(chunk_size=4, rank=1, parallel_size=2))
    assert [s for s, _, _ in mine] == starts[1::2]


def test_cli_info_tileset(tileset_file, capsys):
    assert main(["info", str(tileset_file)]) == 0
    out = capsys.readouterr().out
    assert "12 primary" in out and "F444W" in out


def test_cli_info_bad_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a model")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a weights-only DeepDISC model file" in err
    broken = tmp_path / "broken.h5"
    import h5py

    with h5py.File(broken, "w") as f:
        f["images"] = np.zeros((1, 2, 4, 4), np.float32)
    assert main(["info", str(broken)]) == 2
    assert "attrs 'format'" in capsys.readouterr().err

"""The command line is quiet by default: RAIL's own log lines only with -v."""

import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.tileset.io import write_tileset
from tests.helpers.evalhelpers import make_photoz_for, varied_tileset

RAIL_CHATTER = "Inserting handle into data store"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("quiet")
    ts = varied_tileset(n_tiles=3, objects_per_tile=6)
    write_tileset(ts, root / "tiles.h5")
    make_photoz_for(ts, seed=1).write_to(str(root / "pz.hdf5"))
    return root


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_rail_log_lines_only_with_verbose(case, tmp_path, capsys, verbose):
    argv = [*verbose, "evaluate", str(case / "pz.hdf5"), str(case / "tiles.h5"), "-o", str(tmp_path / "ev")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (RAIL_CHATTER in captured.out + captured.err) == bool(verbose)

"""Small photo-z files of three methods on the objects of a TileSet, for the consensus stage and CLI tests."""

import numpy as np
import pytest

from rail.deepdisc.tileset.io import write_tileset
from tests.helpers.consensus_helpers import ZGRID, gaussian_rows, grid_ensemble
from tests.helpers.evalhelpers import make_photoz_for, varied_tileset


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("consensus_stage")
    ts = varied_tileset(n_tiles=10, objects_per_tile=8, seed=5)
    tiles = write_tileset(ts, root / "tiles.h5")
    prim = ts.primary_objects()
    z, ids = np.asarray(prim["redshift_true"], float), prim["object_id"]
    rng = np.random.default_rng(0)
    paths = {"deepdisc": root / "deepdisc.hdf5", "eazy": root / "eazy.hdf5", "bpz": root / "bpz.hdf5"}
    ensembles = {"deepdisc": make_photoz_for(ts, seed=1)}
    for name, width in (("eazy", 0.04), ("bpz", 0.08)):
        sig = width * (1 + z)
        ensembles[name] = grid_ensemble(gaussian_rows(ZGRID, z + rng.normal(0, 1, len(z)) * sig, sig), ids)
    for name, ens in ensembles.items():
        ens.write_to(str(paths[name]))
    return {"root": root, "tiles": tiles, "ts": ts, "paths": paths, "ensembles": ensembles, "ids": ids}

"""The peers under MPI: two ranks write the same output file as one process (spooled output)."""

import numpy as np
import pytest
import qp
import tables_io

from rail.deepdisc.peers.eazy_model import EazyModel
from rail.deepdisc.peers.model_io import save_npz_model
from rail.deepdisc.presets import get_preset
from tests.helpers.peers_helpers import synthetic_catalog
from tests.helpers.subprocesses import needs_mpiexec, run_stage, stage_config

BANDS = get_preset("JADES9")
N_OBJECTS = 14
CHUNK = 4  # 4 chunks over 2 ranks, the last one short

pytestmark = [pytest.mark.slow, pytest.mark.mpi, needs_mpiexec]


@pytest.fixture
def catalog(tmp_path):
    """A small catalog file (hdf5, top-level columns) of objects drawn from the peers' templates."""
    table = synthetic_catalog(BANDS, N_OBJECTS, snr=30.0, seed=5, igm="madau")
    path = tmp_path / "catalog.hdf5"
    tables_io.write(table, str(path))
    return table, path


def _one_and_two_ranks(tmp_path, stage, options):
    """Run ``stage`` on one and on two ranks; return both outputs after checking the files are identical."""
    pytest.importorskip("mpi4py")
    name = stage.rsplit(".", 1)[-1]
    outputs = []
    for n in (1, 2):
        out = tmp_path / f"pz_{n}.hdf5"
        run_stage([stage, *options, f"--output={out}", f"--chunk_size={CHUNK}",
                   f"--config={stage_config(tmp_path, name)}"], n_ranks=n, cwd=tmp_path)
        outputs.append(out)
    assert outputs[1].read_bytes() == outputs[0].read_bytes()
    assert not list(tmp_path.glob(".*spool*"))
    return [qp.read(str(out)) for out in outputs]


def _check_rows(one, two, table):
    assert one.npdf == two.npdf == N_OBJECTS
    for key in one.objdata:  # interp grids (template fitters) or Gaussian mixtures (kNN)
        np.testing.assert_array_equal(two.objdata[key], one.objdata[key])
    assert set(two.ancil) == set(one.ancil)
    np.testing.assert_array_equal(np.ravel(two.ancil["object_id"]), table["object_id"])
    for key in ("zmode", "zmean", "zmedian"):
        assert np.all(np.isfinite(np.ravel(two.ancil[key])))


def test_eazy_two_mpi_ranks_equal_one_process(tmp_path, catalog):
    table, path = catalog
    model = save_npz_model(EazyModel(bands=BANDS, zero_points=np.ones(len(BANDS))).to_dict(),
                           tmp_path / "eazy.npz")
    one, two = _one_and_two_ranks(tmp_path, "rail.estimation.algos.deepdisc_eazy.EazyEstimator", [
        f"--model={model}", f"--input={path}", "--z_max=8.0", "--no-add_cgm", "--zmax=8.0", "--nzbins=201"])
    _check_rows(one, two, table)
    np.testing.assert_array_equal(np.ravel(two.ancil["nbands"]), np.ravel(one.ancil["nbands"]))


def test_bpz_two_mpi_ranks_equal_one_process(tmp_path, catalog):
    from rail.estimation.algos.deepdisc_bpz import NIRCamBPZInformer

    table, path = catalog
    model = tmp_path / "bpz.npz"
    data_dir = tmp_path / "bpzdata"
    train = synthetic_catalog(BANDS, 20, snr=100.0, seed=6, igm="madau")
    NIRCamBPZInformer.make_stage(name="bpz_inf_mpi", model=str(model), data_dir=str(data_dir),
                                 output_hdfn=True).inform(train)  # 20 labels: too few for BPZ's prior fit
    one, two = _one_and_two_ranks(tmp_path, "rail.estimation.algos.deepdisc_bpz.NIRCamBPZEstimator", [
        f"--model={model}", f"--input={path}", f"--data_dir={data_dir}", "--zmax=8.0", "--nzbins=201"])
    _check_rows(one, two, table)
    np.testing.assert_array_equal(np.ravel(two.ancil["tb"]), np.ravel(one.ancil["tb"]))


def test_knn_two_mpi_ranks_equal_one_process(tmp_path, catalog):
    from rail.estimation.algos.deepdisc_ml import NIRCamKNNInformer

    table, path = catalog
    model = tmp_path / "knn.pkl"
    train = synthetic_catalog(BANDS, 40, snr=50.0, seed=7, igm="madau")
    NIRCamKNNInformer.make_stage(name="knn_inf_mpi", model=str(model), zmax=8.0, nzbins=201).inform(train)
    one, two = _one_and_two_ranks(tmp_path, "rail.estimation.algos.deepdisc_ml.NIRCamKNNEstimator", [
        f"--model={model}", f"--input={path}", "--zmax=8.0", "--nzbins=201"])
    _check_rows(one, two, table)


def test_catalog_mdn_two_mpi_ranks_equal_one_process(tmp_path, catalog):
    from rail.estimation.algos.deepdisc_ml import CatalogMdnInformer

    table, path = catalog
    model = tmp_path / "mdn.pt"
    train = synthetic_catalog(BANDS, 40, snr=50.0, seed=7, igm="madau")
    CatalogMdnInformer.make_stage(name="mdn_inf_mpi", model=str(model), members=2, epochs=5,
                                  progress_bar=False).inform(train)
    one, two = _one_and_two_ranks(tmp_path, "rail.estimation.algos.deepdisc_ml.CatalogMdnEstimator", [
        f"--model={model}", f"--input={path}", "--zmax=8.0", "--nzbins=201"])
    _check_rows(one, two, table)

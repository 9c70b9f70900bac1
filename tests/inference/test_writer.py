"""Spooled photo-z chunks: any qp parameterisation round-trips; the merge checks row coverage."""

import numpy as np
import pytest
import qp

from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.inference.writer import ChunkSpool, iter_spooled, spool_path

ZGRID = np.linspace(0.0, 3.0, 31)


def _interp(rows, seed):
    rng = np.random.default_rng(seed)
    ens = qp.Ensemble(qp.interp, data=dict(xvals=ZGRID, yvals=rng.uniform(0.1, 1.0, (rows, ZGRID.size))))
    ens.set_ancil(dict(zmode=rng.uniform(0, 3, rows), object_id=np.arange(rows, dtype=np.int64) + 10 * seed))
    return ens


def _spool(tmp_path, chunks, rank=0, size=1):
    spool = ChunkSpool(spool_path(tmp_path / "pz.hdf5", rank, size))
    for start, end, ens in chunks:
        spool.append(start, end, ens)
    spool.close()
    return spool.path


def test_interp_chunks_come_back_with_grid_and_ancil_in_row_order(tmp_path):
    first, second = _interp(3, seed=1), _interp(2, seed=2)
    paths = [_spool(tmp_path, [(3, 5, second)], rank=1, size=2), _spool(tmp_path, [(0, 3, first)], size=2)]
    back = list(iter_spooled(paths, 5))
    assert [(s, e) for s, e, _ in back] == [(0, 3), (3, 5)]
    for (_, _, got), want in zip(back, (first, second)):
        assert got.gen_class.name == "interp"
        np.testing.assert_array_equal(got.metadata["xvals"].ravel(), ZGRID)
        np.testing.assert_allclose(got.objdata["yvals"], want.objdata["yvals"])
        np.testing.assert_array_equal(got.ancil["object_id"], want.ancil["object_id"])
        np.testing.assert_array_equal(got.ancil["zmode"], want.ancil["zmode"])


def test_one_row_mixmod_without_ancil_round_trips(tmp_path):
    data = dict(means=np.array([[0.5, 1.0]]), stds=np.array([[0.1, 0.2]]), weights=np.array([[0.3, 0.7]]))
    ens = qp.Ensemble(qp.mixmod, data=data)
    path = _spool(tmp_path, [(0, 1, ens)])
    ((_, _, got),) = iter_spooled([path], 1)
    assert got.gen_class.name == "mixmod" and got.npdf == 1 and got.ancil is None
    for key in data:
        np.testing.assert_array_equal(got.objdata[key], ens.objdata[key])


def test_gaps_overlaps_and_short_runs_are_errors(tmp_path):
    path = _spool(tmp_path, [(0, 3, _interp(3, 1)), (4, 6, _interp(2, 2))])
    with pytest.raises(DeepDiscError, match="gap at row 3"):
        list(iter_spooled([path], 6))
    path = _spool(tmp_path, [(0, 3, _interp(3, 1)), (2, 4, _interp(2, 2))])
    with pytest.raises(DeepDiscError, match="overlap at row 2"):
        list(iter_spooled([path], 4))
    path = _spool(tmp_path, [(0, 3, _interp(3, 1))])
    with pytest.raises(DeepDiscError, match="cover 3 of 5 rows"):
        list(iter_spooled([path], 5))
    with pytest.raises(ValueError, match="chunk 0:4 holds 3 rows, expected 4"):
        ChunkSpool(tmp_path / "x.tmp").append(0, 4, _interp(3, 1))


def _open_hdf5_files() -> int:
    import h5py

    return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)


def test_spool_holds_no_open_file_between_chunks_and_each_chunk_is_readable_at_once(tmp_path):
    """An HDF5 file held open grows its caches with every group and dataset written (1.2 GB per process over a
    JADES-size field): the spool opens its file for each chunk only, so every chunk is on disk when
    `append` returns (readable by another reader mid-run, kept if the run is killed)."""
    before = _open_hdf5_files()
    spool = ChunkSpool(spool_path(tmp_path / "pz.hdf5", 0, 1))
    chunks = [(0, 3, _interp(3, 1)), (3, 5, _interp(2, 2)), (5, 9, _interp(4, 3))]
    for k, (start, end, ens) in enumerate(chunks):
        spool.append(start, end, ens)
        assert _open_hdf5_files() == before
        back = list(iter_spooled([spool.path], end))  # everything so far, complete
        assert [(s, e) for s, e, _ in back] == [(a, b) for a, b, _ in chunks[:k + 1]]
        np.testing.assert_allclose(back[-1][2].objdata["yvals"], ens.objdata["yvals"])
    spool.close()
    with pytest.raises(ValueError, match="closed"):
        spool.append(9, 10, _interp(1, 4))

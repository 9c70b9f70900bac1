"""Consensus files: mismatched inputs refused, chunking invariance, carried columns, model files."""

import numpy as np
import pytest
import qp

from rail.deepdisc.consensus import (
    ConsensusModel,
    check_same_rows,
    fit_sources,
    load_consensus_model,
    save_consensus_model,
    write_consensus,
)
from rail.deepdisc.consensus.grid import pdfs_on_grid
from rail.deepdisc.constants import redshift_grid
from rail.deepdisc.exceptions import DeepDiscError, ModelError
from rail.deepdisc.peers.model_io import save_npz_model
from tests.helpers.consensus_helpers import gaussian_ensemble, gaussian_rows, grid_ensemble, two_methods

ZGRID = redshift_grid()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("consensus")
    data = two_methods(240, seed=11)
    data["A"].set_ancil(dict(object_id=data["ids"], detected=np.arange(240) % 3 > 0))
    a, b = root / "a.hdf5", root / "b.hdf5"
    data["A"].write_to(str(a))
    b_grid = grid_ensemble(pdfs_on_grid(data["B"], ZGRID), data["ids"])  # B as EAZY-like grid PDFs
    b_grid.write_to(str(b))
    truth = {"object_id": data["ids"], "redshift": data["labels"], "mag_F444W": data["mag"]}
    return {"root": root, "a": a, "b": b, "truth": truth, "data": data}


def test_rows_of_different_lengths_are_refused(files, tmp_path):
    short = tmp_path / "short.hdf5"
    files["data"]["A"][np.arange(100)].write_to(str(short))
    with pytest.raises(DeepDiscError) as err:
        check_same_rows([files["a"], short], ["A", "short"])
    msg = str(err.value)
    assert str(short) in msg and "100 PDFs" in msg and "240" in msg and "\n" not in msg


def test_rows_with_other_object_ids_are_refused(files, tmp_path):
    shuffled = tmp_path / "shuffled.hdf5"
    ens = gaussian_ensemble(np.ones(240), 0.1, files["data"]["ids"][::-1])
    ens.write_to(str(shuffled))
    with pytest.raises(DeepDiscError, match=f"^{shuffled} \\(B\\): row 0 is object_id 1239 but .*a.hdf5"):
        check_same_rows([files["a"], shuffled], ["A", "B"])


def test_truth_of_other_rows_is_refused(files):
    truth = {k: v[:-1] for k, v in files["truth"].items()}
    with pytest.raises(DeepDiscError, match="truth table has \\[239\\] rows but the photo-z hold 240"):
        fit_sources([files["a"], files["b"]], ["A", "B"], truth)
    ids = files["truth"]["object_id"].copy()
    ids[5] = 7
    with pytest.raises(DeepDiscError, match="row 5 is object_id 7"):
        fit_sources([files["a"], files["b"]], ["A", "B"], dict(files["truth"], object_id=ids))


def test_written_consensus_is_chunk_invariant_and_carries_columns(files, tmp_path):
    model = fit_sources([files["a"], files["b"]], ["A", "B"], files["truth"], chunk_size=50)
    one = write_consensus([files["a"], files["b"]], model, tmp_path / "one.hdf5", files["truth"]["mag_F444W"],
                          chunk_size=1000)
    many = write_consensus([files["a"], files["b"]], model, tmp_path / "many.hdf5", files["truth"]["mag_F444W"],
                           chunk_size=37)
    e1, e2 = qp.read(str(one)), qp.read(str(many))
    assert e1.npdf == 240
    np.testing.assert_allclose(e1.objdata["yvals"], e2.objdata["yvals"], rtol=1e-12)
    np.testing.assert_array_equal(e1.ancil["object_id"], files["data"]["ids"])
    np.testing.assert_array_equal(e1.ancil["detected"], np.arange(240) % 3 > 0)
    yvals = e1.objdata["yvals"]
    np.testing.assert_allclose(np.trapezoid(yvals, ZGRID, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(e1.ancil["zmode"], ZGRID[np.argmax(yvals, axis=1)])
    zmean = np.trapezoid(yvals * ZGRID, ZGRID, axis=1)
    np.testing.assert_allclose(e1.ancil["zmean"], zmean, rtol=1e-6)
    np.testing.assert_allclose(e1.cdf(e1.ancil["zmedian"][:, None]).ravel(), 0.5, atol=2e-3)
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_model_file_round_trip(files, tmp_path):
    model = fit_sources([files["a"], files["b"]], ["A", "B"], files["truth"])
    path = save_consensus_model(model, tmp_path / "m.npz")
    back = load_consensus_model(path)
    assert back.methods == ("A", "B") and back.beta == model.beta and back.mag_band == "F444W"
    for name in ("temperature", "bad_fraction", "bad_fraction_all", "mag_edges", "n_per_bin"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    other = save_npz_model({"zero_points": np.ones(3)}, tmp_path / "other.npz")
    with pytest.raises(ModelError, match="not a consensus model"):
        load_consensus_model(other)
    with pytest.raises(ModelError, match="no such consensus model file"):
        load_consensus_model(tmp_path / "missing.npz")


def test_model_shapes_are_checked():
    with pytest.raises(ModelError, match="bad_fraction has shape"):
        ConsensusModel(methods=("a", "b"), temperature=np.ones(2), bad_fraction=np.ones((2, 3)),
                       bad_fraction_all=np.ones(2), beta=1.0, mag_band="F444W", mag_edges=np.array([25.0]))
    ok = dict(methods=("a", "b"), temperature=np.ones(2), bad_fraction=np.ones((2, 1)), bad_fraction_all=np.ones(2),
              beta=1.0, mag_band="F444W", mag_edges=np.zeros(0))
    with pytest.raises(ModelError, match="used must mark at least one"):
        ConsensusModel(**ok, used=np.array([False, False]))
    with pytest.raises(ModelError, match="beta_slope must be finite and >= 0"):
        ConsensusModel(**ok, beta_slope=-0.1)
    with pytest.raises(ModelError, match="needs a finite beta_pivot"):
        ConsensusModel(**ok, beta_slope=0.2)
    assert ConsensusModel(**ok).used.tolist() == [True, True]  # default: every method


def test_methods_of_the_model_must_match_the_inputs(files, tmp_path):
    model = fit_sources([files["a"], files["b"]], ["A", "B"], files["truth"])
    with pytest.raises(DeepDiscError, match="combines 2 methods \\(A, B\\), 1 photo-z inputs given"):
        write_consensus([files["a"]], model, tmp_path / "x.hdf5")


def test_grid_ensembles_on_another_grid_are_resampled():
    z = np.linspace(0, 6, 301)
    ens = grid_ensemble(gaussian_rows(z, np.array([2.0]), np.array([0.2])), zgrid=z)
    p = pdfs_on_grid(ens, ZGRID)
    assert np.trapezoid(p, ZGRID, axis=1)[0] == pytest.approx(1.0)
    assert ZGRID[np.argmax(p)] == pytest.approx(2.0)


def test_every_file_representation_reads_like_its_ensemble(tmp_path):
    from rail.deepdisc.consensus.sources import method_chunks

    rng = np.random.default_rng(3)
    n = 30
    loc, scale = rng.uniform(0.5, 5, n), rng.uniform(0.05, 0.3, n)
    coarse = np.linspace(0, 8, 401)
    ensembles = {
        "mixmod": gaussian_ensemble(loc, scale),
        "interp_same_grid": grid_ensemble(gaussian_rows(ZGRID, loc, scale)),
        "interp_other_grid": grid_ensemble(gaussian_rows(coarse, loc, scale), zgrid=coarse),
        "norm": qp.Ensemble(qp.stats.norm, data=dict(loc=loc[:, None], scale=scale[:, None])),
    }
    paths = []
    for name, ens in ensembles.items():
        paths.append(tmp_path / f"{name}.hdf5")
        ens.write_to(str(paths[-1]))
    from_files = list(method_chunks(paths, ZGRID, chunk_size=7))
    from_memory = list(method_chunks(list(ensembles.values()), ZGRID, chunk_size=7))
    assert [c[:2] for c in from_files] == [c[:2] for c in from_memory] == [(a, min(a + 7, n)) for a in range(0, n, 7)]
    for (_, _, files, _), (_, _, mem, _) in zip(from_files, from_memory):
        for f, m in zip(files, mem):
            np.testing.assert_allclose(f, m, rtol=1e-6, atol=1e-9)
    whole = np.concatenate([c[2][0] for c in from_files])
    np.testing.assert_allclose(whole, gaussian_rows(ZGRID, loc, scale), rtol=1e-6, atol=1e-9)


def test_selected_rows_match_the_full_read(tmp_path):
    from rail.deepdisc.consensus.sources import method_chunks

    rng = np.random.default_rng(4)
    n = 25
    loc, scale = rng.uniform(0.5, 5, n), rng.uniform(0.05, 0.3, n)
    ens = [gaussian_ensemble(loc, scale, np.arange(n)), grid_ensemble(gaussian_rows(ZGRID, loc, scale)),
           qp.Ensemble(qp.stats.norm, data=dict(loc=loc[:, None], scale=scale[:, None]))]
    path = tmp_path / "norm.hdf5"
    ens[2].write_to(str(path))
    select = rng.uniform(size=n) < 0.4
    select[:6] = False  # a chunk without any selected row
    full = [np.concatenate(c) for c in zip(*(p for _, _, p, _ in method_chunks([*ens, path], ZGRID, 6)))]
    part = list(method_chunks([*ens, path], ZGRID, 6, select=select))
    picked = [np.concatenate(c) for c in zip(*(p for _, _, p, _ in part))]
    for f, p in zip(full, picked):
        np.testing.assert_allclose(p, f[select], rtol=1e-12)
    ids = np.concatenate([a["object_id"] for _, _, _, a in part if "object_id" in a])
    np.testing.assert_array_equal(ids, np.arange(n)[select])

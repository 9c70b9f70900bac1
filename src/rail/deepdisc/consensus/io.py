"""Consensus inputs and outputs: truth tables, the fit from files, the consensus chunk by chunk, the output file.

The methods' photo-z are read in lockstep chunks by :mod:`rail.deepdisc.consensus.sources`. The truth of the
labelled objects is a TileSet (its primary objects, in file order; the spectroscopic ``redshift`` by default)
or a table (an HDF5/Parquet/FITS file or a mapping of columns), row for row with the photo-z. The output is a
``qp.interp`` ensemble on the model's grid with ``zmode``, ``zmean``, ``zmedian`` (those of the combined
posterior before the model's output PIT maps, which recalibrate the PDFs' spread: `rail.deepdisc.consensus.apply`),
``object_id`` and the flags of the inputs, written chunk by chunk and atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.consensus.apply import apply_model_maps, combined_posterior
from rail.deepdisc.consensus.fit import fit_consensus
from rail.deepdisc.consensus.grid import grid_point_estimates
from rail.deepdisc.consensus.model import ConsensusModel, ConsensusSettings
from rail.deepdisc.consensus.sources import DEFAULT_CHUNK, check_same_rows, describe, first_ancil, method_chunks
from rail.deepdisc.evaluation.io import TruthTable, read_truth
from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.tileset.format import TileSet

__all__ = ["read_table", "labels_of", "fit_sources", "iter_consensus", "consensus_ensemble", "combine_ensembles",
           "write_consensus"]

log = logging.getLogger(__name__)

def read_table(truth) -> TruthTable:
    """The truth or magnitude table: a TileSet (file or object), a table file or a mapping of columns.

    Parameters
    ----------
    truth : str, Path, TileSet, TruthTable or mapping
        A ``deepdisc-tiles`` file (its primary objects, in order), another table file (read with
        ``tables_io``), or columns in memory.

    Returns
    -------
    TruthTable
    """
    if isinstance(truth, TruthTable):
        return truth
    if isinstance(truth, TileSet):
        return TruthTable.from_tileset(truth)
    if isinstance(truth, (str, os.PathLike)):
        path = Path(truth)
        if not path.is_file():
            raise DeepDiscError(f"{path}: no such truth file")
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                is_tileset = "objects" in f and "primary" in f["objects"]
            if is_tileset:
                return read_truth(path)
        import tables_io

        try:
            table = tables_io.convert(tables_io.read(str(path)), tables_io.types.NUMPY_DICT)
        except Exception as err:  # tables_io raises many types on foreign files
            raise DeepDiscError(f"{path}: not a TileSet or a table ({type(err).__name__}: {err})") from None
        return TruthTable({k: np.asarray(v) for k, v in table.items()}, (), str(path))
    if isinstance(truth, Mapping):
        return TruthTable({k: np.asarray(v) for k, v in truth.items()}, (), "truth table")
    raise DeepDiscError(f"truth must be a TileSet, a table file or a mapping of columns, not {type(truth).__name__}")


def labels_of(table: TruthTable, n: int, *, column: str | None = "redshift", mag_band: str = "F444W",
              ids: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """True redshifts and magnitudes of a table, checked row for row against the photo-z.

    Parameters
    ----------
    table : TruthTable
    n : int
        Rows of the photo-z.
    column : str or None
        Truth column (None: magnitudes only).
    mag_band : str
        Band of the magnitudes (``mag_<BAND>``; the reddest band when absent; none: no magnitudes).
    ids : ndarray, optional
        The photo-z ``object_id`` column, compared with the table's.

    Returns
    -------
    ztrue, magnitude : ndarray (N,) or None
    band : str
        The band used ('' without magnitudes).
    """
    lengths = {len(np.atleast_1d(v)) for v in table.columns.values()}
    if lengths and lengths != {n}:
        raise DeepDiscError(f"{table.source} has {sorted(lengths)} rows but the photo-z hold {n}: give the truth "
                            f"of the same objects in the same order")
    if ids is not None and "object_id" in table.columns:
        mine = np.asarray(table.columns["object_id"]).astype(np.int64)
        diff = np.flatnonzero(mine != np.asarray(ids).astype(np.int64))
        if len(diff):
            i = int(diff[0])
            raise DeepDiscError(f"{table.source}: row {i} is object_id {mine[i]} but the photo-z row {i} is "
                                f"{int(ids[i])}: give the truth of the same objects in the same order")
    ztrue = table.redshift(column)[0] if column else None
    try:
        mag, band = table.magnitude(mag_band)
    except DeepDiscError:
        mag, band = None, ""
    return ztrue, mag, band


def fit_sources(sources: Sequence, names: Sequence[str], truth, *,
                settings: ConsensusSettings = ConsensusSettings(), truth_column: str = "redshift",
                chunk_size: int = DEFAULT_CHUNK) -> ConsensusModel:
    """Fit a consensus on the labelled objects of photo-z files or ensembles.

    Parameters
    ----------
    sources : sequence of path or qp.Ensemble
        The methods' photo-z of the same objects.
    names : sequence of str
        Method names.
    truth : path, TileSet, TruthTable or mapping
        Truth of the same rows (see `read_table`); objects with NaN truth are not labelled.
    settings : ConsensusSettings
    truth_column : str
        Truth column (the TileSet's spectroscopic ``redshift`` by default: never the simulator's
        ``redshift_true`` of unlabelled objects).
    chunk_size : int
        Rows read at a time.

    Returns
    -------
    ConsensusModel
    """
    n = check_same_rows(sources, names)
    ids = first_ancil(sources, "object_id")
    ztrue, mag, band = labels_of(read_table(truth), n, column=truth_column, mag_band=settings.mag_band, ids=ids)
    labelled = np.isfinite(ztrue)
    zgrid = settings.zgrid
    parts: list[list[np.ndarray]] = [[] for _ in sources]
    for _, _, pdfs, _ in method_chunks(sources, zgrid, chunk_size, select=labelled):  # labelled rows only
        for j, p in enumerate(pdfs):
            parts[j].append(p)
    lab = [np.concatenate(p) if p else np.zeros((0, len(zgrid))) for p in parts]
    return fit_consensus(lab, ztrue[labelled], None if mag is None else mag[labelled], methods=names,
                         settings=settings, mag_band=band or settings.mag_band)


def consensus_ensemble(zgrid: np.ndarray, pdfs: np.ndarray, ancil: Mapping[str, np.ndarray] | None = None,
                       points: Mapping[str, np.ndarray] | None = None):
    """A ``qp.interp`` ensemble of grid PDFs with ``zmode``, ``zmean``, ``zmedian`` and ``ancil``.

    The point estimates are ``points`` where given (the posterior's before the output PIT maps,
    `iter_consensus`), else those of ``pdfs`` (`rail.deepdisc.consensus.grid.grid_point_estimates`).
    """
    import qp

    # rows are normalised (trapezoid) and finite already: qp's own pass would only repeat it
    ens = qp.Ensemble(qp.interp, data=dict(xvals=np.asarray(zgrid, float), yvals=pdfs, norm=False, warn=False))
    columns = dict(ancil or {})
    columns.update(grid_point_estimates(zgrid, pdfs) if points is None else points)
    ens.set_ancil(columns)
    return ens


def iter_consensus(sources: Sequence, model: ConsensusModel, magnitude=None, *,
                   chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[int, int, Any]]:
    """The consensus of photo-z files or ensembles, chunk by chunk, as ``(start, end, qp.Ensemble)``.

    The PDFs are `rail.deepdisc.consensus.apply.combine_pdfs`'s; the point estimates those of the posterior before
    the output PIT maps (`rail.deepdisc.consensus.apply.combined_posterior`).

    Parameters
    ----------
    sources : sequence of path or qp.Ensemble
        The methods' photo-z of the same objects, in the model's method order.
    model : ConsensusModel
    magnitude : ndarray, shape (N,), optional
        Magnitudes of the bad-fraction bins (None: the bad fractions over all labels).
    chunk_size : int
        Rows per chunk.
    """
    if len(sources) != len(model.methods):
        raise DeepDiscError(f"the consensus model combines {len(model.methods)} methods "
                            f"({', '.join(model.methods)}), {len(sources)} photo-z inputs given")
    n = check_same_rows(sources, list(model.methods))
    if magnitude is not None and np.shape(magnitude) != (n,):
        raise DeepDiscError(f"magnitude has shape {np.shape(magnitude)}, the photo-z hold {n} objects")
    if magnitude is None and model.n_bins > 1:
        log.warning("no magnitudes given: the bad fractions over all labels are used instead of the model's "
                    "%d magnitude bins", model.n_bins)
    zgrid = model.zgrid
    for start, end, pdfs, ancil in method_chunks(sources, zgrid, chunk_size):
        mag = None if magnitude is None else np.asarray(magnitude, float)[start:end]
        posterior = combined_posterior(model, pdfs, mag)
        points = grid_point_estimates(zgrid, posterior)  # before the output maps (rail.deepdisc.consensus.apply)
        yield start, end, consensus_ensemble(zgrid, apply_model_maps(model, posterior, mag), ancil, points)


def combine_ensembles(ensembles: Sequence, model: ConsensusModel, magnitude=None, *,
                      chunk_size: int = DEFAULT_CHUNK):
    """The consensus of in-memory ensembles as one ``qp.interp`` ensemble (see `iter_consensus`)."""
    import qp

    chunks = [ens for _, _, ens in iter_consensus(ensembles, model, magnitude, chunk_size=chunk_size)]
    return chunks[0] if len(chunks) == 1 else qp.concatenate(chunks)


def write_consensus(sources: Sequence, model: ConsensusModel, output: str | os.PathLike, magnitude=None, *,
                    chunk_size: int = DEFAULT_CHUNK) -> Path:
    """Combine photo-z files chunk by chunk into a qp file, written atomically.

    Parameters
    ----------
    sources : sequence of path or qp.Ensemble
    model : ConsensusModel
    output : str or Path
        The qp file to write.
    magnitude : ndarray, optional
        See `iter_consensus`.
    chunk_size : int
        Rows per chunk.

    Returns
    -------
    Path
        ``output``.
    """
    n = check_same_rows(sources, list(model.methods))
    if n == 0:
        raise DeepDiscError(f"{describe(sources[0], 0)}: no objects to combine")
    fout = group = last = None
    with atomic_path(output, suffix=".hdf5") as tmp:
        try:
            for start, end, ens in iter_consensus(sources, model, magnitude, chunk_size=chunk_size):
                if fout is None:
                    group, fout = ens.initializeHdf5Write(str(tmp), n)
                ens.writeHdf5Chunk(group, start, end)
                last = ens
        finally:
            if fout is not None:
                last.finalizeHdf5Write(fout)
    log.info("wrote the consensus of %d objects (%s) to %s", n, ", ".join(model.methods), output)
    return Path(output)

"""The methods' photo-z, read in lockstep chunks and checked to describe the same objects in the same order.

A source is a qp file or an in-memory ``qp.Ensemble`` (any representation: DeepDISC's Gaussian mixtures,
EAZY/BPZ grid PDFs, ...). `method_chunks` reads all sources ``chunk_size`` rows at a time and tabulates each
chunk on the common grid, so memory stays bounded for any catalogue. ``interp`` and ``mixmod`` ensembles (the
estimators' outputs) are read straight from their arrays (qp's HDF5 tables, or the ensemble's ``objdata``),
which skips qp's normalisation pass on every chunk (the grid rows are normalised here anyway); other
representations go through ``qp.iterator`` or ensemble slices and qp's ``pdf``.
`check_same_rows` refuses sources whose rows differ (a different length, or ``object_id`` ancil columns that
disagree) with one line naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rail.deepdisc.consensus.grid import mixture_on_grid, normalise_rows, pdfs_on_grid
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["CARRIED_COLUMNS", "DEFAULT_CHUNK", "describe", "first_ancil", "check_same_rows", "resample_rows",
           "method_chunks"]

#: Ancil columns copied from the inputs to the consensus (from the first input that has each).
CARRIED_COLUMNS = ("object_id", "detected", "forced", "recentred", "spec_rep")
#: Objects per chunk (M methods x chunk x grid points are held at once).
DEFAULT_CHUNK = 10_000

Chunk = tuple[int, int, np.ndarray, dict[str, np.ndarray]]


def _is_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def describe(source, k: int) -> str:
    """The file name of a source, or ``input ensemble <k + 1>`` for an in-memory one."""
    return str(source) if _is_path(source) else f"input ensemble {k + 1}"


def _length(source) -> int:
    if not _is_path(source):
        return int(source.npdf)
    import qp

    if not Path(source).is_file():
        raise DeepDiscError(f"{source}: no such photo-z file")
    try:
        return int(qp.data_length(str(source)))
    except Exception as err:  # qp raises KeyError/OSError/ValueError on foreign files
        raise DeepDiscError(f"{source}: not a qp photo-z file ({type(err).__name__}: {err})") from None


def _ancil_column(source, name: str) -> np.ndarray | None:
    if not _is_path(source):
        values = (source.ancil or {}).get(name)
        return None if values is None else np.asarray(values).reshape(-1)
    with h5py.File(source, "r") as f:
        group = f.get("ancil")
        return None if group is None or name not in group else np.asarray(group[name][()]).reshape(-1)


def first_ancil(sources: Sequence, name: str) -> np.ndarray | None:
    """The ancil column ``name`` of the first source that has it (None if none has)."""
    return next((c for c in (_ancil_column(s, name) for s in sources) if c is not None), None)


def check_same_rows(sources: Sequence, names: Sequence[str] | None = None) -> int:
    """Check that photo-z files (or ensembles) hold the same objects in the same order.

    Parameters
    ----------
    sources : sequence of path or qp.Ensemble
        The inputs.
    names : sequence of str, optional
        Method names (for messages).

    Returns
    -------
    int
        The common number of rows.

    Raises
    ------
    DeepDiscError
        One line naming the first input whose length or ``object_id`` column differs from the first's.
    """
    if len(sources) < 1:
        raise DeepDiscError("no photo-z input given")
    desc = [describe(s, k) + (f" ({names[k]})" if names else "") for k, s in enumerate(sources)]
    lengths = [_length(s) for s in sources]
    for k in range(1, len(sources)):
        if lengths[k] != lengths[0]:
            raise DeepDiscError(f"{desc[k]} holds {lengths[k]} PDFs but {desc[0]} holds {lengths[0]}: combine "
                                f"photo-z of the same objects in the same order")
    ref = None
    for k, source in enumerate(sources):
        ids = _ancil_column(source, "object_id")
        if ids is None:
            continue
        ids = ids.astype(np.int64)
        if ref is None:
            ref = (k, ids)
            continue
        diff = np.flatnonzero(ids != ref[1])
        if len(diff):
            i = int(diff[0])
            raise DeepDiscError(f"{desc[k]}: row {i} is object_id {ids[i]} but {desc[ref[0]]} row {i} is "
                                f"{ref[1][i]}: combine photo-z of the same objects in the same order")
    return lengths[0]


def _carried(ancil, start: int, end: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(ancil[k]).reshape(end - start) for k in CARRIED_COLUMNS if ancil and k in ancil}


def resample_rows(xvals: np.ndarray, rows: np.ndarray, zgrid: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows tabulated on ``xvals`` onto ``zgrid`` (0 outside ``xvals``), all rows at once."""
    k = np.clip(np.searchsorted(xvals, zgrid, side="right") - 1, 0, len(xvals) - 2)
    t = np.clip((zgrid - xvals[k]) / (xvals[k + 1] - xvals[k]), 0.0, 1.0)
    out = rows[:, k] * (1.0 - t) + rows[:, k + 1] * t
    out[:, (zgrid < xvals[0]) | (zgrid > xvals[-1])] = 0.0
    return out


def _select(values, a: int, b: int, keep: np.ndarray | None) -> np.ndarray:
    """Rows ``a:b`` (then ``keep``) as a new float array (never a view of an in-memory ensemble)."""
    out = np.array(values[a:b], dtype=float)
    return out if keep is None else out[keep]


def _array_chunks(kind: str, data, xvals, ancil, zgrid: np.ndarray, n: int, chunk_size: int,
                  select: np.ndarray | None) -> Iterator[Chunk]:
    """Chunks of an ``interp`` or ``mixmod`` ensemble's arrays (qp's HDF5 tables or an ensemble's objdata)."""
    same_grid = kind != "interp" or (xvals.shape == zgrid.shape and np.allclose(xvals, zgrid, rtol=0, atol=1e-9))
    for a in range(0, n, chunk_size):
        b = min(a + chunk_size, n)
        keep = None if select is None else np.asarray(select[a:b], bool)
        if kind == "interp":
            y = _select(data["yvals"], a, b, keep)
            pdfs = normalise_rows(zgrid, y if same_grid else resample_rows(xvals, y, zgrid))
        else:
            pdfs = normalise_rows(zgrid, mixture_on_grid(*(_select(data[k], a, b, keep)
                                                           for k in ("means", "stds", "weights")), zgrid))
        present = [k for k in CARRIED_COLUMNS if ancil is not None and k in ancil]
        carried = {k: np.asarray(ancil[k][a:b]).reshape(-1) for k in present}  # rows a:b only, also from a file
        yield a, b, pdfs, {k: v if keep is None else v[keep] for k, v in carried.items()}


def _kind(ens) -> str:
    return type(ens.gen_obj).__name__.removesuffix("_gen")


def _ensemble_chunks(ens, zgrid: np.ndarray, chunk_size: int, select: np.ndarray | None) -> Iterator[Chunk]:
    n = int(ens.npdf)
    if _kind(ens) in ("interp", "mixmod"):
        xvals = np.asarray(ens.metadata["xvals"], float).reshape(-1) if _kind(ens) == "interp" else None
        yield from _array_chunks(_kind(ens), ens.objdata, xvals, ens.ancil, zgrid, n, chunk_size, select)
        return
    for a in range(0, n, chunk_size):
        b = min(a + chunk_size, n)
        yield _qp_chunk(ens[np.arange(a, b)], a, b, zgrid, select)


def _qp_chunk(part, a: int, b: int, zgrid: np.ndarray, select: np.ndarray | None) -> Chunk:
    if select is not None:
        rows = np.flatnonzero(select[a:b])
        if not len(rows):
            return a, b, np.zeros((0, len(zgrid))), {}
        part = part[rows]
    return a, b, pdfs_on_grid(part, zgrid), _carried(part.ancil, 0, part.npdf)


def _file_chunks(path, zgrid: np.ndarray, chunk_size: int, select: np.ndarray | None) -> Iterator[Chunk]:
    with h5py.File(path, "r") as f:
        kind = ""
        if "meta" in f and "pdf_name" in f["meta"]:
            raw = np.asarray(f["meta"]["pdf_name"][()]).reshape(-1)[0]
            kind = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind in ("interp", "mixmod") and "data" in f:
            xvals = np.asarray(f["meta"]["xvals"][()], float).reshape(-1) if kind == "interp" else None
            yield from _array_chunks(kind, f["data"], xvals, f.get("ancil"), zgrid, _length(path), chunk_size,
                                     select)
            return
    import qp

    for a, b, part in qp.iterator(str(path), chunk_size=chunk_size):
        yield _qp_chunk(part, a, b, zgrid, select)


def method_chunks(sources: Sequence, zgrid: np.ndarray, chunk_size: int = DEFAULT_CHUNK,
                  select: np.ndarray | None = None) -> Iterator[tuple[int, int, list[np.ndarray], dict[str, Any]]]:
    """Read the sources in lockstep: per chunk, each method's PDFs on ``zgrid`` and the carried ancil columns.

    Parameters
    ----------
    sources : sequence of path or qp.Ensemble
    zgrid : ndarray, shape (G,)
    chunk_size : int
        Rows read at a time.
    select : ndarray of bool, shape (N,), optional
        Only these rows are tabulated and returned (e.g. the labelled objects of a fit).

    Yields
    ------
    start, end : int
        Rows of the chunk.
    pdfs : list of ndarray, shape (end - start, G)
        One array per source, normalised on the grid (only the selected rows with ``select``).
    ancil : dict of str -> ndarray
        `CARRIED_COLUMNS` found in the sources (the first source having each).
    """
    if chunk_size < 1:
        raise DeepDiscError(f"chunk_size must be >= 1, got {chunk_size}")
    readers = [(_file_chunks if _is_path(s) else _ensemble_chunks)(s, zgrid, chunk_size, select) for s in sources]
    for parts in zip(*readers):
        ancil: dict[str, np.ndarray] = {}
        for _, _, _, carried in parts:
            for name, values in carried.items():
                ancil.setdefault(name, values)
        yield parts[0][0], parts[0][1], [p for _, _, p, _ in parts], ancil

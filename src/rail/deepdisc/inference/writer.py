"""Spooling photo-z chunks to per-process files and merging them in row order (serial and MPI runs alike).

RAIL's ``QPHandle`` writes an MPI run's chunks into one file through parallel HDF5, which the h5py wheels
lack. Instead every process appends the ``qp`` ensemble chunks it computed (any parameterisation: the spool
keeps qp's own ``meta``/``data``/``ancil`` tables) to its own spool file beside the output (`ChunkSpool`); at
the end one process reads all spools back chunk by chunk in row order (`iter_spooled`) and writes the output
through the ordinary ``QPHandle`` chunk writer. A one-process run takes the same path, so the output of N
processes is the same file as that of one. Memory stays at one chunk: nothing is gathered. The stage side is
`rail.deepdisc.inference.spooled.SpooledOutputMixin`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from rail.deepdisc.atomic import commit, temporary_beside
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["ChunkSpool", "spool_path", "iter_spooled", "write_spooled", "remove_spools"]

_CHUNK_PREFIX = "rows_"
_ROW_DIGITS = 15
#: qp's table names (`qp.Ensemble.build_tables`): generator name and grid (meta), per-object data, ancil.
_TABLES = ("meta", "data", "ancil")
#: qp's flag for string columns encoded for HDF5.
_QP_EXT = "hdf5"


def spool_path(output: str | os.PathLike, rank: int, size: int) -> Path:
    """Return the spool file of process ``rank`` of ``size`` for an output file (hidden, beside it).

    Parameters
    ----------
    output : str or Path
        The estimator's output file.
    rank, size : int
        This process's rank and the number of processes.

    Returns
    -------
    Path
        ``.<output name>.spool<rank>of<size>.tmp`` in the output's folder.
    """
    output = Path(output)
    return output.parent / f".{output.name}.spool{rank}of{size}.tmp"


class ChunkSpool:
    """One process's photo-z chunks, appended to a temporary HDF5 file as they are computed.

    Parameters
    ----------
    path : str or Path
        The spool file (see `spool_path`); an older file there is replaced.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        h5py.File(self.path, "w").close()
        self._open = True

    def append(self, start: int, end: int, ensemble) -> None:
        """Store the rows ``[start, end)`` of the output.

        Parameters
        ----------
        start, end : int
            Row range of the chunk in the complete output.
        ensemble : qp.Ensemble
            ``end - start`` PDFs of any qp parameterisation, with or without ancil columns; its metadata
            (generator name, version, grids such as ``xvals``) is stored with the chunk.
        """
        if ensemble.npdf != end - start:
            raise ValueError(f"chunk {start}:{end} holds {ensemble.npdf} rows, expected {end - start}")
        if not self._open:
            raise ValueError(f"{self.path}: the spool is closed")
        tables = ensemble.build_tables(encode=True, ext=_QP_EXT)
        # opened for each chunk and closed after it: an HDF5 file held open keeps growing caches for every
        # group and dataset written (~13 MB of memory per chunk, 1.2 GB per process over a JADES-size field)
        with h5py.File(self.path, "a") as f:
            group = f.create_group(f"{_CHUNK_PREFIX}{start:0{_ROW_DIGITS}d}")
            group.attrs["start"], group.attrs["end"] = int(start), int(end)
            for name in _TABLES:
                sub = group.create_group(name)
                for key, values in (tables.get(name) or {}).items():
                    sub.create_dataset(key, data=np.asarray(values))

    def close(self) -> None:
        """Accept no more chunks (idempotent; the file is closed after every chunk)."""
        self._open = False

    def discard(self) -> None:
        """Close and delete the file (after a failed run)."""
        self.close()
        self.path.unlink(missing_ok=True)


def iter_spooled(paths: Sequence[str | os.PathLike], n_rows: int) -> Iterator[tuple[int, int, object]]:
    """Read spooled chunks back in row order, checking that they cover ``[0, n_rows)`` exactly once.

    Parameters
    ----------
    paths : sequence of str or Path
        Spool files (missing ones are skipped: a process may have had no chunk).
    n_rows : int
        Rows of the complete output.

    Yields
    ------
    (int, int, qp.Ensemble)
        ``start``, ``end`` and the ensemble of those rows, rebuilt by qp from the stored tables.

    Raises
    ------
    DeepDiscError
        If the chunks leave a gap, overlap or do not end at ``n_rows``.
    """
    import qp

    files = [h5py.File(p, "r") for p in paths if Path(p).exists()]
    try:
        index = sorted((int(g.attrs["start"]), int(g.attrs["end"]), k, name)
                       for k, f in enumerate(files) for name, g in f.items())
        _check_coverage([(a, b) for a, b, _, _ in index], n_rows, paths)
        for start, end, k, name in index:
            group = files[k][name]
            tables = {table: {key: group[table][key][()] for key in group[table]} for table in _TABLES}
            if not tables["ancil"]:
                del tables["ancil"]
            yield start, end, qp.from_tables(tables, decode=True, ext=_QP_EXT)
    finally:
        for f in files:
            f.close()


def _check_coverage(ranges: list[tuple[int, int]], n_rows: int, paths) -> None:
    expected = 0
    for start, end in ranges:
        if start != expected:
            what = "overlap" if start < expected else "gap"
            raise DeepDiscError(f"photo-z chunks in {', '.join(map(str, paths))} {what} at row "
                                f"{min(start, expected)}; the run was incomplete: run the estimator again")
        expected = end
    if expected != n_rows:
        raise DeepDiscError(f"photo-z chunks cover {expected} of {n_rows} rows; the run was incomplete: run "
                            f"the estimator again")


def remove_spools(paths: Sequence[str | os.PathLike]) -> None:
    """Delete spool files.

    Parameters
    ----------
    paths : sequence of str or Path
        Spool files; missing ones are ignored.
    """
    for p in paths:
        Path(p).unlink(missing_ok=True)


def write_spooled(handle, spools: Sequence[str | os.PathLike], n_rows: int) -> Path:
    """Write spooled chunks in row order through a RAIL ``QPHandle``, atomically, then delete the spools.

    Parameters
    ----------
    handle : rail.core.data.QPHandle
        The output handle; its ``path`` is the target file (written as a temporary file beside it, then
        renamed into place).
    spools : sequence of str or Path
        Spool files of every process.
    n_rows : int
        Rows of the complete output.

    Returns
    -------
    Path
        The written file.
    """
    final = Path(handle.path)
    tmp = temporary_beside(final)
    try:
        handle.path = str(tmp)
        for k, (start, end, ensemble) in enumerate(iter_spooled(spools, n_rows)):
            handle.set_data(ensemble, partial=True)
            if k == 0:
                handle.initialize_write(n_rows)
            handle.write_chunk(start, end)
        handle.finalize_write()
        commit(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        handle.path = str(final)
        remove_spools(spools)
    return final

"""`SpooledOutputMixin`: RAIL estimators that write through per-process spools (MPI without parallel HDF5).

RAIL's `CatEstimator` writes each chunk into one shared ``QPHandle`` file, which under MPI needs an h5py
built against parallel HDF5 (the pip wheels are not: "hdf5py module not prepared for parallel writing").
Mixed in before the estimator base class, this mixin sends every chunk to the process's own spool file
(`rail.deepdisc.inference.writer.ChunkSpool`) and has process 0 write the output in row order at the end
(`rail.deepdisc.inference.writer.write_spooled`). A one-process run takes the same path, so the output of N processes
is byte for byte the file of one. ``output_mode: return`` keeps RAIL's in-memory path unchanged.

Examples
--------
>>> class MyEstimator(SpooledOutputMixin, CatEstimator):  # doctest: +SKIP
...     name = "MyEstimator"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rail.deepdisc.inference.writer import ChunkSpool, spool_path, write_spooled

__all__ = ["SpooledOutputMixin"]

#: ``output_mode`` under which RAIL keeps the output in memory instead of writing a file.
RETURN_MODE = "return"


class SpooledOutputMixin:
    """Chunk output of a RAIL ``CatEstimator`` through per-process spools, merged by process 0.

    Put it first among the bases (``class E(SpooledOutputMixin, CatEstimator)``) so that its
    `_initialize_run`, `_do_chunk_output` and `_finalize_run` wrap the estimator's. Chunks are decorated as
    RAIL decorates them (point estimates from ``calculated_point_estimates``, summary statistics, ``id``,
    ``redshift`` and ``distribution_type`` ancil columns from the input chunk), then spooled. A run that fails
    deletes its spool and leaves an older output file untouched.
    """

    _spool: ChunkSpool | None = None

    def _spooling(self) -> bool:
        return self.config.output_mode != RETURN_MODE

    def run(self) -> None:
        """Run the estimator; on any failure delete this process's spool before re-raising."""
        try:
            super().run()
        except BaseException:
            if self._spool is not None:
                self._spool.discard()
                self._spool = None
            raise

    def _output_spools(self) -> list:
        output = self.get_output(self.get_aliased_tag("output"))
        return [spool_path(output, rank, self.size) for rank in range(self.size)]

    def _initialize_run(self) -> None:
        super()._initialize_run()
        if self._spooling():
            self._spool = ChunkSpool(self._output_spools()[self.rank])

    def _do_chunk_output(self, qp_dstn, start: int, end: int, first: bool, data: Any = None):
        if not self._spooling():
            return super()._do_chunk_output(qp_dstn, start, end, first, data=data)
        qp_dstn = self._decorate_chunk(qp_dstn, start, end, data)
        self._spool.append(start, end, qp_dstn)
        return qp_dstn

    def _decorate_chunk(self, qp_dstn, start: int, end: int, data: Any):
        """Add what ``CatEstimator._do_chunk_output`` (pz-rail-base) adds to a chunk before writing it."""
        qp_dstn = self.calculate_point_estimates(qp_dstn)
        if self.config.calc_summary_stats:
            qp_dstn = self._calculate_summary_stats(qp_dstn)
        if data is None:
            return qp_dstn
        if qp_dstn.ancil is None:
            qp_dstn.set_ancil({})
        if self.config.id_col in data.keys():
            qp_dstn.ancil.update(id=data[self.config.id_col])
        if self.config.redshift_col in data.keys():
            qp_dstn.ancil.update(redshift=data[self.config.redshift_col])
        if "distribution_type" not in qp_dstn.ancil:
            kind = self.default_distribution_type().value
            qp_dstn.ancil.update(distribution_type=np.repeat(kind, end - start))
        return qp_dstn

    def _finalize_run(self) -> None:
        if not self._spooling():
            super()._finalize_run()
            return
        self._spool.close()
        self._spool = None
        if self.comm is not None:
            self.comm.Barrier()  # every spool is complete
        self._output_handle = self.add_handle("output")
        if self.rank == 0:
            write_spooled(self._output_handle, self._output_spools(), self._input_length)
        if self.comm is not None:
            self.comm.Barrier()  # the output exists before any process reads it

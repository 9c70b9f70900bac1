"""RAIL data handles for TileSets and DeepDISC model artifacts.

`TileSetHandle` lets RAIL stages take TileSet files as inputs and iterate over them in chunks of whole tiles:
its size is the number of *primary* objects (the estimator's output rows), and each chunk carries the output
rows ``[start, end)`` of its primary objects, so chunked and MPI runs write every row exactly once.
`DeepDiscModelHandle` reads and writes model artifacts with ``torch.load(weights_only=True)`` instead of
RAIL's default pickle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from rail.core.data import DataHandle, ModelHandle

from rail.deepdisc.exceptions import TileSetError
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.tileset.io import iter_tileset, read_tileset, write_tileset
from rail.deepdisc.tileset.validation import reading

__all__ = ["TileSetHandle", "DeepDiscModelHandle"]


class TileSetHandle(DataHandle):
    """RAIL handle for a ``deepdisc-tiles`` HDF5 file or an in-memory `TileSet`.

    Iteration yields ``(start, end, chunk)``: ``chunk`` is a `TileSet` of whole tiles and ``start:end`` the
    output rows of its primary objects. ``chunk_size`` counts primary objects (a chunk closes once it holds at
    least that many); with ``parallel_size > 1`` each rank takes every ``parallel_size``-th chunk of the same plan.
    """

    suffix = "h5"
    interactive_type = "rail.deepdisc.tileset.format.TileSet"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        import h5py

        return h5py.File(path, "r")

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> TileSet:
        return read_tileset(path)

    @classmethod
    def _write(cls, data: TileSet, path: str, **kwargs: Any) -> None:
        write_tileset(data, path)

    @classmethod
    def _validate_data(cls, data: Any) -> None:
        if not isinstance(data, TileSet):
            raise TileSetError(f"TileSetHandle expects a rail.deepdisc.TileSet, got {type(data).__name__}")

    def _size(self, path: str, **kwargs: Any) -> int:
        import h5py

        with reading(path), h5py.File(path, "r") as f:  # a damaged file: one TileSetError naming it
            return int(np.count_nonzero(f["objects"]["primary"][()]))

    def _data_size(self, data: TileSet, **kwargs: Any) -> int:
        return data.n_primary

    def _in_memory_iterator(self, **kwargs: Any) -> Iterator[tuple[int, int, TileSet]]:
        data = self.data
        yield data.primary_offset, data.primary_offset + data.n_primary, data

    @classmethod
    def _iterator(cls, path: str, **kwargs: Any) -> Iterator[tuple[int, int, TileSet]]:
        chunk_size = kwargs.get("chunk_size") or None
        for chunk in iter_tileset(path, chunk_tiles=kwargs.get("chunk_tiles"), max_primary=chunk_size,
                                  rank=kwargs.get("rank", 0), n_ranks=kwargs.get("parallel_size", 1)):
            yield chunk.primary_offset, chunk.primary_offset + chunk.n_primary, chunk


def _read_artifact(path: str) -> dict:
    from rail.deepdisc.model.artifact import load_artifact

    return load_artifact(path, mmap=True)  # weights stay in the file; what is read is paged in


def _write_artifact(model: dict, path: str) -> None:
    from rail.deepdisc.model.artifact import save_artifact

    save_artifact(model, path)


class DeepDiscModelHandle(ModelHandle):
    """RAIL handle for a DeepDISC model artifact (``.pt``), read with ``torch.load(weights_only=True)``."""

    suffix = "pt"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        return _read_artifact(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict:
        return _read_artifact(path)

    @classmethod
    def _write(cls, data: dict, path: str, **kwargs: Any) -> None:
        _write_artifact(data, path)

"""Peer model files: plain arrays in a NumPy ``.npz`` archive, read without pickle.

RAIL's `ModelHandle` pickles by default; the EAZY informer's model is a handful of arrays and strings, so it
is stored as ``.npz`` (written atomically, read with ``allow_pickle=False``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from rail.core.data import ModelHandle

from ..atomic import atomic_path
from ..exceptions import ModelError

__all__ = ["save_npz_model", "load_npz_model", "NpzModelHandle"]


def save_npz_model(model: dict, path: str | os.PathLike) -> Path:
    """Write a dict of arrays / scalars / strings to ``path`` atomically (an ``.npz`` archive)."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **{k: np.asarray(v) for k, v in model.items()})
    return Path(path)


def load_npz_model(path: str | os.PathLike) -> dict:
    """Read a model written by `save_npz_model`.

    Raises
    ------
    ModelError
        If the file is not a pickle-free ``.npz`` archive.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a peer model file (.npz of plain arrays): {exc}") from None


class NpzModelHandle(ModelHandle):
    """RAIL handle for peer models stored as ``.npz`` (no pickle)."""

    suffix = "npz"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> dict:
        return load_npz_model(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict:
        return load_npz_model(path)

    @classmethod
    def _write(cls, data: dict, path: str, **kwargs: Any) -> None:
        save_npz_model(data, path)

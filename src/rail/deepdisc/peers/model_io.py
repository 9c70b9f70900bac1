"""Peer model files: plain arrays in a NumPy ``.npz`` archive, read without pickle.

RAIL's `ModelHandle` pickles by default, and unpickling a file runs whatever code it names. The peers' models
are plain data (EAZY: a handful of arrays and strings; BPZ: two dicts of arrays and scalars), so they are
stored as ``.npz`` archives (written atomically, read with ``allow_pickle=False``). Nested dicts are stored
flat, one array per leaf named by its key path (``"priormodel/fo_arr"``), and rebuilt on reading.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rail.core.data import ModelHandle

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.exceptions import ModelError

__all__ = ["save_npz_model", "load_npz_model", "NpzModelHandle"]

#: Separator of nested keys in an archive member name (``"priormodel/fo_arr"``).
KEY_SEPARATOR = "/"


def save_npz_model(model: Mapping, path: str | os.PathLike) -> Path:
    """Write a model of plain data to ``path`` atomically, as an ``.npz`` archive.

    Parameters
    ----------
    model : mapping
        Keys are strings without ``"/"``; values are arrays, scalars, strings, lists of those, or nested
        mappings of the same (stored as ``"outer/inner"`` members).
    path : str or Path
        Target file (any suffix; the archive is written beside it and renamed into place).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ModelError
        If a key holds ``"/"`` or a value is not plain data (it would need pickle to be stored).
    """
    arrays = dict(_flatten(model, ()))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def _flatten(model: Mapping, prefix: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
    for key, value in model.items():
        if not isinstance(key, str) or KEY_SEPARATOR in key:
            raise ModelError(f"peer model key {key!r}: keys must be strings without {KEY_SEPARATOR!r}")
        name = (*prefix, key)
        if isinstance(value, Mapping):
            yield from _flatten(value, name)
            continue
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ModelError(f"peer model entry {KEY_SEPARATOR.join(name)!r} is not plain data (numbers or "
                             f"strings): {type(value).__name__} would need pickle")
        yield KEY_SEPARATOR.join(name), array


def load_npz_model(path: str | os.PathLike) -> dict:
    """Read a model written by `save_npz_model` (never unpickles).

    Parameters
    ----------
    path : str or Path
        The ``.npz`` archive.

    Returns
    -------
    dict
        Arrays by key; nested mappings come back as nested dicts, scalars as 0-d arrays.

    Raises
    ------
    ModelError
        If the file is not a pickle-free ``.npz`` archive.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a peer model file (.npz of plain arrays): {exc}") from None
    model: dict[str, Any] = {}
    for name, array in flat.items():
        *outer, key = name.split(KEY_SEPARATOR)
        node = model
        for part in outer:
            node = node.setdefault(part, {})
        node[key] = array
    return model


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

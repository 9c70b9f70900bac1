"""Evaluation inputs and outputs: photo-z files, truth tables from TileSets, atomic JSON and CSV writers.

The truth of an evaluation is the TileSet the estimator ran on: its primary objects, in file order, are the
rows of the photo-z ensemble (``docs/contracts.md``). `read_truth` reads only the object columns (never the
images). The truth redshift is ``redshift_true`` for simulations and the spectroscopic ``redshift`` otherwise
(NaN = no truth: such objects are left out of every redshift metric but count for detection completeness).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.atomic import write_text_atomic
from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.tileset.format import TileSet
from rail.deepdisc.tileset.validation import open_checked, read_columns, reading

__all__ = [
    "TRUTH_COLUMNS",
    "STAR_COLUMNS",
    "PhotoZTable",
    "TruthTable",
    "with_ancil",
    "read_photoz",
    "read_truth",
    "match_truth",
    "write_json_atomic",
    "write_csv_atomic",
    "read_json",
]

#: Truth columns, in order of preference for ``truth="auto"``.
TRUTH_COLUMNS = ("redshift_true", "redshift")
#: Boolean object columns that mark stars (the simulator's truth, or a user's star/galaxy flag), first found wins.
STAR_COLUMNS = ("true_is_star", "is_star")
_FLAGS = ("detected", "forced", "recentred", "spec_rep")


class PhotoZTable:
    """A photo-z ensemble and its ancil columns, as read from an estimator output.

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs.
    source : str
        Where it came from (for messages).

    Attributes
    ----------
    ancil : dict of str -> ndarray (N,)
        The ensemble's ancil columns (``object_id``, ``zmode``, flags, ...), squeezed to 1-D.
    """

    def __init__(self, ensemble, source: str = "<memory>") -> None:
        self.ensemble = ensemble
        self.source = source
        n = int(ensemble.npdf)
        self.ancil = {k: np.asarray(v).reshape(n) for k, v in (ensemble.ancil or {}).items()
                      if np.asarray(v).size == n}

    @property
    def n(self) -> int:
        """Number of PDFs."""
        return int(self.ensemble.npdf)

    def flags(self) -> dict[str, np.ndarray]:
        """The boolean flags present among ``detected``, ``forced``, ``recentred``, ``spec_rep``."""
        return {k: self.ancil[k].astype(bool) for k in _FLAGS if k in self.ancil}

    def point(self, name: str) -> np.ndarray:
        """A point estimate column (``zmode``, ``zmean`` or ``zmedian``)."""
        if name not in self.ancil:
            raise DeepDiscError(f"{self.source}: the photo-z ensemble has no ancil column {name!r} "
                                f"(it has {', '.join(sorted(self.ancil)) or 'none'})")
        return np.asarray(self.ancil[name], float)


def with_ancil(ensemble, columns: Mapping[str, np.ndarray]):
    """A new ensemble with the same PDFs and its ancil columns plus (or replaced by) ``columns``.

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs.
    columns : mapping of str -> array_like (N,)
        Ancil columns to add.

    Returns
    -------
    qp.Ensemble
    """
    import qp

    ancil = {k: np.asarray(v) for k, v in (ensemble.ancil or {}).items()}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.shape != (ensemble.npdf,):
            raise DeepDiscError(f"ancil column {name!r} has shape {values.shape}, expected "
                                f"({ensemble.npdf},)")
        ancil[name] = values
    return qp.Ensemble(ensemble.gen_class, data=ensemble.objdata, ancil=ancil)


def read_photoz(path: str | os.PathLike) -> PhotoZTable:
    """Read a qp photo-z file (the estimator output, or a peer's).

    Parameters
    ----------
    path : str or Path
        The qp file.

    Returns
    -------
    PhotoZTable

    Raises
    ------
    DeepDiscError
        If the file is missing or not a qp ensemble.
    """
    import qp

    path = Path(path)
    if not path.exists():
        raise DeepDiscError(f"{path}: no such photo-z file")
    try:
        ens = qp.read(str(path))
    except Exception as err:  # qp raises KeyError/ValueError/OSError on foreign files
        raise DeepDiscError(f"{path}: not a qp photo-z ensemble ({type(err).__name__}: {err})") from None
    return PhotoZTable(ens, str(path))


@dataclass(frozen=True)
class TruthTable:
    """The primary objects of a TileSet, in file order: the rows that an estimator output describes.

    Parameters
    ----------
    columns : dict of str -> ndarray (N,)
        The ``objects/`` columns restricted to primary rows (``object_id``, ``redshift``, ``mag_<BAND>``, and
        ``redshift_true`` for simulations).
    bands : tuple of str
        The TileSet's bands, blue to red.
    source : str
        Where it came from (for messages).
    """

    columns: dict[str, np.ndarray]
    bands: tuple[str, ...]
    source: str = "<memory>"

    @classmethod
    def from_tileset(cls, tileset: TileSet) -> TruthTable:
        """The primary objects of an in-memory TileSet."""
        return cls(tileset.primary_objects(), tuple(tileset.bands), f"TileSet {tileset.source}")

    @property
    def n(self) -> int:
        """Number of primary objects."""
        return int(len(self.columns["object_id"]))

    def redshift(self, column: str = "auto", *, galaxies_only: bool = True) -> tuple[np.ndarray, str]:
        """Truth redshifts (NaN = none) and the column used.

        Parameters
        ----------
        column : str
            ``auto`` (``redshift_true`` when present, else the spec-z ``redshift``) or a column name.
        galaxies_only : bool
            Give stars (`stars`) no truth: photo-z metrics describe galaxies, and a star's ``z = 0`` lies on
            the grid's edge, where its PIT (``F(0) = 0`` for any PDF on the grid) says "outside every central
            interval" however right the photo-z is.
        """
        name = column
        if column == "auto":
            name = next((c for c in TRUTH_COLUMNS if c in self.columns), TRUTH_COLUMNS[-1])
        if name not in self.columns:
            raise DeepDiscError(f"{self.source}: no truth column {name!r} (choose auto, redshift_true or "
                                f"redshift)")
        z = np.asarray(self.columns[name], float)
        stars = self.stars() if galaxies_only else None
        if stars is not None and stars.any():
            z = np.where(stars, np.nan, z)
        return z, name

    def stars(self) -> np.ndarray | None:
        """Which objects are stars (the first of `STAR_COLUMNS` present), or None without such a column."""
        name = next((c for c in STAR_COLUMNS if c in self.columns), None)
        return None if name is None else np.asarray(self.columns[name]).astype(bool)

    def magnitude(self, band: str) -> tuple[np.ndarray, str]:
        """AB magnitudes in ``band`` (the reddest band with a ``mag_`` column if absent) and the band used."""
        if f"mag_{band}" not in self.columns:
            candidates = ([b for b in self.bands if f"mag_{b}" in self.columns]
                          or [k[len("mag_"):] for k in self.columns if k.startswith("mag_")])
            if not candidates:
                raise DeepDiscError(f"{self.source}: no mag_<BAND> column for the magnitude bins")
            band = candidates[-1]
        return np.asarray(self.columns[f"mag_{band}"], float), band

    def box_size(self) -> np.ndarray:
        """Side of each object's catalog box, the larger of width and height (px; NaN without ``bbox_*``)."""
        if not all(f"bbox_{c}" in self.columns for c in ("x0", "y0", "x1", "y1")):
            return np.full(self.n, np.nan)
        c = {k: np.asarray(self.columns[f"bbox_{k}"], float) for k in ("x0", "y0", "x1", "y1")}
        return np.maximum(c["x1"] - c["x0"], c["y1"] - c["y0"])


def read_truth(path: str | os.PathLike) -> TruthTable:
    """Read the primary objects of a TileSet file (file order), without reading any image.

    Parameters
    ----------
    path : str or Path
        A ``deepdisc-tiles`` file.

    Returns
    -------
    TruthTable

    Raises
    ------
    TileSetError
        If the file is missing, not a TileSet or malformed (`rail.deepdisc.tileset.validation.open_checked`).
    """
    f, bands, _, _ = open_checked(path, str(path))
    with f, reading(path):  # a damaged file: one TileSetError naming it
        primary = f["objects"]["primary"][()].astype(bool)
        columns = {name: values[primary] for name, values in read_columns(f["objects"]).items()}
    return TruthTable(columns, bands, str(path))


def match_truth(photoz: PhotoZTable, truth: TruthTable) -> None:
    """Check that a photo-z ensemble and a truth table describe the same objects in the same order.

    Parameters
    ----------
    photoz : PhotoZTable
        The estimates (with an ``object_id`` ancil column when the estimator wrote one).
    truth : TruthTable
        The primary objects of a TileSet.

    Raises
    ------
    DeepDiscError
        On a row-count or ``object_id`` mismatch, naming both sources and the first differing row.
    """
    if photoz.n != truth.n:
        raise DeepDiscError(f"{photoz.source} holds {photoz.n} PDFs but {truth.source} has {truth.n} primary "
                            f"objects: evaluate the estimator output against the TileSet it was run on")
    if "object_id" in photoz.ancil:
        ids = np.asarray(photoz.ancil["object_id"]).astype(np.int64)
        truth_ids = np.asarray(truth.columns["object_id"]).astype(np.int64)
        diff = np.flatnonzero(ids != truth_ids)
        if len(diff):
            k = int(diff[0])
            raise DeepDiscError(f"{photoz.source}: row {k} is object_id {ids[k]} but {truth.source} row {k} "
                                f"is {truth_ids[k]}: the rows are not in the TileSet's order")


# ------------------------------------------------------------------------------------------------------
# atomic writers


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as JSON (numpy values converted, NaN and inf as null), atomically.

    Parameters
    ----------
    obj : object
        Dicts, lists, numbers, strings, numpy arrays and scalars, paths.
    path : str or Path
        Output file.

    Returns
    -------
    Path
        The written file.
    """
    return write_text_atomic(json.dumps(_jsonable(obj), indent=1) + "\n", path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, with nulls turned back into NaN inside lists of numbers and rows.

    Parameters
    ----------
    path : str or Path
        A file written by `write_json_atomic`.

    Returns
    -------
    object
        The document.

    Raises
    ------
    DeepDiscError
        If the file is missing or not valid JSON.
    """
    path = Path(path)
    if not path.exists():
        raise DeepDiscError(f"{path}: no such file")
    try:
        return _nan_from_null(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DeepDiscError(f"{path}: not valid JSON ({err})") from None


def _nan_from_null(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (np.nan if v is None else _nan_from_null(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [np.nan if v is None else _nan_from_null(v) for v in obj]
    return obj


def write_csv_atomic(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike,
                     columns: Iterable[str] | None = None) -> Path:
    """Write rows as CSV with a header, atomically; floats with 6 significant digits.

    Parameters
    ----------
    rows : sequence of mapping
        One dict per row; missing keys are written empty.
    path : str or Path
        Output file.
    columns : iterable of str, optional
        Columns in order (default: every key, in first-seen order); other keys are left out.

    Returns
    -------
    Path
        The written file.
    """
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k, "")) for k in columns})
    return write_text_atomic(buf.getvalue(), path)


def _csv_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return "nan" if not math.isfinite(float(value)) else f"{float(value):.6g}"
    return value

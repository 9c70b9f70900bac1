"""The evaluation folder: write it from files (``deepdisc evaluate``), read it back, compare several.

The folder's files are listed in :mod:`rail.deepdisc.evaluation.evaluate`. `evaluate_files` is the whole
``deepdisc evaluate`` step: read the photo-z file and the TileSet's object table, optionally compute the SOM
``spec_rep`` flag from a training TileSet, read peers, evaluate and write. `compare_evaluations` turns several
folders (e.g. one per filter preset) into one table.

Loss curves (`read_loss_curves`) are accepted in any of these JSON shapes, so that training logs of other
versions still plot: ``{"members": [M, ...]}``, a list ``[M, ...]`` or a single ``M``, where each member ``M``
is either a dict of per-epoch series (``{"train_loss": [...], "val_nll": [...]}``, any keys holding lists of
numbers) or a list of per-epoch records (``[{"epoch": 0, "train_loss": 1.2, "val_nll": 0.9}, ...]``), or the trainer's
own member records ``{"history": [{"loss": ..., "loss_redshift": ..., "val_nll": ...}, ...], ...}``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rail.deepdisc.atomic import atomic_path
from rail.deepdisc.evaluation.evaluate import EvaluationResult, EvaluationSettings, evaluate_photoz
from rail.deepdisc.evaluation.io import (
    PhotoZTable,
    TruthTable,
    read_json,
    read_photoz,
    read_truth,
    with_ancil,
    write_csv_atomic,
    write_json_atomic,
)
from rail.deepdisc.evaluation.som import SOMSettings, flag_catalogs
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["SUMMARY_FILE", "OBJECTS_FILE", "LOSS_CURVES_FILE", "EvaluationData", "summary_document",
           "write_evaluation",
           "evaluate_files", "load_evaluation", "compare_evaluations", "read_loss_curves"]

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
OBJECTS_FILE = "objects.h5"
LOSS_CURVES_FILE = "loss_curves.json"
_TABLES = ("metrics", "coverage", "completeness", "completeness_size", "peers", "peer_coverage", "peer_bins",
           "peer_pit")
_COMPARE_SUBSET = "all"


@dataclass
class EvaluationData:
    """An evaluation folder read back: ``summary`` (summary.json, tables included) and per-object arrays."""

    path: Path
    summary: dict
    objects: dict[str, np.ndarray]

    def table(self, name: str) -> list[dict]:
        """A table: ``metrics``, ``coverage``, ``completeness`` (``_size``), ``peers``, ``peer_coverage``, ``nz``."""
        return self.summary.get("tables", {}).get(name, [])


def _write_objects(objects: Mapping[str, np.ndarray], path: Path) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, values in objects.items():
            f.create_dataset(name, data=np.asarray(values))


def summary_document(result: EvaluationResult, extra: Mapping | None = None) -> dict:
    """The content of ``summary.json``: summary, ``extra`` entries and every table (no per-object data)."""
    tables = {name: getattr(result, name) for name in _TABLES}
    tables["nz"] = result.nz
    return {**result.summary, **(extra or {}), "tables": tables}


def write_evaluation(result: EvaluationResult, outdir: str | os.PathLike, *,
                     extra: Mapping | None = None) -> Path:
    """Write an evaluation to a folder (created if needed); every file is written atomically.

    Parameters
    ----------
    result : EvaluationResult
        What `evaluate_photoz` returned.
    outdir : str or Path
        The evaluation folder.
    extra : mapping, optional
        More entries for ``summary.json`` (e.g. ``tiles``: the TileSet path, for the report's example tiles).

    Returns
    -------
    Path
        The folder.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name in _TABLES:
        rows = getattr(result, name)
        if rows:
            write_csv_atomic(rows, outdir / f"{name}.csv")
    nz_rows = [{"z": z, "stacked_pdf": p} for z, p in zip(result.nz["z"], result.nz["stacked_pdf"])]
    write_csv_atomic(nz_rows, outdir / "nz.csv")
    _write_objects(result.objects, outdir / OBJECTS_FILE)
    write_json_atomic(summary_document(result, extra), outdir / SUMMARY_FILE)
    log.info("wrote evaluation of %d objects to %s", result.summary["n_objects"], outdir)
    return outdir


def evaluate_files(photoz_path: str | os.PathLike, tiles_path: str | os.PathLike, outdir: str | os.PathLike,
                   *,
                   settings: EvaluationSettings = EvaluationSettings(),
                   peers: Sequence[tuple[str, str | os.PathLike]] = (),
                   spec_tiles: str | os.PathLike | None = None, som_settings: SOMSettings = SOMSettings(),
                   loss_curves: str | os.PathLike | None = None, label: str = "") -> Path:
    """Evaluate a photo-z file against its TileSet and write the evaluation folder (``deepdisc evaluate``).

    Parameters
    ----------
    photoz_path : str or Path
        The estimator output (qp file).
    tiles_path : str or Path
        The TileSet the estimator ran on (only its object table is read).
    outdir : str or Path
        Evaluation folder to write.
    settings : EvaluationSettings
        Evaluation options.
    peers : sequence of (name, path)
        Other estimators' qp files on the same objects.
    spec_tiles : str or Path, optional
        Training TileSet: compute the SOM ``spec_rep`` flag from its spec-z objects (replaces the file's).
    som_settings : SOMSettings
        SOM configuration (default: the paper's 32x32 map).
    loss_curves : str or Path, optional
        Training loss-curve JSON, checked and copied into the folder for the report.
    label : str
        Name of this run in tables.

    Returns
    -------
    Path
        The evaluation folder.
    """
    curves = read_loss_curves(loss_curves) if loss_curves else None
    photoz = read_photoz(photoz_path)
    truth = read_truth(tiles_path)
    if spec_tiles is not None:
        photoz = _with_som_flag(photoz, truth, spec_tiles, som_settings)
    peer_tables = {}
    for name, path in peers:
        if name in peer_tables:
            raise DeepDiscError(f"peer name {name!r} is given twice: name each peer once")
        peer_tables[name] = read_photoz(path)
    result = evaluate_photoz(photoz, truth, settings=settings, peers=peer_tables, label=label)
    extra = {"photoz": str(Path(photoz_path).resolve()), "tiles": str(Path(tiles_path).resolve()),
             "spec_tiles": str(Path(spec_tiles).resolve()) if spec_tiles else ""}
    out = write_evaluation(result, outdir, extra=extra)
    if curves is not None:
        write_json_atomic({"members": curves}, out / LOSS_CURVES_FILE)
    return out


def _with_som_flag(photoz: PhotoZTable, truth: TruthTable, spec_tiles, som_settings: SOMSettings
                   ) -> PhotoZTable:
    spec = read_truth(spec_tiles)
    bands = [b for b in truth.bands if b in spec.bands]
    flags = flag_catalogs(truth.columns, spec.columns, bands, settings=som_settings)
    flagged = with_ancil(photoz.ensemble, {"spec_rep": flags.spec_rep.astype(np.int64)})
    return PhotoZTable(flagged, photoz.source)


def load_evaluation(evaldir: str | os.PathLike) -> EvaluationData:
    """Read an evaluation folder written by `write_evaluation`.

    Raises
    ------
    DeepDiscError
        If the folder lacks ``summary.json`` or ``objects.h5``.
    """
    evaldir = Path(evaldir)
    summary_path, objects_path = evaldir / SUMMARY_FILE, evaldir / OBJECTS_FILE
    for path in (summary_path, objects_path):
        if not path.exists():
            raise DeepDiscError(f"{evaldir}: not an evaluation folder (no {path.name}); run "
                                f"'deepdisc evaluate' first")
    summary = read_json(summary_path)
    with h5py.File(objects_path, "r") as f:
        objects = {k: f[k][()] for k in f}
    return EvaluationData(path=evaldir, summary=summary, objects=objects)


def compare_evaluations(evaluations: Sequence[EvaluationData]) -> list[dict]:
    """One row per evaluation (e.g. per filter preset): label, bands, counts and overall metrics.

    Parameters
    ----------
    evaluations : sequence of EvaluationData

    Returns
    -------
    list of dict
        ``label``, ``n_bands``, ``n_with_truth``, ``bias``, ``sigma_iqr``, ``outlier_fraction``,
        ``calibration_mean_abs``, ``pit_ks``, ``cde_loss``, ``completeness`` (fraction of objects detected).
    """
    rows = []
    for ev in evaluations:
        s = ev.summary
        overall = s.get("metrics", {}).get(_COMPARE_SUBSET, {})
        rail = s.get("rail", {})
        n, detected = s.get("n_objects", 0), s.get("flag_counts", {}).get("detected", np.nan)
        rows.append({
            "label": s.get("label", ev.path.name), "n_bands": len(s.get("bands", [])),
            "n_with_truth": s.get("n_with_truth", 0), "bias": overall.get("bias", np.nan),
            "sigma_iqr": overall.get("sigma_iqr", np.nan),
            "outlier_fraction": overall.get("outlier_fraction", np.nan),
            "calibration_mean_abs": s.get("calibration", {}).get(_COMPARE_SUBSET, {}).get("mean_abs", np.nan),
            "pit_ks": rail.get("pit_ks", np.nan), "cde_loss": rail.get("cde_loss", np.nan),
            "completeness": detected / n if n else np.nan,
        })
    return rows


def _member_series(member, source: str) -> dict[str, np.ndarray]:
    if isinstance(member, dict) and isinstance(member.get("history"), list):  # the trainer's own format
        member = [{new: rec[old] for old, new in _TRAINER_SERIES.items() if old in rec}
                  for rec in member["history"] if isinstance(rec, dict)]
    if isinstance(member, list):  # per-epoch records
        keys = dict.fromkeys(k for rec in member if isinstance(rec, dict) for k in rec)
        member = {k: [rec.get(k, np.nan) if isinstance(rec, dict) else np.nan for rec in member]
                  for k in keys}
    if not isinstance(member, dict):
        raise DeepDiscError(f"{source}: a loss-curve member must be a dict of series or a list of epoch "
                            f"records")
    series = {}
    for key, values in member.items():
        if key == "epoch" or not isinstance(values, list):
            continue
        arr = np.array([np.nan if v is None else v for v in values], dtype=object)
        try:
            series[str(key)] = arr.astype(float)
        except (TypeError, ValueError):
            continue
    return series


#: Series kept from the trainer's ``history`` records (``losscurves.py``), renamed for the report.
_TRAINER_SERIES = {"loss": "train_loss", "loss_redshift": "train_redshift_nll", "val_nll": "val_nll"}


def read_loss_curves(path: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """Read a training loss-curve JSON in any accepted shape (see the module docstring).

    Returns
    -------
    list of dict of str -> ndarray
        One dict of per-epoch series per ensemble member.

    Raises
    ------
    DeepDiscError
        If the file is missing, not JSON, or holds no numeric series.
    """
    data = read_json(path)
    if isinstance(data, dict) and "members" in data:
        data = data["members"]
    elif isinstance(data, dict) or (isinstance(data, list) and data and isinstance(data[0], dict)
                                    and not any(isinstance(v, list) for v in data[0].values())):
        data = [data]
    if not isinstance(data, list):
        raise DeepDiscError(f"{path}: expected a list of members or {{'members': [...]}}")
    members = [_member_series(m, str(path)) for m in data]
    if not any(members):
        raise DeepDiscError(f"{path}: no numeric loss series found (expected e.g. "
                            f"{{'members': [{{'train_loss': [...], 'val_nll': [...]}}]}})")
    return members

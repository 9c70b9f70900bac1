"""Evaluation of a photo-z ensemble against its TileSet: every metric, written to an evaluation folder.

`evaluate_photoz` computes, on the objects with a truth redshift: RAIL's PIT statistics, CDE loss and point
metrics (:mod:`rail.deepdisc.evaluation.rail_metrics`, run on the PDFs tabulated on the redshift grid, since qp's
mixture evaluation does not fit in memory for large catalogs); central-interval coverage and its calibration error
(:mod:`rail.deepdisc.evaluation.coverage`); the paper's metrics overall, by magnitude and redshift bin and by flag
subset (:mod:`rail.deepdisc.evaluation.metrics`); detection completeness versus magnitude and versus the catalog box
side (all objects); the stacked
N(z); and, for peers (other estimators' qp files on the same objects, e.g. BPZ and EAZY), a side-by-side table.
:mod:`rail.deepdisc.evaluation.directory` writes them to the folder the report reads (all writes atomic):

========================= ====================================================================================
``summary.json``          everything except per-object values: settings, sources, overall metrics, tables
``metrics.csv``           paper metrics per subset and bin (``subset``, ``binning``, ``lo``, ``hi``, ``n``, ...)
``coverage.csv``          coverage per subset and credibility level
``completeness.csv``      detection completeness per magnitude bin
``completeness_size.csv`` detection completeness per bin of the catalog box side (px)
``nz.csv``                redshift grid and stacked p(z) (the true-redshift histogram is in ``summary.json``)
``peers.csv``             peer comparison (only with peers)
``peer_coverage.csv``     coverage per estimator and credibility level (only with peers)
``peer_bins.csv``         every estimator by magnitude and redshift bin, with 68/95% coverage (only with peers)
``peer_pit.csv``          every estimator's PIT histogram (only with peers)
``objects.h5``            per-object truth, point estimates, 68% intervals, PIT, flags, magnitude, box side
========================= ====================================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rail.deepdisc.constants import ZMAX, ZMIN
from rail.deepdisc.evaluation.binned import BOX_SIZE_EDGES, detection_completeness, flag_subsets, metrics_table
from rail.deepdisc.evaluation.coverage import (
    CREDIBILITY_LEVELS,
    calibration_error,
    coverage_from_pit,
    ensemble_moments,
    ensemble_quantiles,
    gridded_ensemble,
    pit_values,
)
from rail.deepdisc.evaluation.io import PhotoZTable, TruthTable, match_truth
from rail.deepdisc.evaluation.metrics import OUTLIER_THRESHOLD, point_metrics
from rail.deepdisc.evaluation.rail_metrics import rail_metrics
from rail.deepdisc.evaluation.side_by_side import estimator_tables
from rail.deepdisc.exceptions import ConfigError, DeepDiscError
from rail.deepdisc.presets import FILTER_PRESETS

__all__ = ["EvaluationSettings", "EvaluationResult", "evaluate_photoz"]

log = logging.getLogger(__name__)

_ONE_SIGMA_QUANTILES = (0.15865525393145707, 0.8413447460685429)  # central 68.27% interval
_NZ_HIST_BINS = 60
_OVERALL_KEYS = ("n", "bias", "sigma_iqr", "outlier_fraction", "norm_median", "norm_sigma_iqr")


@dataclass(frozen=True)
class EvaluationSettings:
    """What to evaluate and how (defaults suit JWST deep fields).

    Parameters
    ----------
    point_estimate : str
        Ancil column used as the point estimate (``zmode``, ``zmean`` or ``zmedian``).
    truth_column : str
        ``auto`` (``redshift_true`` when the TileSet has it, else spec-z ``redshift``) or a column name.
    mag_band : str
        Band of the magnitude bins (its ``mag_<BAND>`` column; the reddest band if absent).
    mag_edges : tuple of float
        Magnitude bin edges, AB mag.
    z_edges : tuple of float
        True-redshift bin edges.
    size_edges : tuple of float
        Bin edges of the catalog box side (px) for the completeness by size.
    levels : tuple of float
        Credibility levels of the coverage curve.
    outlier_threshold : float
        Outlier threshold on ``|dz| / (1 + z)``.
    zmin, zmax : float
        Redshift grid for N(z), CDE loss and RAIL's grid mode.
    nzbins : int
        Grid intervals.
    galaxies_only : bool
        Leave stars (``true_is_star`` or ``is_star`` true) out of the redshift metrics, coverage and N(z)
        (`rail.deepdisc.evaluation.io.TruthTable.redshift`); the detection completeness keeps them.
    """

    point_estimate: str = "zmode"
    truth_column: str = "auto"
    mag_band: str = "F444W"
    mag_edges: tuple[float, ...] = (20.0, 22.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0)
    z_edges: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0)
    size_edges: tuple[float, ...] = BOX_SIZE_EDGES
    levels: tuple[float, ...] = CREDIBILITY_LEVELS
    outlier_threshold: float = OUTLIER_THRESHOLD
    zmin: float = ZMIN
    zmax: float = ZMAX
    nzbins: int = 600
    galaxies_only: bool = True

    def __post_init__(self):
        if self.point_estimate not in ("zmode", "zmean", "zmedian"):
            raise ConfigError(f"point_estimate must be zmode, zmean or zmedian, got {self.point_estimate!r}")
        for name in ("mag_edges", "z_edges", "size_edges"):
            edges = np.asarray(getattr(self, name), float)
            if len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ConfigError(f"{name} must be increasing bin edges, got {list(edges)}")
        if not self.zmax > self.zmin or self.nzbins < 2:
            raise ConfigError(f"bad redshift grid zmin={self.zmin}, zmax={self.zmax}, nzbins={self.nzbins}")
        if not 0 < self.outlier_threshold:
            raise ConfigError(f"outlier_threshold must be positive, got {self.outlier_threshold!r}")

    @property
    def zgrid(self) -> np.ndarray:
        """The redshift grid, shape (nzbins + 1,)."""
        return np.linspace(self.zmin, self.zmax, self.nzbins + 1)


@dataclass
class EvaluationResult:
    """Everything `evaluate_photoz` computed (see the module docstring for the files it becomes)."""

    summary: dict
    metrics: list[dict]
    coverage: list[dict]
    completeness: list[dict]
    nz: dict[str, np.ndarray]
    objects: dict[str, np.ndarray]
    completeness_size: list[dict] = field(default_factory=list)  # by catalog box side (px)
    peers: list[dict] = field(default_factory=list)
    peer_coverage: list[dict] = field(default_factory=list)
    peer_bins: list[dict] = field(default_factory=list)  # every estimator by magnitude and redshift bin
    peer_pit: list[dict] = field(default_factory=list)  # every estimator's PIT histogram


def _preset_of(bands: Sequence[str]) -> str:
    return next((name for name, b in FILTER_PRESETS.items() if tuple(b) == tuple(bands)), "custom")


def _gridded_with_truth(ensemble, ztrue: np.ndarray, settings: EvaluationSettings):
    """The PDFs of the objects with a truth redshift on the grid, and their truths.

    Only these rows are read (by RAIL's metrics and the stacked N(z)); gridded, a PDF holds ~30 kB (the grid
    and qp's copies of it), so gridding every object made the evaluation's memory grow with the catalog rather
    than with its labelled objects.
    """
    rows = np.flatnonzero(np.isfinite(ztrue))
    return gridded_ensemble(ensemble[rows], settings.zgrid), ztrue[rows]


def _nz(gridded, ztrue: np.ndarray, settings: EvaluationSettings) -> dict[str, np.ndarray]:
    rows = np.isfinite(ztrue)
    # (npdf, grid) even for one PDF, which qp holds as a 1-d array
    yvals = np.asarray(gridded.objdata["yvals"], float).reshape(gridded.npdf, len(settings.zgrid))[rows]
    stacked = yvals.mean(axis=0) if len(yvals) else np.zeros(yvals.shape[1])
    counts, edges = np.histogram(ztrue[rows], bins=_NZ_HIST_BINS, range=(settings.zmin, settings.zmax))
    density = counts / max(counts.sum(), 1) / np.diff(edges)
    return {"z": settings.zgrid, "stacked_pdf": stacked, "true_hist_edges": edges,
            "true_hist_density": density}


def _coverage_rows(pit: np.ndarray, subsets: Mapping[str, np.ndarray], levels) -> tuple[list[dict], dict]:
    rows, calib = [], {}
    for name, sel in subsets.items():
        res = coverage_from_pit(pit[sel], levels)
        rows += [{"subset": name, **r} for r in res.rows()]
        calib[name] = calibration_error(res) if res.n else {}
    return rows, calib


def _object_arrays(photoz: PhotoZTable, ztrue, zphot, mag, size) -> dict[str, np.ndarray]:
    zmean, zstd = ensemble_moments(photoz.ensemble)
    lo_hi = ensemble_quantiles(photoz.ensemble, _ONE_SIGMA_QUANTILES)
    out = {"object_id": np.asarray(photoz.ancil.get("object_id", np.arange(photoz.n))).astype(np.int64),
           "ztrue": ztrue, "zphot": zphot, "zmean_pdf": zmean, "zstd": zstd, "zlo68": lo_hi[:, 0],
           "zhi68": lo_hi[:, 1], "pit": pit_values(photoz.ensemble, ztrue), "mag": mag,
           "box_size": size}
    out.update({k: v.astype(bool) for k, v in photoz.flags().items()})
    return out


def evaluate_photoz(photoz: PhotoZTable, truth: TruthTable, *,
                    settings: EvaluationSettings = EvaluationSettings(),
                    peers: Mapping[str, PhotoZTable] | None = None, label: str = "") -> EvaluationResult:
    """Compute every metric of a photo-z ensemble against the primary objects of its TileSet.

    Parameters
    ----------
    photoz : PhotoZTable
        The estimator output (N PDFs, ancil point estimates and flags).
    truth : TruthTable
        The TileSet's primary objects in the same order (see `rail.deepdisc.evaluation.io.read_truth`).
    settings : EvaluationSettings
        Point estimate, truth column, bins, credibility levels, redshift grid.
    peers : mapping of str -> PhotoZTable, optional
        Other estimators on the same objects (same order, or matched by ``object_id``).
    label : str
        Name of this run in tables (default: the filter preset).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    DeepDiscError
        If the ensemble and truth rows do not match, or a column is missing.
    """
    match_truth(photoz, truth)
    ztrue, truth_name = truth.redshift(settings.truth_column, galaxies_only=settings.galaxies_only)
    stars = truth.stars()
    n_stars = int(stars.sum()) if stars is not None and settings.galaxies_only else 0
    zphot = photoz.point(settings.point_estimate)
    mag, mag_band = truth.magnitude(settings.mag_band)
    result = _evaluate(photoz, ztrue, zphot, mag, truth.box_size(), settings)
    preset = _preset_of(truth.bands)
    result.summary = {
        "label": label or preset, "preset": preset, "bands": list(truth.bands), "photoz": photoz.source,
        "n_objects": photoz.n, "n_with_truth": int(np.isfinite(ztrue).sum()), "truth_column": truth_name,
        "n_stars_left_out": n_stars,
        "magnitude_band": mag_band, "settings": asdict(settings), **result.summary,
    }
    if peers:
        result.peers, result.peer_coverage = _peer_tables(photoz, peers, ztrue, settings, result)
        ids = np.asarray(photoz.ancil.get("object_id", np.arange(photoz.n))).astype(np.int64)
        named = {f"DeepDISC ({result.summary['label']})": photoz, **{k: _aligned(p, ids, k) for k, p in peers.items()}}
        result.peer_bins, result.peer_pit = estimator_tables(named, ztrue, mag, settings)
    return result


def _evaluate(photoz: PhotoZTable, ztrue: np.ndarray, zphot: np.ndarray, mag: np.ndarray, size: np.ndarray,
              settings: EvaluationSettings) -> EvaluationResult:
    objects = _object_arrays(photoz, ztrue, zphot, mag, size)
    flags = photoz.flags()
    metrics = metrics_table(zphot, ztrue, sigma=objects["zstd"], magnitude=mag, mag_edges=settings.mag_edges,
                            z_edges=settings.z_edges, flags=flags, threshold=settings.outlier_threshold)
    coverage, calib = _coverage_rows(objects["pit"], flag_subsets(flags, photoz.n), settings.levels)
    completeness = (detection_completeness(flags["detected"], mag, settings.mag_edges)
                    if "detected" in flags else [])
    by_size = (detection_completeness(flags["detected"], size, settings.size_edges)
               if "detected" in flags and np.isfinite(size).any() else [])
    gridded, labelled = _gridded_with_truth(photoz.ensemble, ztrue, settings)
    rail = rail_metrics(gridded, labelled, zmin=settings.zmin, zmax=settings.zmax, nzbins=settings.nzbins,
                        point_estimate=settings.point_estimate)
    overall = {r["subset"]: {k: r[k] for k in _OVERALL_KEYS} for r in metrics if r["binning"] == "all"}
    summary = {"flag_counts": {k: int(v.sum()) for k, v in flags.items()}, "metrics": overall,
               "calibration": calib, "rail": rail}
    return EvaluationResult(summary=summary, metrics=metrics, coverage=coverage, completeness=completeness,
                            nz=_nz(gridded, labelled, settings), objects=objects, completeness_size=by_size)


def _aligned(peer: PhotoZTable, ids: np.ndarray, name: str) -> PhotoZTable:
    if "object_id" not in peer.ancil:
        if peer.n != len(ids):
            raise DeepDiscError(f"peer {name} ({peer.source}) has {peer.n} PDFs and no object_id, the "
                                f"evaluated ensemble {len(ids)}: give the peer the same objects in the same "
                                f"order")
        return peer
    peer_ids = np.asarray(peer.ancil["object_id"]).astype(np.int64)
    order = {int(i): k for k, i in enumerate(peer_ids)}
    missing = [int(i) for i in ids if int(i) not in order]
    if missing:
        raise DeepDiscError(f"peer {name} ({peer.source}) lacks {len(missing)} object(s), e.g. object_id "
                            f"{missing[0]}: run it on the same objects")
    rows = np.array([order[int(i)] for i in ids], dtype=np.int64)
    return PhotoZTable(peer.ensemble[rows], peer.source)


def _peer_row(name: str, photoz: PhotoZTable, ztrue: np.ndarray, settings: EvaluationSettings
              ) -> tuple[dict, list[dict]]:
    if settings.point_estimate in photoz.ancil:
        zphot = photoz.point(settings.point_estimate)
    else:
        zphot = np.asarray(photoz.ensemble.mode(grid=settings.zgrid), float).reshape(-1)
    _, zstd = ensemble_moments(photoz.ensemble)
    m = point_metrics(zphot, ztrue, zstd, threshold=settings.outlier_threshold)
    cov = coverage_from_pit(pit_values(photoz.ensemble, ztrue), settings.levels)
    rail = rail_metrics(*_gridded_with_truth(photoz.ensemble, ztrue, settings), zmin=settings.zmin,
                        zmax=settings.zmax, nzbins=settings.nzbins, point_estimate=settings.point_estimate)
    row = {"estimator": name, **m.as_dict(), "calibration_mean_abs": calibration_error(cov)["mean_abs"],
           "pit_ks": rail.get("pit_ks", np.nan), "cde_loss": rail.get("cde_loss", np.nan)}
    return row, [{"estimator": name, **r} for r in cov.rows()]


def _peer_tables(photoz: PhotoZTable, peers: Mapping[str, PhotoZTable], ztrue: np.ndarray,
                 settings: EvaluationSettings, result: EvaluationResult) -> tuple[list[dict], list[dict]]:
    summary, rail = result.summary, result.summary["rail"]
    name = f"DeepDISC ({summary['label']})"
    rows = [{"estimator": name, **summary["metrics"]["all"],
             "calibration_mean_abs": summary["calibration"].get("all", {}).get("mean_abs", np.nan),
             "pit_ks": rail.get("pit_ks", np.nan), "cde_loss": rail.get("cde_loss", np.nan)}]
    coverage = [{"estimator": name, **{k: v for k, v in r.items() if k != "subset"}}
                for r in result.coverage if r["subset"] == "all"]
    ids = np.asarray(photoz.ancil.get("object_id", np.arange(photoz.n))).astype(np.int64)
    for peer_name, peer in peers.items():
        row, cov = _peer_row(peer_name, _aligned(peer, ids, peer_name), ztrue, settings)
        rows.append(row)
        coverage += cov
    return rows, coverage

"""The consensus model: settings of the fit and the fitted parameters, stored as plain arrays (``.npz``).

A model fitted on labelled objects (`rail.deepdisc.consensus.fit.fit_consensus`) applies to any other objects
of the same methods (`rail.deepdisc.consensus.fit.combine_pdfs`). It holds, per method, the temperature, the
optional PIT map and the bad fractions per magnitude bin, the combination's ``beta`` with its growth
towards faint magnitudes, and the optional PIT map of the combined PDFs (one, or one per magnitude group); the
file is a NumPy archive of plain arrays and strings (`rail.deepdisc.peers.model_io`), read without pickle.

Format history: ``deepdisc-consensus-1`` (one ``beta`` for every object) is still read, as a model whose
``beta`` does not grow (``beta_slope = 0``); ``deepdisc-consensus-2`` adds ``beta_slope``, ``beta_pivot`` and
``used``; ``deepdisc-consensus-3`` adds ``output_pit_knots``, ``output_pit_edges`` and ``output_pit_positions``
(versions 1 and 2 read as models without an output map).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rail.deepdisc.consensus.hb import magnitude_excess
from rail.deepdisc.constants import NZBINS, ZMAX, ZMIN, redshift_grid
from rail.deepdisc.exceptions import ConfigError, ModelError
from rail.deepdisc.peers.model_io import load_npz_model, save_npz_model

__all__ = ["MODEL_FORMAT", "OLD_FORMATS", "PRIOR_BAD_FRACTION", "MIN_SLOPE_LABELS", "MIN_GROUP_LABELS",
           "SELECTION_MIN_GAIN", "OUTPUT_PIT_CHOICES", "OUTPUT_PIT_POSITIONS", "map_rows", "beta_at",
           "ConsensusSettings", "ConsensusModel", "save_consensus_model", "load_consensus_model"]

#: ``format`` entry of a consensus model file.
MODEL_FORMAT = "deepdisc-consensus-3"
#: Older formats still read (see the module's format history).
OLD_FORMATS = ("deepdisc-consensus-1", "deepdisc-consensus-2")
#: Fewest labelled objects of known magnitude for fitting ``beta``'s growth with magnitude.
MIN_SLOPE_LABELS = 40
#: Fewest labelled objects of known magnitude per group of the output PIT maps by magnitude.
MIN_GROUP_LABELS = 40
#: Gain in the labels' cross-validated log-likelihood (nats) that leaving a method out, letting ``beta`` grow, or
#: a further output PIT map must exceed (`rail.deepdisc.consensus.fit`, `rail.deepdisc.consensus.output_maps`).
SELECTION_MIN_GAIN = 2.0
#: Choices of `ConsensusSettings.output_pit`.
OUTPUT_PIT_CHOICES = ("auto", "none", "one", "magnitude")
#: Knot positions of the output PIT maps: denser in the tails, at the edges of the 68%, 95% and 99% central
#: intervals, so that the map sets those coverages itself.
OUTPUT_PIT_POSITIONS = (0.0, 0.005, 0.025, 0.05, 0.1, 0.16, 0.25, 0.35, 0.5, 0.65, 0.75, 0.84, 0.9, 0.95, 0.975,
                        0.995, 1.0)
#: Bad fraction of every method in the prior model (no labels to fit it on).
PRIOR_BAD_FRACTION = 0.05


@dataclass(frozen=True)
class ConsensusSettings:
    """How the consensus is fitted.

    Parameters
    ----------
    mag_band : str
        Band of the magnitude bins of the bad fractions (``mag_<BAND>``; the reddest band if absent).
    mag_edges : tuple of float
        Inner edges of the magnitude bins, increasing (neighbours are merged until each bin holds
        ``min_per_bin`` labelled objects; with too few labels there is one bin).
    min_per_bin : int
        Fewest labelled objects per magnitude bin.
    temperature_range : (float, float)
        Bounds of each method's temperature (``T > 1`` widens).
    beta_range : (float, float) or None
        Bounds of ``beta``; None: ``(0.5, 2 * number of methods)``.
    fit_beta : bool
        Fit ``beta`` (else 1: independent methods).
    beta_by_magnitude : bool
        Let ``beta`` grow linearly with magnitude above the labels' median magnitude,
        ``beta(m) = beta * (1 + beta_slope * max(m - pivot, 0))`` (Duncan et al. 2018's magnitude-dependent
        calibration), the slope fitted with ``beta``, where the labels' cross-validated likelihood says so (a
        gain above ``SELECTION_MIN_GAIN`` nats, `rail.deepdisc.consensus.fit.CrossValidation`; needs
        ``fit_beta`` and `MIN_SLOPE_LABELS` labelled objects of known magnitude; else the slope is 0). Spec-z are
        bright: the slope carries what the faint labels say about the widths to the fainter objects.
    select_methods : bool
        Leave out the methods whose removal raises the labels' cross-validated likelihood
        (`rail.deepdisc.consensus.fit.select_methods`; with two or more methods and at least twice
        ``MIN_LABELS`` labels).
    pit_correction : bool
        Fit a PIT shape correction per method after the temperature.
    pit_knots : int
        Intervals of the PIT map of each method.
    output_pit : str
        PIT shape correction of the combined PDFs (Bordoloi et al. 2010), fitted on the labels' held-out
        (cross-validated) PIT values of the consensus, so that it corrects what the fit leaves on new objects:
        ``"none"``; ``"one"`` map for every object; ``"magnitude"``, one map per magnitude group (groups of at
        least `MIN_GROUP_LABELS` labels split at the labels' magnitude quantiles, at most three; the map of all
        labels for objects of unknown magnitude); ``"auto"`` (default) takes the maps by magnitude (one map
        where the labels are too few for groups or have no magnitude) only where they raise the labels'
        cross-validated likelihood by more than `SELECTION_MIN_GAIN` nats: never one map for objects whose
        magnitudes are known, which would carry the bright spec-z's correction to the faint objects
        (`rail.deepdisc.consensus.output_maps`).
    output_pit_shift : bool
        Let the output PIT maps also move the PDFs (the maps as fitted). Off by default: each map is made
        symmetric about the median (`rail.deepdisc.consensus.output_maps.symmetric`), so that it only widens or
        narrows the PDFs. At a given magnitude, spec-z are a selection of the objects estimated (lower redshift,
        stronger lines), and the labels' offsets from the PDFs' medians carry that selection: on the realistic
        benchmark the maps as fitted moved the faintest objects' redshifts by -0.08 (1 + z)
        (`benchmarks/README.md`, "A JADES-size split, and output maps that moved the point estimates"). Turn it
        on for labels drawn like the objects estimated.
    min_bad_fraction : float
        Floor of every bad fraction.
    prior_without_labels : bool
        With fewer labelled objects than a fit needs, return the prior model (temperature 1, bad fraction
        `PRIOR_BAD_FRACTION`, ``beta`` = the number of methods: the geometric mean, safe for fully correlated
        methods) with a warning instead of failing (for tiny test runs).
    zmin, zmax : float
        The common grid's range.
    nzbins : int
        Its number of points.
    """

    mag_band: str = "F444W"
    mag_edges: tuple[float, ...] = (24.0, 25.0, 26.0, 27.0, 28.0)
    min_per_bin: int = 50
    temperature_range: tuple[float, float] = (0.25, 25.0)
    beta_range: tuple[float, float] | None = None
    fit_beta: bool = True
    beta_by_magnitude: bool = True
    select_methods: bool = True
    pit_correction: bool = False
    pit_knots: int = 10
    output_pit: str = "auto"
    output_pit_shift: bool = False
    min_bad_fraction: float = 1e-3
    prior_without_labels: bool = False
    zmin: float = ZMIN
    zmax: float = ZMAX
    nzbins: int = NZBINS

    def __post_init__(self):
        edges = np.asarray(self.mag_edges, float)
        if edges.ndim != 1 or np.any(np.diff(edges) <= 0):
            raise ConfigError(f"mag_edges must be increasing, got {list(self.mag_edges)}")
        if self.min_per_bin < 1:
            raise ConfigError(f"min_per_bin must be >= 1, got {self.min_per_bin}")
        for name in ("temperature_range", "beta_range"):
            rng = getattr(self, name)
            if rng is not None and not (len(rng) == 2 and 0 < rng[0] < rng[1]):
                raise ConfigError(f"{name} must be (low, high) with 0 < low < high, got {rng!r}")
        if not 0 <= self.min_bad_fraction < 1:
            raise ConfigError(f"min_bad_fraction must be in [0, 1), got {self.min_bad_fraction}")
        if self.pit_knots < 2:
            raise ConfigError(f"pit_knots must be >= 2, got {self.pit_knots}")
        if self.output_pit not in OUTPUT_PIT_CHOICES:
            raise ConfigError(f"output_pit must be one of {', '.join(OUTPUT_PIT_CHOICES)}, got {self.output_pit!r}")
        if not self.zmax > self.zmin or self.nzbins < 2:
            raise ConfigError(f"bad redshift grid zmin={self.zmin}, zmax={self.zmax}, nzbins={self.nzbins}")

    @property
    def zgrid(self) -> np.ndarray:
        """The common redshift grid."""
        return redshift_grid(self.zmin, self.zmax, self.nzbins)


@dataclass(frozen=True)
class ConsensusModel:
    """Fitted consensus parameters (M methods, B magnitude bins).

    Attributes
    ----------
    methods : tuple of str
        Method names, in input order.
    temperature : ndarray, shape (M,)
        Temperature of each method.
    bad_fraction : ndarray, shape (M, B)
        Bad fraction of each method per magnitude bin.
    bad_fraction_all : ndarray, shape (M,)
        Bad fraction of each method over all labels (objects of unknown magnitude).
    beta : float
        The combination's softening exponent at and brighter than ``beta_pivot``.
    beta_slope : float
        Its relative growth per magnitude fainter than ``beta_pivot`` (0: one ``beta`` for all objects).
    beta_pivot : float
        Magnitude where the growth starts (NaN when ``beta_slope`` is 0).
    used : ndarray of bool, shape (M,)
        The methods the combination uses (the others were left out by the selection; their inputs are still
        required, row for row, and their calibration is kept for reference). Default: all.
    output_pit_knots : ndarray, shape (R, K + 1)
        PIT maps of the combined PDFs: none (``R = 0``), one for every object (``R = 1``), or the map of all
        labels (row 0, objects of unknown magnitude) followed by one per magnitude group (``R = 1 + groups``).
    output_pit_positions : ndarray, shape (K + 1,)
        Their knot positions (`OUTPUT_PIT_POSITIONS` when fitted here).
    output_pit_edges : ndarray, shape (groups - 1,)
        Inner magnitude edges of the groups (empty without groups).
    mag_band : str
        Band of the magnitude bins.
    mag_edges : ndarray, shape (B - 1,)
        Inner edges of the bins.
    pit_knots : ndarray, shape (M, K + 1)
        PIT map of each method (K = 0 columns: no PIT correction).
    zmin, zmax, nzbins :
        The grid.
    n_labelled : int
        Labelled objects used in the fit.
    n_per_bin : ndarray, shape (B,)
        Labelled objects per magnitude bin.
    """

    methods: tuple[str, ...]
    temperature: np.ndarray
    bad_fraction: np.ndarray
    bad_fraction_all: np.ndarray
    beta: float
    mag_band: str
    mag_edges: np.ndarray
    pit_knots: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    zmin: float = ZMIN
    zmax: float = ZMAX
    nzbins: int = NZBINS
    n_labelled: int = 0
    n_per_bin: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    beta_slope: float = 0.0
    beta_pivot: float = float("nan")
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    output_pit_knots: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    output_pit_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    output_pit_positions: np.ndarray = field(default_factory=lambda: np.asarray(OUTPUT_PIT_POSITIONS))

    def __post_init__(self):
        if np.size(self.used) == 0:
            object.__setattr__(self, "used", np.ones(len(self.methods), dtype=bool))
        object.__setattr__(self, "used", np.asarray(self.used, dtype=bool))
        m, b = len(self.methods), len(self.mag_edges) + 1
        checks = {"temperature": (m,), "bad_fraction": (m, b), "bad_fraction_all": (m,)}
        for name, shape in checks.items():
            if np.shape(getattr(self, name)) != shape:
                raise ModelError(f"consensus model: {name} has shape {np.shape(getattr(self, name))}, expected "
                                 f"{shape} for {m} methods and {b} magnitude bins")
        if self.pit_knots.size and self.pit_knots.shape[0] != m:
            raise ModelError(f"consensus model: pit_knots has {self.pit_knots.shape[0]} rows for {m} methods")
        if self.used.shape != (m,) or not self.used.any():
            raise ModelError(f"consensus model: used must mark at least one of the {m} methods, got "
                             f"{self.used.tolist()}")
        if not (np.isfinite(self.beta_slope) and self.beta_slope >= 0):
            raise ModelError(f"consensus model: beta_slope must be finite and >= 0, got {self.beta_slope}")
        if self.beta_slope > 0 and not np.isfinite(self.beta_pivot):
            raise ModelError("consensus model: beta_slope > 0 needs a finite beta_pivot")
        knots = np.asarray(self.output_pit_knots, float)
        knots = knots.reshape(0, 0) if knots.size == 0 else np.atleast_2d(knots)
        edges = np.atleast_1d(np.asarray(self.output_pit_edges, float))
        object.__setattr__(self, "output_pit_knots", knots)
        object.__setattr__(self, "output_pit_edges", edges)
        positions = np.atleast_1d(np.asarray(self.output_pit_positions, float))
        object.__setattr__(self, "output_pit_positions", positions)
        rows = knots.shape[0]
        if (rows <= 1 and edges.size) or (rows > 1 and (rows != edges.size + 2 or edges.size == 0)):
            raise ModelError(f"consensus model: {rows} output PIT maps do not fit {edges.size} group edges (expected "
                             "no map, one map, or the map of all labels plus one per magnitude group)")
        if rows and (knots.shape[1] != positions.size or positions[0] != 0 or positions[-1] != 1
                     or np.any(np.diff(positions) <= 0)):
            raise ModelError(f"consensus model: output PIT maps of {knots.shape[1]} knots need as many knot positions "
                             f"rising from 0 to 1, got {positions.tolist()}")
        if rows and (np.any(np.diff(knots, axis=1) <= 0) or np.any(knots[:, 0] != 0) or np.any(knots[:, -1] != 1)):
            raise ModelError("consensus model: every output PIT map must rise strictly from 0 to 1")
        if np.any(np.diff(edges) <= 0):
            raise ModelError(f"consensus model: output_pit_edges must increase, got {edges.tolist()}")

    def output_map_rows(self, magnitude=None, n: int | None = None) -> np.ndarray:
        """Row of `output_pit_knots` for each object (-1: no map; unknown magnitude: row 0, all labels' map).

        Parameters
        ----------
        magnitude : array_like, shape (N,), optional
        n : int, optional
            Number of objects when ``magnitude`` is None.
        """
        mag = np.full(int(n or 0), np.nan) if magnitude is None else np.asarray(magnitude, float)
        return map_rows(self.output_pit_knots.shape[0], self.output_pit_edges, mag)

    def beta_of(self, magnitude=None, n: int | None = None) -> np.ndarray:
        """``beta`` of each object: ``beta * (1 + beta_slope * max(m - beta_pivot, 0))``.

        Parameters
        ----------
        magnitude : array_like, shape (N,), optional
            Magnitudes; None or NaN: ``beta`` itself.
        n : int, optional
            Number of objects when ``magnitude`` is None.

        Returns
        -------
        ndarray, shape (N,)
        """
        return beta_at(self.beta, self.beta_slope, self.beta_pivot, magnitude, n)

    @classmethod
    def prior(cls, methods, settings: ConsensusSettings) -> ConsensusModel:
        """The model used without labels: temperature 1, bad fraction `PRIOR_BAD_FRACTION`, ``beta`` = M."""
        m = len(methods)
        return cls(methods=tuple(methods), temperature=np.ones(m), bad_fraction=np.full((m, 1), PRIOR_BAD_FRACTION),
                   bad_fraction_all=np.full(m, PRIOR_BAD_FRACTION), beta=float(m), mag_band=settings.mag_band,
                   mag_edges=np.zeros(0), zmin=settings.zmin, zmax=settings.zmax, nzbins=settings.nzbins,
                   n_per_bin=np.zeros(1, dtype=np.int64))

    @property
    def zgrid(self) -> np.ndarray:
        """The grid of the consensus PDFs."""
        return redshift_grid(self.zmin, self.zmax, self.nzbins)

    @property
    def n_bins(self) -> int:
        """Number of magnitude bins."""
        return len(self.mag_edges) + 1

    def to_dict(self) -> dict:
        """Plain arrays and strings (the ``.npz`` members)."""
        return {"format": MODEL_FORMAT, "methods": np.asarray(self.methods, dtype=str),
                "temperature": np.asarray(self.temperature, float),
                "bad_fraction": np.asarray(self.bad_fraction, float),
                "bad_fraction_all": np.asarray(self.bad_fraction_all, float), "beta": float(self.beta),
                "mag_band": self.mag_band, "mag_edges": np.asarray(self.mag_edges, float),
                "pit_knots": np.asarray(self.pit_knots, float), "zmin": float(self.zmin),
                "zmax": float(self.zmax), "nzbins": int(self.nzbins), "n_labelled": int(self.n_labelled),
                "n_per_bin": np.asarray(self.n_per_bin, np.int64), "beta_slope": float(self.beta_slope),
                "beta_pivot": float(self.beta_pivot), "used": np.asarray(self.used, bool),
                "output_pit_knots": np.asarray(self.output_pit_knots, float),
                "output_pit_edges": np.asarray(self.output_pit_edges, float),
                "output_pit_positions": np.asarray(self.output_pit_positions, float)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "<memory>") -> ConsensusModel:
        """Rebuild a model from `to_dict`'s output (or a loaded archive)."""
        fmt = str(np.asarray(data.get("format", "")))
        if fmt not in (MODEL_FORMAT, *OLD_FORMATS):
            raise ModelError(f"{source}: not a consensus model (format {fmt!r}, expected {MODEL_FORMAT!r}); "
                             f"fit one with 'deepdisc combine --truth' or ConsensusInformer")
        since_2 = fmt in (MODEL_FORMAT, "deepdisc-consensus-2")
        since_3 = fmt == MODEL_FORMAT
        try:
            methods = tuple(str(m) for m in np.atleast_1d(data["methods"]))
            knots = np.asarray(data["pit_knots"], float)
            return cls(methods=methods,
                       temperature=np.atleast_1d(np.asarray(data["temperature"], float)),
                       bad_fraction=np.atleast_2d(np.asarray(data["bad_fraction"], float)),
                       bad_fraction_all=np.atleast_1d(np.asarray(data["bad_fraction_all"], float)),
                       beta=float(data["beta"]), mag_band=str(np.asarray(data["mag_band"])),
                       mag_edges=np.atleast_1d(np.asarray(data["mag_edges"], float)),
                       pit_knots=knots.reshape(len(methods), -1) if knots.size else np.zeros((0, 0)),
                       zmin=float(data["zmin"]), zmax=float(data["zmax"]), nzbins=int(data["nzbins"]),
                       n_labelled=int(data.get("n_labelled", 0)),
                       n_per_bin=np.atleast_1d(np.asarray(data.get("n_per_bin", []), np.int64)),
                       beta_slope=float(data["beta_slope"]) if since_2 else 0.0,
                       beta_pivot=float(data["beta_pivot"]) if since_2 else float("nan"),
                       used=np.atleast_1d(np.asarray(data["used"], bool)) if since_2 else np.zeros(0),
                       output_pit_knots=np.asarray(data["output_pit_knots"], float) if since_3 else np.zeros((0, 0)),
                       output_pit_edges=np.asarray(data["output_pit_edges"], float) if since_3 else np.zeros(0),
                       **({"output_pit_positions": np.asarray(data["output_pit_positions"], float)} if since_3
                          else {}))
        except KeyError as err:
            raise ModelError(f"{source}: consensus model lacks the entry {err.args[0]!r}") from None
        except ModelError as err:  # the fields' own checks: name the file they came from
            raise ModelError(f"{source}: {err}") from None


def map_rows(n_maps: int, edges: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Output PIT map of each object (a row of ``output_pit_knots``).

    -1 without maps; 0 with one map or for an unknown magnitude; else ``1 + group``, the groups split at ``edges``.
    """
    mag = np.asarray(magnitude, float)
    if n_maps == 0:
        return np.full(mag.shape, -1, dtype=np.int64)
    if n_maps == 1:
        return np.zeros(mag.shape, dtype=np.int64)
    group = 1 + np.searchsorted(np.asarray(edges, float), np.where(np.isfinite(mag), mag, 0.0), side="right")
    return np.where(np.isfinite(mag), group, 0).astype(np.int64)


def beta_at(beta: float, slope: float, pivot: float, magnitude=None, n: int | None = None) -> np.ndarray:
    """``beta * (1 + slope * max(m - pivot, 0))`` per object (NaN magnitude or ``slope = 0``: ``beta``)."""
    if magnitude is None:
        return np.full(int(n or 0), float(beta))
    mag = np.asarray(magnitude, float)
    if slope == 0:
        return np.full(mag.shape, float(beta))
    return float(beta) * (1.0 + float(slope) * magnitude_excess(mag, pivot))


def save_consensus_model(model: ConsensusModel, path: str | os.PathLike) -> Path:
    """Write a consensus model as a ``.npz`` of plain arrays, atomically."""
    return save_npz_model(model.to_dict(), path)


def load_consensus_model(path: str | os.PathLike) -> ConsensusModel:
    """Read a consensus model file (never unpickles).

    Raises
    ------
    ModelError
        If the file is missing or not a consensus model.
    """
    if not Path(path).is_file():
        raise ModelError(f"{path}: no such consensus model file")
    return ConsensusModel.from_dict(load_npz_model(path), str(path))

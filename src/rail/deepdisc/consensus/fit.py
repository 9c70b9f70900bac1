"""Fit a consensus on labelled objects and apply it to tabulated PDFs (arrays on the common grid).

`fit_consensus` runs the whole fit on the labelled objects' PDFs: per method the temperature
(:mod:`rail.deepdisc.consensus.calibration`), the optional PIT map, the bad fractions per magnitude bin, then
the methods it uses and the combination's ``beta``, both chosen by the labels' cross-validated likelihood
(`CrossValidation`, :mod:`rail.deepdisc.consensus.hb`), last the PIT maps of the combined PDFs
(:mod:`rail.deepdisc.consensus.output_maps`). `combine_pdfs` (:mod:`rail.deepdisc.consensus.apply`) applies a
fitted model to any chunk of objects. Both take one ``(N, G)`` array per method, normalised on the model's grid
(`rail.deepdisc.consensus.grid.pdfs_on_grid`); files and qp ensembles are handled by
:mod:`rail.deepdisc.consensus.io`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from rail.deepdisc.consensus.apply import bad_rows, calibrate_rows, calibrated_pdfs, checked_pdfs, combine_pdfs
from rail.deepdisc.consensus.calibration import LabelledPdfs, fit_pit_map, fit_temperature, pit_of, temper
from rail.deepdisc.consensus.grid import values_at
from rail.deepdisc.consensus.hb import (
    add_log,
    bin_index,
    combine_log_product,
    fit_beta,
    fit_beta_slope,
    log_product,
    magnitude_bins,
    with_bad_term,
)
from rail.deepdisc.consensus.model import (
    MIN_SLOPE_LABELS,
    PRIOR_BAD_FRACTION,
    SELECTION_MIN_GAIN,
    ConsensusModel,
    ConsensusSettings,
    beta_at,
)
from rail.deepdisc.consensus.output_maps import fit_output_maps
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["MIN_LABELS", "SELECTION_MIN_GAIN", "fit_consensus", "CrossValidation", "select_methods",
           "calibrated_pdfs", "combine_pdfs"]

log = logging.getLogger(__name__)

#: Fewest labelled objects (with a truth inside the grid) a consensus is fitted on.
MIN_LABELS = 10
#: Folds of the cross-validated likelihood that selects the methods and the growth of ``beta``.
SELECTION_FOLDS = 5
#: Seed of the folds.
SELECTION_SEED = 20130
_TINY = 1e-300


def fit_consensus(pdfs: Sequence[np.ndarray], ztrue, magnitude=None, *, methods: Sequence[str],
                  settings: ConsensusSettings = ConsensusSettings(), mag_band: str | None = None
                  ) -> ConsensusModel:
    """Fit calibration, bad fractions and ``beta`` on labelled objects.

    With one method the model recalibrates it: temperature, optional PIT map, bad fractions, and ``beta``, a
    last width factor of the mixture with its bad term (as a flat second method would leave it). ``beta``
    grows with magnitude above the labels' median magnitude when ``settings.beta_by_magnitude``, at least
    `MIN_SLOPE_LABELS` labelled objects have a magnitude, and the growth raises the labels' cross-validated
    likelihood (`CrossValidation`) by more than `SELECTION_MIN_GAIN` nats. With ``settings.select_methods`` the
    methods whose removal raises it are left out first (`select_methods`; ``used`` in the model). Last, the
    combined PDFs get the PIT shape correction that ``settings.output_pit`` asks for (`fit_output_maps`).

    Parameters
    ----------
    pdfs : sequence of ndarray, shape (N, G) each
        Each method's PDFs of the same N objects, normalised on ``settings.zgrid``.
    ztrue : array_like, shape (N,)
        True (spectroscopic) redshifts; NaN or outside the grid = not labelled (skipped).
    magnitude : array_like, shape (N,), optional
        Magnitudes of the bad-fraction bins (None: one bin).
    methods : sequence of str
        Method names, in the order of ``pdfs``.
    settings : ConsensusSettings
    mag_band : str, optional
        Band of ``magnitude`` as recorded in the model (default ``settings.mag_band``).

    Returns
    -------
    ConsensusModel

    Raises
    ------
    DeepDiscError
        With fewer than `MIN_LABELS` labelled objects (unless ``settings.prior_without_labels``), or arrays of
        the wrong shape.
    """
    zgrid = settings.zgrid
    ztrue = np.asarray(ztrue, float)
    n = len(ztrue)
    pdfs = checked_pdfs(pdfs, methods, zgrid, n)
    mag = np.full(n, np.nan) if magnitude is None else np.asarray(magnitude, float)
    if mag.shape != (n,):
        raise DeepDiscError(f"magnitude has shape {mag.shape}, expected ({n},)")
    ok = np.isfinite(ztrue) & (ztrue >= zgrid[0]) & (ztrue <= zgrid[-1])
    outside = int((np.isfinite(ztrue) & ~ok).sum())
    if outside:
        log.warning("%d labelled objects have a truth outside the grid [%g, %g] and are not used", outside,
                    zgrid[0], zgrid[-1])
    if ok.sum() < MIN_LABELS and settings.prior_without_labels:
        log.warning("only %d labelled objects: the consensus of %s uses the prior model (no calibration, bad "
                    "fraction %g, beta = %d)", int(ok.sum()), ", ".join(methods), PRIOR_BAD_FRACTION, len(methods))
        return ConsensusModel.prior(methods, settings)
    if ok.sum() < MIN_LABELS:
        raise DeepDiscError(f"only {int(ok.sum())} labelled objects (truth inside [{zgrid[0]:g}, {zgrid[-1]:g}]): "
                            f"a consensus needs at least {MIN_LABELS} objects with a true redshift")
    z, mag = ztrue[ok], mag[ok]
    pdfs = [p[ok] for p in pdfs]
    used = np.ones(len(methods), bool)
    known = int(np.isfinite(mag).sum())
    may_grow = settings.fit_beta and settings.beta_by_magnitude and known >= MIN_SLOPE_LABELS
    select = settings.select_methods and len(methods) > 1
    grow = False
    cv = (CrossValidation(pdfs, z, mag, methods, settings)
          if (select or may_grow or settings.output_pit != "none") and len(z) >= 2 * MIN_LABELS else None)
    if cv is not None and select:
        used = select_methods(cv)
    subset = [k for k in range(len(methods)) if used[k]]
    if cv is not None and may_grow:
        flat, grown = cv.score(subset, grow=False), cv.score(subset, grow=True)
        grow = grown - flat > SELECTION_MIN_GAIN
        log.info("consensus: beta %s with magnitude (cross-validated log-likelihood %.1f growing, %.1f not)",
                 "grows" if grow else "does not grow", grown, flat)
    fit = _Fit.of(pdfs, z, mag, settings, methods)
    beta = fit.beta(subset, grow=grow)
    log.info("consensus of %s on %d labelled objects: beta %.3g, growing by %.3g per magnitude above %.4g",
             ", ".join(methods[k] for k in subset), len(z), *beta)
    knots, edges = np.zeros((0, 0)), np.zeros(0)
    if settings.output_pit != "none":
        if cv is None:
            log.warning("consensus: %d labelled objects are too few for an output PIT map (it needs %d): none fitted",
                        len(z), 2 * MIN_LABELS)
        else:
            knots, edges = fit_output_maps(cv, subset, grow, settings)
    return fit.model(methods, subset, beta, mag_band=mag_band or settings.mag_band, n_labelled=len(z),
                     n_per_bin=np.bincount(fit.bins[fit.bins >= 0], minlength=len(fit.edges) + 1),
                     output_pit_knots=knots, output_pit_edges=edges)


class _Fit:
    """Each method's calibration on labelled objects, and ``beta`` for any subset of the methods.

    A method's calibration does not depend on the other methods; only ``beta`` does.
    """

    def __init__(self, zgrid, z, mag, settings, edges, bins):
        self.zgrid, self.z, self.mag, self.settings = zgrid, z, mag, settings
        self.edges, self.bins = edges, bins
        self.temperature, self.bad, self.bad_all, self.knots, self.mixed = [], [], [], [], []

    @classmethod
    def of(cls, pdfs, z, mag, settings: ConsensusSettings, methods, *, quiet: bool = False) -> _Fit:
        zgrid = settings.zgrid
        edges = magnitude_bins(mag, settings.mag_edges, settings.min_per_bin)
        fit = cls(zgrid, z, mag, settings, edges, bin_index(mag, edges))
        for name, p in zip(methods, pdfs):
            fit._calibrate(name, p, quiet)
        return fit

    def _calibrate(self, name, p, quiet):
        zgrid, z, bins, settings = self.zgrid, self.z, self.bins, self.settings
        n_bins = len(self.edges) + 1
        labelled = LabelledPdfs(zgrid, p, z, bins, n_bins)
        t = fit_temperature(labelled, settings.temperature_range, settings.min_bad_fraction)
        cal = temper(zgrid, labelled.pdfs, t)
        row_knots = np.zeros(0)
        if settings.pit_correction:
            a = values_at(zgrid, cal, z)
            per_bin, overall, _ = LabelledPdfs(zgrid, cal, z, bins, n_bins).bad_fractions(
                a, settings.min_bad_fraction)
            f = bad_rows(per_bin, overall, bins)
            core = (1.0 - f) * a >= f * labelled.uniform  # the core explains the truth better than the bad term
            row_knots = fit_pit_map(pit_of(zgrid, cal[core], z[core]), settings.pit_knots).knots
            cal = calibrate_rows(zgrid, labelled.pdfs, t, row_knots)
        per_bin, overall, _ = LabelledPdfs(zgrid, cal, z, bins, n_bins).bad_fractions(
            values_at(zgrid, cal, z), settings.min_bad_fraction)
        if not quiet:
            log.info("consensus %s: temperature %.3g, bad fraction %s (all %.3g)", name, t,
                     np.round(per_bin, 4).tolist(), overall)
        self.temperature.append(t)
        self.bad.append(per_bin)
        self.bad_all.append(overall)
        self.knots.append(row_knots)
        self.mixed.append(with_bad_term(cal, bad_rows(per_bin, overall, bins), labelled.uniform))

    def beta(self, subset, *, grow: bool) -> tuple[float, float, float]:
        """``beta``, its slope with magnitude (0 unless ``grow``) and the pivot, for the methods in ``subset``."""
        settings, mag = self.settings, self.mag
        beta_range = settings.beta_range or (0.5, 2.0 * len(subset))
        logp = log_product([self.mixed[k] for k in subset])
        known = np.isfinite(mag)
        if grow and settings.fit_beta and known.sum() >= MIN_SLOPE_LABELS:
            pivot = float(np.median(mag[known]))
            beta, slope = fit_beta_slope(self.zgrid, logp, self.z, mag, pivot, *beta_range)
            return beta, slope, (pivot if slope > 0 else float("nan"))
        if settings.fit_beta:
            return fit_beta(self.zgrid, logp, self.z, *beta_range), 0.0, float("nan")
        return 1.0, 0.0, float("nan")

    def model(self, methods, subset, beta: tuple[float, float, float], **extra) -> ConsensusModel:
        """The model of the methods in ``subset`` combined with ``beta`` (`beta`'s output).

        ``extra``: more `ConsensusModel` fields.
        """
        s = self.settings
        extra.setdefault("mag_band", s.mag_band)
        return ConsensusModel(
            methods=tuple(methods), temperature=np.asarray(self.temperature), bad_fraction=np.asarray(self.bad),
            bad_fraction_all=np.asarray(self.bad_all), beta=float(beta[0]), mag_edges=self.edges,
            pit_knots=np.asarray(self.knots) if s.pit_correction else np.zeros((0, 0)), zmin=s.zmin, zmax=s.zmax,
            nzbins=s.nzbins, beta_slope=float(beta[1]), beta_pivot=float(beta[2]),
            used=np.isin(np.arange(len(methods)), subset), **extra)


class CrossValidation:
    """The labels' cross-validated log-likelihood of a consensus.

    `SELECTION_FOLDS` folds (a fixed seed); on each, every method is calibrated and ``beta`` fitted on the other
    folds, and the consensus's log-density at the held-out truths is summed over the folds.

    Parameters
    ----------
    pdfs : sequence of ndarray, shape (N, G) each
        The labelled objects' PDFs, one array per method.
    z, mag : ndarray, shape (N,)
        Their true redshifts and magnitudes.
    methods : sequence of str
    settings : ConsensusSettings
    """

    def __init__(self, pdfs, z, mag, methods, settings: ConsensusSettings):
        self.methods = list(methods)
        self.z, self.mag, self.settings = z, mag, settings
        self.folds = np.array_split(np.random.default_rng(SELECTION_SEED).permutation(len(z)), SELECTION_FOLDS)
        self.parts = []
        for train, test in self.splits():
            fit = _Fit.of([p[train] for p in pdfs], z[train], mag[train], settings, methods, quiet=True)
            # each method's calibration does not depend on the subset: the held-out objects' calibrated
            # log-PDFs (bad term included) are computed once per fold and summed per subset in `score`
            calibration = fit.model(methods, range(len(methods)), (1.0, 0.0, float("nan")))
            logs = [add_log(np.zeros((len(test), len(fit.zgrid))),
                            calibrated_pdfs(calibration, j, p[test], mag[test])) for j, p in enumerate(pdfs)]
            self.parts.append((fit, logs))
        self._cache, self._held_out = {}, {}  # score and held_out per (subset, grow)

    def splits(self):
        """``(train, test)`` indices of each fold, in fold order."""
        for k, test in enumerate(self.folds):
            yield np.concatenate([f for j, f in enumerate(self.folds) if j != k]), test

    @property
    def zgrid(self) -> np.ndarray:
        """The common grid."""
        return self.settings.zgrid

    def held_out(self, subset, *, grow: bool) -> np.ndarray:
        """Each labelled object's consensus PDF fitted without its fold (shape (N, G), the labels' order)."""
        key = (tuple(subset), grow)
        if key not in self._held_out:
            out = np.empty((len(self.z), len(self.zgrid)))
            for test, (fit, logs) in zip(self.folds, self.parts):
                logp = sum(logs[j] for j in subset)  # a new array: the folds' logs stay as they are
                out[test] = combine_log_product(fit.zgrid, logp, beta_at(*fit.beta(subset, grow=grow), self.mag[test]))
            self._held_out[key] = out
        return self._held_out[key]

    def score(self, subset, *, grow: bool) -> float:
        """The summed held-out log-likelihood of the consensus of the methods in ``subset``."""
        key = (tuple(subset), grow)
        if key not in self._cache:
            at_truth = values_at(self.zgrid, self.held_out(subset, grow=grow), self.z)
            self._cache[key] = float(np.sum(np.log(np.maximum(at_truth, _TINY))))
        return self._cache[key]


def select_methods(cv: CrossValidation) -> np.ndarray:
    """Which methods the consensus uses: backward elimination by the labels' cross-validated likelihood.

    Starting from all methods (``beta`` constant), the method whose removal raises `CrossValidation.score` most
    is dropped while the gain exceeds `SELECTION_MIN_GAIN` nats; at least one method stays. A method biased or
    mis-shaped in a way its calibration cannot mend then stops pulling the others' agreement off the truth.

    Returns
    -------
    ndarray of bool, shape (M,)
    """
    methods = cv.methods
    current = list(range(len(methods)))
    best = cv.score(current, grow=False)
    while len(current) > 1:
        trials = {k: cv.score([j for j in current if j != k], grow=False) for k in current}
        drop = max(trials, key=trials.get)
        if trials[drop] - best <= SELECTION_MIN_GAIN:
            break
        log.info("consensus: leaving out %s (cross-validated log-likelihood of the labels %.1f -> %.1f)",
                 methods[drop], best, trials[drop])
        current.remove(drop)
        best = trials[drop]
    log.info("consensus method selection (%d-fold log-likelihood): %s", SELECTION_FOLDS,
             "; ".join(f"{'+'.join(methods[j] for j in sub)} {v:.1f}" for (sub, _), v in cv._cache.items()))
    return np.isin(np.arange(len(methods)), current)

"""Fit a consensus on labelled objects and apply it to tabulated PDFs (arrays on the common grid).

`fit_consensus` runs the whole fit on the labelled objects' PDFs: per method the temperature
(:mod:`rail.deepdisc.consensus.calibration`), the optional PIT map, the bad fractions per magnitude bin, then
the combination's ``beta`` (:mod:`rail.deepdisc.consensus.hb`). `combine_pdfs` applies a fitted model to any
chunk of objects. Both take one ``(N, G)`` array per method, normalised on the model's grid
(`rail.deepdisc.consensus.grid.pdfs_on_grid`); files and qp ensembles are handled by
:mod:`rail.deepdisc.consensus.io`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from rail.deepdisc.consensus.calibration import (
    LabelledPdfs,
    PitMap,
    fit_pit_map,
    fit_temperature,
    pit_of,
    temper,
)
from rail.deepdisc.consensus.grid import normalise_rows, values_at
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
from rail.deepdisc.consensus.model import MIN_SLOPE_LABELS, PRIOR_BAD_FRACTION, ConsensusModel, ConsensusSettings
from rail.deepdisc.exceptions import DeepDiscError

__all__ = ["MIN_LABELS", "fit_consensus", "calibrated_pdfs", "combine_pdfs"]

log = logging.getLogger(__name__)

#: Fewest labelled objects (with a truth inside the grid) a consensus is fitted on.
MIN_LABELS = 10


def _checked(pdfs: Sequence[np.ndarray], names: Sequence[str], zgrid: np.ndarray, n: int) -> list[np.ndarray]:
    """The PDF arrays, shape-checked; rows with non-finite or negative values, or no probability, cleaned."""
    g = len(zgrid)
    if len(pdfs) != len(names):
        raise DeepDiscError(f"{len(pdfs)} PDF arrays for {len(names)} method names")
    out = []
    for name, p in zip(names, pdfs):
        p = np.asarray(p, float)
        if p.shape != (n, g):
            raise DeepDiscError(f"method {name}: PDFs have shape {p.shape}, expected ({n}, {g}) on the grid")
        sums = p.sum(axis=1)
        if not (np.all(np.isfinite(sums)) and np.all(sums > 0) and p.min(initial=0.0) >= 0):
            p = normalise_rows(zgrid, p.copy())  # non-finite, negative or empty rows: cleaned, empty ones flat
        out.append(p)
    return out


def _calibrated(zgrid, pdfs, temperature, pit_knots) -> np.ndarray:
    cal = temper(zgrid, pdfs, temperature)
    if pit_knots is not None and len(pit_knots):
        cal = PitMap(np.asarray(pit_knots, float)).apply(zgrid, cal)
    return cal


def _bad_rows(model_row: np.ndarray, overall: float, bins: np.ndarray) -> np.ndarray:
    return np.where(bins >= 0, model_row[np.clip(bins, 0, None)], overall)


def fit_consensus(pdfs: Sequence[np.ndarray], ztrue, magnitude=None, *, methods: Sequence[str],
                  settings: ConsensusSettings = ConsensusSettings(), mag_band: str | None = None
                  ) -> ConsensusModel:
    """Fit calibration, bad fractions and ``beta`` on labelled objects.

    With one method the model recalibrates it: temperature, optional PIT map, bad fractions, and ``beta``, a
    last width factor of the mixture with its bad term (as a flat second method would leave it). ``beta``
    grows with magnitude above the labels' median magnitude when ``settings.beta_by_magnitude`` (and at least
    `MIN_SLOPE_LABELS` labelled objects have a magnitude).

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
    pdfs = _checked(pdfs, methods, zgrid, n)
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
    edges = magnitude_bins(mag, settings.mag_edges, settings.min_per_bin)
    bins = bin_index(mag, edges)
    n_bins = len(edges) + 1
    temperatures, bad, bad_all, knots, mixed = [], [], [], [], []
    for name, p in zip(methods, pdfs):
        labelled = LabelledPdfs(zgrid, p[ok], z, bins, n_bins)
        t = fit_temperature(labelled, settings.temperature_range, settings.min_bad_fraction)
        cal = temper(zgrid, labelled.pdfs, t)
        row_knots = np.zeros(0)
        if settings.pit_correction:
            a = values_at(zgrid, cal, z)
            per_bin, overall, _ = LabelledPdfs(zgrid, cal, z, bins, n_bins).bad_fractions(
                a, settings.min_bad_fraction)
            f = _bad_rows(per_bin, overall, bins)
            core = (1.0 - f) * a >= f * labelled.uniform  # the core explains the truth better than the bad term
            row_knots = fit_pit_map(pit_of(zgrid, cal[core], z[core]), settings.pit_knots).knots
            cal = _calibrated(zgrid, labelled.pdfs, t, row_knots)
        per_bin, overall, _ = LabelledPdfs(zgrid, cal, z, bins, n_bins).bad_fractions(
            values_at(zgrid, cal, z), settings.min_bad_fraction)
        log.info("consensus %s: temperature %.3g, bad fraction %s (all %.3g)", name, t,
                 np.round(per_bin, 4).tolist(), overall)
        temperatures.append(t)
        bad.append(per_bin)
        bad_all.append(overall)
        knots.append(row_knots)
        mixed.append(with_bad_term(cal, _bad_rows(per_bin, overall, bins), labelled.uniform))
    beta_range = settings.beta_range or (0.5, 2.0 * len(methods))
    beta, slope, pivot = 1.0, 0.0, float("nan")
    known = np.isfinite(mag)
    if settings.fit_beta and settings.beta_by_magnitude and known.sum() >= MIN_SLOPE_LABELS:
        pivot = float(np.median(mag[known]))
        beta, slope = fit_beta_slope(zgrid, log_product(mixed), z, mag, pivot, *beta_range)
        if slope == 0:
            pivot = float("nan")
    elif settings.fit_beta:
        beta = fit_beta(zgrid, log_product(mixed), z, *beta_range)
    log.info("consensus of %s on %d labelled objects: beta %.3g, growing by %.3g per magnitude above %.4g",
             ", ".join(methods), len(z), beta, slope, pivot)
    return ConsensusModel(
        methods=tuple(methods), temperature=np.asarray(temperatures), bad_fraction=np.asarray(bad),
        bad_fraction_all=np.asarray(bad_all), beta=float(beta), mag_band=mag_band or settings.mag_band,
        mag_edges=edges, pit_knots=np.asarray(knots) if settings.pit_correction else np.zeros((0, 0)),
        zmin=settings.zmin, zmax=settings.zmax, nzbins=settings.nzbins, n_labelled=len(z),
        n_per_bin=np.bincount(bins[bins >= 0], minlength=n_bins), beta_slope=slope, beta_pivot=pivot)


def calibrated_pdfs(model: ConsensusModel, index: int, pdfs: np.ndarray, magnitude=None,
                    *, with_bad: bool = True) -> np.ndarray:
    """One method's PDFs after the model's calibration (and its bad term, unless ``with_bad=False``).

    Parameters
    ----------
    model : ConsensusModel
    index : int
        The method's position in ``model.methods``.
    pdfs : ndarray, shape (N, G)
        Its PDFs on the model's grid.
    magnitude : array_like, shape (N,), optional
        Magnitudes (None: the bad fraction over all labels).
    with_bad : bool
        Mix in the bad term.

    Returns
    -------
    ndarray, shape (N, G)
    """
    zgrid = model.zgrid
    knots = model.pit_knots[index] if model.pit_knots.size else None
    cal = _calibrated(zgrid, pdfs, float(model.temperature[index]), knots)
    if not with_bad:
        return cal
    mag = np.full(len(pdfs), np.nan) if magnitude is None else np.asarray(magnitude, float)
    f = _bad_rows(model.bad_fraction[index], float(model.bad_fraction_all[index]), bin_index(mag, model.mag_edges))
    return with_bad_term(cal, f, 1.0 / (zgrid[-1] - zgrid[0]), inplace=True)


def combine_pdfs(model: ConsensusModel, pdfs: Sequence[np.ndarray], magnitude=None) -> np.ndarray:
    """The consensus PDFs of N objects: calibrated, mixed with the bad term, multiplied and normalised.

    Parameters
    ----------
    model : ConsensusModel
    pdfs : sequence of ndarray, shape (N, G) each
        The methods' PDFs on the model's grid, in the model's method order.
    magnitude : array_like, shape (N,), optional
        Magnitudes for the bad-fraction bins and ``beta`` (None or NaN: the bad fraction over all labels and
        the model's ``beta`` at its pivot).

    Returns
    -------
    ndarray, shape (N, G)
        Normalised on the grid.
    """
    zgrid = model.zgrid
    n = len(pdfs[0]) if len(pdfs) else 0
    pdfs = _checked(pdfs, model.methods, zgrid, n)
    logp = np.zeros((n, len(zgrid)))
    for j, p in enumerate(pdfs):
        add_log(logp, calibrated_pdfs(model, j, p, magnitude))
    return combine_log_product(zgrid, logp, model.beta_of(magnitude, n))

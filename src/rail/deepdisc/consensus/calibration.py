"""Calibration of one method's PDFs on labelled objects: a temperature (width) and a PIT shape correction.

*Temperature.* ``P_T(z) ∝ P(z) ** (1 / T)`` (Duncan et al. 2018): ``T > 1`` widens an over-confident method
(a Gaussian's sigma grows by ``sqrt(T)``), ``T < 1`` sharpens an under-confident one; the redshift of every
peak is kept. ``T`` is fitted by maximum likelihood of the HB mixture ``(1 - f) P_T + f U`` on the labelled
objects, with the bad fractions ``f`` (one per magnitude bin) profiled out, so that catastrophic outliers,
which the ``f U`` term explains, do not inflate the width of every PDF.

*PIT shape correction* (optional; Bordoloi, Lilly & Amara 2010). The PIT values ``u = F(z_true)`` of a
calibrated method are uniform. Their smoothed empirical CDF ``G`` (piecewise linear on ``K`` knots, shrunk
towards the identity) maps each CDF to ``G(F(z))``, i.e. each PDF to ``g(F(z)) P(z)``, which removes a common
bias or skew. Only objects that the method's core explains (responsibility of the bad term below 1/2) enter
``G``; the outliers are left to the bad fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.consensus.grid import cumulative, normalise_rows, row_integrals, values_at
from rail.deepdisc.consensus.hb import bad_fraction_loglike, fit_bad_fraction, maximise_on_log_scale

__all__ = ["temper", "LabelledPdfs", "fit_temperature", "PitMap", "fit_pit_map", "pit_of"]

#: Weight (in objects) of the identity in the smoothed PIT map.
PIT_PRIOR_WEIGHT = 20.0


def temper(zgrid: np.ndarray, pdfs: np.ndarray, temperature: float) -> np.ndarray:
    """``P ** (1 / T)`` normalised on the grid, per row.

    Parameters
    ----------
    zgrid : ndarray, shape (G,)
    pdfs : ndarray, shape (N, G)
        Non-negative finite densities (any normalisation).
    temperature : float
        ``T > 0``; 1 returns a copy.

    Returns
    -------
    ndarray, shape (N, G)
    """
    peak = pdfs.max(axis=1, keepdims=True)
    scaled = pdfs / np.where(peak > 0, peak, 1.0)
    if temperature != 1.0:
        np.power(scaled, 1.0 / float(temperature), out=scaled)
    return normalise_rows(zgrid, scaled, check=False)


@dataclass
class LabelledPdfs:
    """One method's PDFs of the labelled objects, prepared for the fits.

    Attributes
    ----------
    zgrid : ndarray, shape (G,)
    pdfs : ndarray, shape (N, G)
        Normalised PDFs.
    ztrue : ndarray, shape (N,)
        True redshifts (inside the grid).
    bins : ndarray of int, shape (N,)
        Magnitude bin of each object (see `rail.deepdisc.consensus.hb.bin_index`); ``-1`` = unknown.
    n_bins : int
        Number of magnitude bins.
    """

    zgrid: np.ndarray
    pdfs: np.ndarray
    ztrue: np.ndarray
    bins: np.ndarray
    n_bins: int

    @property
    def uniform(self) -> float:
        """The flat density of the bad term on the grid."""
        return 1.0 / float(self.zgrid[-1] - self.zgrid[0])

    def at_truth(self, temperature: float) -> np.ndarray:
        """``P_T(z_true)`` of every object."""
        peak = self.pdfs.max(axis=1)
        peak = np.where(peak > 0, peak, 1.0)
        ratio = values_at(self.zgrid, self.pdfs, self.ztrue) / peak
        scaled = self.pdfs / peak[:, None]
        inv = 1.0 / float(temperature)
        norm = row_integrals(self.zgrid, np.power(scaled, inv, out=scaled))
        return np.power(ratio, inv) / norm

    def bad_fractions(self, a: np.ndarray, f_min: float) -> tuple[np.ndarray, float, float]:
        """Per-bin bad fractions, the overall one (objects of unknown magnitude) and the total log-likelihood."""
        u = self.uniform
        per_bin = np.empty(self.n_bins)
        total = 0.0
        for b in range(self.n_bins):
            sel = a[self.bins == b]
            per_bin[b] = fit_bad_fraction(sel, u, f_min)
            total += bad_fraction_loglike(sel, u, per_bin[b])
        unknown = a[self.bins < 0]
        overall = fit_bad_fraction(a, u, f_min)
        total += bad_fraction_loglike(unknown, u, overall)
        return per_bin, overall, total


def fit_temperature(labelled: LabelledPdfs, t_range: tuple[float, float], f_min: float) -> float:
    """Maximum-likelihood temperature of one method, the per-bin bad fractions profiled out.

    Parameters
    ----------
    labelled : LabelledPdfs
    t_range : (float, float)
        Bounds of ``T``.
    f_min : float
        Floor of the bad fractions.

    Returns
    -------
    float
    """
    if len(labelled.ztrue) == 0:
        return 1.0
    return maximise_on_log_scale(lambda t: labelled.bad_fractions(labelled.at_truth(t), f_min)[2], *t_range)


@dataclass(frozen=True)
class PitMap:
    """A monotone, piecewise-linear map of PIT values: ``G`` given at ``K + 1`` knots of ``[0, 1]``.

    Attributes
    ----------
    knots : ndarray, shape (K + 1,)
        ``G`` at the knot positions, increasing from 0 to 1 (the identity equals ``positions``).
    positions : ndarray, shape (K + 1,), optional
        Knot positions, increasing from 0 to 1 (None: equally spaced, ``linspace(0, 1, K + 1)``).
    """

    knots: np.ndarray
    positions: np.ndarray | None = None

    def apply(self, zgrid: np.ndarray, pdfs: np.ndarray) -> np.ndarray:
        """Corrected PDFs ``g(F(z)) P(z)``, normalised on the grid."""
        k = len(self.knots) - 1
        cdf = cumulative(zgrid, pdfs)
        if self.positions is None:
            slopes = np.diff(self.knots) * k
            index = np.clip((cdf * k).astype(np.int64), 0, k - 1)
        else:
            slopes = np.diff(self.knots) / np.diff(self.positions)
            index = np.clip(np.searchsorted(self.positions, cdf, side="right") - 1, 0, k - 1)
        return normalise_rows(zgrid, slopes[index] * pdfs)


def pit_of(zgrid: np.ndarray, pdfs: np.ndarray, ztrue: np.ndarray) -> np.ndarray:
    """PIT values ``F_i(z_true,i)`` of grid PDFs."""
    return np.clip(values_at(zgrid, cumulative(zgrid, pdfs), ztrue), 0.0, 1.0)


def fit_pit_map(pit: np.ndarray, n_knots: int, prior_weight: float = PIT_PRIOR_WEIGHT,
                positions: np.ndarray | None = None) -> PitMap:
    """The smoothed empirical CDF of PIT values on ``n_knots`` intervals, shrunk towards the identity.

    Parameters
    ----------
    pit : ndarray, shape (N,)
        PIT values in [0, 1].
    n_knots : int
        Intervals of the piecewise-linear map (equally spaced; ignored with ``positions``).
    prior_weight : float
        Weight of the identity, in objects (keeps ``G`` strictly increasing and tames small samples).
    positions : ndarray, optional
        Knot positions, increasing from 0 to 1.

    Returns
    -------
    PitMap
    """
    grid = np.linspace(0.0, 1.0, int(n_knots) + 1) if positions is None else np.asarray(positions, float)
    pit = np.sort(np.asarray(pit, float)[np.isfinite(pit)])
    n = len(pit)
    ecdf = np.searchsorted(pit, grid, side="right") / max(n, 1)
    knots = (n * ecdf + prior_weight * grid) / (n + prior_weight)
    knots[0], knots[-1] = 0.0, 1.0
    return PitMap(knots, None if positions is None else grid)

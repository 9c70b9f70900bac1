"""Gaussian mixtures over redshift: ensemble combination, pdf/cdf and point estimates (pure numpy).

Every object's photo-z is a Gaussian mixture ``p(z) = sum_k w_k N(z | mu_k, sigma_k)``. An ensemble of M
networks gives M mixtures per object; `combine_members` concatenates them into one mixture whose weights are
(member weight x component weight), so the result stays a `qp.mixmod` and needs no grid.

Point estimates use RAIL's names: ``zmean`` is exact (``sum_k w_k mu_k``), ``zmedian`` inverts the mixture CDF
by bisection to `MEDIAN_TOLERANCE`, ``zmode`` is the pdf maximum on the configured grid
``linspace(zmin, zmax, nzbins)``. The mixtures are not truncated at z = 0 (as ``qp.mixmod``); all estimates
refer to the untruncated mixture that is written to the file. We compute the mean ourselves: ``qp.mixmod``'s
``.mean()`` fails on ensembles (it calls scipy's generic moment integrator with array arguments).

This is the package's one numpy implementation of Gaussian mixtures: the estimator's point estimates and the
evaluation's PIT values, moments, quantiles and gridded PDFs (`rail.deepdisc.evaluation.coverage`) all use
`Mixture`. ``qp.mixmod`` stays the file format (`to_qp`, `from_qp`); its own pdf/cdf evaluate (components,
objects, grid) temporaries at once and its moments are unreliable, so we evaluate mixtures here in bounded
blocks. The `Mixture` methods trust their input (finite means, stds > 0, weights >= 0); the module functions
check it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

from rail.deepdisc.exceptions import DeepDiscError

__all__ = [
    "Mixture",
    "combine_members",
    "mixture_pdf",
    "mixture_cdf",
    "mixture_mean",
    "mixture_median",
    "mixture_mode",
    "from_qp",
    "to_qp",
]

#: Absolute tolerance of the bisection that finds ``zmedian`` (redshift units).
MEDIAN_TOLERANCE = 1e-9
#: Half-width of the median's starting bracket, in component standard deviations.
_BRACKET_SIGMAS = 40.0
#: Elements (objects x grid points x components) evaluated at a time in `mixture_pdf` and `mixture_mode`.
_BLOCK_ELEMENTS = 2**22
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


class Mixture(NamedTuple):
    """Gaussian mixtures of N objects with K components each (float64 arrays of shape (N, K)).

    ``weights`` are non-negative and sum to 1 per row; ``means`` are redshifts; ``stds`` are > 0.
    """

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    @property
    def n_objects(self) -> int:
        """Number of mixtures N."""
        return int(self.means.shape[0])

    def take(self, rows) -> Mixture:
        """Return the mixtures of the given rows (index array, mask or slice)."""
        return Mixture(self.weights[rows], self.means[rows], self.stds[rows])

    @classmethod
    def combine(cls, members: Sequence[Mixture], weights: np.ndarray) -> Mixture:
        """Concatenate members' components, weighted by ``weights`` (unchecked `combine_members`)."""
        return cls(
            np.concatenate([wm * m.weights for wm, m in zip(weights, members)], axis=1),
            np.concatenate([m.means for m in members], axis=1),
            np.concatenate([m.stds for m in members], axis=1),
        )

    def pdf(self, z: np.ndarray) -> np.ndarray:
        """Density of every mixture on the 1-D grid ``z``, shape (N, G), in memory-bounded blocks."""
        n, k = self.means.shape
        out = np.empty((n, z.size))
        step = max(1, _BLOCK_ELEMENTS // max(1, z.size * k))
        for a in range(0, n, step):
            sl = slice(a, a + step)
            u = (z[None, :, None] - self.means[sl, None, :]) / self.stds[sl, None, :]
            dens = np.exp(-0.5 * u * u) * (_INV_SQRT_2PI / self.stds[sl, None, :])
            out[sl] = np.einsum("ngk,nk->ng", dens, self.weights[sl])
        return out

    def cdf(self, z: np.ndarray) -> np.ndarray:
        """CDF of each mixture at its own ``z`` (shape (N,)) or at the columns of ``z`` (N, G)."""
        norm = self.weights.sum(axis=1)
        if z.ndim == 1:
            return np.sum(self.weights * ndtr((z[:, None] - self.means) / self.stds), axis=1) / norm
        u = (z[:, :, None] - self.means[:, None, :]) / self.stds[:, None, :]
        return np.einsum("ngk,nk->ng", ndtr(u), self.weights) / norm[:, None]

    def mean(self) -> np.ndarray:
        """Exact mean of each mixture, shape (N,)."""
        return np.sum(self.weights * self.means, axis=1) / self.weights.sum(axis=1)

    def std(self) -> np.ndarray:
        """Exact standard deviation of each mixture, shape (N,)."""
        mean = self.mean()
        second = np.sum(self.weights * (self.stds**2 + self.means**2), axis=1) / self.weights.sum(axis=1)
        return np.sqrt(np.maximum(second - mean**2, 0.0))

    def quantile(self, q: float, tolerance: float = MEDIAN_TOLERANCE) -> np.ndarray:
        """The ``q``-quantile of each mixture by bisection on its CDF to ``tolerance``, shape (N,)."""
        if self.n_objects == 0:
            return np.empty(0)
        lo = np.min(self.means - _BRACKET_SIGMAS * self.stds, axis=1)
        hi = np.max(self.means + _BRACKET_SIGMAS * self.stds, axis=1)
        n_iter = int(np.ceil(np.log2(max(np.max(hi - lo), tolerance) / tolerance))) + 1
        for _ in range(n_iter):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def median(self, tolerance: float = MEDIAN_TOLERANCE) -> np.ndarray:
        """Median of each mixture (`quantile` 0.5), shape (N,)."""
        return self.quantile(0.5, tolerance)

    def mode(self, grid: np.ndarray) -> np.ndarray:
        """The point of ``grid`` (increasing) where each mixture's density is largest, shape (N,)."""
        # Every mode of a 1-D Gaussian mixture lies between its smallest and largest component mean; outside
        # that hull the density is strictly monotone. So the grid maximum is among the grid points from the last
        # one <= the smallest mean to the first one >= the largest mean: only that window is evaluated.
        n, k = self.means.shape
        live = self.weights > 0
        lo = np.min(np.where(live, self.means, np.inf), axis=1)
        hi = np.max(np.where(live, self.means, -np.inf), axis=1)
        first = np.clip(np.searchsorted(grid, lo, "right") - 1, 0, grid.size - 1)
        last = np.clip(np.searchsorted(grid, hi, "left"), 0, grid.size - 1)
        width = np.maximum(last - first + 1, 1)
        order = np.argsort(width, kind="stable")
        out = np.empty(n)
        a = 0
        while a < n:
            b = min(n, a + max(1, _BLOCK_ELEMENTS // (k * int(width[order[a]]))))
            while b - a > 1 and (b - a) * k * int(width[order[b - 1]]) > _BLOCK_ELEMENTS:
                b = a + (b - a) // 2
            rows = order[a:b]
            idx = np.minimum(first[rows, None] + np.arange(int(width[rows].max()))[None, :], grid.size - 1)
            block = self.take(rows)
            u = (grid[idx][:, :, None] - block.means[:, None, :]) / block.stds[:, None, :]
            dens = np.einsum("ngk,nk->ng", np.exp(-0.5 * u * u) / block.stds[:, None, :], block.weights)
            out[rows] = grid[idx[np.arange(len(rows)), np.argmax(dens, axis=1)]]
            a = b
        return out


def _as_mixture(mix) -> Mixture:
    w, m, s = (np.asarray(a, dtype=np.float64) for a in mix)
    if w.ndim != 2 or w.shape != m.shape or w.shape != s.shape:
        raise ValueError(f"mixture weights, means and stds must share a 2-D shape (N, K), got {w.shape}, "
                         f"{m.shape}, {s.shape}")
    if np.any(~np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("mixture stds must be finite and > 0")
    if np.any(~np.isfinite(m)) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("mixture means must be finite and weights finite and >= 0")
    return Mixture(w, m, s)


def combine_members(members: Sequence[Mixture], member_weights: Sequence[float]) -> Mixture:
    """Combine the mixtures of M ensemble members into one mixture per object.

    Parameters
    ----------
    members : sequence of Mixture
        M mixtures for the same N objects; member m has shape (N, K_m).
    member_weights : sequence of float
        M ensemble weights (>= 0, not all zero); normalised to sum to 1.

    Returns
    -------
    Mixture
        Shape (N, sum K_m): member m's components in columns after those of members 0..m-1, with weights
        (member weight x component weight), so each row sums to 1 when the members' rows do.

    Raises
    ------
    ValueError
        If the members disagree on N, the weight count differs from M, or the weights are invalid.

    Examples
    --------
    >>> a = Mixture(np.array([[1.0]]), np.array([[0.5]]), np.array([[0.1]]))
    >>> b = Mixture(np.array([[0.5, 0.5]]), np.array([[1.0, 2.0]]), np.array([[0.1, 0.1]]))
    >>> combine_members([a, b], [3, 1]).weights
    array([[0.75 , 0.125, 0.125]])
    """
    members = [_as_mixture(m) for m in members]
    w = np.asarray(member_weights, dtype=np.float64)
    if not members or w.shape != (len(members),):
        raise ValueError(f"need one weight per member: {len(members)} members, weights shape {w.shape}")
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"member weights must be finite, >= 0 and not all zero, got {w.tolist()}")
    if len({m.n_objects for m in members}) != 1:
        raise ValueError(f"members hold different object counts: {[m.n_objects for m in members]}")
    return Mixture.combine(members, w / w.sum())


def mixture_pdf(mix: Mixture, z: np.ndarray) -> np.ndarray:
    """Probability density of each mixture on a redshift grid.

    Parameters
    ----------
    mix : Mixture
        N mixtures of K components.
    z : ndarray (G,)
        Redshifts.

    Returns
    -------
    ndarray (N, G)
        ``p(z)`` per object (per unit redshift).
    """
    mix = _as_mixture(mix)
    return mix.pdf(np.asarray(z, dtype=np.float64).ravel())


def mixture_cdf(mix: Mixture, z: np.ndarray) -> np.ndarray:
    """Cumulative distribution of each mixture at per-object redshifts.

    Parameters
    ----------
    mix : Mixture
        N mixtures.
    z : ndarray (N,) or (N, G)
        Redshifts, one (or G) per object.

    Returns
    -------
    ndarray, same shape as ``z``
        ``P(Z <= z)`` (weights are renormalised to sum to 1).
    """
    mix = _as_mixture(mix)
    z = np.asarray(z, dtype=np.float64)
    if z.shape[0] != mix.n_objects or z.ndim not in (1, 2):
        raise ValueError(f"z must have shape (N,) or (N, G) with N = {mix.n_objects}, got {z.shape}")
    return mix.cdf(z)


def mixture_mean(mix: Mixture) -> np.ndarray:
    """Exact mean of each mixture, ``sum_k w_k mu_k / sum_k w_k`` (qp's ``mixmod.mean`` is not).

    Parameters
    ----------
    mix : Mixture
        N mixtures.

    Returns
    -------
    ndarray (N,)
        Mean redshifts.
    """
    mix = _as_mixture(mix)
    return mix.mean()


def mixture_median(mix: Mixture, *, tolerance: float = MEDIAN_TOLERANCE) -> np.ndarray:
    """Median of each mixture by bisection on its CDF.

    Parameters
    ----------
    mix : Mixture
        N mixtures.
    tolerance : float
        Absolute accuracy of the result (redshift).

    Returns
    -------
    ndarray (N,)
        ``z`` with ``cdf(z) = 0.5``.
    """
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    mix = _as_mixture(mix)
    return mix.median(tolerance)


def mixture_mode(mix: Mixture, grid: np.ndarray) -> np.ndarray:
    """Redshift of the pdf maximum of each mixture on a grid.

    Parameters
    ----------
    mix : Mixture
        N mixtures.
    grid : ndarray (G,)
        Increasing redshift grid, e.g. ``np.linspace(zmin, zmax, nzbins)``.

    Returns
    -------
    ndarray (N,)
        The grid point of largest density (the first one on ties).
    """
    grid = np.asarray(grid, dtype=np.float64).ravel()
    if grid.size == 0 or np.any(np.diff(grid) <= 0) or not np.all(np.isfinite(grid)):
        raise ValueError(f"the zmode grid must be finite and strictly increasing, got {grid.size} points")
    mix = _as_mixture(mix)
    return mix.mode(grid)


def to_qp(mix: Mixture, ancil: dict[str, np.ndarray] | None = None):
    """Wrap mixtures as a ``qp.Ensemble`` of ``qp.mixmod``.

    Parameters
    ----------
    mix : Mixture
        N mixtures of K components.
    ancil : dict of str -> ndarray (N,), optional
        Per-object columns (``object_id``, ``zmode``, ...).

    Returns
    -------
    qp.Ensemble
        ``qp.mixmod`` with ``means``, ``stds``, ``weights`` of shape (N, K).
    """
    import qp

    mix = _as_mixture(mix)
    return qp.Ensemble(qp.mixmod, data={"means": mix.means, "stds": mix.stds, "weights": mix.weights},
                       ancil=ancil)


def from_qp(ensemble) -> Mixture | None:
    """The mixtures of a ``qp.mixmod`` ensemble (weights normalised per object), None for another representation.

    Parameters
    ----------
    ensemble : qp.Ensemble
        N PDFs.

    Returns
    -------
    Mixture or None
        Shape (N, K) arrays.

    Raises
    ------
    DeepDiscError
        If a row's weights do not sum to a positive value, a std is not positive or a mean not finite.
    """
    if type(ensemble.gen_obj).__name__ != "mixmod_gen":
        return None
    d = ensemble.objdata
    means = np.atleast_2d(np.asarray(d["means"], float))
    stds = np.atleast_2d(np.asarray(d["stds"], float))
    weights = np.atleast_2d(np.asarray(d["weights"], float))
    total = weights.sum(axis=1, keepdims=True)
    if not (np.all(total > 0) and np.all(stds > 0) and np.all(np.isfinite(means))):
        raise DeepDiscError("mixmod ensemble has a row with non-positive or NaN total weight (qp turns all-zero "
                            "weights into NaN), a non-positive std or a non-finite mean")
    return Mixture(weights / total, means, stds)

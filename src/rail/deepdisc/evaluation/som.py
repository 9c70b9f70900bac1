"""The "spectroscopically represented" flag: a self-organising map of colour space (Merz et al. 2025).

A 32x32 rectangular MiniSom with PCA initialisation, Gaussian neighbourhood (sigma 5) and learning rate 0.5 is
trained on the reference-band magnitude (F444W) and the sequential colours (``m_1 - m_2``, ``m_2 - m_3``, ...,
bands blue to red) of *all* objects, target and spectroscopic together. An object is spectroscopically
represented (``spec_rep = 1``) when its best-matching cell also holds an object of the spec-z training set.

Missing photometry (NaN, or a catalog sentinel such as 99) is handled explicitly: features are standardised
with NaN-aware statistics; the map is trained on objects with complete features (or, if too few are complete,
on all objects with missing features set to the feature mean); and every object's best-matching cell is found
with the distance over its *available* features only, so an object missing a band is still placed. An object
without any usable feature is unrepresented and gets cell -1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.exceptions import ConfigError, DeepDiscError

__all__ = ["SOMSettings", "SOMFlags", "MISSING_MAGNITUDE", "som_features", "train_som", "best_matching_cells",
           "spec_represented", "flag_catalogs"]

log = logging.getLogger(__name__)

#: Catalog magnitudes at or beyond this absolute value are sentinels for "not measured" (e.g. 99, -99).
MISSING_MAGNITUDE = 50.0
_MIN_COMPLETE_PER_CELL = 0.5  # complete rows needed per SOM cell to train on complete rows only
_MIN_STD = 1e-6  # features with a smaller spread are not rescaled (a constant feature)


@dataclass(frozen=True)
class SOMSettings:
    """Self-organising map configuration (defaults: Merz et al. 2025).

    Parameters
    ----------
    shape : (int, int)
        Map rows and columns.
    sigma : float
        Initial width of the Gaussian neighbourhood, in cells.
    learning_rate : float
        Initial learning rate.
    n_iterations : int
        Weight updates (objects drawn in random order).
    reference_band : str
        Band whose magnitude is a feature (the reddest band is used if absent).
    seed : int
        Random seed of the training order.
    """

    shape: tuple[int, int] = (32, 32)
    sigma: float = 5.0
    learning_rate: float = 0.5
    n_iterations: int = 20000
    reference_band: str = "F444W"
    seed: int = 42

    def __post_init__(self):
        if len(self.shape) != 2 or min(self.shape) < 2:
            raise ConfigError(f"SOM shape must be two sizes >= 2, got {self.shape!r}")
        if not self.sigma > 0 or not self.learning_rate > 0:
            raise ConfigError(f"SOM sigma and learning_rate must be positive, got {self.sigma!r}, "
                              f"{self.learning_rate!r}")
        if self.n_iterations < 1:
            raise ConfigError(f"SOM n_iterations must be >= 1, got {self.n_iterations!r}")


@dataclass(frozen=True)
class SOMFlags:
    """Result of `spec_represented`.

    Attributes
    ----------
    spec_rep : ndarray of bool, shape (N,)
        Target objects whose cell holds a spectroscopic object.
    cell : ndarray of int, shape (N,)
        Flat cell index of each target object (-1: no usable feature).
    spec_cells : ndarray of int
        Cells that hold at least one spectroscopic object.
    weights : ndarray, shape (rows, cols, F)
        Trained map in standardised feature space.
    """

    spec_rep: np.ndarray
    cell: np.ndarray
    spec_cells: np.ndarray
    weights: np.ndarray

    @property
    def fraction(self) -> float:
        """Fraction of target objects that are represented."""
        return float(np.mean(self.spec_rep)) if len(self.spec_rep) else np.nan


def som_features(table: Mapping[str, np.ndarray], bands: Sequence[str], *, reference_band: str = "F444W"
                 ) -> np.ndarray:
    """Reference-band magnitude and sequential colours of each object.

    Parameters
    ----------
    table : mapping
        Object columns with ``mag_<BAND>`` for every band.
    bands : sequence of str
        Bands in wavelength order (blue to red).
    reference_band : str
        Band of the magnitude feature; the last (reddest) band if it is not in ``bands``.

    Returns
    -------
    ndarray, shape (N, len(bands))
        Column 0: magnitude; column k: ``mag[bands[k-1]] - mag[bands[k]]``. NaN where a magnitude is missing.
    """
    bands = list(bands)
    if len(bands) < 2:
        raise DeepDiscError(f"the SOM needs at least two bands for a colour, got {bands}")
    missing = [b for b in bands if f"mag_{b}" not in table]
    if missing:
        listed = ", ".join("mag_" + b for b in missing)
        raise DeepDiscError(f"object table lacks magnitude column(s) {listed}")
    mags = np.stack([np.asarray(table[f"mag_{b}"], float) for b in bands], axis=1)
    mags[~np.isfinite(mags) | (np.abs(mags) >= MISSING_MAGNITUDE)] = np.nan
    ref = bands.index(reference_band) if reference_band in bands else len(bands) - 1
    return np.concatenate([mags[:, ref:ref + 1], mags[:, :-1] - mags[:, 1:]], axis=1)


def _standardise(features: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(features, axis=0)
        std = np.nanstd(features, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > _MIN_STD), std, 1.0)
    return (features - mean) / std


def train_som(features: np.ndarray, settings: SOMSettings = SOMSettings()) -> np.ndarray:
    """Train the self-organising map on standardised features.

    Parameters
    ----------
    features : ndarray, shape (N, F)
        Standardised features; NaN = missing (objects with every feature train the map when there are
        enough of them, otherwise all objects do, with missing features at the mean).
    settings : SOMSettings
        Map shape, iterations, learning rate, neighbourhood width and seed.

    Returns
    -------
    ndarray, shape (rows, cols, F)
        The map's weights.
    """
    from minisom import MiniSom

    complete = np.isfinite(features).all(axis=1)
    n_cells = settings.shape[0] * settings.shape[1]
    if complete.sum() >= _MIN_COMPLETE_PER_CELL * n_cells:
        data = features[complete]
    else:
        log.info("only %d objects have every SOM feature: training on all %d, missing features at the mean",
                 int(complete.sum()), len(features))
        data = np.where(np.isfinite(features), features, 0.0)
        data = data[np.isfinite(features).any(axis=1)]
    if len(data) < 2:
        raise DeepDiscError(f"the SOM needs at least 2 objects with photometry, got {len(data)}")
    som = MiniSom(settings.shape[0], settings.shape[1], data.shape[1], sigma=settings.sigma,
                  learning_rate=settings.learning_rate, neighborhood_function="gaussian",
                  topology="rectangular", random_seed=settings.seed)
    som.pca_weights_init(data)
    som.train(data, settings.n_iterations, random_order=True)
    return np.asarray(som.get_weights(), float)


def best_matching_cells(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Flat index of each object's nearest cell over its available features (-1 if it has none).

    Parameters
    ----------
    features : ndarray, shape (N, F)
        Standardised features, NaN = missing.
    weights : ndarray, shape (rows, cols, F)
        Trained map.

    Returns
    -------
    ndarray of int, shape (N,)
    """
    flat = weights.reshape(-1, weights.shape[-1])
    present = np.isfinite(features)
    filled = np.where(present, features, 0.0)
    # squared distance over present features: sum_f m_f (x_f - w_f)^2 = sum m x^2 - 2 x.w + m.w^2
    dist = ((filled**2).sum(axis=1)[:, None] - 2.0 * filled @ flat.T + present.astype(float) @ (flat**2).T)
    cells = np.argmin(dist, axis=1)
    cells[~present.any(axis=1)] = -1
    return cells


def spec_represented(target_features: np.ndarray, spec_features: np.ndarray, *,
                     settings: SOMSettings = SOMSettings()) -> SOMFlags:
    """Flag target objects whose SOM cell holds a spectroscopic training object.

    Parameters
    ----------
    target_features : ndarray, shape (N, F)
        Features of the objects to flag (see `som_features`), NaN = missing.
    spec_features : ndarray, shape (S, F)
        Features of the spec-z training objects.
    settings : SOMSettings
        Map configuration.

    Returns
    -------
    SOMFlags

    Raises
    ------
    DeepDiscError
        If the feature counts differ or there is no spectroscopic object.
    """
    target_features = np.atleast_2d(np.asarray(target_features, float))
    spec_features = np.atleast_2d(np.asarray(spec_features, float))
    if target_features.shape[1] != spec_features.shape[1]:
        raise DeepDiscError(f"target objects have {target_features.shape[1]} SOM features, spectroscopic "
                            f"objects {spec_features.shape[1]}: use the same bands for both")
    if len(spec_features) == 0:
        raise DeepDiscError("no spectroscopic object to define represented cells: give a TileSet with spec-z")
    scaled = _standardise(np.concatenate([target_features, spec_features]))
    weights = train_som(scaled, settings)
    cells = best_matching_cells(scaled, weights)
    target_cells, spec_cells = cells[:len(target_features)], cells[len(target_features):]
    spec_cells = np.unique(spec_cells[spec_cells >= 0])
    rep = np.isin(target_cells, spec_cells) & (target_cells >= 0)
    log.info("SOM: %d of %d objects in %d cells holding spec-z objects", int(rep.sum()), len(rep),
             len(spec_cells))
    return SOMFlags(spec_rep=rep, cell=target_cells, spec_cells=spec_cells, weights=weights)


def flag_catalogs(targets: Mapping[str, np.ndarray], spec: Mapping[str, np.ndarray], bands: Sequence[str], *,
                  settings: SOMSettings = SOMSettings()) -> SOMFlags:
    """Flag the objects of one catalog by the spectroscopic objects of another (e.g. a training TileSet).

    Parameters
    ----------
    targets : mapping
        Object columns (``mag_<BAND>``) of the objects to flag, e.g. a TileSet's primary objects.
    spec : mapping
        Object columns of the training set; its rows with a finite ``redshift`` are the spec-z objects.
    bands : sequence of str
        Bands (blue to red) present in both.
    settings : SOMSettings
        Map configuration.

    Returns
    -------
    SOMFlags
    """
    if "redshift" not in spec:
        raise DeepDiscError("the spectroscopic catalog has no 'redshift' column")
    labelled = np.isfinite(np.asarray(spec["redshift"], float))
    spec_labelled = {k: np.asarray(v)[labelled] for k, v in spec.items() if k.startswith("mag_")}
    band = settings.reference_band
    return spec_represented(som_features(targets, bands, reference_band=band),
                            som_features(spec_labelled, bands, reference_band=band), settings=settings)

"""Spectroscopic labels: a brightness-biased subset of catalogued galaxies, with optional wrong redshifts.

Selection odds of a catalogued galaxy fall by e per ``label_bias_mag`` magnitudes of F444W, scaled so the
expected labelled fraction of catalogued galaxies is ``label_fraction``. The scale is calibrated once per
settings on a large population draw whose detection is approximated by the F444W depth. Wrong labels mimic line
confusion (H-alpha / [OIII] / [OII] / Lyman-alpha mistaken for one another) or, failing a valid confusion, a
random redshift. Stars are not targeted. JADES-like quality flags (A-C for used redshifts) go with the labels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["label_probability", "assign_labels", "CONFUSED_LINES", "LABEL_PIVOT_MAG"]

LABEL_PIVOT_MAG = 27.0
CALIBRATION_AREA = 40000.0  # arcsec^2 of the calibration draw
#: (true line, assumed line) rest wavelengths, Angstrom.
CONFUSED_LINES = ((6563.0, 5007.0), (5007.0, 6563.0), (3727.0, 6563.0), (6563.0, 3727.0), (1216.0, 3727.0),
                  (3727.0, 1216.0))
GOOD_FLAGS = ("A", "B", "C")
GOOD_FLAG_P = (0.5, 0.3, 0.2)
WRONG_FLAG_P = (0.0, 0.4, 0.6)
BISECTION_STEPS = 60
DETECTION_MARGIN_MAG = 0.5  # catalogued objects reach about this far past the F444W 5-sigma depth


def _odds(mag_ref: np.ndarray, bias_mag: float) -> np.ndarray:
    if not np.isfinite(bias_mag):
        return np.ones_like(mag_ref)
    return np.exp(-(mag_ref - LABEL_PIVOT_MAG) / bias_mag)


@lru_cache(maxsize=16)
def _calibrated_scale(settings) -> float:
    from .population import REFERENCE_BAND, draw_population
    from .seds import photometry_grid

    grid = photometry_grid(settings.bands + (REFERENCE_BAND,), z_max=settings.z_max,
                           ebv_max=settings.ebv_internal_max)
    pop = draw_population(np.random.default_rng([settings.seed, 0x1AB]), settings, grid, CALIBRATION_AREA)
    limit = _reference_depth(settings)
    odds = _odds(pop.mag_ref[(~pop.is_star) & (pop.mag_ref < limit + DETECTION_MARGIN_MAG)], settings.label_bias_mag)
    if odds.size == 0 or settings.label_fraction == 0:
        return 0.0
    lo, hi = 0.0, 1.0 / odds.min()
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.minimum(mid * odds, 1.0).mean() < settings.label_fraction else (lo, mid)
    return 0.5 * (lo + hi)


def _reference_depth(settings) -> float:
    bands = settings.bands
    return settings.depths[bands.index("F444W")] if "F444W" in bands else max(settings.depths)


def label_probability(mag_ref: np.ndarray, settings) -> np.ndarray:
    """Probability that a catalogued galaxy of F444W magnitude ``mag_ref`` has a spectroscopic redshift."""
    return np.minimum(_calibrated_scale(settings) * _odds(np.asarray(mag_ref, float), settings.label_bias_mag), 1.0)


def assign_labels(rng: np.random.Generator, z_true: np.ndarray, mag_ref: np.ndarray, is_star: np.ndarray,
                  settings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw spectroscopic labels for catalogued objects.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    z_true : ndarray (K,)
        True redshifts.
    mag_ref : ndarray (K,)
        True F444W magnitudes.
    is_star : ndarray bool (K,)
        Stars are never labelled.
    settings : SimulationSettings
        ``label_fraction``, ``label_bias_mag``, ``wrong_label_fraction``, ``z_max``.

    Returns
    -------
    redshift : ndarray (K,)
        Spectroscopic redshift, NaN where unlabelled.
    wrong : ndarray bool (K,)
        Labels that are wrong.
    flag : ndarray of str (K,)
        Quality flag ``A``-``C`` of labelled objects, ``""`` otherwise.
    """
    k = len(z_true)
    p = np.where(is_star, 0.0, label_probability(mag_ref, settings))
    labelled = rng.uniform(size=k) < p
    wrong = labelled & (rng.uniform(size=k) < settings.wrong_label_fraction)
    pair = rng.integers(0, len(CONFUSED_LINES), size=k)
    ratio = np.array([a / b for a, b in CONFUSED_LINES])[pair]
    z_conf = (1.0 + z_true) * ratio - 1.0
    z_rand = rng.uniform(0.0, min(6.0, settings.z_max), size=k)
    z_wrong = np.where((z_conf > 0) & (z_conf < settings.z_max), z_conf, z_rand)
    redshift = np.where(labelled, np.where(wrong, z_wrong, z_true), np.nan)
    u = rng.uniform(size=k)
    good = np.array(GOOD_FLAGS)[np.searchsorted(np.cumsum(GOOD_FLAG_P), u)]
    bad = np.array(GOOD_FLAGS)[np.minimum(np.searchsorted(np.cumsum(WRONG_FLAG_P), u), 2)]
    flag = np.where(labelled, np.where(wrong, bad, good), "")
    return redshift, wrong, flag

"""Spectroscopic labels: a brightness- and redshift-biased subset of catalogued galaxies, some of them wrong.

Like a spectroscopic programme that fills a fixed share of its targets in every pointing, each field labels
``label_fraction`` of its catalogued galaxies in expectation: selection odds fall by e per ``label_bias_mag``
magnitudes of F444W, and are scaled, per field, so the probabilities (capped at 1) sum to that share. The
odds also carry the redshift dependence of spectroscopic *success*: they fall by e per ``label_z_scale`` in
redshift (faint continua and lines leaving the windows at high z), and are multiplied by
``label_desert_success`` in the redshift desert `REDSHIFT_DESERT` (1.5 < z < 2.5: [OII] has left the optical
windows and H-alpha not yet reached the ground-based near-infrared ones). With the defaults (``inf`` and 1) the
draw is the brightness-biased one alone, random number for random number. Wrong
labels mimic line confusion (H-alpha / [OIII] / [OII] / Lyman-alpha mistaken for one another) or, failing a
valid confusion, a random redshift. Stars are not targeted. JADES-like quality flags (A-C) go with the labels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_probability", "assign_labels", "CONFUSED_LINES", "LABEL_PIVOT_MAG", "REDSHIFT_DESERT"]

LABEL_PIVOT_MAG = 27.0
#: Redshift range of the spectroscopic desert (no strong line in the optical or ground-based windows).
REDSHIFT_DESERT = (1.5, 2.5)
#: (true line, assumed line) rest wavelengths, Angstrom.
CONFUSED_LINES = (
    (6563.0, 5007.0),
    (5007.0, 6563.0),
    (3727.0, 6563.0),
    (6563.0, 3727.0),
    (1216.0, 3727.0),
    (3727.0, 1216.0),
)
GOOD_FLAGS = ("A", "B", "C")
GOOD_FLAG_P = (0.5, 0.3, 0.2)
WRONG_FLAG_P = (0.0, 0.4, 0.6)
BISECTION_STEPS = 60


def label_probability(
    mag_ref: np.ndarray,
    is_star: np.ndarray,
    *,
    label_fraction: float,
    bias_mag: float,
    z: np.ndarray | None = None,
    z_scale: float = np.inf,
    desert_success: float = 1.0,
) -> np.ndarray:
    """Return the spectroscopic selection probability of each catalogued object of a field.

    Parameters
    ----------
    mag_ref : ndarray (K,)
        F444W magnitudes.
    is_star : ndarray bool (K,)
        Stars get probability 0.
    label_fraction : float
        Expected labelled share of the field's galaxies.
    bias_mag : float
        Odds fall by e per this many magnitudes (``inf``: unbiased).
    z : ndarray (K,), optional
        True redshifts (needed for ``z_scale`` and ``desert_success``).
    z_scale : float
        Odds fall by e per this many units of redshift (``inf``: no redshift dependence).
    desert_success : float
        Odds factor in `REDSHIFT_DESERT` (1: no desert).

    Returns
    -------
    ndarray (K,)
        Probabilities in [0, 1] summing to ``label_fraction`` x the number of galaxies.
    """
    mag = np.asarray(mag_ref, float)
    odds = np.ones_like(mag) if not np.isfinite(bias_mag) else np.exp(-(mag - LABEL_PIVOT_MAG) / bias_mag)
    if np.isfinite(z_scale) or desert_success != 1.0:
        z = np.asarray(z, float)
        odds = odds * np.exp(-z / z_scale) if np.isfinite(z_scale) else odds
        desert = (z > REDSHIFT_DESERT[0]) & (z < REDSHIFT_DESERT[1])
        odds = np.where(desert, desert_success * odds, odds)
    odds = np.where(np.asarray(is_star, bool), 0.0, odds)
    target = label_fraction * np.count_nonzero(~np.asarray(is_star, bool))
    if target <= 0 or not odds.any():
        return np.zeros_like(odds)
    lo, hi = 0.0, 1.0 / odds[odds > 0].min()
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.minimum(mid * odds, 1.0).sum() < target else (lo, mid)
    return np.minimum(hi * odds, 1.0)


def assign_labels(
    rng: np.random.Generator, z_true: np.ndarray, mag_ref: np.ndarray, is_star: np.ndarray, settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        ``label_fraction``, ``label_bias_mag``, ``label_z_scale``, ``label_desert_success``,
        ``wrong_label_fraction``, ``z_max``.

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
    p = label_probability(
        mag_ref,
        is_star,
        label_fraction=settings.label_fraction,
        bias_mag=settings.label_bias_mag,
        z=z_true,
        z_scale=settings.label_z_scale,
        desert_success=settings.label_desert_success,
    )
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

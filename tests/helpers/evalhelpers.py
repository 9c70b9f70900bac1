"""Synthetic photo-z ensembles matched to hand-made TileSets, for the evaluation tests."""

import numpy as np
import qp

from tests.helpers.tilesets import make_tileset


def gaussian_mixture_ensemble(ztrue, *, sigma, width_factor=1.0, n_components=2, seed=0):
    """Calibrated (width_factor = 1) or mis-calibrated Gaussian-mixture PDFs around noisy estimates of ztrue.

    Each object's PDF centre is drawn from N(ztrue, sigma); its components all share that centre, so the
    mixture is N(centre, width_factor * sigma): calibrated for width_factor 1, overconfident below.
    """
    rng = np.random.default_rng(seed)
    ztrue = np.asarray(ztrue, float)
    sigma = np.broadcast_to(np.asarray(sigma, float), ztrue.shape)
    centre = ztrue + rng.normal(0.0, 1.0, ztrue.shape) * sigma
    means = np.repeat(centre[:, None], n_components, axis=1)
    stds = np.repeat((width_factor * sigma)[:, None], n_components, axis=1)
    weights = np.full_like(means, 1.0 / n_components)
    return qp.Ensemble(qp.mixmod, data=dict(means=means, stds=stds, weights=weights)), centre


def make_photoz_for(tileset, *, sigma_scale=0.05, width_factor=1.0, seed=0, detected_fraction=0.8):
    """A qp mixmod ensemble with the estimator's ancil columns for the primary objects of a TileSet."""
    prim = tileset.primary_objects()
    z = np.asarray(prim["redshift_true"], float)
    ens, centre = gaussian_mixture_ensemble(z, sigma=sigma_scale * (1 + z), width_factor=width_factor,
                                            seed=seed)
    rng = np.random.default_rng(seed + 1)
    n = len(z)
    detected = rng.uniform(size=n) < detected_fraction
    ens.set_ancil(dict(object_id=prim["object_id"].astype(np.int64), zmode=centre, zmean=centre,
                       zmedian=centre, detected=detected, forced=~detected, recentred=np.zeros(n, bool),
                       score=np.where(detected, rng.uniform(0.5, 1.0, n), 0.0)))
    return ens


def varied_tileset(n_tiles=6, objects_per_tile=8, seed=3, size=48):
    """make_tileset with varied magnitudes (colour-dependent on redshift) instead of the flat 26 mag."""
    ts = make_tileset(n_tiles=n_tiles, size=size, objects_per_tile=objects_per_tile, seed=seed)
    rng = np.random.default_rng(seed)
    z = ts.objects["redshift_true"]
    m = len(z)
    base = rng.uniform(23.0, 29.5, m)
    for k, band in enumerate(ts.bands):
        ts.objects[f"mag_{band}"] = base + 0.3 * (len(ts.bands) - k) * z / 5 + rng.normal(0, 0.05, m)
    return ts

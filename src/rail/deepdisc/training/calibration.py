"""Width calibration of the ensemble mixture on spec-z tiles that no member trained on.

Each member's widths are calibrated on its own validation tiles (`rail.deepdisc.training.validation.calibrate_widths`),
so each member alone is calibrated. Their weighted mixture (a linear pool) is not: a linear pool of calibrated
forecasts is over-dispersed (Ranjan & Gneiting 2010), because the spread between the members' means adds to
widths that already hold each member's own error. On the COSMOS-Web 4-band benchmark the three members alone
held 66-71% of true redshifts in their 68% intervals, their mixture 75%.

The remedy is the ensemble calibration of forecast verification (EMOS, Gneiting et al. 2005): one factor ``s``
on every member's widths, fitted by minimum CRPS (continuous ranked probability score, closed form for Gaussian
mixtures: `mixture_crps`) of the ensemble mixture,

    s = argmin_s  mean_i CRPS(sum_m w_m p_m(. | widths x s), z_i),

over objects that none of the members trained or validated on: a share ``calibration_fraction`` of the
labelled tiles (`calibration_tiles`, drawn once from the master seed, so every member, in any process, leaves
out the same tiles; their labels are hidden but they still train detection). The CRPS, unlike the
log-likelihood, is not dominated by a few catastrophic outliers: on that benchmark the likelihood's best factor
was 1.02 (coverage unchanged), the CRPS's 0.65 (68% coverage 0.71, 95% 0.91; fitted on the test objects there,
as a check of the criterion).

Off by default (``calibration_fraction`` = 0): it costs labels, and the factor holds for fields like the
training field. On the benchmark, whose test fields are shallower and have other PSFs and sizes than the
training fields, the factor fitted on held-out training tiles (68 objects) was 1.36 for COSMOS-Web 4 and the
test field's 68% coverage stayed 0.76 (benchmarks/README.md).

Each member stores its mixtures of the calibration objects in the artifact (``members[k]["calibration"]``:
``z``, ``weights``, ``means``, ``stds``, a few kB), so the factor can be fitted for any set of members without
the training data: `ensemble_std_scale` fits it when the ensemble is loaded, for the members in use (all, one
member alone, or members joined by `rail.deepdisc.training.ensemble.merge_artifacts`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import erf

from rail.deepdisc.model.redshift_head import STD_SCALE_BOUNDS, MixtureParams, minimise_width_factor
from rail.deepdisc.training.validation import MIN_CALIBRATION_OBJECTS

__all__ = ["calibration_tiles", "calibration_record", "ensemble_std_scale", "mixture_crps", "fit_crps_scale"]

log = logging.getLogger(__name__)

#: Entropy word of the calibration split's random stream (member streams are ``[seed, member]``).
_CALIBRATION_STREAM = 0xCA11B
#: Labelled tiles every member needs (one to train, one to validate).
_MIN_MEMBER_TILES = 2
#: Objects per block of the pairwise CRPS term (bounds its memory: block x K^2 values).
_CRPS_BLOCK = 512


def calibration_tiles(labelled: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The labelled tiles held out from every member for the ensemble's width calibration.

    Parameters
    ----------
    labelled : ndarray of int
        Indices of the tiles with spec-z.
    fraction : float
        Share of them to hold out, in [0, 1) (0: none).
    seed : int
        The ensemble's master seed (the same split for every member).

    Returns
    -------
    ndarray of int
        Sorted tile indices: ``round(fraction * len(labelled))`` of them, or none where that would leave the
        members fewer than 2 labelled tiles.
    """
    labelled = np.asarray(labelled, dtype=np.int64)
    n_cal = int(round(float(fraction) * len(labelled)))
    if n_cal and len(labelled) - n_cal < _MIN_MEMBER_TILES:
        log.warning("only %d labelled tiles: none held out for the ensemble width calibration (the members "
                    "need %d)", len(labelled), _MIN_MEMBER_TILES)
        n_cal = 0
    if n_cal == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([int(seed), _CALIBRATION_STREAM])
    return np.sort(rng.permutation(labelled)[:n_cal])


def calibration_record(params: MixtureParams, z: torch.Tensor) -> dict:
    """A member's mixtures of the calibration objects, as stored in the artifact (float32 CPU tensors)."""
    return {
        "z": z.detach().float().cpu().clone(),
        **{name: t.detach().float().cpu().clone() for name, t in zip(MixtureParams._fields, params)},
    }


def ensemble_std_scale(members: Sequence[dict], *, name: str = "model") -> tuple[float, int]:
    """The factor on every member's widths that minimises the ensemble's CRPS of the calibration objects.

    Parameters
    ----------
    members : sequence of dict
        Artifact members (``weight``, optional ``calibration``) to be used together; their weights are
        renormalised.
    name : str
        How messages refer to the model.

    Returns
    -------
    scale : float
        The factor (1 when a member has no calibration record, the records are of different objects, or
        they hold fewer than `MIN_CALIBRATION_OBJECTS` objects).
    n_objects : int
        Calibration objects it was fitted on (0 when not fitted).
    """
    records = [m.get("calibration") for m in members]
    if not members or any(r is None for r in records):
        return 1.0, 0
    z = records[0]["z"]
    if any(r["z"].shape != z.shape or not torch.equal(r["z"], z) for r in records[1:]):
        log.warning("%s: members were calibrated on different objects (trained with other seeds or data); the "
                    "ensemble widths are left as the members' own", name)
        return 1.0, 0
    if len(z) < MIN_CALIBRATION_OBJECTS:
        return 1.0, 0
    w = np.asarray([float(m["weight"]) for m in members], dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    mixture = MixtureParams(
        np.concatenate([wm * r["weights"].double().numpy() for wm, r in zip(w, records)], axis=1),
        *(np.concatenate([r[key].double().numpy() for r in records], axis=1) for key in ("means", "stds")),
    )
    return fit_crps_scale(mixture, z.double().numpy()), len(z)


def _crps_a(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``E|X|`` for ``X ~ Normal(mu, var)``: ``2 sd phi(mu/sd) + mu (2 Phi(mu/sd) - 1)``."""
    sd = np.sqrt(var)
    t = mu / sd
    return 2.0 * sd * np.exp(-0.5 * t * t) / np.sqrt(2.0 * np.pi) + mu * erf(t / np.sqrt(2.0))


def mixture_crps(params: MixtureParams, z) -> np.ndarray:
    """CRPS of each object's Gaussian mixture at its redshift (closed form, Grimit et al. 2006).

    ``CRPS = sum_k w_k E|X_k - z| - 1/2 sum_jk w_j w_k E|X_j - X_k|`` with ``X_k ~ Normal(mu_k, sigma_k^2)``.

    Parameters
    ----------
    params : MixtureParams
        Mixtures of N objects (tensors or arrays).
    z : array-like (N,)
        Redshifts.

    Returns
    -------
    ndarray (N,)
        The CRPS (redshift units; 0 for a point mass at z).

    Examples
    --------
    >>> one = MixtureParams(np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)))
    >>> round(float(mixture_crps(one, [0.0])[0]), 4)  # (sqrt(2) - 1) / sqrt(pi)
    0.2337
    """
    w, mu, sd = (np.asarray(t, dtype=np.float64) for t in params)
    z = np.asarray(z, dtype=np.float64)
    out = np.empty(len(z))
    for a in range(0, len(z), _CRPS_BLOCK):
        b = slice(a, a + _CRPS_BLOCK)
        var = sd[b] ** 2
        first = (w[b] * _crps_a(z[b, None] - mu[b], var)).sum(1)
        pair = _crps_a(mu[b, :, None] - mu[b, None, :], var[:, :, None] + var[:, None, :])
        out[b] = first - 0.5 * np.einsum("nj,nk,njk->n", w[b], w[b], pair)
    return out


def fit_crps_scale(params: MixtureParams, z, *, bounds: tuple[float, float] = STD_SCALE_BOUNDS) -> float:
    """The factor on every component's width that minimises the mean CRPS of ``z`` (1 when ``z`` is empty)."""
    if len(z) == 0:
        return 1.0
    w, mu, sd = (np.asarray(t, dtype=np.float64) for t in params)
    zz = np.asarray(z, dtype=np.float64)

    def score(log_scale: float) -> float:
        return float(mixture_crps(MixtureParams(w, mu, sd * np.exp(log_scale)), zz).mean())

    return minimise_width_factor(score, bounds)

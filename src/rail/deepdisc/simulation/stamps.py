"""Object stamps: unit-flux, PSF-convolved, pixel-integrated models of single objects drawn in Fourier space.

Used by `rail.deepdisc.simulation.render` (whole field in RAM) and `rail.deepdisc.simulation.strips` (strip by
strip); both draw every stamp with `stamp_models`, so the two paths give the same pixels.
"""

from __future__ import annotations

import galsim
import numpy as np

from rail.deepdisc.simulation.components import BulgeDisc
from rail.deepdisc.simulation.morphology import Morphology
from rail.deepdisc.simulation.psf import PsfTransfer

__all__ = ["STAMP_LADDER", "stamp_size", "stamp_models", "stamp_overlap", "largest_useful_stamp"]

STAMP_LADDER = (24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
PSF_STAMP_FWHMS = 4.0  # stamp half-width covers this many FWHM of the widest PSF
SERSIC_STAMP_RADII = {True: 10.0, False: 6.0}  # major-axis half-light radii covered for n > 2 / n <= 2


def stamp_size(
    r_e_pix: np.ndarray, sersic_n: np.ndarray, axis_ratio: np.ndarray, psf_fwhm_pix: float
) -> np.ndarray:
    """Return the stamp side (pixels, from `STAMP_LADDER`) that holds each object's PSF-convolved light.

    Parameters
    ----------
    r_e_pix : ndarray (N,)
        Circularised half-light radius, pixels (0 for points).
    sersic_n : ndarray (N,)
        Sersic index (NaN for points).
    axis_ratio : ndarray (N,)
        b/a; the stamp covers the major axis, r_e / sqrt(q).
    psf_fwhm_pix : float
        Widest PSF FWHM, pixels.

    Returns
    -------
    ndarray of int (N,)
    """
    radii = np.where(np.nan_to_num(sersic_n) > 2, SERSIC_STAMP_RADII[True], SERSIC_STAMP_RADII[False])
    half = r_e_pix / np.sqrt(axis_ratio) * radii + PSF_STAMP_FWHMS * psf_fwhm_pix
    ladder = np.asarray(STAMP_LADDER)
    return ladder[np.minimum(np.searchsorted(ladder, 2 * half), len(ladder) - 1)]


def _profile(k: int, morph: Morphology, pixel_scale: float, dx: float, dy: float) -> galsim.GSObject:
    if morph.r_e[k] <= 0:
        prof = galsim.DeltaFunction(flux=1.0)
    else:
        prof = galsim.Sersic(n=float(morph.sersic_n[k]), half_light_radius=float(morph.r_e[k]), flux=1.0)
        prof = prof.shear(q=float(morph.q[k]), beta=float(morph.beta[k]) * galsim.radians)
    return prof.shift(dx * pixel_scale, dy * pixel_scale)


def _kimage(prof: galsim.GSObject, n: int, k_step: float) -> np.ndarray:
    kimage = galsim.ImageCD(n, n, scale=k_step)
    kimage.setCenter(0, 0)  # zero frequency at array index n // 2
    return np.fft.ifftshift(prof.drawKImage(image=kimage).array)


def stamp_models(
    k, morph, xy, size, transfer: PsfTransfer, rows: slice | int, parts: BulgeDisc | None = None,
    share: np.ndarray | None = None,
) -> tuple[np.ndarray, int, int]:
    """Unit-flux pixel models (P, M, M) of object k through the transfer functions ``rows``; stamp origin.

    With ``parts`` (a two-component galaxy) the bulge and disc k-images are mixed per row with the bulge's
    flux share ``share`` (one value per transfer function).
    """
    cx, cy = int(np.round(xy[k, 0])), int(np.round(xy[k, 1]))
    dx, dy, scale = xy[k, 0] - cx, xy[k, 1] - cy, transfer.pixel_scale
    s = transfer.oversampling
    n = size * s
    dk = transfer.k_step(size)
    tf = transfer.transfer(size)[rows].reshape(-1, n, n)
    if parts is None or not parts.galaxy[k]:
        prod = _kimage(_profile(k, morph, scale, dx, dy), n, dk)[None] * tf
    else:
        disc = _kimage(_profile(k, parts.disc, scale, dx, dy), n, dk)
        bulge = _kimage(_profile(k, parts.bulge, scale, dx, dy), n, dk)
        w = np.atleast_1d(share[rows])[:, None, None]
        prod = (disc[None] + w * (bulge - disc)[None]) * tf
    folded = prod.reshape(-1, s, size, s, size).sum(axis=(1, 3))
    models = np.fft.fftshift(np.fft.ifft2(folded).real, axes=(-2, -1))
    return models, cx - size // 2, cy - size // 2


def stamp_overlap(x0: int, y0: int, size: int, shape) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices of the field and of the stamp where a stamp at (x0, y0) overlaps the field, or None."""
    h, w = shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (slice(fy0, fy1), slice(fx0, fx1)), (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))


def largest_useful_stamp(shape) -> int:
    """Return the smallest ladder stamp of twice the field (larger ones only move wrapped wings off it)."""
    ladder = np.asarray(STAMP_LADDER)
    return int(ladder[min(np.searchsorted(ladder, 2 * max(shape)), len(ladder) - 1)])

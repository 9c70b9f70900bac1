"""Detection on the noisy images, as JADES does with photutils, and the matching of segments to true objects.

The detection stack is the sum of the detection-band images, each in units of its pixel noise, divided by
sqrt(n) (unit sky noise per pixel, as for the model segmentation). It is smoothed with a Gaussian kernel of the
detection bands' mean PSF FWHM; `photutils.segmentation.detect_sources` finds regions of at least
``min_pixels`` connected pixels above ``detection_threshold`` times the smoothed stack's noise (computed
exactly for the kernel and the noise correlation), and `deblend_sources` splits blends (``deblend_levels``
exponentially spaced levels, ``deblend_contrast``), as in Rieke et al. (2023) and Eisenstein et al. (2023).

Each segment is one catalog row. It is matched to the true object whose noiseless detection model puts the
most flux in it (a blend takes the truth of its brightest member). If the true objects together put less than
`SPURIOUS_FLUX_FRACTION` of the segment's measured detection flux in it (a segment mostly made of noise: a
noise peak, perhaps on a faint wing, or a faint object pushed over the threshold by noise), the segment is
spurious: it has no truth (true redshift NaN). A true object dominating no segment is missed; an
object dominating several segments (shredded by the deblending) gives several rows with the same truth.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import center_of_mass, convolve

from rail.deepdisc.simulation.noise import correlated_sum_variance
from rail.deepdisc.simulation.psf import psf_fwhm

__all__ = [
    "Segments",
    "NoisyDetection",
    "detection_stack",
    "detect_segments",
    "match_segments",
    "photutils_segments",
    "SPURIOUS_FLUX_FRACTION",
]

#: A segment whose true objects together give less than this share of its measured detection flux is spurious.
SPURIOUS_FLUX_FRACTION = 0.5
KERNEL_SIZE_FWHM = 3.0  # kernel side, in FWHM (made odd)


@dataclass
class Segments:
    """Segments of a field and their match to the true objects.

    Attributes
    ----------
    segmap : ndarray int32 (H, W)
        0 = sky, 1..K the segments.
    xy : ndarray (K, 2)
        Centroids (x = column) of the smoothed detection stack in each segment, pixels.
    dominant : ndarray int (K,)
        Index of the true object dominating each segment, -1 for spurious segments.
    dominant_flux : ndarray (K,)
        Its noiseless detection flux in the segment (stack units).
    npix : ndarray int (K,)
        Segment areas, pixels.
    """

    segmap: np.ndarray
    xy: np.ndarray
    dominant: np.ndarray
    dominant_flux: np.ndarray
    npix: np.ndarray


def detection_stack(images: np.ndarray, sigma: np.ndarray, det_idx) -> np.ndarray:
    """Sum of the detection bands in units of their pixel noise, over sqrt(n): unit sky noise per pixel."""
    return (images[det_idx] / np.asarray(sigma)[det_idx, None, None]).sum(axis=0) / np.sqrt(len(det_idx))


def _kernel(settings) -> np.ndarray:
    from photutils.segmentation import make_2dgaussian_kernel

    fwhm = np.mean([psf_fwhm(b, settings) for b in settings.active_detection_bands]) / settings.pixel_scale
    size = 2 * int(np.ceil(KERNEL_SIZE_FWHM * fwhm / 2)) + 1
    return make_2dgaussian_kernel(fwhm, size=size).array


def detect_segments(images: np.ndarray, sigma: np.ndarray, settings) -> tuple[np.ndarray, np.ndarray]:
    """Detect and deblend the noisy detection stack with photutils.

    Parameters
    ----------
    images : ndarray (B, H, W)
        Noisy images, nJy per pixel.
    sigma : ndarray (B,)
        Pixel sky noise, nJy.
    settings : SimulationSettings
        Detection bands, PSF, ``detection_threshold``, ``min_pixels``, ``deblend_levels``, ``deblend_contrast``,
        ``noise_correlation_px``.

    Returns
    -------
    segmap : ndarray int32 (H, W)
        0 = sky, 1..K consecutive segment labels.
    xy : ndarray (K, 2)
        Centroids of the smoothed stack's positive flux in each segment, pixels (x = column).
    """
    from photutils.segmentation import deblend_sources, detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    det_idx = [settings.bands.index(b) for b in settings.active_detection_bands]
    kernel = _kernel(settings)
    smoothed = convolve(detection_stack(images, sigma, det_idx), kernel, mode="reflect")
    noise = np.sqrt(correlated_sum_variance(kernel, settings.noise_correlation_px))
    with warnings.catch_warnings():  # an empty field is not worth a warning
        warnings.simplefilter("ignore", NoDetectionsWarning)
        seg = detect_sources(smoothed, settings.detection_threshold * noise, n_pixels=settings.min_pixels)
    if seg is None:
        return np.zeros(smoothed.shape, np.int32), np.zeros((0, 2))
    seg = deblend_sources(
        smoothed,
        seg,
        n_pixels=settings.min_pixels,
        n_levels=settings.deblend_levels,
        contrast=settings.deblend_contrast,
        progress_bar=False,
    )
    seg.relabel_consecutive()
    segmap = seg.data.astype(np.int32)
    k = int(segmap.max())
    yx = np.array(center_of_mass(np.maximum(smoothed, 0.0), segmap, np.arange(1, k + 1)), float).reshape(-1, 2)
    return segmap, yx[:, ::-1]


def match_segments(stamps, segmap: np.ndarray, stack: np.ndarray, xy: np.ndarray) -> Segments:
    """Match segments to the true objects that dominate their noiseless detection flux.

    Parameters
    ----------
    stamps : list of (ndarray, overlap or None)
        Per object: its detection-stack model stamp and the (field, stamp) slices where it overlaps the field.
    segmap : ndarray int (H, W)
        Segments 1..K.
    stack : ndarray (H, W)
        The noisy detection stack (`detection_stack`), for each segment's measured flux.
    xy : ndarray (K, 2)
        Segment centroids.

    Returns
    -------
    Segments
    """
    k = int(segmap.max())
    best = np.zeros(k + 1)
    total = np.zeros(k + 1)
    owner = np.full(k + 1, -1)
    for i, (model, overlap) in enumerate(stamps):
        if overlap is None:
            continue
        fs, ss = overlap
        flux = np.bincount(segmap[fs].ravel(), weights=model[ss].ravel(), minlength=k + 1)
        total += flux
        win = flux > best
        best[win], owner[win] = flux[win], i
    measured = np.bincount(segmap.ravel(), weights=stack.ravel(), minlength=k + 1)
    npix = np.bincount(segmap.ravel(), minlength=k + 1)
    spurious = (total < SPURIOUS_FLUX_FRACTION * measured) | (owner < 0)
    dominant = np.where(spurious, -1, owner)[1:]
    return Segments(segmap=segmap, xy=xy, dominant=dominant, dominant_flux=best[1:], npix=npix[1:])


@dataclass
class NoisyDetection:
    """What `photutils_segments` finds: per input object (N) and per segment (K, the catalog rows).

    ``seg_id``, ``npix``, ``snr`` and ``fraction`` are per object as in `RenderedField` (an object shredded
    into several segments keeps the one with most of its flux); ``dominant``, ``xy``, ``segment_fraction``,
    ``segment_npix`` and ``segment_snr`` are per segment.
    """

    segmap: np.ndarray
    seg_id: np.ndarray
    npix: np.ndarray
    snr: np.ndarray
    fraction: np.ndarray
    dominant: np.ndarray
    xy: np.ndarray
    segment_fraction: np.ndarray
    segment_npix: np.ndarray
    segment_snr: np.ndarray


def photutils_segments(stamps, images, sigma, settings, area_factor: float, band_models) -> NoisyDetection:
    """Detect the noisy images (`detect_segments`), match the segments (`match_segments`), measure fractions.

    Parameters
    ----------
    stamps : list of (ndarray, overlap or None)
        Per object: detection-stack model stamp and overlap slices.
    images : ndarray (B, H, W)
        Noisy images, nJy.
    sigma : ndarray (B,)
        Pixel sky noise, nJy.
    settings : SimulationSettings
        Detection settings.
    area_factor : float
        Pixels per independent noise element.
    band_models : callable
        ``band_models(k)`` -> unit-flux band models (B, M, M) of object k's stamp.

    Returns
    -------
    NoisyDetection
    """
    n, nb = len(stamps), images.shape[0]
    segmap, cxy = detect_segments(images, sigma, settings)
    det_idx = [settings.bands.index(b) for b in settings.active_detection_bands]
    seg = match_segments(stamps, segmap, detection_stack(images, sigma, det_idx), cxy)
    seg_id = np.zeros(n, dtype=np.int64)
    flux = np.zeros(n)
    for s, k in enumerate(seg.dominant):
        if k >= 0 and seg.dominant_flux[s] > flux[k]:
            seg_id[k], flux[k] = s + 1, seg.dominant_flux[s]
    npix = np.r_[0, seg.npix][seg_id]
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(npix > 0, flux / np.sqrt(npix * area_factor), 0.0)
        seg_snr = np.where(seg.dominant >= 0, seg.dominant_flux / np.sqrt(seg.npix * area_factor), 0.0)
    frac = np.full((n, nb), np.nan)
    seg_frac = np.ones((len(seg.dominant), nb))
    for k in np.unique(seg.dominant[seg.dominant >= 0]):
        fs, ss = stamps[k][1]
        models = band_models(k)[(slice(None), *ss)]
        for s in np.flatnonzero(seg.dominant == k):
            seg_frac[s] = models[:, segmap[fs] == s + 1].sum(axis=1)
        frac[k] = seg_frac[seg_id[k] - 1]
    return NoisyDetection(
        segmap=segmap, seg_id=seg_id, npix=npix, snr=snr, fraction=frac, dominant=seg.dominant, xy=seg.xy,
        segment_fraction=seg_frac, segment_npix=seg.npix, segment_snr=seg_snr,
    )

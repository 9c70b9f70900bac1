"""Render objects into noisy multi-band images and segment them (noiseless model or photutils on the noisy stack).

Each object is drawn in Fourier space: galsim evaluates its unit-flux profile (Sersic or point, shifted to its
sub-pixel position) on the k-grid of a square stamp sampled ``oversampling`` times finer than the pixels; the
product with each band's PSF-times-pixel transfer function is folded onto the pixel grid (exact decimation of
the fine grid) and inverse-transformed. This gives pixel-integrated, PSF-convolved models of every object in
every band for a handful of small FFTs, with no aliasing of the undersampled short-wavelength PSFs.

Galaxies are one Sersic profile, or (``bulge_disc``) a bulge and a disc whose k-images are mixed per band with
the bulge's share of that band's flux (`rail.deepdisc.simulation.components`), so colours vary across a galaxy
at the cost of a second galsim k-image, not of more FFTs. The noise is the sky's (`draw_noise`) plus, with
``photon_noise``, the sources' Poisson noise (`draw_photon_noise`, from its own random stream).

With ``detection = "model"`` segmentation follows the issue's recipe: a detection stack (the detection bands,
each in units of its noise, summed and divided by sqrt(n)) is modelled per object; pixels where the noiseless
stack of catalogued objects exceeds ``segmentation_threshold`` belong to the object whose model is brightest
there. An object enters the catalog when its footprint has ``min_pixels`` pixels and a noiseless isophotal S/N
of ``detection_snr``. With ``detection = "photutils"`` the noisy images are detected and deblended as JADES
does and segments are matched to the true objects (`rail.deepdisc.simulation.detection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import galsim
import numpy as np
from tqdm.auto import tqdm

from rail.deepdisc.filters import pivot_wavelength
from rail.deepdisc.simulation.components import BulgeDisc
from rail.deepdisc.simulation.detection import photutils_segments
from rail.deepdisc.simulation.morphology import Morphology
from rail.deepdisc.simulation.noise import (
    draw_noise,
    draw_photon_noise,
    noise_area_factor,
    photon_gain,
    pixel_sigma,
    sky_background_mjysr,
)
from rail.deepdisc.simulation.psf import PsfTransfer, psf_fwhm, psf_profile
from rail.deepdisc.simulation.stamps import largest_useful_stamp, stamp_models, stamp_overlap, stamp_size

__all__ = [
    "RenderedField",
    "StampPlan",
    "render_field",
    "make_psf_transfer",
    "plan_stamps",
    "stamp_size",
    "stamp_models",
    "stamp_overlap",
]

DETECTION = "detection"
STAMP_CACHE_BYTES = 512 * 2**20  # band models kept between the detection and image passes


@dataclass
class RenderedField:
    """Images, segmentation and per-object measurements of one rendered field.

    Attributes
    ----------
    images : ndarray float32 (B, H, W)
        Noisy images, nJy per pixel.
    model : ndarray float32 (B, H, W)
        Noiseless images, nJy per pixel.
    segmap : ndarray int32 (H, W)
        0 = sky, k = the k-th catalogued object (1-based, in input order).
    detected : ndarray bool (N,)
        Whether each input object is catalogued (dominates a segment).
    seg_id : ndarray int (N,)
        Segmentation value of each object (0 if not catalogued; photutils: the segment with most of its flux).
    npix : ndarray int (N,)
        Footprint pixels.
    detection_snr : ndarray (N,)
        Noiseless isophotal S/N in the detection stack.
    footprint_fraction : ndarray (N, B)
        Fraction of each object's model flux inside its footprint, per band (NaN if not catalogued).
    sigma : ndarray (B,)
        Pixel sky noise sigma, nJy.
    area_factor : float
        Pixels per independent noise element (1 for white noise).
    segment_object : ndarray int (K,)
        Per segment 1..K (a catalog row): the input object it belongs to, -1 if spurious.
    segment_xy : ndarray (K, 2)
        Catalog positions, pixels: the object's true centre (model) or the segment centroid (photutils).
    segment_fraction : ndarray (K, B)
        Fraction of the segment object's model flux inside the segment (1 for spurious segments).
    segment_npix : ndarray int (K,)
    segment_snr : ndarray (K,)
        Noiseless isophotal S/N of the segment object in the segment (0 for spurious ones).
    gain : ndarray (B,) or None
        Electrons per nJy of the photon noise (None without photon noise).
    """

    images: np.ndarray
    model: np.ndarray
    segmap: np.ndarray
    detected: np.ndarray
    seg_id: np.ndarray
    npix: np.ndarray
    detection_snr: np.ndarray
    footprint_fraction: np.ndarray
    sigma: np.ndarray
    area_factor: float
    segment_object: np.ndarray
    segment_xy: np.ndarray
    segment_fraction: np.ndarray
    segment_npix: np.ndarray
    segment_snr: np.ndarray
    gain: np.ndarray | None = None


def make_psf_transfer(settings) -> PsfTransfer:
    """PSF transfer functions of the bands plus the detection-stack PSF (mean of the detection bands)."""
    det = settings.active_detection_bands
    det_psf = galsim.Sum([psf_profile(b, settings) * (1.0 / len(det)) for b in det])
    return PsfTransfer(settings, extra_profiles={DETECTION: det_psf})


def _segment(stamps, shape, candidates, threshold):
    """Segmentation of the candidate detection models: argmax where their sum exceeds the threshold."""
    total = np.zeros(shape)
    best = np.zeros(shape)
    label = np.zeros(shape, dtype=np.int64)
    for k in candidates:
        model, sl = stamps[k]
        if sl is None:
            continue
        fs, ss = sl
        part = model[ss]
        total[fs] += part
        win = part > best[fs]
        best[fs] = np.where(win, part, best[fs])
        label[fs] = np.where(win, k + 1, label[fs])
    return np.where(total > threshold, label, 0)


def _footprint_stats(stamps, seg, n, area_factor):
    npix = np.bincount(seg.ravel(), minlength=n + 1)[1:]
    flux = np.zeros(n)
    for k in range(n):
        model, sl = stamps[k]
        if sl is not None and npix[k]:
            fs, ss = sl
            flux[k] = model[ss][seg[fs] == k + 1].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(npix > 0, flux / np.sqrt(npix * area_factor), 0.0)
    return npix, snr


class _ObjectStamps:
    """Per-object model stamps: detection models first; band models kept (memory budget) or redone."""

    def __init__(self, xy, morph, sizes, transfer: PsfTransfer, shape, parts=None, shares=None):
        self.xy, self.morph, self.sizes, self.transfer, self.shape = xy, morph, sizes, transfer, shape
        self.parts, self.shares = parts, shares
        self.det_row = transfer.names.index(DETECTION)
        self.n_bands = len(transfer.names) - 1
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def _models(self, k: int, rows) -> tuple[np.ndarray, int, int]:
        share = None if self.shares is None else self.shares[k]
        return stamp_models(k, self.morph, self.xy, int(self.sizes[k]), self.transfer, rows, self.parts, share)

    def detection(self, k: int, weight: float):
        """Return object k's weighted detection model and overlap slices; cache its band models."""
        models, x0, y0 = self._models(k, slice(None))
        overlap = stamp_overlap(x0, y0, int(self.sizes[k]), self.shape)
        bands = models[: self.n_bands].astype(np.float32)
        if overlap is not None and self._cached_bytes + bands.nbytes <= STAMP_CACHE_BYTES:
            self._cache[k] = bands
            self._cached_bytes += bands.nbytes
        return models[self.det_row] * weight, overlap

    def bands(self, k: int, keep: bool = False) -> np.ndarray:
        """Unit-flux band models (B, M, M) of object k (``keep``: leave them cached for another pass)."""
        got = self._cache.get(k) if keep else self._cache.pop(k, None)
        return got if got is not None else self._models(k, slice(0, self.n_bands))[0]


def _detect(stamps, shape, settings, area_factor):
    """Segment, keep objects with enough pixels and S/N, re-segment; return segmap, seg_id, npix, S/N."""
    n = len(stamps)
    seg = _segment(stamps, shape, range(n), settings.segmentation_threshold)
    npix, snr = _footprint_stats(stamps, seg, n, area_factor)
    detected = (npix >= settings.min_pixels) & (snr >= settings.detection_snr)
    seg = _segment(stamps, shape, np.flatnonzero(detected), settings.segmentation_threshold)
    npix, snr = _footprint_stats(stamps, seg, n, area_factor)
    detected &= npix > 0
    seg_id = np.zeros(n, dtype=np.int64)
    seg_id[detected] = np.arange(1, int(detected.sum()) + 1)
    return np.r_[0, seg_id][seg].astype(np.int32), seg_id, npix, snr


def _stamp_sizes(morph, parts, settings, shape) -> np.ndarray:
    """Stamp side of every object (for two-component galaxies, the larger of the two components')."""
    fwhm_max = max(psf_fwhm(b, settings) for b in settings.bands) / settings.pixel_scale

    def size(m):
        return stamp_size(m.r_e / settings.pixel_scale, m.sersic_n, m.q, fwhm_max)

    sizes = size(morph)
    if parts is not None:
        sizes = np.where(parts.galaxy, np.maximum(size(parts.bulge), size(parts.disc)), sizes)
    return np.minimum(sizes, largest_useful_stamp(shape))


@dataclass
class StampPlan:
    """Noise levels, detection weights, stamp sizes and component shares of a field's objects (`plan_stamps`).

    ``shares`` (N, B + 1): the bulge's flux share per band and in the detection stack (None without
    ``parts``); ``gain`` (B,): electrons per nJy of the photon noise (None without ``photon_noise``).
    """

    sigma: np.ndarray
    area_factor: float
    det_weight: np.ndarray
    sizes: np.ndarray
    shares: np.ndarray | None
    gain: np.ndarray | None


def plan_stamps(flux: np.ndarray, morph: Morphology, settings, shape, parts: BulgeDisc | None = None) -> StampPlan:
    """Pixel noise (nJy), detection-stack weights, stamp sides and shares of N objects in a field of ``shape``."""
    bands = settings.bands
    sigma = pixel_sigma(
        settings.depths,
        pixel_scale=settings.pixel_scale,
        aperture_diameter=settings.depth_aperture_arcsec,
        correlation_px=settings.noise_correlation_px,
    )
    det_idx = [bands.index(b) for b in settings.active_detection_bands]
    det_terms = flux[:, det_idx] / sigma[det_idx]
    shares = None
    if parts is not None:
        share = parts.band_share[:, : len(bands)]
        with np.errstate(invalid="ignore", divide="ignore"):
            det_share = np.nan_to_num((det_terms * share[:, det_idx]).sum(axis=1) / det_terms.sum(axis=1))
        shares = np.column_stack([share, det_share])
    gain = None
    if settings.photon_noise:
        sky = sky_background_mjysr([pivot_wavelength(b) / 1e4 for b in bands]) * settings.sky_background_scale
        gain = photon_gain(sigma, sky, settings.pixel_scale)
    return StampPlan(
        sigma=sigma,
        area_factor=noise_area_factor(settings.noise_correlation_px),
        det_weight=det_terms.sum(axis=1) / np.sqrt(len(det_idx)),
        sizes=_stamp_sizes(morph, parts, settings, shape),
        shares=shares,
        gain=gain,
    )


def render_field(
    xy: np.ndarray,
    flux: np.ndarray,
    morph: Morphology,
    settings,
    shape: tuple[int, int],
    rng: np.random.Generator,
    transfer: PsfTransfer,
    *,
    parts: BulgeDisc | None = None,
    photon_rng: np.random.Generator | None = None,
    progress_bar: bool = False,
) -> RenderedField:
    """Render N objects into a (B, H, W) field with noise, segment it and decide which are catalogued.

    Parameters
    ----------
    xy : ndarray (N, 2)
        Object centres, pixels (0-based, x = column).
    flux : ndarray (N, B)
        Total flux per band, nJy.
    morph : Morphology
        Shapes (radii in arcsec).
    settings : SimulationSettings
        Bands, depths, noise, detection and segmentation parameters.
    shape : (int, int)
        Field height and width, pixels.
    rng : numpy.random.Generator
        Sky-noise source.
    transfer : PsfTransfer
        From `make_psf_transfer` (reused across fields).
    parts : BulgeDisc, optional
        Two-component galaxies (`draw_bulge_disc`; its ``band_share`` columns in ``settings.bands`` order);
        None: every object is its ``morph`` profile.
    photon_rng : numpy.random.Generator, optional
        Source of the photon noise (with ``settings.photon_noise``; default: a child of ``rng``).
    progress_bar : bool
        Show a tqdm bar over the objects (useful for large mosaics).

    Returns
    -------
    RenderedField
    """
    n, nb = len(xy), len(settings.bands)
    plan = plan_stamps(flux, morph, settings, shape, parts)
    sigma, area_factor, det_weight, gain = plan.sigma, plan.area_factor, plan.det_weight, plan.gain
    objects = _ObjectStamps(xy, morph, plan.sizes, transfer, shape, parts, plan.shares)
    stamps = [
        objects.detection(k, det_weight[k])
        for k in tqdm(range(n), desc="detection models", unit="obj", disable=not progress_bar)
    ]
    photutils = settings.detection == "photutils"
    if not photutils:
        segmap, seg_id, npix, snr = _detect(stamps, shape, settings, area_factor)
    model_img = np.zeros((nb, *shape))
    frac = np.full((n, nb), np.nan)
    for k in tqdm(range(n), desc="band images", unit="obj", disable=not progress_bar):
        if stamps[k][1] is None:
            continue
        fs, ss = stamps[k][1]
        models = objects.bands(k, keep=photutils)[(slice(None), *ss)]
        model_img[(slice(None), *fs)] += flux[k][:, None, None] * models
        if not photutils and seg_id[k]:
            frac[k] = models[:, segmap[fs] == seg_id[k]].sum(axis=1)
    images = model_img + draw_noise(rng, (nb, *shape), sigma, settings.noise_correlation_px)
    if gain is not None:
        images += draw_photon_noise(photon_rng or rng.spawn(1)[0], model_img, gain)
    if photutils:
        segs = photutils_segments(stamps, images, sigma, settings, area_factor, objects.bands)
        segmap, seg_id, npix, snr, frac = segs.segmap, segs.seg_id, segs.npix, segs.snr, segs.fraction
        rows = dict(segment_object=segs.dominant, segment_xy=segs.xy, segment_fraction=segs.segment_fraction,
                    segment_npix=segs.segment_npix, segment_snr=segs.segment_snr)
    else:
        det = np.flatnonzero(seg_id)
        det = det[np.argsort(seg_id[det])]
        rows = dict(segment_object=det, segment_xy=xy[det], segment_fraction=frac[det], segment_npix=npix[det],
                    segment_snr=snr[det])
    return RenderedField(
        images=images.astype(np.float32),
        model=model_img.astype(np.float32),
        segmap=segmap,
        detected=seg_id > 0,
        seg_id=seg_id,
        npix=npix,
        detection_snr=snr,
        footprint_fraction=frac,
        sigma=sigma,
        area_factor=area_factor,
        gain=gain,
        **rows,
    )

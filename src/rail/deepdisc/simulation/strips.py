"""Strip-wise rendering of a field of any size into memory maps, with memory that does not grow with the field.

`render_strips` does what `rail.deepdisc.simulation.render.render_field` does, pixel for pixel and bit for bit,
but sweeps the field in strips of rows instead of holding (B, H, W) arrays:

1. *Detection, pass 1*: objects are drawn in Fourier space when the sweep first reaches their stamp; per strip,
   the detection models of all objects (in catalog-draw order, as in the in-RAM path) give the segmentation
   labels, written to a memory map; an object's footprint statistics are taken once the sweep has passed its
   stamp. The noiseless band models are added to a float64 model memory map in the same sweep.
2. *Detection, pass 2* follows a few strips behind (once every object touching a strip has its pass-1
   statistics), with the catalogued candidates only; its labels go to the segmentation memory map, and the
   footprint fractions of an object are measured when the pass has left its stamp.

Only the stamps of objects between the two fronts are held (band models under `BAND_CACHE_BYTES`, redrawn
when evicted; always float32 like the in-RAM path's cache). Pixel noise (`add_noise`) is drawn band by band
in the order of the in-RAM path's single draw, so the same seed gives the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import convolve1d
from tqdm.auto import tqdm

from rail.deepdisc.prep.windows import PageBudget
from rail.deepdisc.simulation.noise import correlation_kernel, draw_photon_noise
from rail.deepdisc.simulation.render import DETECTION, plan_stamps
from rail.deepdisc.simulation.stamps import stamp_models

__all__ = ["STRIP_ROWS", "BAND_CACHE_BYTES", "StripRender", "render_strips", "add_noise"]

#: Rows per strip of the sweep.
STRIP_ROWS = 128
#: Band models kept between the first touch of an object and its footprint fraction (redrawn when evicted).
BAND_CACHE_BYTES = 256 * 2**20


@dataclass
class StripRender:
    """Per-object results of `render_strips` (the images and segmentation are in the memory maps).

    Attributes are those of `rail.deepdisc.simulation.render.RenderedField` without the images.
    """

    detected: np.ndarray
    seg_id: np.ndarray
    npix: np.ndarray
    detection_snr: np.ndarray
    footprint_fraction: np.ndarray
    sigma: np.ndarray
    area_factor: float
    gain: np.ndarray | None = None


class _Geometry:
    """Stamp origin, size and overlap with the field of every object."""

    def __init__(self, xy, sizes, shape):
        h, w = shape
        self.size = np.asarray(sizes, np.int64)
        self.x0 = np.round(xy[:, 0]).astype(np.int64) - self.size // 2
        self.y0 = np.round(xy[:, 1]).astype(np.int64) - self.size // 2
        self.fx0, self.fx1 = np.maximum(self.x0, 0), np.minimum(self.x0 + self.size, w)
        self.fy0, self.fy1 = np.maximum(self.y0, 0), np.minimum(self.y0 + self.size, h)
        self.inside = (self.fx0 < self.fx1) & (self.fy0 < self.fy1)

    def touching(self, a: int, b: int) -> np.ndarray:
        """Objects whose stamp overlaps field rows [a, b), in draw order."""
        return np.flatnonzero(self.inside & (self.fy0 < b) & (self.fy1 > a))

    def rows(self, k: int, a: int, b: int):
        """(field slice within rows [a, b) as strip-relative slices, stamp slices) of object k."""
        r0, r1 = max(int(self.fy0[k]), a), min(int(self.fy1[k]), b)
        fx0, fx1, x0, y0 = int(self.fx0[k]), int(self.fx1[k]), int(self.x0[k]), int(self.y0[k])
        return (slice(r0 - a, r1 - a), slice(fx0, fx1)), (slice(r0 - y0, r1 - y0), slice(fx0 - x0, fx1 - x0))

    def whole(self, k: int):
        """(field slices, stamp slices) of object k's whole overlap with the field."""
        return self.rows(k, 0, int(self.fy1[k]))


class _Stamps:
    """Detection models (float64, weighted) of the objects between the fronts; band models under a budget."""

    def __init__(self, xy, morph, plan, transfer, parts=None):
        self.xy, self.morph, self.plan, self.transfer, self.parts = xy, morph, plan, transfer, parts
        self.det_row = transfer.names.index(DETECTION)
        self.nb = len(transfer.names) - 1
        self._det: dict[int, np.ndarray] = {}
        self._bands: dict[int, np.ndarray] = {}
        self._bytes = 0

    def _keep_bands(self, k, bands):
        if self._bytes + bands.nbytes <= BAND_CACHE_BYTES:
            self._bands[k] = bands
            self._bytes += bands.nbytes

    def _models(self, k: int, rows) -> np.ndarray:
        share = None if self.plan.shares is None else self.plan.shares[k]
        return stamp_models(k, self.morph, self.xy, int(self.plan.sizes[k]), self.transfer, rows, self.parts, share)[0]

    def det(self, k: int) -> np.ndarray:
        got = self._det.get(k)
        if got is None:
            models = self._models(k, slice(None))
            got = self._det[k] = models[self.det_row] * self.plan.det_weight[k]
            self._keep_bands(k, models[: self.nb].astype(np.float32))
        return got

    def bands(self, k: int) -> np.ndarray:
        got = self._bands.get(k)
        if got is None:
            got = self._models(k, slice(0, self.nb)).astype(np.float32)
            self._keep_bands(k, got)
        return got

    def drop(self, k: int) -> None:
        self._det.pop(k, None)
        got = self._bands.pop(k, None)
        if got is not None:
            self._bytes -= got.nbytes


def _segment(stamps, geom, candidates, a, b, width, threshold) -> np.ndarray:
    """Labels (k + 1) of field rows [a, b): the in-RAM path's argmax rule, candidates in draw order."""
    shape = (b - a, width)
    total, best, label = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.int64)
    for k in candidates:
        fs, ss = geom.rows(k, a, b)
        part = stamps.det(k)[ss]
        total[fs] += part
        win = part > best[fs]
        best[fs] = np.where(win, part, best[fs])
        label[fs] = np.where(win, k + 1, label[fs])
    return np.where(total > threshold, label, 0)


def _stats(stamps, geom, labels, k) -> tuple[int, float]:
    """Footprint pixels and noiseless detection flux of object k in ``labels`` (a field-sized array)."""
    fs, ss = geom.whole(k)
    mine = np.asarray(labels[fs]) == k + 1
    n = int(mine.sum())
    return n, (float(stamps.det(k)[ss][mine].sum()) if n else 0.0)


def render_strips(drawn, settings, shape, transfer, *, labels, segmap, model, strip_rows=STRIP_ROWS,
                  progress_bar=False) -> StripRender:
    """Segment and model a field strip by strip into memory maps (same results as ``render_field``).

    Parameters
    ----------
    drawn : rail.deepdisc.simulation.field.DrawnObjects
        The objects (positions, shapes, fluxes).
    settings : SimulationSettings
        Bands, noise, detection and segmentation parameters.
    shape : (int, int)
        Field rows and columns.
    transfer : PsfTransfer
        From `rail.deepdisc.simulation.render.make_psf_transfer`.
    labels : array (H, W) of int32
        Scratch memory map for the pass-1 labels.
    segmap : array (H, W) of int32
        Receives the segmentation (0 = sky, k = the k-th catalogued object).
    model : array (B, H, W) of float64
        Receives the noiseless images, nJy per pixel.
    strip_rows : int
        Rows per strip.
    progress_bar : bool
        Show progress over the strips.

    Returns
    -------
    StripRender
    """
    h, w = shape
    xy, flux, morph = drawn.xy, drawn.flux, drawn.morph
    n, nb = len(xy), len(settings.bands)
    plan = plan_stamps(flux, morph, settings, shape, drawn.parts)
    geom = _Geometry(xy, plan.sizes, shape)
    stamps = _Stamps(xy, morph, plan, transfer, drawn.parts)
    budget = PageBudget()
    for image in (labels, segmap, model):
        budget.register(image)
    npix1, flux1 = np.zeros(n, np.int64), np.zeros(n)
    npix, det_flux = np.zeros(n, np.int64), np.zeros(n)
    frac = np.full((n, nb), np.nan)
    det1 = np.zeros(n, bool)
    thr, area = settings.segmentation_threshold, plan.area_factor
    starts = list(range(0, h, strip_rows))
    ready = [max(min(a + strip_rows, h), int(geom.fy1[geom.touching(a, a + strip_rows)].max(initial=0)))
             for a in starts]
    done1 = np.zeros(n, bool)
    next2 = 0
    for a in tqdm(starts, desc="rendering strips", unit="strip", disable=not progress_bar):
        b = min(a + strip_rows, h)
        objs = geom.touching(a, b)
        labels[a:b] = _segment(stamps, geom, objs, a, b, w, thr)
        strip = np.zeros((nb, b - a, w))
        for k in objs:
            fs, ss = geom.rows(k, a, b)
            strip[(slice(None), *fs)] += flux[k][:, None, None] * stamps.bands(k)[(slice(None), *ss)]
        model[:, a:b] = strip
        budget.count(1, strip.nbytes + (b - a) * w * 4, strip.nbytes)
        for k in objs[(geom.fy1[objs] <= b) & ~done1[objs]]:
            npix1[k], flux1[k] = _stats(stamps, geom, labels, k)
            done1[k] = True
            with np.errstate(invalid="ignore", divide="ignore"):
                snr = flux1[k] / np.sqrt(npix1[k] * area) if npix1[k] > 0 else 0.0
            det1[k] = npix1[k] >= settings.min_pixels and snr >= settings.detection_snr
        while next2 < len(starts) and (ready[next2] <= b or b == h):
            _pass_two(starts[next2], min(starts[next2] + strip_rows, h), stamps, geom, det1, segmap,
                      (npix, det_flux, frac), w, thr)
            budget.count(1, strip_rows * w * 8, strip_rows * w * 8)
            next2 += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(npix > 0, det_flux / np.sqrt(npix * area), 0.0)
    detected = det1 & (npix > 0)
    seg_id = np.zeros(n, dtype=np.int64)
    seg_id[detected] = np.arange(1, int(detected.sum()) + 1)
    lookup = np.r_[0, seg_id]
    for a in starts:
        segmap[a : a + strip_rows] = lookup[segmap[a : a + strip_rows]].astype(np.int32)
        budget.count(1, strip_rows * w * 8, strip_rows * w * 8)
    frac[~detected] = np.nan
    return StripRender(detected, seg_id, npix, snr, frac, plan.sigma, area, plan.gain)


def _pass_two(a, b, stamps, geom, det1, segmap, out, w, thr) -> None:
    """Second segmentation of rows [a, b) with the pass-1 detections; finish the objects it leaves behind."""
    npix, det_flux, frac = out
    objs = geom.touching(a, b)
    segmap[a:b] = _segment(stamps, geom, objs[det1[objs]], a, b, w, thr).astype(np.int32)
    for k in objs[geom.fy1[objs] <= b]:
        if det1[k]:
            npix[k], det_flux[k] = _stats(stamps, geom, segmap, k)
            if npix[k]:
                fs, ss = geom.whole(k)
                frac[k] = stamps.bands(k)[(slice(None), *ss)][:, np.asarray(segmap[fs]) == k + 1].sum(axis=1)
        stamps.drop(k)


def add_noise(model, rng, sigma, correlation_px, out, *, white=None, photon_rng=None, gain=None,
              strip_rows=STRIP_ROWS) -> None:
    """Write ``model + noise`` (float32) to ``out`` (B, H, W), drawing the noise as ``draw_noise`` does.

    The noise is drawn band by band and row by row, the order of one ``standard_normal((B, H, W))`` call, so
    the images equal the in-RAM path's. With ``gain`` (B,) the source photon noise (`draw_photon_noise`) is
    added from ``photon_rng`` in the same band-then-row order, so it too equals the in-RAM path's draws.
    Correlated noise needs ``white`` (H, W) float64 scratch space: each
    band's white noise is stored there, then smoothed strip by strip with wrapped rows.
    """
    nb, h, w = model.shape
    kernel = correlation_kernel(correlation_px)
    half = len(kernel) // 2
    budget = PageBudget()
    for image in (model, out, white):
        if image is not None:
            budget.register(image)
    for b in range(nb):
        if len(kernel) > 1:
            for a in range(0, h, strip_rows):
                white[a : a + strip_rows] = rng.standard_normal((min(strip_rows, h - a), w))
        for a in range(0, h, strip_rows):
            rows = min(strip_rows, h - a)
            if len(kernel) > 1:
                block = white[np.arange(a - half, a + rows + half) % h]
                block = convolve1d(convolve1d(block, kernel, axis=-1, mode="wrap"), kernel, axis=-2, mode="wrap")
                noise = block[half : half + rows]
                noise /= np.sum(kernel**2)
            else:
                noise = rng.standard_normal((rows, w))
            block = np.asarray(model[b, a : a + rows])
            image = block + noise * float(sigma[b])
            if gain is not None:
                image += draw_photon_noise(photon_rng, block[None], np.asarray(gain)[b : b + 1])[0]
            out[b, a : a + rows] = image.astype(np.float32)
            budget.count(1, rows * w * 20, rows * w * 20)

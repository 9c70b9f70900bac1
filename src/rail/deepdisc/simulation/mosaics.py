"""JADES-format products of a simulated mosaic: per-band images, segmentation map and catalogs.

`simulate_mosaics` renders one field of ``settings.field_shape`` pixels near GOODS-S and writes what a JADES
user downloads (file names and layout as in ``JADES-FORMATS.md``):

- ``hlsp_jades_jwst_nircam_goods-s-deep_{band}_v2.0_drz.fits``: HDU0 header only (``TARG_RA``/``TARG_DEC``),
  ``SCI`` in MJy/sr with ``PIXAR_SR``, ``PIXAR_A2``, ``PHOTMJSR`` and a TAN WCS, ``ERR`` (MJy/sr) and ``WHT``
  (inverse variance); nJy per pixel = SCI x PIXAR_SR x 1e15.
- ``hlsp_jades_jwst_nircam_goods-s-deep_segmentation_v2.0_drz.fits``: catalog ids in the PRIMARY HDU.
- ``hlsp_jades_jwst_nircam_goods-s-deep_photometry_v2.0_catalog.fits`` and
  ``hlsp_jades_jwst_nirspec_goods-s_prism-line-fluxes_v1.1_catalog.fits`` (see `catalogs`).

Optionally the same field, cut into grid tiles, is written as a TileSet, so the mosaic path and the TileSet
path can be compared pixel for pixel.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.prep.segmentation import footprint_boxes
from rail.deepdisc.prep.windows import PageBudget
from rail.deepdisc.simulation.catalogs import (
    CIRC_RADII_ARCSEC,
    circular_fluxes,
    write_photometry_catalog,
    write_specz_catalog,
)
from rail.deepdisc.simulation.field import (
    FieldContext,
    SimulatedField,
    catalog_columns,
    draw_objects,
    make_wcs,
    simulate_field,
)
from rail.deepdisc.simulation.fitsio import MappedFits
from rail.deepdisc.simulation.photometry import aperture_corrected, footprint_variance
from rail.deepdisc.simulation.render import RenderedField
from rail.deepdisc.simulation.settings import GOODS_S_CENTRE, SimulationSettings
from rail.deepdisc.simulation.strips import STRIP_ROWS, add_noise, render_strips
from rail.deepdisc.simulation.tiling import write_cut_field

__all__ = [
    "simulate_mosaics",
    "mosaic_filename",
    "SEGMENTATION_FILENAME",
    "CATALOG_FILENAME",
    "SPECZ_FILENAME",
    "NJY_PER_MJY",
]

log = logging.getLogger(__name__)

SEGMENTATION_FILENAME = "hlsp_jades_jwst_nircam_goods-s-deep_segmentation_v2.0_drz.fits"
CATALOG_FILENAME = "hlsp_jades_jwst_nircam_goods-s-deep_photometry_v2.0_catalog.fits"
SPECZ_FILENAME = "hlsp_jades_jwst_nirspec_goods-s_prism-line-fluxes_v1.1_catalog.fits"
NJY_PER_MJY = 1e15
ARCSEC_PER_RAD = 206264.80624709636
#: Largest field (pixels) the mosaic path renders in RAM (``detection="photutils"`` detects on the whole field).
IN_RAM_MAX_PIXELS = 4096 * 4096
#: Independent random streams of the mosaic path (field, photometric catalog, spec-z catalog).
MOSAIC_STREAM, CATALOG_STREAM, SPECZ_STREAM = 0x4D05, 0xCA7, 0x5BEC


def mosaic_filename(band: str) -> str:
    """JADES DR2 file name of a band's mosaic (band in lower case).

    Parameters
    ----------
    band : str
        NIRCam band.

    Returns
    -------
    str
    """
    return f"hlsp_jades_jwst_nircam_goods-s-deep_{band.lower()}_v2.0_drz.fits"


def _band_templates(sigma_njy: float, band: str, wcs, settings) -> tuple[list, float, np.float32]:
    """HDU templates of a band file (PRIMARY, SCI, ERR, WHT), the nJy -> MJy/sr factor and the ERR value."""
    pixar_a2 = settings.pixel_scale**2
    pixar_sr = pixar_a2 / ARCSEC_PER_RAD**2
    to_mjysr = 1.0 / (pixar_sr * NJY_PER_MJY)
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "JWST"
    primary.header["INSTRUME"] = "NIRCAM"
    primary.header["FILTER"] = band
    primary.header["TARG_RA"] = GOODS_S_CENTRE[0]
    primary.header["TARG_DEC"] = GOODS_S_CENTRE[1]
    primary.header["ORIGIN"] = "pz-rail-deepdisc simulator"
    primary.header["SIMSEED"] = settings.seed
    header = wcs.to_header()
    header["BUNIT"] = "MJy/sr"
    header["PIXAR_SR"] = (pixar_sr, "pixel area, sr")
    header["PIXAR_A2"] = (pixar_a2, "pixel area, arcsec^2")
    header["PHOTMJSR"] = (1.0, "MJy/sr per DN/s (images are already calibrated)")
    one = np.zeros((1, 1), np.float32)
    hdus = [primary] + [fits.ImageHDU(one, header=header, name=name) for name in ("SCI", "ERR", "WHT")]
    return hdus, to_mjysr, np.float32(sigma_njy * to_mjysr)


def _write_band(path: Path, images_njy, sigma_njy: float, band: str, wcs, settings, strip_rows: int) -> Path:
    """Write one band's JADES-layout file strip by strip from its nJy image (a memory map)."""
    hdus, to_mjysr, err_val = _band_templates(sigma_njy, band, wcs, settings)
    shape = images_njy.shape
    out = MappedFits(path, [(hdus[0], None)] + [(hdu, shape) for hdu in hdus[1:]])
    try:
        _, sci, err, wht = out.data
        budget = PageBudget()
        for image in (images_njy, sci, err, wht):
            budget.register(image)
        for a in range(0, shape[0], strip_rows):
            sci[a : a + strip_rows] = (np.asarray(images_njy[a : a + strip_rows]) * to_mjysr).astype(np.float32)
            err[a : a + strip_rows] = err_val
            wht[a : a + strip_rows] = 1.0 / err_val**2
            budget.count(1, strip_rows * shape[1] * 16, strip_rows * shape[1] * 16)
    except BaseException:
        out.abort()
        raise
    return out.close()


class _Labels:
    """Segmentation memory map seen as `rail.deepdisc.prep.segmentation.footprint_boxes` reads it."""

    def __init__(self, segmap):
        self.segmap, self.shape = segmap, segmap.shape

    def read(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        return np.asarray(self.segmap[y0 : y0 + h, x0 : x0 + w], dtype=np.int64)


def _measure(images, segmap, x, y, n_det: int, radii_px, strip_rows: int, model=None):
    """Footprint sums (K, B), circular-aperture fluxes (K, R, B) of the K catalogued objects, by strips.

    With ``model``, also the footprint sums (K, B) of the positive float32 model (the photon noise's variance).
    The sums add pixels in raster order like ``np.bincount``, so they equal the in-RAM path's to the bit.
    """
    nb, h, w = images.shape
    sums, model_sums = np.zeros((nb, n_det + 1)), np.zeros((nb, n_det + 1))
    apertures = np.zeros((n_det, len(radii_px), nb))
    half = int(np.ceil(max(radii_px))) + 1
    iy = np.round(y).astype(np.int64)
    budget = PageBudget()
    for image in (images, segmap, model):
        if image is not None:
            budget.register(image)
    for a in range(0, h, strip_rows):
        seg = np.asarray(segmap[a : a + strip_rows])
        inside = seg > 0
        ids = seg[inside]
        ya, yb = max(0, a - half), min(h, a + strip_rows + half)
        window = np.asarray(images[:, ya:yb])
        for b in range(nb):
            np.add.at(sums[b], ids, window[b, a - ya : a - ya + len(seg)][inside])
            if model is not None:
                positive = np.maximum(np.asarray(model[b, a : a + len(seg)]).astype(np.float32), 0.0)
                np.add.at(model_sums[b], ids, positive[inside].astype(np.float64))
        mine = np.flatnonzero((iy >= a) & (iy < a + strip_rows))
        apertures[mine] = circular_fluxes(window, x[mine], y[mine], radii_px, row0=ya, height=h)
        budget.count(1, window.nbytes, window.nbytes)
    return sums[:, 1:].T, apertures, (model_sums[:, 1:].T if model is not None else None)


def simulate_mosaics(
    settings: SimulationSettings,
    outdir: str | Path,
    *,
    tileset_path: str | Path | None = None,
    progress_bar: bool = True,
    strip_rows: int = STRIP_ROWS,
) -> dict:
    """Simulate one mosaic field and write its JADES-format images and catalogs.

    Parameters
    ----------
    settings : SimulationSettings
        The field is ``settings.field_shape`` pixels (``field_size``, or the area of ``n_tiles`` tiles).
    outdir : str or Path
        Output directory (created if needed).
    tileset_path : str or Path, optional
        Also write the field cut into ``tile_size`` grid tiles as a TileSet here.
    progress_bar : bool
        Show tqdm progress over the strips while rendering.
    strip_rows : int
        Rows rendered and written at a time (memory grows with it and the field width, not the field height).

    Returns
    -------
    dict
        ``"mosaics"`` ({band: Path}), ``"segmentation"``, ``"catalog"``, ``"specz"`` (Paths) and, when
        ``tileset_path`` is given, ``"tileset"``.

    Raises
    ------
    ConfigError
        If ``settings`` is not a `SimulationSettings`.
    """
    if not isinstance(settings, SimulationSettings):
        raise ConfigError(f"simulate_mosaics expects SimulationSettings, got {type(settings).__name__}")
    h, w = settings.field_shape
    if settings.detection != "model" and h * w > IN_RAM_MAX_PIXELS:
        raise ConfigError(
            f"detection={settings.detection!r} needs the whole {h} x {w} px field in RAM, which the mosaic "
            f"path allows up to {IN_RAM_MAX_PIXELS} px ({int(IN_RAM_MAX_PIXELS**0.5)}^2); larger fields are "
            "rendered strip by strip, which supports detection='model' only"
        )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    shape = settings.field_shape
    nb = len(settings.bands)
    ctx = FieldContext(settings)
    wcs = make_wcs(shape, settings.pixel_scale)
    log.info("simulating a %d x %d pixel mosaic in %d bands", shape[0], shape[1], nb)
    rng = np.random.default_rng([settings.seed, MOSAIC_STREAM])
    seg_hdu = fits.PrimaryHDU(np.zeros((1, 1), np.int32), header=wcs.to_header())
    seg_file = MappedFits(outdir / SEGMENTATION_FILENAME, [(seg_hdu, shape)])
    try:
        if settings.detection == "model":
            with tempfile.TemporaryDirectory(dir=outdir, prefix=".simulate-") as work:
                out = _render_and_write(settings, ctx, draw_objects(ctx, shape, wcs, rng), wcs, rng,
                                        seg_file.data[0], Path(work), outdir, tileset_path, strip_rows,
                                        progress_bar)
        else:  # photutils detects on the whole noisy field: rendered in RAM
            field = simulate_field(ctx, shape, wcs, rng, progress_bar=progress_bar)
            seg_file.data[0][:] = field.rendered.segmap
            out = _write_products(settings, field, outdir, tileset_path, strip_rows)
    except BaseException:
        seg_file.abort()
        raise
    out["segmentation"] = seg_file.close()
    return out


def _scratch(work: Path, name: str, dtype, shape) -> np.memmap:
    return np.memmap(work / name, dtype=dtype, mode="w+", shape=shape)


def _render_and_write(settings, ctx, drawn, wcs, rng, segmap, work, outdir, tileset_path, strip_rows,
                      progress_bar) -> dict:
    shape, nb = settings.field_shape, len(settings.bands)
    model = _scratch(work, "model.f8", np.float64, (nb, *shape))
    rendered = render_strips(drawn, settings, shape, ctx.transfer, labels=_scratch(work, "labels.i4", np.int32, shape),
                             segmap=segmap, model=model, strip_rows=strip_rows, progress_bar=progress_bar)
    images = _scratch(work, "images.f4", np.float32, (nb, *shape))
    white = _scratch(work, "white.f8", np.float64, shape) if settings.noise_correlation_px > 0 else None
    add_noise(model, rng, rendered.sigma, settings.noise_correlation_px, images, white=white,
              photon_rng=drawn.photon_rng, gain=rendered.gain, strip_rows=strip_rows)
    det = np.flatnonzero(rendered.detected)  # draw order = segmentation order
    radii_px = np.asarray(CIRC_RADII_ARCSEC) / settings.pixel_scale
    sums, apertures, model_sums = _measure(images, segmap, drawn.xy[det, 0], drawn.xy[det, 1], len(det),
                                           radii_px, strip_rows, model if rendered.gain is not None else None)
    del model, white
    for name in ("model.f8", "white.f8", "labels.i4"):
        (work / name).unlink(missing_ok=True)
    seg_ids = rendered.seg_id[det]
    boxes = footprint_boxes(_Labels(segmap), seg_ids)
    slices = [(slice(int(b[1]), int(b[3])), slice(int(b[0]), int(b[2]))) for b in boxes]
    variance = (rendered.npix[det].astype(float) if settings.noise_correlation_px <= 0
                else footprint_variance(segmap, seg_ids, settings.noise_correlation_px, slices=slices))
    source_variance = None if model_sums is None else model_sums / np.asarray(rendered.gain)[None, :]
    flux, err = aperture_corrected(sums, variance, rendered.footprint_fraction[det], rendered.sigma,
                                   source_variance)
    bboxes = {name: boxes[:, i] for i, name in enumerate(("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"))}
    full = RenderedField(images=images, model=None, segmap=segmap, detected=rendered.detected,
                         seg_id=rendered.seg_id, npix=rendered.npix, detection_snr=rendered.detection_snr,
                         footprint_fraction=rendered.footprint_fraction, sigma=rendered.sigma,
                         area_factor=rendered.area_factor, segment_object=det, segment_xy=drawn.xy[det],
                         segment_fraction=rendered.footprint_fraction[det], segment_npix=rendered.npix[det],
                         segment_snr=rendered.detection_snr[det], gain=rendered.gain)
    cat = catalog_columns(ctx, drawn, full, flux, err, bboxes, wcs, rng)
    field = SimulatedField(rendered=full, catalog=cat, wcs=wcs)
    return _write_products(settings, field, outdir, tileset_path, strip_rows, apertures)


def _write_products(settings, field, outdir, tileset_path, strip_rows, apertures=None) -> dict:
    """Write the band files, catalogs and (optionally) TileSet of a field (images in RAM or memory maps)."""
    rendered, wcs = field.rendered, field.wcs
    out = {"mosaics": {}}
    for b, band in enumerate(settings.bands):
        out["mosaics"][band] = _write_band(outdir / mosaic_filename(band), rendered.images[b],
                                           float(rendered.sigma[b]), band, wcs, settings, strip_rows)
    out["catalog"] = write_photometry_catalog(
        field, settings, np.random.default_rng([settings.seed, CATALOG_STREAM]), outdir / CATALOG_FILENAME,
        apertures=apertures,
    )
    out["specz"] = write_specz_catalog(
        field, np.random.default_rng([settings.seed, SPECZ_STREAM]), outdir / SPECZ_FILENAME
    )
    if tileset_path is not None:
        out["tileset"] = write_cut_field(field, settings, tileset_path)
    log.info("wrote mosaics and catalogs of %d objects to %s", len(field.catalog["x"]), outdir)
    return out

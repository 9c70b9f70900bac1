"""One simulated field: draw a population, place it on the sky, render it and build its catalog.

A field is a rectangle of pixels with a celestial TAN WCS near GOODS-S. `simulate_field` is the single core
that both the TileSet path (one field per tile) and the mosaic path (one large field) use, so the two paths
share every physical choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy.ndimage import find_objects

from rail.deepdisc.dust import band_extinction
from rail.deepdisc.simulation.dust import milky_way_ebv
from rail.deepdisc.simulation.labels import assign_labels
from rail.deepdisc.simulation.morphology import draw_morphology
from rail.deepdisc.simulation.noise import flux_njy
from rail.deepdisc.simulation.photometry import footprint_photometry, magnitudes
from rail.deepdisc.simulation.population import REFERENCE_BAND, draw_population
from rail.deepdisc.simulation.render import RenderedField, make_psf_transfer, render_field
from rail.deepdisc.simulation.seds import photometry_grid
from rail.deepdisc.simulation.settings import GOODS_S_CENTRE

__all__ = [
    "SimulatedField",
    "FieldContext",
    "DrawnObjects",
    "simulate_field",
    "draw_objects",
    "catalog_columns",
    "make_wcs",
]

ARCSEC_PER_DEG = 3600.0


def make_wcs(shape: tuple[int, int], pixel_scale: float, centre: tuple[float, float] = GOODS_S_CENTRE) -> WCS:
    """Celestial TAN WCS of a (rows, columns) grid centred on ``centre`` (deg), north up, east left."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(centre)
    wcs.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    wcs.wcs.cdelt = [-pixel_scale / ARCSEC_PER_DEG, pixel_scale / ARCSEC_PER_DEG]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.pixel_shape = (shape[1], shape[0])
    return wcs


class FieldContext:
    """Per-process tables reused by every field: photometry grid, PSF transfer functions, extinction."""

    def __init__(self, settings):
        self.settings = settings
        self.grid = photometry_grid(
            settings.bands + (REFERENCE_BAND,), z_max=settings.z_max, ebv_max=settings.ebv_internal_max
        )
        self.transfer = make_psf_transfer(settings)
        self.extinction = band_extinction(settings.bands + (REFERENCE_BAND,))


@dataclass
class SimulatedField:
    """A rendered field and its catalog.

    Attributes
    ----------
    rendered : RenderedField
        Images, noiseless model, segmentation (values 1..K = catalog rows + 1).
    catalog : dict of str -> ndarray (K,)
        Catalogued objects in segmentation order: ``seg_id``, ``x``, ``y`` (field pixels), ``bbox_*`` (field
        pixels, x1/y1 exclusive), ``ra``, ``dec``, ``ebv``, ``flux_<BAND>``/``flux_err_<BAND>`` (nJy),
        ``mag_<BAND>``/``magerr_<BAND>``, ``redshift`` (spec-z or NaN), ``spec_flag``, ``redshift_true`` and
        ``true_*`` columns.
    wcs : astropy.wcs.WCS
        Celestial WCS of the field.
    """

    rendered: RenderedField
    catalog: dict
    wcs: WCS


def _positions(rng, n, shape):
    return np.column_stack([rng.uniform(-0.5, shape[1] - 0.5, n), rng.uniform(-0.5, shape[0] - 0.5, n)])


@dataclass
class DrawnObjects:
    """Every object drawn for a field, before rendering (N rows each)."""

    pop: object
    morph: object
    xy: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ebv: np.ndarray
    true_mag: np.ndarray
    true_ref: np.ndarray

    @property
    def flux(self) -> np.ndarray:
        """Total flux per band (N, B), nJy."""
        return flux_njy(self.true_mag)


def draw_objects(ctx: FieldContext, shape: tuple[int, int], wcs: WCS, rng: np.random.Generator) -> DrawnObjects:
    """Draw the population, shapes and positions of a field of ``shape`` pixels (first draws of ``rng``)."""
    s = ctx.settings
    area = shape[0] * shape[1] * s.pixel_scale**2
    pop = draw_population(rng, s, ctx.grid, area)
    morph = draw_morphology(rng, pop, size_scale=s.size_scale, z_max=s.z_max)
    xy = _positions(rng, len(pop), shape)
    ra, dec = wcs.wcs_pix2world(xy[:, 0], xy[:, 1], 0) if len(pop) else (np.zeros(0), np.zeros(0))
    ebv = milky_way_ebv(s, ra, dec)
    true_mag = pop.mag + ebv[:, None] * ctx.extinction[None, :-1]
    true_ref = pop.mag_ref + ebv * ctx.extinction[-1]
    return DrawnObjects(pop, morph, xy, np.asarray(ra), np.asarray(dec), ebv, true_mag, true_ref)


def catalog_columns(ctx: FieldContext, drawn: DrawnObjects, rendered, det, flux, err, bboxes: dict, rng) -> dict:
    """The catalog of the detected objects ``det`` (in segmentation order); draws the spec-z labels from ``rng``.

    ``rendered`` needs ``seg_id``, ``detection_snr`` and ``npix`` per drawn object; ``flux``/``err`` (K, B)
    are the footprint photometry and ``bboxes`` the ``bbox_*`` columns of the detected objects.
    """
    s, pop, morph = ctx.settings, drawn.pop, drawn.morph
    mag, magerr = magnitudes(flux, err)
    redshift, wrong, flag = assign_labels(rng, pop.z[det], drawn.true_ref[det], pop.is_star[det], s)
    cat = {"seg_id": rendered.seg_id[det], "x": drawn.xy[det, 0], "y": drawn.xy[det, 1]}
    cat.update(bboxes)
    cat.update(
        ra=drawn.ra[det],
        dec=drawn.dec[det],
        ebv=drawn.ebv[det],
        redshift=redshift,
        spec_flag=flag,
        redshift_true=pop.z[det],
    )
    for b, band in enumerate(s.bands):
        cat[f"mag_{band}"], cat[f"magerr_{band}"] = mag[:, b], magerr[:, b]
        cat[f"flux_{band}"], cat[f"flux_err_{band}"] = flux[:, b], err[:, b]
    for b, band in enumerate(s.bands):
        cat[f"true_mag_{band}"] = drawn.true_mag[det, b]
    cat[f"true_mag_{REFERENCE_BAND}"] = drawn.true_ref[det]
    cat.update(
        true_is_star=pop.is_star[det],
        true_is_brown_dwarf=pop.is_brown_dwarf[det],
        true_template=pop.template[det],
        true_ebv_internal=pop.ebv_internal[det],
        true_ew_halpha=pop.ew_halpha[det],
        true_r_e_arcsec=morph.r_e[det],
        true_sersic_n=morph.sersic_n[det],
        true_axis_ratio=morph.q[det],
        true_detection_snr=rendered.detection_snr[det],
        true_npix=rendered.npix[det],
        true_label_wrong=wrong,
    )
    return cat


def simulate_field(
    ctx: FieldContext,
    shape: tuple[int, int],
    wcs: WCS,
    rng: np.random.Generator,
    *,
    progress_bar: bool = False,
) -> SimulatedField:
    """Simulate one field of ``shape`` pixels with celestial WCS ``wcs``.

    Parameters
    ----------
    ctx : FieldContext
        Settings and per-process tables.
    shape : (int, int)
        Rows and columns, pixels.
    wcs : astropy.wcs.WCS
        Celestial WCS of the field (0-based pixel positions are used with it).
    rng : numpy.random.Generator
        The field's random source (everything is drawn from it, in a fixed order).
    progress_bar : bool
        Show progress over the objects while rendering.

    Returns
    -------
    SimulatedField
    """
    drawn = draw_objects(ctx, shape, wcs, rng)
    rendered = render_field(
        drawn.xy, drawn.flux, drawn.morph, ctx.settings, shape, rng, ctx.transfer, progress_bar=progress_bar
    )
    det = np.flatnonzero(rendered.detected)
    det = det[np.argsort(rendered.seg_id[det])]
    flux, err = footprint_photometry(
        rendered.images,
        rendered.segmap,
        rendered.seg_id[det],
        rendered.footprint_fraction[det],
        rendered.sigma,
        ctx.settings.noise_correlation_px,
    )
    cat = catalog_columns(ctx, drawn, rendered, det, flux, err, _bboxes(rendered.segmap, len(det)), rng)
    return SimulatedField(rendered=rendered, catalog=cat, wcs=wcs)


def _bboxes(segmap: np.ndarray, k: int) -> dict:
    out = {name: np.zeros(k) for name in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")}
    for i, sl in enumerate(find_objects(segmap, max_label=k)):
        if sl is not None:
            out["bbox_y0"][i], out["bbox_y1"][i] = sl[0].start, sl[0].stop
            out["bbox_x0"][i], out["bbox_x1"][i] = sl[1].start, sl[1].stop
    return out

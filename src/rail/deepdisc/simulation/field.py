"""One simulated field: draw a population, place it on the sky, render it and build its catalog.

A field is a rectangle of pixels with a celestial TAN WCS near GOODS-S. `simulate_field` is the single core
that both the TileSet path (one field per tile) and the mosaic path (one large field) use, so the two paths
share every physical choice. The catalog has one row per segment: with ``detection = "photutils"`` a row may
be spurious (``spurious`` True, no truth: NaN true redshift and magnitudes) and a true object may be missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy.ndimage import find_objects

from rail.deepdisc.dust import band_extinction
from rail.deepdisc.simulation.components import BULGE_SERSIC_N, DISC_SERSIC_N, draw_bulge_disc
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
            settings.bands + (REFERENCE_BAND,),
            z_max=settings.z_max,
            ebv_max=settings.ebv_internal_max,
            sed_library=settings.sed_library,
            sed_mismatch=settings.sed_mismatch,
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
    """Every object drawn for a field, before rendering (N rows each), and the photon-noise stream."""

    pop: object
    morph: object
    parts: object
    xy: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ebv: np.ndarray
    true_mag: np.ndarray
    true_ref: np.ndarray
    photon_rng: np.random.Generator

    @property
    def flux(self) -> np.ndarray:
        """Total flux per band (N, B), nJy."""
        return flux_njy(self.true_mag)


def draw_objects(ctx: FieldContext, shape: tuple[int, int], wcs: WCS, rng: np.random.Generator) -> DrawnObjects:
    """Draw the population, shapes and positions of a field of ``shape`` pixels (first draws of ``rng``)."""
    s = ctx.settings
    structure_rng, photon_rng = rng.spawn(2)  # own streams: the options change nothing else in the field
    area = shape[0] * shape[1] * s.pixel_scale**2
    pop = draw_population(rng, s, ctx.grid, area)
    morph = draw_morphology(rng, pop, size_scale=s.size_scale, z_max=s.z_max)
    parts = draw_bulge_disc(structure_rng, pop, morph, ctx.grid) if s.bulge_disc else None
    xy = _positions(rng, len(pop), shape)
    ra, dec = wcs.wcs_pix2world(xy[:, 0], xy[:, 1], 0) if len(pop) else (np.zeros(0), np.zeros(0))
    ebv = milky_way_ebv(s, ra, dec)
    true_mag = pop.mag + ebv[:, None] * ctx.extinction[None, :-1]
    true_ref = pop.mag_ref + ebv * ctx.extinction[-1]
    return DrawnObjects(
        pop, morph, parts, xy, np.asarray(ra), np.asarray(dec), ebv, true_mag, true_ref, photon_rng
    )


def catalog_columns(ctx: FieldContext, drawn: DrawnObjects, rendered, flux, err, bboxes: dict, wcs, rng) -> dict:
    """The catalog, one row per segment; draws the spec-z labels from ``rng``.

    ``rendered`` needs the ``segment_*`` attributes of `RenderedField`; ``flux``/``err`` (K, B) are the
    footprint photometry and ``bboxes`` the ``bbox_*`` columns of the K segments.
    """
    s, pop, morph, parts = ctx.settings, drawn.pop, drawn.morph, drawn.parts
    ra, dec, ebv, true_mag, true_ref = drawn.ra, drawn.dec, drawn.ebv, drawn.true_mag, drawn.true_ref

    r = rendered
    obj = r.segment_object
    real = obj >= 0
    det = np.where(real, obj, 0)

    def truth(values, fill=np.nan):
        values = np.asarray(values)
        if not len(values):  # nothing drawn: every row is spurious
            return np.full((len(det),) + values.shape[1:], fill, dtype=np.result_type(values, type(fill)))
        out = values[det]
        return np.where(real.reshape((-1,) + (1,) * (out.ndim - 1)), out, fill)

    seg_ids = np.arange(1, len(obj) + 1)
    mag, magerr = magnitudes(flux, err)
    is_star = truth(pop.is_star, False)
    redshift, wrong, flag = assign_labels(rng, truth(pop.z), truth(true_ref), is_star | ~real, s)
    cat = {"seg_id": seg_ids, "x": r.segment_xy[:, 0], "y": r.segment_xy[:, 1]}
    cat.update(bboxes)
    if s.detection == "model":
        cat_ra, cat_dec, cat_ebv = truth(ra), truth(dec), truth(ebv)
    else:  # measured positions (spurious rows have no true one)
        cat_ra, cat_dec = (np.asarray(v, float) for v in wcs.wcs_pix2world(cat["x"], cat["y"], 0))
        cat_ebv = milky_way_ebv(s, cat_ra, cat_dec)
    cat.update(
        ra=cat_ra,
        dec=cat_dec,
        ebv=cat_ebv,
        redshift=redshift,
        spec_flag=flag,
        redshift_true=truth(pop.z),
    )
    for b, band in enumerate(s.bands):
        cat[f"mag_{band}"], cat[f"magerr_{band}"] = mag[:, b], magerr[:, b]
        cat[f"flux_{band}"], cat[f"flux_err_{band}"] = flux[:, b], err[:, b]
    for b, band in enumerate(s.bands):
        cat[f"true_mag_{band}"] = truth(true_mag[:, b])
    cat[f"true_mag_{REFERENCE_BAND}"] = truth(true_ref)
    sersic = morph.sersic_n
    if parts is not None:
        dominant_n = np.where(parts.bulge_to_total >= 0.5, BULGE_SERSIC_N, DISC_SERSIC_N)
        sersic = np.where(parts.galaxy, dominant_n, sersic)
    cat.update(
        true_is_star=is_star,
        true_is_brown_dwarf=truth(pop.is_brown_dwarf, False),
        true_template=truth(pop.template),
        true_sed_family=truth(pop.sed_family, ""),
        true_ebv_internal=truth(pop.ebv_internal),
        true_ew_halpha=truth(pop.ew_halpha),
        true_r_e_arcsec=truth(morph.r_e),
        true_sersic_n=truth(sersic),
        true_axis_ratio=truth(morph.q),
        true_detection_snr=r.segment_snr,
        true_npix=r.segment_npix,
        true_label_wrong=wrong,
    )
    if parts is not None:
        cat["true_bulge_to_total"] = truth(parts.bulge_to_total)
    if s.detection != "model":
        cat["spurious"] = ~real
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
    r = render_field(
        drawn.xy, drawn.flux, drawn.morph, ctx.settings, shape, rng, ctx.transfer, parts=drawn.parts,
        photon_rng=drawn.photon_rng, progress_bar=progress_bar,
    )
    seg_ids = np.arange(1, len(r.segment_object) + 1)
    flux, err = footprint_photometry(
        r.images, r.segmap, seg_ids, r.segment_fraction, r.sigma, ctx.settings.noise_correlation_px,
        source_variance=_source_variance(r, seg_ids),
    )
    cat = catalog_columns(ctx, drawn, r, flux, err, _bboxes(r.segmap, len(seg_ids)), wcs, rng)
    return SimulatedField(rendered=r, catalog=cat, wcs=wcs)


def _source_variance(r: RenderedField, seg_ids: np.ndarray) -> np.ndarray | None:
    """Photon-noise variance (nJy^2) of each footprint sum: the model flux in it over the gain, per band."""
    if r.gain is None:
        return None
    size = int(max(r.segmap.max(), seg_ids.max(initial=0))) + 1
    seg = r.segmap.ravel()
    model = np.maximum(r.model, 0.0)
    return np.stack(
        [np.bincount(seg, weights=model[b].ravel(), minlength=size)[seg_ids] / g for b, g in enumerate(r.gain)],
        axis=1,
    )


def _bboxes(segmap: np.ndarray, k: int) -> dict:
    out = {name: np.zeros(k) for name in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")}
    for i, sl in enumerate(find_objects(segmap, max_label=k)):
        if sl is not None:
            out["bbox_y0"][i], out["bbox_y1"][i] = sl[0].start, sl[0].stop
            out["bbox_x0"][i], out["bbox_x1"][i] = sl[1].start, sl[1].stop
    return out

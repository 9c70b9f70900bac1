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
from pathlib import Path

import numpy as np
from astropy.io import fits

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.simulation.catalogs import write_photometry_catalog, write_specz_catalog
from rail.deepdisc.simulation.field import FieldContext, make_wcs, simulate_field
from rail.deepdisc.simulation.fitsio import write_fits_atomic
from rail.deepdisc.simulation.settings import GOODS_S_CENTRE, SimulationSettings
from rail.deepdisc.simulation.tiling import cut_field
from rail.deepdisc.tileset.io import write_tileset

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


def _image_hdul(image_njy: np.ndarray, sigma_njy: float, band: str, wcs, settings) -> fits.HDUList:
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
    sci = fits.ImageHDU((image_njy * to_mjysr).astype(np.float32), header=header, name="SCI")
    err_val = np.float32(sigma_njy * to_mjysr)
    err = fits.ImageHDU(np.full(image_njy.shape, err_val, np.float32), header=header, name="ERR")
    wht = fits.ImageHDU(np.full(image_njy.shape, 1.0 / err_val**2, np.float32), header=header, name="WHT")
    return fits.HDUList([primary, sci, err, wht])


def simulate_mosaics(
    settings: SimulationSettings,
    outdir: str | Path,
    *,
    tileset_path: str | Path | None = None,
    progress_bar: bool = True,
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
        Show tqdm progress over the objects while rendering.

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
    outdir = Path(outdir)
    shape = settings.field_shape
    ctx = FieldContext(settings)
    wcs = make_wcs(shape, settings.pixel_scale)
    log.info("simulating a %d x %d pixel mosaic in %d bands", shape[0], shape[1], len(settings.bands))
    field = simulate_field(
        ctx, shape, wcs, np.random.default_rng([settings.seed, MOSAIC_STREAM]), progress_bar=progress_bar
    )
    out = {"mosaics": {}}
    for b, band in enumerate(settings.bands):
        hdul = _image_hdul(field.rendered.images[b], float(field.rendered.sigma[b]), band, wcs, settings)
        out["mosaics"][band] = write_fits_atomic(hdul, outdir / mosaic_filename(band))
    seg = fits.PrimaryHDU(field.rendered.segmap.astype(np.int32), header=wcs.to_header())
    out["segmentation"] = write_fits_atomic(fits.HDUList([seg]), outdir / SEGMENTATION_FILENAME)
    out["catalog"] = write_photometry_catalog(
        field, settings, np.random.default_rng([settings.seed, CATALOG_STREAM]), outdir / CATALOG_FILENAME
    )
    out["specz"] = write_specz_catalog(
        field, np.random.default_rng([settings.seed, SPECZ_STREAM]), outdir / SPECZ_FILENAME
    )
    if tileset_path is not None:
        out["tileset"] = write_tileset(cut_field(field, settings), tileset_path)
    log.info("wrote mosaics and catalogs of %d objects to %s", len(field.catalog["x"]), outdir)
    return out

"""Per-band FITS mosaics on one pixel grid: units, coverage and multi-band windows.

Mosaics are never loaded whole: windows are read through memory maps (:mod:`rail.deepdisc.prep.windows`), so
a 20k x 20k mosaic costs only the windows read and resident memory stays bounded.

A band file follows the JADES DR2 layout: the ``SCI`` image (found by EXTNAME; a single-image file works too)
with the WCS, an optional ``ERR`` and an optional ``WHT`` image. Values in MJy/sr become nJy per pixel with
``PIXAR_SR`` (fallbacks: ``PIXAR_A2``, then the WCS pixel area); a pixel has coverage where
``isfinite(SCI) & (ERR > 0) & (WHT > 0)`` (each term only when that extension exists).

The segmentation image (:mod:`rail.deepdisc.prep.segmentation`) defines the reference grid. Every band must lie
on the same grid up to a whole-pixel offset (a band cut to a smaller or larger footprint); anything else
(another pixel scale, rotation or a sub-pixel shift) is an error asking the user to reproject the mosaics
first. Nothing is resampled here: resampling would correlate noise and change the PSF, which the network
must see as observed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area

from rail.deepdisc.exceptions import PrepError
from rail.deepdisc.prep.segmentation import SegmentationImage
from rail.deepdisc.prep.windows import ImageWindows, PageBudget, celestial_wcs, image_hdu, open_fits

__all__ = ["MosaicBand", "MosaicStack", "find_mosaics", "flux_scale_to_njy", "grid_offset", "open_mosaics"]

log = logging.getLogger(__name__)

#: Steradians per square arcsecond.
SR_PER_ARCSEC2 = (np.pi / (180.0 * 3600.0)) ** 2
#: nJy per MJy.
NJY_PER_MJY = 1e15
#: Largest departure from a whole-pixel offset (pixels) still taken as the same grid.
GRID_TOLERANCE_PX = 0.01
#: Relative tolerance on the pixel-scale matrices of two grids.
SCALE_RTOL = 1e-6
#: BUNIT values (lower case) and the factor to nJy per pixel that does not depend on the pixel area.
_PER_PIXEL_UNITS = {"njy": 1.0, "ujy": 1e3, "microjy": 1e3, "mjy": 1e6, "jy": 1e9}


def flux_scale_to_njy(header: fits.Header, wcs: WCS, *, source: str = "") -> float:
    """Factor turning the SCI values of a mosaic into nJy per pixel.

    Parameters
    ----------
    header : astropy.io.fits.Header
        SCI header (``BUNIT``, ``PIXAR_SR``, ``PIXAR_A2``).
    wcs : astropy.wcs.WCS
        Celestial WCS of the image (pixel area fallback).
    source : str
        File name for messages.

    Returns
    -------
    float
        Multiply SCI by this to get nJy per pixel. MJy/sr (or no ``BUNIT``, the JADES convention) uses the
        pixel solid angle; per-pixel units (nJy, uJy, mJy, Jy) use a fixed factor.

    Raises
    ------
    PrepError
        If ``BUNIT`` is neither a surface brightness in MJy/sr nor a per-pixel flux density.

    Examples
    --------
    >>> h = fits.Header({"BUNIT": "MJy/sr", "PIXAR_SR": 2.1154e-14})
    >>> round(flux_scale_to_njy(h, WCS(naxis=2)), 2)
    21.15
    """
    unit = str(header.get("BUNIT", "MJy/sr")).strip().lower().replace(" ", "")
    if unit in _PER_PIXEL_UNITS:
        return _PER_PIXEL_UNITS[unit]
    if unit not in ("mjy/sr", "mjy.sr-1", "mjy/steradian"):
        raise PrepError(
            f"{source}: BUNIT {header.get('BUNIT')!r} is not supported; expected MJy/sr or a flux "
            f"density per pixel (nJy, uJy, mJy, Jy)"
        )
    if header.get("PIXAR_SR"):
        return float(header["PIXAR_SR"]) * NJY_PER_MJY
    if header.get("PIXAR_A2"):
        return float(header["PIXAR_A2"]) * SR_PER_ARCSEC2 * NJY_PER_MJY
    area_deg2 = proj_plane_pixel_area(wcs.celestial)
    return float(area_deg2 * (np.pi / 180.0) ** 2 * NJY_PER_MJY)


@dataclass(frozen=True)
class MosaicBand:
    """One band's SCI/ERR/WHT images and where they sit on the reference grid.

    ``offset`` = (dy, dx): band pixel = reference pixel + offset.
    """

    band: str
    path: Path
    shape: tuple[int, int]
    offset: tuple[int, int]
    to_njy: float
    _hdul: fits.HDUList
    _sci: ImageWindows
    _err: ImageWindows | None
    _wht: ImageWindows | None

    def read(self, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Window of the reference grid in nJy per pixel, float32 (h, w), and its coverage mask (h, w)."""
        by, bx = y0 + self.offset[0], x0 + self.offset[1]
        sci = self._sci.read(by, bx, h, w, fill=np.nan, dtype=np.float32)
        covered = np.isfinite(sci)
        for weights in (self._err, self._wht):
            if weights is not None:
                covered &= weights.read(by, bx, h, w, fill=0, dtype=np.float32) > 0
        return (sci * np.float32(self.to_njy)).astype(np.float32, copy=False), covered


class MosaicStack:
    """All bands of a mosaic on the segmentation image's grid; reads multi-band windows.

    Use `open_mosaics`; close with `close` or a ``with`` block.

    Attributes
    ----------
    bands : tuple of str
        Channel order.
    shape : (int, int)
        Reference grid shape (ny, nx).
    """

    def __init__(self, bands: Sequence[MosaicBand], shape: tuple[int, int]):
        self._bands = list(bands)
        self.bands = tuple(b.band for b in bands)
        self.shape = shape

    def read(self, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Read a window in every band.

        Returns
        -------
        images : ndarray of float32 (C, h, w)
            nJy per pixel; NaN or unreliable where not covered.
        covered : ndarray of bool (C, h, w)
            Coverage mask per band.
        """
        images = np.empty((len(self._bands), h, w), dtype=np.float32)
        covered = np.empty((len(self._bands), h, w), dtype=bool)
        for c, band in enumerate(self._bands):
            images[c], covered[c] = band.read(y0, x0, h, w)
        return images, covered

    def uncovered_fraction(self, y0: int, x0: int, h: int, w: int) -> float:
        """Fraction of the window's pixels that lack coverage in at least one band."""
        _, covered = self.read(y0, x0, h, w)
        return float(1.0 - covered.all(axis=0).mean())

    def close(self) -> None:
        """Close every file."""
        for band in self._bands:
            band._hdul.close()

    def __enter__(self) -> MosaicStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_mosaics(paths: Mapping[str, str | os.PathLike], reference: SegmentationImage) -> MosaicStack:
    """Open per-band mosaics and check that they lie on the reference grid.

    Parameters
    ----------
    paths : mapping of str -> path
        Band -> FITS file, in channel order.
    reference : SegmentationImage
        Defines the grid.

    Returns
    -------
    MosaicStack

    Raises
    ------
    PrepError
        Naming the file: missing, no SCI image, unsupported unit, or a pixel grid that differs from the
        reference by more than a whole-pixel offset.
    """
    opened: list[MosaicBand] = []
    budget = PageBudget()  # one budget for all bands: RSS stays bounded whatever the band count
    try:
        for band, path in paths.items():
            opened.append(_open_band(band, Path(path), reference, budget))
    except BaseException:
        for b in opened:
            b._hdul.close()
        raise
    return MosaicStack(opened, reference.shape)


def _open_band(band: str, path: Path, reference: SegmentationImage, budget: PageBudget) -> MosaicBand:
    hdul = open_fits(path, f"{band} mosaic")
    try:
        sci = image_hdu(hdul, "SCI") or image_hdu(hdul)
        if sci is None:
            raise PrepError(f"{path}: no SCI image (looked for EXTNAME 'SCI', then any 2-D image)")
        wcs = celestial_wcs(sci.header, path)
        shape = (int(sci.header["NAXIS2"]), int(sci.header["NAXIS1"]))
        offset = grid_offset(
            reference.wcs, reference.shape, wcs, source=str(path), reference_name=str(reference.path)
        )
        err, wht = image_hdu(hdul, "ERR"), image_hdu(hdul, "WHT")
        for name, hdu in (("ERR", err), ("WHT", wht)):
            if hdu is not None and (int(hdu.header["NAXIS2"]), int(hdu.header["NAXIS1"])) != shape:
                raise PrepError(f"{path}: {name} image shape differs from SCI {shape}")
        if err is None:
            log.info(
                "%s: no ERR extension; coverage comes from finite SCI values%s",
                path,
                " and WHT > 0" if wht is not None else "",
            )
        to_njy = flux_scale_to_njy(sci.header, wcs, source=str(path))
    except BaseException:
        hdul.close()
        raise
    sci_px, err_px, wht_px = (None if hdu is None else ImageWindows(hdu, budget) for hdu in (sci, err, wht))
    return MosaicBand(
        band=band,
        path=path,
        shape=shape,
        offset=offset,
        to_njy=to_njy,
        _hdul=hdul,
        _sci=sci_px,
        _err=err_px,
        _wht=wht_px,
    )


def grid_offset(
    reference: WCS,
    reference_shape: tuple[int, int],
    other: WCS,
    *,
    source: str = "",
    reference_name: str = "the reference grid",
) -> tuple[int, int]:
    """Whole-pixel offset (dy, dx) of ``other``'s grid from ``reference``'s: other pixel = reference + offset.

    Parameters
    ----------
    reference : astropy.wcs.WCS
        The reference grid.
    reference_shape : (int, int)
        Its shape (rows, columns).
    other : astropy.wcs.WCS
        The grid to place on it.
    source, reference_name : str
        How the other and the reference grid are named in messages.

    Returns
    -------
    (int, int)
        ``dy``, ``dx`` in pixels.

    Raises
    ------
    PrepError
        If the projections, pixel scales or orientations differ, or the offset is not a whole number of
        pixels.
    """
    fix = (
        "reproject every band onto the segmentation image's grid (e.g. with the 'reproject' package) "
        "before tiling"
    )
    if list(reference.wcs.ctype) != list(other.wcs.ctype):
        raise PrepError(
            f"{source}: projection {list(other.wcs.ctype)} differs from {reference_name} "
            f"{list(reference.wcs.ctype)}; {fix}"
        )
    if not np.allclose(reference.pixel_scale_matrix, other.pixel_scale_matrix, rtol=SCALE_RTOL, atol=0):
        scale = np.sqrt(abs(np.linalg.det(other.pixel_scale_matrix))) * 3600
        ref_scale = np.sqrt(abs(np.linalg.det(reference.pixel_scale_matrix))) * 3600
        raise PrepError(
            f"{source}: pixel scale/orientation ({scale:.5f} arcsec/pix) differs from "
            f"{reference_name} ({ref_scale:.5f} arcsec/pix); {fix}"
        )
    ny, nx = reference_shape
    ref_px = np.array([[0.0, 0.0], [nx - 1.0, ny - 1.0], [0.0, ny - 1.0]])
    world = reference.pixel_to_world_values(ref_px[:, 0], ref_px[:, 1])
    ox, oy = other.world_to_pixel_values(*world)
    shift = np.stack([oy - ref_px[:, 1], ox - ref_px[:, 0]], axis=1)
    whole = np.round(shift[0])
    if np.abs(shift - whole).max() > GRID_TOLERANCE_PX:
        raise PrepError(
            f"{source}: pixel grid is shifted by ({shift[0, 0]:.3f}, {shift[0, 1]:.3f}) px (y, x) "
            f"from {reference_name}, not a whole number of pixels; {fix}"
        )
    return int(whole[0]), int(whole[1])


def find_mosaics(directory: str | os.PathLike, bands: Sequence[str]) -> dict[str, Path]:
    """Find one FITS mosaic per band in a folder (JADES names ``..._{band}_..._drz.fits``, band in any case).

    A file matches a band when its name holds the band as a separate word (``_f444w_``, ``-F444W.``, ...);
    segmentation files are skipped. Files ending in ``_drz.fits`` are preferred over other matches.

    Parameters
    ----------
    directory : str or Path
        The folder.
    bands : sequence of str
        NIRCam bands to find.

    Returns
    -------
    dict of str -> Path
        Band -> file, in the order of ``bands``.

    Raises
    ------
    PrepError
        If a band has no file or several equally good candidates (listing them).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PrepError(f"{directory}: mosaic folder not found")
    files = sorted(
        p
        for p in directory.iterdir()
        if re.search(r"\.fits(\.gz|\.fz)?$", p.name, re.I) and "segmentation" not in p.name.lower()
    )
    out = {}
    for band in bands:
        pattern = re.compile(rf"(^|[^a-z0-9]){band.lower()}([^a-z0-9]|$)")
        cands = [p for p in files if pattern.search(p.name.lower())]
        if len(cands) > 1:
            drz = [p for p in cands if re.search(r"_drz\.fits", p.name, re.I)]
            cands = drz or cands
        if not cands:
            raise PrepError(
                f"{directory}: no FITS mosaic for band {band} (expected a name like "
                f"hlsp_jades_jwst_nircam_goods-s-deep_{band.lower()}_v2.0_drz.fits)"
            )
        if len(cands) > 1:
            raise PrepError(
                f"{directory}: several mosaics match band {band}: "
                f"{', '.join(p.name for p in cands)}; keep one or pass the files explicitly"
            )
        out[band] = cands[0]
    return out

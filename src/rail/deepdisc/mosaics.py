"""Memory-mapped access to per-band FITS mosaics and the segmentation image on one pixel grid.

Mosaics are never loaded whole: every read goes through ``HDU.section`` of a file opened with ``memmap=True``,
so a 20k x 20k mosaic costs only the windows actually read.

A band file follows the JADES DR2 layout: the ``SCI`` image (found by EXTNAME; a single-image file works too)
with the WCS, an optional ``ERR`` and an optional ``WHT`` image. Values in MJy/sr become nJy per pixel with
``PIXAR_SR`` (fallbacks: ``PIXAR_A2``, then the WCS pixel area); a pixel has coverage where
``isfinite(SCI) & (ERR > 0) & (WHT > 0)`` (each term only when that extension exists).

The segmentation image (data and WCS in its first image HDU) defines the reference grid. Every band must lie
on the same grid up to a whole-pixel offset (a band cut to a smaller or larger footprint); anything else
(another pixel scale, rotation or a sub-pixel shift) is an error asking the user to reproject the mosaics
first. Nothing is resampled here: resampling would correlate noise and change the PSF, which the network
must see as observed.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from tqdm.auto import tqdm

from .exceptions import PrepError

__all__ = [
    "MosaicBand",
    "MosaicStack",
    "SegmentationImage",
    "find_mosaics",
    "find_segmentation",
    "open_mosaics",
    "open_segmentation",
    "flux_scale_to_njy",
    "footprint_boxes",
    "grid_offset",
]

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
_SEGMENTATION_PATTERN = "*segmentation*.fits*"
#: Bytes read through a file's memory map before its pages are dropped from this process (bounds the RSS).
RELEASE_BYTES = 64 * 2**20
#: Upper bound of the pages Linux maps around a page fault in a file mapping (``fault_around_bytes``).
FAULT_AROUND_BYTES = 64 * 2**10
#: Pixels of the segmentation image read at a time when scanning footprints (16 MB as int64 labels).
STRIP_PIXELS = 2**21


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


def _first_image_hdu(hdul, extname: str | None):
    if extname is not None:
        for hdu in hdul:
            if hdu.name == extname and hdu.is_image and hdu.header.get("NAXIS", 0) == 2:
                return hdu
        return None
    for hdu in hdul:
        if hdu.is_image and hdu.header.get("NAXIS", 0) == 2:
            return hdu
    return None


def _open_fits(path: Path, what: str):
    if not path.is_file():
        raise PrepError(f"{path}: {what} not found")
    try:
        return fits.open(path, memmap=True, do_not_scale_image_data=True)
    except OSError as err:
        raise PrepError(f"{path}: not a readable FITS file ({err})") from None


class _ScaledPixels:
    """Slices of raw stored values turned into physical values (``BSCALE * raw + BZERO``) window by window."""

    def __init__(self, raw, bscale: float, bzero: float):
        self._raw, self._bscale, self._bzero = raw, bscale, bzero

    def __getitem__(self, key) -> np.ndarray:
        raw = np.asarray(self._raw[key])
        if self._bscale == 1 and float(self._bzero).is_integer() and raw.dtype.kind in "iu":
            return raw.astype(np.int64) + int(self._bzero)  # pseudo-unsigned integers (e.g. uint32 labels)
        return raw * self._bscale + self._bzero


def _pixels(hdu):
    """Return sliceable pixels of an image HDU that never load it whole.

    The HDU comes from a file opened with ``do_not_scale_image_data``: uncompressed HDUs give the file's
    memory map, compressed ones ``HDU.section``; scaled values (``BSCALE``/``BZERO``) are converted window
    by window.
    """
    raw = hdu.section if isinstance(hdu, fits.CompImageHDU) else hdu.data
    bscale, bzero = float(hdu.header.get("BSCALE", 1.0)), float(hdu.header.get("BZERO", 0.0))
    if bscale == 1 and bzero == 0:
        return raw
    return _ScaledPixels(raw, bscale, bzero)


class _MappedPages:
    """Drop files' memory-mapped pages from this process once reads have touched `RELEASE_BYTES` of them.

    Pages of a read-only shared mapping stay in the operating system's page cache, so a later read faults
    them back cheaply; without this the resident set would grow to the whole mosaic as the tiles sweep it.
    """

    def __init__(self):
        self._maps: list[mmap.mmap] = []
        self._touched = 0

    def add(self, pixels):
        """Register the mapping under ``pixels`` (none for compressed data) and return ``pixels``."""
        raw = pixels._raw if isinstance(pixels, _ScaledPixels) else pixels
        while raw is not None and not isinstance(raw, mmap.mmap):
            raw = getattr(raw, "base", None)
        if raw is not None and hasattr(mmap, "MADV_DONTNEED") and all(raw is not m for m in self._maps):
            self._maps.append(raw)
        return pixels

    def count(self, rows: int, row_bytes: int, image_row_bytes: int) -> None:
        """Record a read of ``rows`` segments of ``row_bytes`` from an image with ``image_row_bytes`` rows.

        The kernel maps pages around each fault ("fault-around"), so a segment may bring in up to
        `FAULT_AROUND_BYTES` more than it reads, never more than the image row; pages are released once
        the budget is used.
        """
        self._touched += rows * min(image_row_bytes, row_bytes + FAULT_AROUND_BYTES + mmap.PAGESIZE)
        if self._touched >= RELEASE_BYTES:
            for mapping in self._maps:
                mapping.madvise(mmap.MADV_DONTNEED)
            self._touched = 0


def _window(pixels, shape, y0: int, x0: int, h: int, w: int, fill, dtype) -> np.ndarray:
    """Read rows y0:y0+h, cols x0:x0+w of an image; pixels outside the image get ``fill``."""
    out = np.full((h, w), fill, dtype=dtype)
    ya, yb = max(y0, 0), min(y0 + h, shape[0])
    xa, xb = max(x0, 0), min(x0 + w, shape[1])
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = pixels[ya:yb, xa:xb]
    return out


@dataclass(frozen=True)
class SegmentationImage:
    """The segmentation image: reference pixel grid and object footprints (0 = sky, else catalog ``ID``).

    Use `open_segmentation`; close with `close` or a ``with`` block.
    """

    path: Path
    wcs: WCS
    shape: tuple[int, int]
    _hdul: fits.HDUList
    _pixels: object
    _pages: _MappedPages
    _itemsize: int

    def read(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """Labels of the window ``[y0, y0+h) x [x0, x0+w)`` as int64 (0 outside the image)."""
        self._pages.count(h, w * self._itemsize, self.shape[1] * self._itemsize)
        return _window(self._pixels, self.shape, y0, x0, h, w, 0, np.int64)

    def pixel_scale_arcsec(self) -> float:
        """Mean pixel side from the WCS, arcsec."""
        return float(np.sqrt(proj_plane_pixel_area(self.wcs.celestial)) * 3600.0)

    def close(self) -> None:
        """Close the file."""
        self._hdul.close()

    def __enter__(self) -> SegmentationImage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_segmentation(path: str | os.PathLike) -> SegmentationImage:
    """Open a segmentation image (first 2-D image HDU, integer labels, with a celestial WCS).

    Raises
    ------
    PrepError
        If the file is missing, has no 2-D image, a non-integer image or no celestial WCS.
    """
    path = Path(path)
    hdul = _open_fits(path, "segmentation image")
    hdu = _first_image_hdu(hdul, None)
    try:
        if hdu is None:
            raise PrepError(f"{path}: no 2-D image HDU in the segmentation file")
        bitpix = int(hdu.header["BITPIX"])
        if bitpix < 0:
            raise PrepError(
                f"{path}: segmentation image has floating-point pixels (BITPIX {bitpix}); expected "
                f"integer labels"
            )
        wcs = _celestial_wcs(hdu.header, path)
    except BaseException:
        hdul.close()
        raise
    shape = (int(hdu.header["NAXIS2"]), int(hdu.header["NAXIS1"]))
    pages = _MappedPages()
    pixels = pages.add(_pixels(hdu))
    return SegmentationImage(
        path=path,
        wcs=wcs,
        shape=shape,
        _hdul=hdul,
        _pixels=pixels,
        _pages=pages,
        _itemsize=abs(int(hdu.header["BITPIX"])) // 8,
    )


def _celestial_wcs(header: fits.Header, path: Path) -> WCS:
    wcs = WCS(header).celestial
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise PrepError(f"{path}: the image header has no celestial WCS")
    return wcs


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
    _sci: object
    _err: object | None
    _wht: object | None
    _pages: _MappedPages
    _itemsize: int

    def read(self, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Window of the reference grid in nJy per pixel, float32 (h, w), and its coverage mask (h, w)."""
        n_images = 1 + (self._err is not None) + (self._wht is not None)
        self._pages.count(h * n_images, w * self._itemsize, self.shape[1] * self._itemsize)
        by, bx = y0 + self.offset[0], x0 + self.offset[1]
        sci = _window(self._sci, self.shape, by, bx, h, w, np.nan, np.float32)
        covered = np.isfinite(sci)
        if self._err is not None:
            covered &= _window(self._err, self.shape, by, bx, h, w, 0, np.float32) > 0
        if self._wht is not None:
            covered &= _window(self._wht, self.shape, by, bx, h, w, 0, np.float32) > 0
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
    pages = _MappedPages()  # one budget for all bands: RSS stays bounded whatever the band count
    try:
        for band, path in paths.items():
            opened.append(_open_band(band, Path(path), reference, pages))
    except BaseException:
        for b in opened:
            b._hdul.close()
        raise
    return MosaicStack(opened, reference.shape)


def _open_band(band: str, path: Path, reference: SegmentationImage, pages: _MappedPages) -> MosaicBand:
    hdul = _open_fits(path, f"{band} mosaic")
    try:
        sci = _first_image_hdu(hdul, "SCI") or _first_image_hdu(hdul, None)
        if sci is None:
            raise PrepError(f"{path}: no SCI image (looked for EXTNAME 'SCI', then any 2-D image)")
        wcs = _celestial_wcs(sci.header, path)
        shape = (int(sci.header["NAXIS2"]), int(sci.header["NAXIS1"]))
        offset = grid_offset(
            reference.wcs, reference.shape, wcs, source=str(path), reference_name=str(reference.path)
        )
        err, wht = _first_image_hdu(hdul, "ERR"), _first_image_hdu(hdul, "WHT")
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
    sci_px, err_px, wht_px = (None if hdu is None else pages.add(_pixels(hdu)) for hdu in (sci, err, wht))
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
        _pages=pages,
        _itemsize=abs(int(sci.header["BITPIX"])) // 8,
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


def find_segmentation(directory: str | os.PathLike) -> Path:
    """Find the one ``*segmentation*.fits`` file in a folder.

    Raises
    ------
    PrepError
        If there is none or several.
    """
    directory = Path(directory)
    cands = sorted(directory.glob(_SEGMENTATION_PATTERN))
    if len(cands) != 1:
        found = ", ".join(p.name for p in cands) or "none"
        raise PrepError(
            f"{directory}: expected exactly one segmentation image ({_SEGMENTATION_PATTERN}), found "
            f"{found}; pass it with --segmentation"
        )
    return cands[0]


def footprint_boxes(
    segmentation: SegmentationImage,
    object_id: np.ndarray,
    *,
    rows_per_strip: int | None = None,
    progress_bar: bool = False,
) -> np.ndarray:
    """Bounding boxes of every object's segmentation footprint, scanning the image in strips of rows.

    Parameters
    ----------
    segmentation : SegmentationImage
        Labels = catalog ids.
    object_id : ndarray of int (M,)
        Catalog ids.
    rows_per_strip : int, optional
        Rows read at a time (memory ~ rows x width x 8 bytes); default: `STRIP_PIXELS` / width.
    progress_bar : bool
        Show a progress bar over the strips.

    Returns
    -------
    ndarray of float64 (M, 4)
        ``x0, y0, x1, y1`` in reference-grid pixels (x1, y1 exclusive); NaN for ids without pixels.
        Labels that are not catalog ids are ignored.
    """
    ids = np.asarray(object_id, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    big = np.iinfo(np.int64).max
    lo_x, lo_y = np.full(len(ids), big), np.full(len(ids), big)
    hi_x, hi_y = np.full(len(ids), -1), np.full(len(ids), -1)
    ny, nx = segmentation.shape
    rows_per_strip = rows_per_strip or max(1, STRIP_PIXELS // nx)
    strips = range(0, ny, rows_per_strip)
    for ya in tqdm(strips, desc="footprints", unit="strip", disable=not progress_bar):
        strip = segmentation.read(ya, 0, min(rows_per_strip, ny - ya), nx)
        yy, xx = np.nonzero(strip)
        if len(sorted_ids) == 0 or len(yy) == 0:
            continue
        labels = strip[yy, xx]
        pos = np.clip(np.searchsorted(sorted_ids, labels), 0, len(sorted_ids) - 1)
        known = sorted_ids[pos] == labels
        rows, yy, xx = order[pos[known]], yy[known] + ya, xx[known]
        np.minimum.at(lo_x, rows, xx)
        np.minimum.at(lo_y, rows, yy)
        np.maximum.at(hi_x, rows, xx)
        np.maximum.at(hi_y, rows, yy)
    boxes = np.stack([lo_x, lo_y, hi_x + 1, hi_y + 1], axis=1).astype(np.float64)
    boxes[hi_x < 0] = np.nan
    return boxes

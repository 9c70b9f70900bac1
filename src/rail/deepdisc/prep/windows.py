"""Windows of large FITS images read without loading them, with bounded resident memory.

Files are opened with ``astropy.io.fits.open(memmap=True, do_not_scale_image_data=True)``. An uncompressed
image is sliced through the file's memory map, a tile-compressed one through ``HDU.section``; stored values
with ``BSCALE``/``BZERO`` are converted window by window. A `PageBudget` drops the mapped pages from the
process once reads have touched `RELEASE_BYTES` of them: the pages stay in the operating system's page cache,
so a later read faults them back cheaply, but the resident set no longer grows with the image as tiles sweep
a 20k x 20k mosaic.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from rail.deepdisc.exceptions import PrepError

__all__ = [
    "FAULT_AROUND_BYTES",
    "RELEASE_BYTES",
    "ImageWindows",
    "PageBudget",
    "celestial_wcs",
    "image_hdu",
    "open_fits",
]

#: Bytes touched through memory maps before their pages are dropped from this process (bounds the RSS).
RELEASE_BYTES = 64 * 2**20
#: Upper bound of the pages Linux maps around a page fault in a file mapping (``fault_around_bytes``).
FAULT_AROUND_BYTES = 64 * 2**10


def open_fits(path: Path, what: str) -> fits.HDUList:
    """Open a FITS file memory-mapped and unscaled.

    Parameters
    ----------
    path : Path
        The file.
    what : str
        What the file is, for messages (e.g. ``"F444W mosaic"``).

    Returns
    -------
    astropy.io.fits.HDUList

    Raises
    ------
    PrepError
        If the file is missing or not readable FITS.
    """
    path = Path(path)
    if not path.is_file():
        raise PrepError(f"{path}: {what} not found")
    try:
        return fits.open(path, memmap=True, do_not_scale_image_data=True)
    except OSError as err:
        raise PrepError(f"{path}: not a readable FITS file ({err})") from None


def image_hdu(hdul: fits.HDUList, extname: str | None = None):
    """Return a 2-D image HDU of a file.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The open file.
    extname : str, optional
        HDU name (e.g. ``"SCI"``); None takes the first 2-D image HDU.

    Returns
    -------
    HDU or None
        None when there is no such HDU.
    """
    for hdu in hdul:
        if hdu.is_image and hdu.header.get("NAXIS", 0) == 2 and extname in (None, hdu.name):
            return hdu
    return None


def celestial_wcs(header: fits.Header, path: Path) -> WCS:
    """Return the celestial WCS of an image header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        An image header.
    path : Path
        Its file, for messages.

    Returns
    -------
    astropy.wcs.WCS
        The two celestial axes.

    Raises
    ------
    PrepError
        If the header has none.
    """
    wcs = WCS(header).celestial
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise PrepError(f"{path}: the image header has no celestial WCS")
    return wcs


class _ScaledPixels:
    """Slices of raw stored values turned into physical values (``BSCALE * raw + BZERO``)."""

    def __init__(self, raw, bscale: float, bzero: float):
        self.raw, self._bscale, self._bzero = raw, bscale, bzero

    def __getitem__(self, key) -> np.ndarray:
        raw = np.asarray(self.raw[key])
        if self._bscale == 1 and float(self._bzero).is_integer() and raw.dtype.kind in "iu":
            return raw.astype(np.int64) + int(self._bzero)  # pseudo-unsigned integers (e.g. uint32 labels)
        return raw * self._bscale + self._bzero


class PageBudget:
    """Drop the pages of registered memory maps from this process once reads have touched enough of them.

    Parameters
    ----------
    release_bytes : int
        Bytes touched between releases.
    """

    def __init__(self, release_bytes: int = RELEASE_BYTES):
        self._maps: list[mmap.mmap] = []
        self._release_bytes = release_bytes
        self._touched = 0

    def register(self, pixels) -> None:
        """Register the memory map under ``pixels`` (nothing for compressed or in-memory data)."""
        raw = pixels.raw if isinstance(pixels, _ScaledPixels) else pixels
        while raw is not None and not isinstance(raw, mmap.mmap):
            raw = getattr(raw, "base", None)
        if raw is not None and hasattr(mmap, "MADV_DONTNEED") and all(raw is not m for m in self._maps):
            self._maps.append(raw)

    def count(self, rows: int, row_bytes: int, image_row_bytes: int) -> None:
        """Record a read of ``rows`` segments of ``row_bytes`` from an image with ``image_row_bytes`` rows.

        The kernel maps pages around each fault ("fault-around"), so a segment may bring in up to
        `FAULT_AROUND_BYTES` more than it reads, never more than the image row.
        """
        self._touched += rows * min(image_row_bytes, row_bytes + FAULT_AROUND_BYTES + mmap.PAGESIZE)
        if self._touched >= self._release_bytes:
            for mapping in self._maps:
                mapping.madvise(mmap.MADV_DONTNEED)
            self._touched = 0


class ImageWindows:
    """Rectangular windows of one 2-D image HDU, read without loading the image.

    Parameters
    ----------
    hdu : astropy.io.fits.ImageHDU or CompImageHDU
        From a file opened with `open_fits`.
    budget : PageBudget, optional
        Shared page budget (several images of one mosaic share one); a private one by default.

    Attributes
    ----------
    shape : (int, int)
        (ny, nx) of the image.
    """

    def __init__(self, hdu, budget: PageBudget | None = None):
        header = hdu.header
        self.shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        self._itemsize = abs(int(header["BITPIX"])) // 8
        raw = hdu.section if isinstance(hdu, fits.CompImageHDU) else hdu.data
        bscale, bzero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
        self.pixels = raw if bscale == 1 and bzero == 0 else _ScaledPixels(raw, bscale, bzero)
        self._budget = budget if budget is not None else PageBudget()
        self._budget.register(self.pixels)

    def read(self, y0: int, x0: int, h: int, w: int, *, fill, dtype) -> np.ndarray:
        """Read rows ``y0:y0+h``, columns ``x0:x0+w`` as ``dtype`` (h, w); outside the image: ``fill``."""
        self._budget.count(h, w * self._itemsize, self.shape[1] * self._itemsize)
        out = np.full((h, w), fill, dtype=dtype)
        ya, yb = max(y0, 0), min(y0 + h, self.shape[0])
        xa, xb = max(x0, 0), min(x0 + w, self.shape[1])
        if ya < yb and xa < xb:
            out[ya - y0 : yb - y0, xa - x0 : xb - x0] = self.pixels[ya:yb, xa:xb]
        return out

"""The segmentation image: the reference pixel grid and the footprint of every catalog object.

JADES writes the segmentation map in the PRIMARY HDU with its WCS, labels = catalog ``ID``, 0 = sky. It is
read window by window (:mod:`rail.deepdisc.prep.windows`); `footprint_boxes` scans it in strips of rows to
find every object's bounding box without holding the image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from tqdm.auto import tqdm

from rail.deepdisc.exceptions import PrepError
from rail.deepdisc.prep.windows import ImageWindows, celestial_wcs, image_hdu, open_fits

__all__ = ["STRIP_PIXELS", "SegmentationImage", "find_segmentation", "footprint_boxes", "open_segmentation"]

#: Pixels of the segmentation image read at a time when scanning footprints (16 MB as int64 labels).
STRIP_PIXELS = 2**21
_SEGMENTATION_PATTERN = "*segmentation*.fits*"


@dataclass(frozen=True)
class SegmentationImage:
    """The segmentation image: reference pixel grid and object footprints (0 = sky, else catalog ``ID``).

    Use `open_segmentation`; close with `close` or a ``with`` block.
    """

    path: Path
    wcs: WCS
    shape: tuple[int, int]
    _hdul: fits.HDUList
    _image: ImageWindows

    def read(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """Labels of the window ``[y0, y0+h) x [x0, x0+w)`` as int64 (0 outside the image)."""
        return self._image.read(y0, x0, h, w, fill=0, dtype=np.int64)

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

    Parameters
    ----------
    path : str or Path
        A FITS file (read memory-mapped).

    Returns
    -------
    SegmentationImage

    Raises
    ------
    PrepError
        If the file is missing, has no 2-D image, a non-integer image or no celestial WCS.
    """
    path = Path(path)
    hdul = open_fits(path, "segmentation image")
    try:
        hdu = image_hdu(hdul)
        if hdu is None:
            raise PrepError(f"{path}: no 2-D image HDU in the segmentation file")
        bitpix = int(hdu.header["BITPIX"])
        if bitpix < 0:
            raise PrepError(
                f"{path}: segmentation image has floating-point pixels (BITPIX {bitpix}); "
                f"expected integer labels"
            )
        wcs = celestial_wcs(hdu.header, path)
        image = ImageWindows(hdu)
    except BaseException:
        hdul.close()
        raise
    return SegmentationImage(path=path, wcs=wcs, shape=image.shape, _hdul=hdul, _image=image)


def find_segmentation(directory: str | os.PathLike) -> Path:
    """Find the one ``*segmentation*.fits`` file in a folder.

    Parameters
    ----------
    directory : str or Path
        The folder of a JADES-style data release.

    Returns
    -------
    Path
        The segmentation file.

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
            f"{directory}: expected exactly one segmentation image ({_SEGMENTATION_PATTERN}), "
            f"found {found}; pass it with --segmentation"
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
    for ya in tqdm(range(0, ny, rows_per_strip), desc="footprints", unit="strip", disable=not progress_bar):
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

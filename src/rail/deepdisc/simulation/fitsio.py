"""FITS writing shared by the mosaic and catalog writers: atomic HDU lists and memory-mapped large images.

`MappedFits` lays out a file of image HDUs (headers written, data sections sized) and hands out writable
memory maps of the data, so a mosaic larger than memory is filled strip by strip; the file is renamed into
place only when complete. Its bytes equal what ``HDUList.writeto`` writes for the same headers and data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from rail.deepdisc.atomic import atomic_path, commit, temporary_beside

__all__ = ["write_fits_atomic", "MappedFits", "FITS_BLOCK"]

#: FITS block size, bytes: headers and data sections are padded to multiples of it.
FITS_BLOCK = 2880


def write_fits_atomic(hdul: fits.HDUList, path: str | Path) -> Path:
    """Write ``hdul`` to a temporary file beside ``path``, then rename it into place.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The file's content.
    path : str or Path
        Output file.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, overwrite=True)
    return Path(path)


def _padded(nbytes: int) -> int:
    return -(-nbytes // FITS_BLOCK) * FITS_BLOCK


class MappedFits:
    """A FITS file of 2-D images written through memory maps (atomic: renamed into place by `close`).

    Parameters
    ----------
    path : str or Path
        The final file.
    hdus : list of (hdu, shape or None)
        Template HDUs in file order with the shape (rows, columns) of their image; a template is a header-only
        ``PrimaryHDU`` (shape None) or an HDU holding a 1 x 1 array of the image's dtype, whose header and
        EXTNAME are kept.

    Attributes
    ----------
    data : list of numpy.memmap or None
        Writable big-endian image of each HDU (None for header-only ones).
    """

    def __init__(self, path: str | Path, hdus: list):
        self.path = Path(path)
        self._tmp = temporary_beside(self.path)
        layout, offset = [], 0
        with open(self._tmp, "wb") as f:
            for hdu, shape in hdus:
                header = hdu.header.copy()
                if shape is not None:
                    header["NAXIS1"], header["NAXIS2"] = int(shape[1]), int(shape[0])
                text = header.tostring().encode("ascii")
                f.write(text)
                offset += len(text)
                if shape is None:
                    layout.append(None)
                    continue
                dtype = hdu.data.dtype.newbyteorder(">")
                nbytes = int(shape[0]) * int(shape[1]) * dtype.itemsize
                layout.append((offset, dtype, tuple(int(v) for v in shape)))
                offset += _padded(nbytes)
                f.truncate(offset)
                f.seek(offset)
        self.data = [
            None if item is None else np.memmap(self._tmp, dtype=item[1], mode="r+", offset=item[0], shape=item[2])
            for item in layout
        ]

    def close(self) -> Path:
        """Flush the images and rename the file into place."""
        for image in self.data:
            if image is not None:
                image.flush()
        self.data = []
        return commit(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file."""
        self.data = []
        if self._tmp.exists():
            os.unlink(self._tmp)

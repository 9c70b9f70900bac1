"""Atomic FITS writing shared by the mosaic and catalog writers."""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits

from rail.deepdisc.atomic import atomic_path

__all__ = ["write_fits_atomic"]


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

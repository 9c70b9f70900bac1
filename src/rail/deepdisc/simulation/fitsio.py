"""Atomic FITS writing shared by the mosaic and catalog writers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from astropy.io import fits

__all__ = ["write_fits_atomic"]


def write_fits_atomic(hdul: fits.HDUList, path: str | Path) -> Path:
    """Write ``hdul`` to a temporary file beside ``path``, then rename it into place; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        hdul.writeto(tmp, overwrite=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

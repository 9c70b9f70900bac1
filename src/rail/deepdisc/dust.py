"""Milky-Way E(B-V) per object from the Schlegel, Finkbeiner & Davis (1998) map, read through ``dustmaps``.

The map is two FITS files, ``SFD_dust_4096_ngp.fits`` and ``SFD_dust_4096_sgp.fits`` (zenithal equal-area
projections of the Galactic poles), in a folder given by the user (the ``sfd`` folder itself or dustmaps'
data folder holding it) or in dustmaps' configured data folder. Nothing is downloaded at run time: a missing
map raises `DustMapError` with the command that fetches it.

Values are scaled by the Schlafly & Finkbeiner (2011) recalibration, 0.86, as the simulator does, so that
real and simulated TileSets carry the same ``ebv`` convention; ``recalibration=1`` gives the raw SFD values.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import DustMapError

__all__ = ["SFD_FILES", "SF11_RECALIBRATION", "default_sfd_dir", "fetch_command", "sfd_ebv"]

log = logging.getLogger(__name__)

#: File names of the SFD map, as ``dustmaps.sfd.SFDQuery`` expects them.
SFD_FILES = ("SFD_dust_4096_ngp.fits", "SFD_dust_4096_sgp.fits")
#: Schlafly & Finkbeiner (2011) factor turning SFD E(B-V) into the recalibrated E(B-V).
SF11_RECALIBRATION = 0.86


def default_sfd_dir() -> Path:
    """Return the SFD folder of dustmaps' configured data directory (``dustmaps.config``)."""
    from dustmaps.std_paths import data_dir

    return Path(data_dir()) / "sfd"


def fetch_command(data_dir: str | os.PathLike) -> str:
    """Return the shell command that downloads the SFD map into ``data_dir/sfd`` (run once, online).

    Parameters
    ----------
    data_dir : str or Path
        The dustmaps data folder.

    Returns
    -------
    str
        A ``python -c`` command line; the package itself never downloads anything.
    """
    return (
        "python -c \"import dustmaps.config; dustmaps.config.config['data_dir']='"
        + str(data_dir)
        + "'; import dustmaps.sfd; dustmaps.sfd.fetch()\""
    )


def sfd_ebv(
    ra_deg: np.ndarray,
    dec_deg: np.ndarray,
    *,
    map_dir: str | os.PathLike | None = None,
    recalibration: float = SF11_RECALIBRATION,
) -> np.ndarray:
    """Return the E(B-V) of the SFD map at ICRS positions (bilinear interpolation, as dustmaps does).

    Parameters
    ----------
    ra_deg, dec_deg : ndarray (M,)
        ICRS coordinates, degrees.
    map_dir : str or Path, optional
        Folder holding ``SFD_dust_4096_{ngp,sgp}.fits``, or a folder with an ``sfd`` subfolder holding them;
        default `default_sfd_dir`.
    recalibration : float
        Factor applied to the map values (`SF11_RECALIBRATION`; 1 = raw SFD).

    Returns
    -------
    ndarray of float64 (M,)
        E(B-V), magnitudes.

    Raises
    ------
    DustMapError
        If a map file is missing or unreadable; the message gives the fetch command.

    Examples
    --------
    >>> sfd_ebv(np.array([53.16]), np.array([-27.78]), map_dir="~/dustmaps/sfd")  # doctest: +SKIP
    array([0.0063])
    """
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    if ra.shape != dec.shape:
        raise ValueError(f"ra_deg and dec_deg must have the same shape, got {ra.shape} and {dec.shape}")
    if not recalibration > 0:
        raise ValueError(f"recalibration must be > 0, got {recalibration!r}")
    folder = Path(map_dir).expanduser() if map_dir is not None else default_sfd_dir()
    if not (folder / SFD_FILES[0]).exists() and (folder / "sfd").is_dir():
        folder = folder / "sfd"
    query = _open_map(folder)
    if len(ra) == 0:
        return np.empty(0)
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ebv = np.asarray(query(SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")), dtype=np.float64)
    return recalibration * ebv


def _open_map(folder: Path):
    missing = [name for name in SFD_FILES if not (folder / name).is_file()]
    data_dir = folder.parent if folder.name == "sfd" else folder  # dustmaps fetches into <data_dir>/sfd
    if missing:
        raise DustMapError(
            f"{folder}: SFD dust map file(s) {', '.join(missing)} not found; fetch the map once "
            f"with: {fetch_command(data_dir)} (or pass the folder holding it)"
        )
    with warnings.catch_warnings():
        # dustmaps warns at import when ~/.dustmapsrc is missing; the folder is explicit here
        warnings.filterwarnings("ignore", message="Configuration file not found", module="dustmaps")
        from dustmaps.sfd import SFDQuery

    try:
        return SFDQuery(map_dir=str(folder))
    except Exception as err:  # astropy/dustmaps raise OSError, KeyError, ValueError on damaged files
        raise DustMapError(
            f"{folder}: the SFD dust map cannot be read ({type(err).__name__}: {err}); fetch it "
            f"again with: {fetch_command(data_dir)}"
        ) from None

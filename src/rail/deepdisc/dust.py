"""Milky-Way dust: E(B-V) per object from the SFD map, and the extinction law that turns it into magnitudes.

**E(B-V).** `sfd_ebv` reads the Schlegel, Finkbeiner & Davis (1998) map through ``dustmaps``.

The map is two FITS files, ``SFD_dust_4096_ngp.fits`` and ``SFD_dust_4096_sgp.fits`` (zenithal equal-area
projections of the Galactic poles), in a folder given by the user (the ``sfd`` folder itself or dustmaps'
data folder holding it) or in dustmaps' configured data folder. Nothing is downloaded at run time: a missing
map raises `DustMapError` with the command that fetches it.

Values are scaled by the Schlafly & Finkbeiner (2011) recalibration, 0.86, so that real and simulated
TileSets (the simulator reads maps through the same function) carry the same ``ebv`` convention;
``recalibration=1`` gives the raw SFD values.

**Extinction law.** The package's one Milky-Way law is Gordon et al. (2023, "G23", from ``dust_extinction``)
with R_V = 3.1: the simulator reddens with it and both template-fitting peers deredden with it. G23 holds
from 912 Angstrom to 32 micron; Cardelli, Clayton & Mathis (1989) and Fitzpatrick (1999) stop at 3.3 micron,
short of NIRCam's reddest bands (F444W reaches 5.2 micron). `mw_extinction_mag` evaluates A_lambda;
`band_extinction` gives A_band / E(B-V) per NIRCam band, averaged over the astro-sedpy filter curve with the
photon-counting weight of a source flat in f_nu (``T(lambda) / lambda``), in the limit of small E(B-V). For
E(B-V) <= 0.1 the source's colour and the non-linearity change A_band by less than 0.004 mag.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rail.deepdisc.exceptions import ConfigError, DustMapError
from rail.deepdisc.filters import filter_curve

__all__ = [
    "SFD_FILES",
    "SF11_RECALIBRATION",
    "MW_RV",
    "default_sfd_dir",
    "fetch_command",
    "sfd_ebv",
    "mw_extinction_mag",
    "band_extinction",
]

log = logging.getLogger(__name__)

#: File names of the SFD map, as ``dustmaps.sfd.SFDQuery`` expects them.
SFD_FILES = ("SFD_dust_4096_ngp.fits", "SFD_dust_4096_sgp.fits")
#: Schlafly & Finkbeiner (2011) factor turning SFD E(B-V) into the recalibrated E(B-V).
SF11_RECALIBRATION = 0.86
#: Total-to-selective extinction A_V / E(B-V) of the Milky-Way law (the diffuse interstellar medium).
MW_RV = 3.1


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


@lru_cache(maxsize=None)
def _g23(r_v: float):
    from dust_extinction.parameter_averages import G23

    return G23(Rv=r_v)


def mw_extinction_mag(wavelength: np.ndarray, ebv, *, r_v: float = MW_RV) -> np.ndarray:
    """Milky-Way extinction A_lambda of the Gordon et al. (2023) law (``dust_extinction.G23``).

    Parameters
    ----------
    wavelength : array_like
        Wavelengths, Angstrom (912 Angstrom to 32 micron).
    ebv : float or array_like
        E(B-V), mag; broadcast against ``wavelength``.
    r_v : float
        A_V / E(B-V), 2.3 to 5.6.

    Returns
    -------
    ndarray
        A_lambda = R_V x (A_lambda / A_V) x E(B-V), mag.

    Raises
    ------
    ConfigError
        If a wavelength lies outside the law's range.

    Examples
    --------
    >>> round(float(mw_extinction_mag(5500.0, 1.0)), 2)  # A_V = R_V E(B-V)
    3.1
    """
    from astropy import units as u

    wave = np.asarray(wavelength, dtype=np.float64)
    law = _g23(float(r_v))
    lo, hi = (1e4 / x for x in law.x_range[::-1])  # Angstrom
    if np.any(~(wave >= lo) | ~(wave <= hi)):
        raise ConfigError(
            f"Milky-Way extinction asked at {np.nanmin(wave):.0f}-{np.nanmax(wave):.0f} Angstrom, outside "
            f"the {lo:.0f}-{hi:.0f} Angstrom of the G23 law"
        )
    return r_v * np.asarray(law(wave * u.AA), dtype=np.float64) * np.asarray(ebv, dtype=np.float64)


@lru_cache(maxsize=None)
def _band_coefficient(band: str, r_v: float) -> float:
    wave, trans = filter_curve(band)
    inside = trans > 0
    wave, weight = wave[inside], trans[inside] / wave[inside]  # photons of a flat-f_nu source per Angstrom
    return float(np.trapezoid(mw_extinction_mag(wave, 1.0, r_v=r_v) * weight, wave) / np.trapezoid(weight, wave))


def band_extinction(bands: Sequence[str], *, r_v: float = MW_RV) -> np.ndarray:
    """A_band / E(B-V) of NIRCam bands: the G23 law averaged over each band (cached per band).

    Parameters
    ----------
    bands : sequence of str
        NIRCam bands.
    r_v : float
        A_V / E(B-V).

    Returns
    -------
    ndarray (B,)
        Magnitudes of extinction per magnitude of E(B-V): ``mag_observed = mag_intrinsic + A_band x E(B-V)``.

    Examples
    --------
    >>> band_extinction(["F090W", "F444W"]).round(2)
    array([1.51, 0.1 ])
    """
    return np.array([_band_coefficient(str(band), float(r_v)) for band in bands], dtype=np.float64)

"""Reading a JADES-style photometric catalog: ids, positions, AB magnitudes and star flags.

The JADES GOODS-S DR2 catalog (``hlsp_jades_jwst_nircam_goods-s-deep_photometry_v2.0_catalog.fits``)
holds one table per extension (``FLAG``, ``SIZE``, ``CIRC``, ``KRON``, ...), every table with ``ID``,
``RA``, ``DEC`` in the same row order. Extensions are opened by EXTNAME, never by index (later releases
insert extensions). Fluxes are in nJy and become AB magnitudes with ``-2.5 log10(f) + 31.4``; errors come
from the first of the suffixes ``_e``, ``_en``, ``_ei`` present. Non-positive or NaN fluxes (no coverage)
give NaN magnitudes. The fluxes themselves are kept too (`PhotCatalog.flux`, ``fluxerr``: nJy, negative values
allowed; NaN where the flux is NaN or exactly 0, or its error is missing), for the TileSet's
``flux_<BAND>``/``fluxerr_<BAND>``.

Stars are ``FLAG_ST == 1`` (the readme's star value; galaxies may carry other bits such as 32768, so the
test is an equality, not ``!= 0``).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from rail.deepdisc.exceptions import ConfigError, PrepError, PrepWarning
from rail.deepdisc.presets import resolve_bands

__all__ = [
    "AB_ZEROPOINT_NJY",
    "ERROR_SUFFIXES",
    "PhotCatalog",
    "flux_to_mag",
    "read_photometry",
]

log = logging.getLogger(__name__)

#: AB magnitude of a 1 nJy source: m = -2.5 log10(f / nJy) + 31.4.
AB_ZEROPOINT_NJY = 31.4
#: Flux-error column suffixes, in order of preference (empirical, then image-based).
ERROR_SUFFIXES = ("_e", "_en", "_ei")
#: 2.5 / ln(10): magnitude error per unit fractional flux error.
_MAG_PER_FRAC_FLUX = 2.5 / np.log(10.0)
#: ``FLAG_ST`` value of a star.
STAR_FLAG_VALUE = 1
_FLUX_KIND = re.compile(r"^(KRON|CIRC[0-6])$")


@dataclass(frozen=True)
class PhotCatalog:
    """The photometric catalog columns that tiling needs, one row per object.

    Parameters
    ----------
    object_id : ndarray of int64 (M,)
        Catalog ``ID`` (the segmentation image's labels).
    ra, dec : ndarray of float64 (M,)
        Position, degrees.
    mag, magerr : dict of str -> ndarray of float64 (M,)
        AB magnitude and its error per band (NaN = no measurement).
    star : ndarray of bool (M,)
        ``FLAG_ST == 1``.
    flux, fluxerr : dict of str -> ndarray of float64 (M,)
        Flux and its error per band, nJy (negative = a measured flux below zero; NaN = no measurement); empty
        when not read.
    source : str
        Path of the file, for messages.
    """

    object_id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    mag: dict[str, np.ndarray]
    magerr: dict[str, np.ndarray]
    star: np.ndarray
    flux: dict[str, np.ndarray] = field(default_factory=dict)
    fluxerr: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = field(default="<memory>", compare=False)

    def __len__(self) -> int:
        return int(len(self.object_id))

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands with magnitude columns."""
        return tuple(self.mag)


def flux_to_mag(
    flux_njy: np.ndarray, flux_err_njy: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Convert fluxes in nJy to AB magnitudes and magnitude errors.

    Parameters
    ----------
    flux_njy : ndarray (M,)
        Fluxes, nJy.
    flux_err_njy : ndarray (M,), optional
        1-sigma flux errors, nJy.

    Returns
    -------
    mag, magerr : ndarray of float64 (M,)
        AB magnitudes (NaN where the flux is not positive and finite) and ``2.5/ln10 * err/flux`` (NaN where
        the error is missing or not positive).

    Examples
    --------
    >>> flux_to_mag(np.array([1.0, 10.0, 0.0]))[0]
    array([31.4, 28.9,  nan])
    """
    f = np.asarray(flux_njy, dtype=np.float64)
    good = np.isfinite(f) & (f > 0)
    mag = np.full(f.shape, np.nan)
    mag[good] = -2.5 * np.log10(f[good]) + AB_ZEROPOINT_NJY
    magerr = np.full(f.shape, np.nan)
    if flux_err_njy is not None:
        e = np.asarray(flux_err_njy, dtype=np.float64)
        ok = good & np.isfinite(e) & (e > 0)
        magerr[ok] = _MAG_PER_FRAC_FLUX * e[ok] / f[ok]
    return mag, magerr


def read_photometry(
    path: str | os.PathLike,
    bands: str | Sequence[str],
    *,
    flux_kind: str = "KRON",
    error_suffixes: Sequence[str] = ERROR_SUFFIXES,
) -> PhotCatalog:
    """Read ids, positions, AB magnitudes and star flags from a JADES-style photometric catalog.

    Parameters
    ----------
    path : str or Path
        The multi-extension FITS catalog.
    bands : str or sequence of str
        Preset name or bands whose magnitudes are wanted.
    flux_kind : str
        ``"KRON"`` (extension ``KRON``, columns ``{BAND}_KRON``) or ``"CIRCk"``, k = 0..6 (extension ``CIRC``,
        columns ``{BAND}_CIRCk``).
    error_suffixes : sequence of str
        Error-column suffixes tried in order.

    Returns
    -------
    PhotCatalog
        One row per catalog object. A band without a flux column gets NaN magnitudes (one `PrepWarning`).

    Raises
    ------
    ConfigError
        If ``flux_kind`` is not KRON or CIRC0..CIRC6.
    PrepError
        If the file is missing or unreadable, or lacks the flux extension or ``ID``/``RA``/``DEC``.
    """
    bands = resolve_bands(bands)
    kind = str(flux_kind).upper()
    if not _FLUX_KIND.match(kind):
        raise ConfigError(f"flux_kind must be KRON or CIRC0..CIRC6, got {flux_kind!r}")
    path = Path(path)
    if not path.is_file():
        raise PrepError(f"{path}: photometric catalog not found")
    try:
        hdul = fits.open(path, memmap=True)
    except OSError as err:
        raise PrepError(f"{path}: not a readable FITS catalog ({err})") from None
    with hdul:
        try:
            return _read_photometry(hdul, path, bands, kind, tuple(error_suffixes))
        except PrepError:
            raise
        except Exception as err:  # astropy raises many types (VerifyError, AttributeError, ...) on damaged HDUs
            raise PrepError(f"{path}: damaged FITS catalog ({type(err).__name__}: {err})") from None


def _table(hdul, path: Path, extname: str):
    names = [h.name for h in hdul]
    if extname not in names:
        raise PrepError(
            f"{path}: no {extname!r} extension (extensions: {', '.join(names)}); is this a JADES "
            f"photometric catalog?"
        )
    return hdul[extname].data


def _read_photometry(
    hdul, path: Path, bands: tuple[str, ...], kind: str, suffixes: tuple[str, ...]
) -> PhotCatalog:
    extname = "KRON" if kind == "KRON" else "CIRC"
    data = _table(hdul, path, extname)
    columns = {c.upper(): c for c in data.columns.names}
    for req in ("ID", "RA", "DEC"):
        if req not in columns:
            raise PrepError(f"{path}: extension {extname!r} lacks column {req!r}")
    mag, magerr, flux, fluxerr, missing = {}, {}, {}, {}, []
    n = len(data)
    for band in bands:
        flux_col = columns.get(f"{band}_{kind}")
        if flux_col is None:
            missing.append(band)
            mag[band], magerr[band] = np.full(n, np.nan), np.full(n, np.nan)
            flux[band], fluxerr[band] = np.full(n, np.nan), np.full(n, np.nan)
            continue
        err_col = next(
            (
                columns[f"{band}_{kind}{s}".upper()]
                for s in suffixes
                if f"{band}_{kind}{s}".upper() in columns
            ),
            None,
        )
        mag[band], magerr[band] = flux_to_mag(data[flux_col], None if err_col is None else data[err_col])
        f = np.asarray(data[flux_col], dtype=np.float64)
        e = np.asarray(data[err_col], dtype=np.float64) if err_col is not None else np.full(n, np.nan)
        measured = np.isfinite(f) & (f != 0) & np.isfinite(e) & (e > 0)  # exactly 0: no coverage
        flux[band], fluxerr[band] = np.where(measured, f, np.nan), np.where(measured, e, np.nan)
    if missing:
        warnings.warn(
            f"{path}: no {kind} flux column for band(s) {' '.join(missing)}; their magnitudes are NaN",
            PrepWarning,
            stacklevel=3,
        )
    return PhotCatalog(
        object_id=np.asarray(data[columns["ID"]], dtype=np.int64),
        ra=np.asarray(data[columns["RA"]], dtype=np.float64),
        dec=np.asarray(data[columns["DEC"]], dtype=np.float64),
        mag=mag,
        magerr=magerr,
        star=_star_flags(hdul, path, n),
        flux=flux,
        fluxerr=fluxerr,
        source=str(path),
    )


def _star_flags(hdul, path: Path, n: int) -> np.ndarray:
    if "FLAG" not in [h.name for h in hdul]:
        log.info("%s: no FLAG extension, no object is flagged as a star", path)
        return np.zeros(n, dtype=bool)
    flag = hdul["FLAG"].data
    cols = {c.upper(): c for c in flag.columns.names}
    if "FLAG_ST" not in cols:
        log.info("%s: FLAG extension has no FLAG_ST column, no object is flagged as a star", path)
        return np.zeros(n, dtype=bool)
    if len(flag) != n:
        raise PrepError(
            f"{path}: FLAG has {len(flag)} rows but the flux table has {n}; the extensions must be "
            f"row-aligned"
        )
    return np.asarray(flag[cols["FLAG_ST"]]) == STAR_FLAG_VALUE

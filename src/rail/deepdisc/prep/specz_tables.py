"""Spec-z tables: their formats (column names, quality rule) and the reader that applies the quality cuts.

Readers take a `SpeczFormat` so any table works; `SPECZ_FORMATS` holds the known ones: JADES DR3 NIRSpec
(``z_Spec_flag`` A/B/C, byte strings decoded), MUSE HUDF DR1 (``CONFID`` >= 2) and ASTRODEEP-GS43 (column
names not established publicly: check them against the file, override as needed). `read_specz` applies the
first rules of the compilation (:mod:`rail.deepdisc.prep.specz`): ``quality`` and ``z_range``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from rail.deepdisc.exceptions import ConfigError, PrepError

__all__ = ["Z_RANGE", "SPECZ_FORMATS", "SpeczFormat", "SpeczTable", "read_specz"]

#: Default accepted redshift range (exclusive lower bound drops stars and the 0 / -99 placeholders).
Z_RANGE = (0.0, 20.0)


@dataclass(frozen=True)
class SpeczFormat:
    """Column mapping and quality rule of a spec-z table.

    Parameters
    ----------
    name : str
        Label used in summaries.
    ra, dec, z : str
        Column names (degrees, degrees, redshift).
    quality : str, optional
        Quality column. With ``accepted_flags`` it is a text flag; with ``min_quality`` a number.
    accepted_flags : tuple of str, optional
        Flags kept (compared after decoding and stripping, case-insensitive).
    min_quality : float, optional
        Smallest quality value kept.
    hdu : int or str
        FITS extension holding the table.
    z_range : (float, float)
        Kept redshifts ``zmin < z <= zmax``.
    """

    name: str
    ra: str
    dec: str
    z: str
    quality: str | None = None
    accepted_flags: tuple[str, ...] | None = None
    min_quality: float | None = None
    hdu: int | str = 1
    z_range: tuple[float, float] = Z_RANGE

    def __post_init__(self):
        if self.quality is None and (self.accepted_flags is not None or self.min_quality is not None):
            raise ConfigError(f"spec-z format {self.name!r}: a quality rule needs a quality column")
        if self.accepted_flags is not None and self.min_quality is not None:
            raise ConfigError(f"spec-z format {self.name!r}: give accepted_flags or min_quality, not both")
        if self.quality is not None and self.accepted_flags is None and self.min_quality is None:
            raise ConfigError(
                f"spec-z format {self.name!r}: quality column {self.quality!r} needs "
                f"accepted_flags or min_quality"
            )
        if not self.z_range[0] < self.z_range[1]:
            raise ConfigError(f"spec-z format {self.name!r}: z_range must be increasing, got {self.z_range}")


#: Known spec-z tables. Override fields with `dataclasses.replace` (e.g. other flags or column names).
SPECZ_FORMATS: dict[str, SpeczFormat] = {
    "jades-dr3": SpeczFormat(
        "jades-dr3", "RA_TARG", "Dec_TARG", "z_Spec", quality="z_Spec_flag", accepted_flags=("A", "B", "C")
    ),
    "muse-hudf": SpeczFormat("muse-hudf", "RA", "DEC", "Z_MUSE", quality="CONFID", min_quality=2),
    # MUSE HUDF DR2 (Bacon et al. 2023): column names not established here, check them against the file
    "muse-hudf-dr2": SpeczFormat("muse-hudf-dr2", "RA", "DEC", "Z", quality="ZCONF", min_quality=2),
    "astrodeep-gs43": SpeczFormat(
        "astrodeep-gs43", "RA", "DEC", "zspec", quality="zspec_qual", min_quality=1
    ),
}


@dataclass(frozen=True)
class SpeczTable:
    """Spec-z entries of one catalog that passed its quality cuts.

    ``ra``, ``dec`` (deg), ``z``: ndarray (K,); ``removed``: rule -> count dropped at read time.
    """

    name: str
    ra: np.ndarray
    dec: np.ndarray
    z: np.ndarray
    n_read: int
    removed: dict[str, int] = field(default_factory=dict)


def read_specz(path: str | os.PathLike, fmt: SpeczFormat | str) -> SpeczTable:
    """Read a spec-z catalog and apply its quality and redshift-range cuts.

    Parameters
    ----------
    path : str or Path
        FITS table (extension ``fmt.hdu``) or any table astropy reads (ECSV, CSV, ...).
    fmt : SpeczFormat or str
        Column mapping, or a key of `SPECZ_FORMATS`.

    Returns
    -------
    SpeczTable

    Raises
    ------
    ConfigError
        If ``fmt`` names an unknown format.
    PrepError
        If the file is missing or unreadable, or lacks a mapped column (the message lists the columns
        present).
    """
    if isinstance(fmt, str):
        if fmt not in SPECZ_FORMATS:
            raise ConfigError(
                f"unknown spec-z format {fmt!r}: choose one of {', '.join(SPECZ_FORMATS)} or give "
                f"column names"
            )
        fmt = SPECZ_FORMATS[fmt]
    path = Path(path)
    if not path.is_file():
        raise PrepError(f"{path}: spec-z catalog not found")
    table = _read_table(path, fmt)
    wanted = [c for c in (fmt.ra, fmt.dec, fmt.z, fmt.quality) if c is not None]
    missing = [c for c in wanted if c not in table.colnames]
    if missing:
        raise PrepError(
            f"{path}: no column(s) {', '.join(missing)} for spec-z format {fmt.name!r} (columns: "
            f"{', '.join(table.colnames[:40])}); map the right names in the format"
        )
    return _apply_cuts(table, fmt)


def _read_table(path: Path, fmt: SpeczFormat) -> Table:
    try:
        if path.name.lower().endswith((".fits", ".fits.gz", ".fit")):
            return Table.read(path, hdu=fmt.hdu)
        return Table.read(path)
    except Exception as err:  # astropy raises many types for unreadable tables
        raise PrepError(f"{path}: cannot read the spec-z table ({type(err).__name__}: {err})") from None


def _text(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8", errors="replace")
    return np.char.upper(np.char.strip(arr.astype(str)))


def _apply_cuts(table: Table, fmt: SpeczFormat) -> SpeczTable:
    z = np.ma.filled(np.ma.asarray(table[fmt.z], dtype=np.float64), np.nan)
    keep = np.ones(len(table), dtype=bool)
    removed = {}
    if fmt.accepted_flags is not None:
        flags = _text(np.ma.filled(table[fmt.quality], ""))
        keep = np.isin(flags, [f.strip().upper() for f in fmt.accepted_flags])
    elif fmt.min_quality is not None:
        q = np.ma.filled(np.ma.asarray(table[fmt.quality], dtype=np.float64), np.nan)
        keep = np.isfinite(q) & (q >= fmt.min_quality)
    removed["quality"] = int((~keep).sum())
    in_range = np.isfinite(z) & (z > fmt.z_range[0]) & (z <= fmt.z_range[1])
    removed["z_range"] = int((keep & ~in_range).sum())
    keep &= in_range
    ra = np.ma.filled(np.ma.asarray(table[fmt.ra], dtype=np.float64), np.nan)
    dec = np.ma.filled(np.ma.asarray(table[fmt.dec], dtype=np.float64), np.nan)
    removed["no_position"] = int((keep & ~(np.isfinite(ra) & np.isfinite(dec))).sum())
    keep &= np.isfinite(ra) & np.isfinite(dec)
    return SpeczTable(fmt.name, ra[keep], dec[keep], z[keep], n_read=len(table), removed=removed)

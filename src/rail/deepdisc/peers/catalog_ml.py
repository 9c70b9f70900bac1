"""Catalog machine-learning peers (FlexZBoost, k-nearest neighbours) on NIRCam catalogs: options and inputs.

pz-rail-flexzboost and pz-rail-sklearn learn p(z) from the magnitudes and colours of the objects with spec-z.
They are configured for LSST (``mag_*_lsst`` columns, LSST limits, a 0-3 redshift grid); `nircam_ml_options`
gives the NIRCam equivalents for a band list, `ml_table` prepares a catalog chunk the same way for training and
estimation (Milky-Way extinction removed, unobserved bands set to the band's limit where the method cannot
take missing values), and `grid_point_estimates` gives the RAIL point estimates of any ensemble on a grid.
They answer the question a catalog user asks first: do the pixels add information beyond the photometry,
for the same labels?
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.pdfs import normalise_pdfs, point_estimates
from rail.deepdisc.peers.photometry import NONDETECTION_MAG, catalog_magnitudes
from rail.deepdisc.presets import resolve_bands

__all__ = ["DEFAULT_ML_MAG_LIMIT", "nircam_ml_options", "ml_table", "grid_point_estimates"]

#: Magnitude given to non-detections (and, for methods that need a value, to unobserved bands), every band.
DEFAULT_ML_MAG_LIMIT = 30.0


def nircam_ml_options(
    bands: Sequence[str] | str, *, ref_band: str | None = None, mag_limit: float = DEFAULT_ML_MAG_LIMIT
) -> dict:
    """pz-rail-flexzboost / pz-rail-sklearn options for a catalog with ``mag_<BAND>``/``magerr_<BAND>`` columns.

    Parameters
    ----------
    bands : str or sequence of str
        NIRCam bands or a preset, in wavelength order (colours are taken between neighbours).
    ref_band : str, optional
        Band whose magnitude is a feature besides the colours (default: the reddest, the selection band).
    mag_limit : float
        Magnitude of non-detections, every band.

    Returns
    -------
    dict
        ``bands``, ``err_bands``, ``ref_band``, ``mag_limits``, ``nondetect_val``.

    Raises
    ------
    ConfigError
        If ``ref_band`` is not one of ``bands`` or ``mag_limit`` is not finite.
    """
    bands = resolve_bands(bands if isinstance(bands, str) else list(bands))
    ref = bands[-1] if not ref_band else str(ref_band).upper()
    if ref not in bands:
        raise ConfigError(f"ref_band {ref_band!r} is not one of the bands {' '.join(bands)}")
    if not np.isfinite(mag_limit):
        raise ConfigError(f"mag_limit must be finite, got {mag_limit!r}")
    return {
        "bands": [f"mag_{b}" for b in bands],
        "err_bands": [f"magerr_{b}" for b in bands],
        "ref_band": f"mag_{ref}",
        "mag_limits": {f"mag_{b}": float(mag_limit) for b in bands},
        "nondetect_val": NONDETECTION_MAG,
    }


def ml_table(
    table: dict,
    bands: Sequence[str],
    *,
    mag_limit: float,
    ebv_column: str = "ebv",
    deredden_mw: bool = True,
    fill_missing: bool = False,
) -> dict[str, np.ndarray]:
    """A catalog chunk as the ML peers read it: magnitudes dereddened, non-detections at the limit.

    Parameters
    ----------
    table : mapping of str -> ndarray (N,)
        Catalog columns (``mag_<BAND>``, ``magerr_<BAND>`` and any others, copied).
    bands : sequence of str
        NIRCam bands.
    mag_limit : float
        Magnitude of non-detections (`NONDETECTION_MAG`, with error 1), and of unobserved (NaN) bands when
        ``fill_missing``.
    ebv_column : str
        Column with E(B-V) ("" or absent: no correction).
    deredden_mw : bool
        Remove Milky-Way extinction.
    fill_missing : bool
        Give unobserved bands the limit (for methods that cannot take NaN, such as a k-d tree); otherwise they
        stay NaN (gradient-boosted trees handle missing values).

    Returns
    -------
    dict of str -> ndarray
        A new table (the input is not modified).
    """
    mags, errs = catalog_magnitudes(table, bands, ebv_column=ebv_column, deredden_mw=deredden_mw)
    out = {k: np.asarray(v) for k, v in table.items()}
    nondet = mags == NONDETECTION_MAG
    fill = nondet | (~np.isfinite(mags) if fill_missing else np.zeros_like(nondet))
    mags = np.where(fill, mag_limit, mags)
    errs = np.where(fill, 1.0, errs)
    for k, band in enumerate(bands):
        out[f"mag_{band}"], out[f"magerr_{band}"] = mags[:, k], errs[:, k]
    return out


def grid_point_estimates(ensemble, zgrid: np.ndarray) -> dict[str, np.ndarray]:
    """``zmode``, ``zmean``, ``zmedian`` of a qp ensemble from its PDFs on a grid (never qp's moments).

    Parameters
    ----------
    ensemble : qp.Ensemble
        Any representation (mixtures, interpolated grids).
    zgrid : ndarray (NZ,)
        Redshift grid, fine enough for the PDFs.

    Returns
    -------
    dict of str -> ndarray (N,)
    """
    pdfs = normalise_pdfs(zgrid, np.atleast_2d(ensemble.pdf(zgrid)))
    return point_estimates(zgrid, pdfs)

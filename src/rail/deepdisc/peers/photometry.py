"""Catalog photometry for the template-fitting peers: from a TileSet's objects table to fluxes.

The peers read the primary objects of a TileSet (``mag_<BAND>``, ``magerr_<BAND>``; NaN = not measured) and,
where the TileSet has them, its fluxes (``flux_<BAND>``, ``fluxerr_<BAND>``, nJy, negative allowed), which the
template fitters fit (`catalog_fluxes`).
Where a magnitude is missing, `aperture_photometry` can measure it on the tile images (circular apertures,
photutils), so image-only inputs work too. Conventions shared by both peers:

- a *non-detection* is ``mag = NONDETECTION_MAG`` (99, BPZ's convention) with ``magerr`` holding the 1-sigma
  limiting magnitude; aperture fluxes below one sigma become non-detections;
- a *missing* measurement is NaN (no coverage): the band is left out of that object's fit;
- Milky-Way extinction is removed with `deredden` from the ``ebv`` column, with the law the simulator reddens
  with (`rail.deepdisc.dust.band_extinction`: Gordon et al. 2023, R_V = 3.1, averaged over each band).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.dust import band_extinction
from rail.deepdisc.exceptions import ConfigError, TileSetError
from rail.deepdisc.presets import resolve_bands
from rail.deepdisc.tileset.format import TileSet

__all__ = [
    "AB_ZEROPOINT_NJY",
    "NONDETECTION_MAG",
    "MIN_MAG_ERROR",
    "ApertureSettings",
    "catalog_columns",
    "tileset_to_catalog",
    "aperture_photometry",
    "deredden",
    "magnitudes_to_fluxes",
    "catalog_magnitudes",
    "band_flux_columns",
    "catalog_fluxes",
]

logger = logging.getLogger(__name__)

#: AB magnitude of 1 nJy: m = -2.5 log10(f / nJy) + 31.4.
AB_ZEROPOINT_NJY = 31.4
#: Smallest magnitude error used (BPZ's ``mag_err_min``): catalogs with zero errors stay fittable.
MIN_MAG_ERROR = 0.005
#: Magnitude marking a non-detection (its ``magerr`` holds the 1-sigma limiting magnitude).
NONDETECTION_MAG = 99.0
#: Multiplicative factors from supported image flux units to nJy.
_TO_NJY = {"njy": 1.0, "ujy": 1.0e3, "mjy": 1.0e6, "jy": 1.0e9}
#: Object columns copied to the catalog besides the photometry.
_PASS_COLUMNS = ("object_id", "ra", "dec", "redshift", "ebv")


@dataclass(frozen=True)
class ApertureSettings:
    """Circular-aperture photometry options.

    Parameters
    ----------
    radius_arcsec : float
        Aperture radius, arcsec (0.15" ~ JADES CIRC1 radius 0.1-0.2").
    sky_sigma_clip : float
        Sigma-clipping threshold for the sky noise estimate on pixels outside every segment.
    """

    radius_arcsec: float = 0.15
    sky_sigma_clip: float = 3.0

    def __post_init__(self):
        if not self.radius_arcsec > 0:
            raise ConfigError(f"aperture radius_arcsec must be > 0, got {self.radius_arcsec!r}")
        if not self.sky_sigma_clip > 0:
            raise ConfigError(f"sky_sigma_clip must be > 0, got {self.sky_sigma_clip!r}")


def catalog_columns(bands: Sequence[str]) -> list[str]:
    """List the peers' catalog columns: ``object_id ra dec redshift ebv``, ``mag_``/``magerr_`` per band.

    Parameters
    ----------
    bands : sequence of str
        NIRCam bands, in column order.

    Returns
    -------
    list of str
        Column names.
    """
    cols = list(_PASS_COLUMNS)
    for band in bands:
        cols += [f"mag_{band}", f"magerr_{band}"]
    return cols


def tileset_to_catalog(
    tileset: TileSet,
    *,
    bands: Sequence[str] | str | None = None,
    measure_missing: bool = False,
    aperture: ApertureSettings | None = None,
) -> dict[str, np.ndarray]:
    """Turn the primary objects of a TileSet into a photometric catalog for the peers.

    Parameters
    ----------
    tileset : TileSet
        Input tiles and objects.
    bands : str or sequence of str, optional
        Bands to keep (a preset name or a list; default: all of the TileSet's bands).
    measure_missing : bool
        Measure NaN magnitudes with `aperture_photometry` on the tiles.
    aperture : ApertureSettings, optional
        Aperture options (default `ApertureSettings()`).

    Returns
    -------
    dict of str -> ndarray (P,)
        One row per primary object, in output order, with `catalog_columns` (magnitudes AB), plus the
        TileSet's ``flux_<BAND>``/``fluxerr_<BAND>`` (nJy) where it has them (``deepdisc-tiles`` v2).

    Raises
    ------
    TileSetError
        If a requested band is not in the TileSet.
    """
    bands = tileset.bands if bands is None else resolve_bands(bands)
    missing = [b for b in bands if b not in tileset.bands]
    if missing:
        raise TileSetError(
            f"{tileset.source}: band(s) {' '.join(missing)} not in this TileSet "
            f"(it has {' '.join(tileset.bands)})"
        )
    prim = tileset.primary_objects()
    out = {c: np.asarray(prim[c]).copy() for c in _PASS_COLUMNS}
    for band in bands:
        names = [f"mag_{band}", f"magerr_{band}"] + [c for c in band_flux_columns(band) if c in prim]
        out.update({c: np.asarray(prim[c], float).copy() for c in names})
    if measure_missing:
        _fill_missing(tileset, out, bands, aperture or ApertureSettings())
    return out


def _fill_missing(tileset: TileSet, out: dict, bands: Sequence[str], aperture: ApertureSettings) -> None:
    todo = [b for b in bands if np.isnan(out[f"mag_{b}"]).any()]
    if not todo:
        return
    mags, errs = aperture_photometry(tileset, bands=todo, aperture=aperture)
    filled = 0
    for k, band in enumerate(todo):
        hole = np.isnan(out[f"mag_{band}"])
        out[f"mag_{band}"][hole] = mags[hole, k]
        out[f"magerr_{band}"][hole] = errs[hole, k]
        filled += int(np.count_nonzero(hole))
    logger.info("aperture photometry filled %d missing (object, band) magnitudes", filled)


def aperture_photometry(
    tileset: TileSet, *, bands: Sequence[str] | str | None = None, aperture: ApertureSettings | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Circular-aperture AB magnitudes of every primary object, measured on its own tile.

    Parameters
    ----------
    tileset : TileSet
        Tiles (``flux_unit`` nJy, uJy, mJy or Jy per pixel) and objects (``x``, ``y`` centroids).
    bands : str or sequence of str, optional
        Bands to measure (default: all).
    aperture : ApertureSettings, optional
        Radius and sky-noise options.

    Returns
    -------
    mags, magerrs : ndarray (P, B)
        AB magnitudes and errors of the P primary objects. Fluxes below one sigma are non-detections
        (``mag = NONDETECTION_MAG``, ``magerr`` = the 1-sigma limiting magnitude).

    Raises
    ------
    TileSetError
        If the TileSet's flux unit is not a known f_nu unit.
    """
    aperture = aperture or ApertureSettings()
    bands = tileset.bands if bands is None else resolve_bands(bands)
    scale = _TO_NJY.get(tileset.flux_unit.strip().lower())
    if scale is None:
        raise TileSetError(
            f"{tileset.source}: flux_unit {tileset.flux_unit!r} is not an f_nu unit "
            f"({', '.join(_TO_NJY)}): aperture photometry needs calibrated images"
        )
    return _aperture_photometry(tileset, [tileset.bands.index(b) for b in bands], scale, aperture)


def _aperture_photometry(
    tileset: TileSet, chans: list[int], to_njy: float, aperture: ApertureSettings
) -> tuple[np.ndarray, np.ndarray]:
    from astropy.stats import sigma_clipped_stats
    from photutils.aperture import CircularAperture
    from photutils.aperture import aperture_photometry as _photometry

    radius_pix = aperture.radius_arcsec / tileset.pixel_scale
    sel = np.flatnonzero(tileset.objects["primary"])
    flux = np.full((len(sel), len(chans)), np.nan)
    noise = np.full_like(flux, np.nan)
    for tile in np.unique(tileset.objects["tile"][sel]):
        rows = np.flatnonzero(tileset.objects["tile"][sel] == tile)
        xy = np.column_stack([tileset.objects["x"][sel][rows], tileset.objects["y"][sel][rows]])
        apertures = CircularAperture(xy, r=radius_pix)
        sky = tileset.segmaps[tile] == 0
        for k, c in enumerate(chans):
            image = np.asarray(tileset.images[tile, c], float)
            _, median, std = sigma_clipped_stats(image[sky], sigma=aperture.sky_sigma_clip)
            table = _photometry(image - median, apertures)
            flux[rows, k] = np.asarray(table["aperture_sum"], float) * to_njy
            noise[rows, k] = std * np.sqrt(apertures.area) * to_njy
    return _to_magnitudes(flux, noise)


def _to_magnitudes(flux_njy: np.ndarray, err_njy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    detected = flux_njy > err_njy
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(detected, AB_ZEROPOINT_NJY - 2.5 * np.log10(flux_njy), NONDETECTION_MAG)
        magerr = np.where(
            detected, 2.5 / np.log(10) * err_njy / flux_njy, AB_ZEROPOINT_NJY - 2.5 * np.log10(err_njy)
        )
    bad = ~np.isfinite(flux_njy) | ~(err_njy > 0)
    mag[bad], magerr[bad] = np.nan, np.nan
    return mag, magerr


def deredden(mags: np.ndarray, ebv: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """Remove Milky-Way extinction from AB magnitudes.

    Parameters
    ----------
    mags : ndarray (N, B)
        AB magnitudes; NaN and non-detections (`NONDETECTION_MAG`) are left as they are.
    ebv : ndarray (N,)
        E(B-V) per object, mag; NaN counts as 0.
    bands : sequence of str
        The B bands.

    Returns
    -------
    ndarray (N, B)
        ``mags - A_band * ebv`` for detected values.
    """
    ebv = np.nan_to_num(np.asarray(ebv, float))
    corr = ebv[:, None] * band_extinction(bands)[None, :]
    detected = np.isfinite(mags) & (mags != NONDETECTION_MAG)
    return np.where(detected, mags - corr, mags)


def magnitudes_to_fluxes(mags: np.ndarray, magerrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitudes and errors to f_nu and its error in nJy.

    Parameters
    ----------
    mags, magerrs : ndarray (N, B)
        AB magnitudes and errors (NaN = missing; `NONDETECTION_MAG` = non-detection with the 1-sigma limit in
        ``magerrs``).

    Returns
    -------
    flux, flux_err : ndarray (N, B)
        nJy; missing values are NaN in both, non-detections have zero flux and the limit as error. Magnitude
        errors below `MIN_MAG_ERROR` are raised to it.
    """
    mags = np.asarray(mags, float)
    nondet = mags == NONDETECTION_MAG
    magerrs = np.asarray(magerrs, float)
    magerrs = np.where(nondet | ~np.isfinite(magerrs), magerrs, np.maximum(magerrs, MIN_MAG_ERROR))
    flux = 10.0 ** (-0.4 * (np.where(nondet, np.inf, mags) - AB_ZEROPOINT_NJY))
    err = flux * np.log(10) / 2.5 * magerrs
    err = np.where(nondet, 10.0 ** (-0.4 * (magerrs - AB_ZEROPOINT_NJY)), err)
    missing = ~np.isfinite(mags) | ~np.isfinite(magerrs) | ~(err > 0)
    flux = np.where(missing, np.nan, flux)
    err = np.where(missing, np.nan, err)
    return flux, err


def catalog_magnitudes(
    table: dict, bands: Sequence[str], *, ebv_column: str = "ebv", deredden_mw: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Stack a catalog's ``mag_<BAND>``/``magerr_<BAND>`` columns, optionally removing Milky-Way extinction.

    Parameters
    ----------
    table : mapping of str -> ndarray (N,)
        Catalog columns (a chunk from a RAIL table handle, or `tileset_to_catalog` output).
    bands : sequence of str
        Bands, in fit order.
    ebv_column : str
        Column with E(B-V) (mag); "" or a missing column means no correction.
    deredden_mw : bool
        Apply `deredden`.

    Returns
    -------
    mags, magerrs : ndarray (N, B)

    Raises
    ------
    ConfigError
        If a band's columns are missing, naming them.
    """
    missing = [c for b in bands for c in (f"mag_{b}", f"magerr_{b}") if c not in table]
    if missing:
        raise ConfigError(f"input catalog lacks column(s) {', '.join(missing)} (columns: {', '.join(table)})")
    mags = np.column_stack([np.asarray(table[f"mag_{b}"], float) for b in bands])
    errs = np.column_stack([np.asarray(table[f"magerr_{b}"], float) for b in bands])
    if deredden_mw and ebv_column and ebv_column in table:
        mags = deredden(mags, np.asarray(table[ebv_column], float), bands)
    return mags, errs


def band_flux_columns(band: str) -> tuple[str, str]:
    """Catalog columns of a band's flux density and its error (nJy): ``flux_<BAND>``, ``fluxerr_<BAND>``."""
    return f"flux_{band}", f"fluxerr_{band}"


def catalog_fluxes(
    table: dict,
    bands: Sequence[str],
    *,
    ebv_column: str = "ebv",
    deredden_mw: bool = True,
    use_fluxes: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Fluxes and errors (nJy) of a catalog, from its flux columns when it has them, else its magnitudes.

    Parameters
    ----------
    table : mapping of str -> ndarray (N,)
        Catalog columns: ``flux_<BAND>``/``fluxerr_<BAND>`` (nJy, negative allowed, NaN = not measured) and/or
        ``mag_<BAND>``/``magerr_<BAND>``.
    bands : sequence of str
        Bands, in fit order.
    ebv_column : str
        Column with E(B-V) (mag); "" or a missing column means no correction.
    deredden_mw : bool
        Remove Milky-Way extinction (fluxes and errors multiplied by 10**(0.4 A_band)).
    use_fluxes : bool
        Read the flux columns when every band has them (a non-detection is then a measured flux near zero);
        False, or a table without them, converts the magnitudes (`magnitudes_to_fluxes`: a non-detection is
        zero flux with its 1-sigma limit as error).

    Returns
    -------
    flux, flux_err : ndarray (N, B)
        nJy; NaN where not measured.

    Raises
    ------
    ConfigError
        If neither the flux nor the magnitude columns of every band are present, naming what is missing.
    """
    have_fluxes = all(c in table for b in bands for c in band_flux_columns(b))
    if not (use_fluxes and have_fluxes):
        mags, errs = catalog_magnitudes(table, bands, ebv_column=ebv_column, deredden_mw=deredden_mw)
        return magnitudes_to_fluxes(mags, errs)
    flux = np.column_stack([np.asarray(table[band_flux_columns(b)[0]], float) for b in bands])
    err = np.column_stack([np.asarray(table[band_flux_columns(b)[1]], float) for b in bands])
    missing = ~np.isfinite(flux) | ~(err > 0)
    flux, err = np.where(missing, np.nan, flux), np.where(missing, np.nan, err)
    if deredden_mw and ebv_column and ebv_column in table:
        ebv = np.nan_to_num(np.asarray(table[ebv_column], float))
        factor = 10.0 ** (0.4 * ebv[:, None] * band_extinction(bands)[None, :])
        flux, err = flux * factor, err * factor
    return flux, err

"""JADES-format catalogs of a simulated mosaic: NIRCam photometry (DR2 layout) and NIRSpec redshifts (DR3).

The photometric catalog has one table per extension, opened by EXTNAME: ``FLAG``, ``SIZE``, ``CIRC``,
``KRON``, ``PHOTOZ``; every table starts with ``ID``, ``RA``, ``DEC`` in the same row order; fluxes are nJy.
``{BAND}_KRON`` holds the simulator's aperture-corrected footprint flux (see `photometry`), ``{BAND}_CIRC{k}``
circular-aperture sums (radii in the CIRC header, ``CIRC{k}_R`` in arcsec), ``_e`` and ``_ei`` their errors.
``SIZE`` positions are 0-based pixels; ``BBOX_XMAX``/``BBOX_YMAX`` are inclusive. ``PHOTOZ`` is a stand-in
photo-z (the true redshift with a realistic scatter and outliers), not a template fit.
The spectroscopic catalog lists the labelled objects with flags A-C and failed targets with flags D-E.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from rail.deepdisc.simulation.fitsio import write_fits_atomic
from rail.deepdisc.simulation.noise import aperture_mask, correlated_sum_variance
from rail.deepdisc.simulation.settings import SimulationSettings

__all__ = [
    "CIRC_RADII_ARCSEC",
    "circular_fluxes",
    "photometry_catalog_hdul",
    "specz_catalog_hdul",
    "write_photometry_catalog",
    "write_specz_catalog",
]

CIRC_RADII_ARCSEC = (0.10, 0.15, 0.25, 0.30, 0.35, 0.50, 0.70)
SUBPIXELS = 5
STAR_FLAG = 1
PHOTOZ_SIGMA = 0.03  # sigma_z / (1 + z) of the stand-in photo-z at high S/N
PHOTOZ_OUTLIER = 0.05
FAILED_TARGET_RATIO = 0.25  # failed (flag D/E) targets per labelled object
NIRSPEC_ID_OFFSET = 100_000
REFERENCE_EXPOSURE_S = 10_000.0  # exposure time of a 29-mag 5-sigma depth (sets {BAND}_TEXP)


def circular_fluxes(
    images: np.ndarray, x: np.ndarray, y: np.ndarray, radii_px, *, row0: int = 0, height: int | None = None
) -> np.ndarray:
    """Sum images in circular apertures, with sub-pixel (5x5) edge weights.

    Parameters
    ----------
    images : ndarray (B, H, W)
        The image, or rows ``row0 ..`` of a taller one (then every aperture must lie in them or off the image).
    x, y : ndarray (K,)
        Aperture centres, 0-based pixels of the whole image.
    radii_px : sequence of float (R,)
        Aperture radii, pixels.
    row0 : int
        Image row of ``images[:, 0]``.
    height : int, optional
        Rows of the whole image (default: those of ``images``).

    Returns
    -------
    ndarray (K, R, B)
    """
    nb, h, w = images.shape
    h = h if height is None else height
    radii = np.asarray(radii_px, float)
    half = int(np.ceil(radii.max())) + 1
    off = (np.arange(SUBPIXELS) + 0.5) / SUBPIXELS - 0.5
    out = np.zeros((len(x), len(radii), nb))
    grid = np.arange(-half, half + 1)
    for k, (xc, yc) in enumerate(zip(x, y)):
        ix, iy = int(np.round(xc)), int(np.round(yc))
        px = grid[None, :, None, None] + ix + off[None, None, None, :] - xc
        py = grid[:, None, None, None] + iy + off[None, None, :, None] - yc
        r2 = px**2 + py**2  # (S, S, sub, sub)
        weights = (r2[None] <= radii[:, None, None, None, None] ** 2).mean(axis=(-1, -2))  # (R, S, S)
        ys, xs = grid + iy, grid + ix
        okx, oky = (xs >= 0) & (xs < w), (ys >= 0) & (ys < h)
        stamp = images[:, ys[oky] - row0][:, :, xs[okx]]
        out[k] = np.einsum("rij,bij->rb", weights[:, oky][:, :, okx], stamp)
    return out


def _stand_in_photoz(rng, z, snr):
    sigma = PHOTOZ_SIGMA * (1.0 + z) * np.sqrt(1.0 + (10.0 / np.maximum(snr, 1.0)) ** 2)
    zp = z + rng.normal(0.0, 1.0, len(z)) * sigma
    out = rng.uniform(size=len(z)) < PHOTOZ_OUTLIER
    zp = np.where(out, rng.uniform(0.0, 8.0, len(z)), zp)
    zp = np.clip(zp, 0.0, None)
    return zp, np.clip(zp - sigma, 0.0, None), zp + sigma


def photometry_catalog_hdul(
    field, settings: SimulationSettings, rng: np.random.Generator, *, apertures: np.ndarray | None = None
) -> fits.HDUList:
    """Build the JADES-layout photometric catalog of a simulated mosaic field.

    ``apertures`` (K, R, B): the `circular_fluxes` of the catalog objects at `CIRC_RADII_ARCSEC`, when
    already measured (the images are then not needed: ``field.rendered`` only gives ``sigma``).
    """
    cat, r = field.catalog, field.rendered
    ids = cat["seg_id"].astype(np.int64)
    base = {"ID": ids, "RA": cat["ra"], "DEC": cat["dec"]}
    area = settings.pixel_scale**2
    flag, size, circ, kron = Table(dict(base)), Table(dict(base)), Table(dict(base)), Table(dict(base))
    flag["FLAG_ST"] = np.where(cat["true_is_star"], STAR_FLAG, 0).astype(np.int32)
    flag["FLAG_BS"] = np.zeros(len(ids), np.int32)
    radii_px = np.asarray(CIRC_RADII_ARCSEC) / settings.pixel_scale
    ap = circular_fluxes(r.images, cat["x"], cat["y"], radii_px) if apertures is None else apertures
    ap_var = [
        correlated_sum_variance(aperture_mask(2 * rad), settings.noise_correlation_px) for rad in radii_px
    ]
    for b, band in enumerate(settings.bands):
        wht = 1.0 / r.sigma[b] ** 2
        flag[f"{band}_FLAG"] = np.zeros(len(ids), np.int32)
        flag[f"{band}_WHT"] = np.full(len(ids), wht)
        flag[f"{band}_TEXP"] = np.full(
            len(ids), REFERENCE_EXPOSURE_S * 10 ** (0.8 * (settings.depths[b] - 29.0))
        )
        for k, rad in enumerate(radii_px):
            err = r.sigma[b] * np.sqrt(ap_var[k])
            circ[f"{band}_CIRC{k}"] = ap[:, k, b]
            circ[f"{band}_CIRC{k}_e"] = np.full(len(ids), err)
            circ[f"{band}_CIRC{k}_ei"] = np.full(len(ids), err)
        kron[f"{band}_KRON"] = cat[f"flux_{band}"]
        kron[f"{band}_KRON_e"] = cat[f"flux_err_{band}"]
        kron[f"{band}_KRON_ei"] = cat[f"flux_err_{band}"]
    a_pix = np.where(  # spurious rows (no truth) are points
        cat["true_r_e_arcsec"] > 0, cat["true_r_e_arcsec"] / np.sqrt(cat["true_axis_ratio"]), 0.0
    )
    q = np.nan_to_num(cat["true_axis_ratio"], nan=1.0)
    size["X"], size["Y"] = cat["x"], cat["y"]
    size["A"] = a_pix / settings.pixel_scale
    size["B"] = size["A"] * q
    size["PA"] = np.zeros(len(ids))
    size["BBOX_XMIN"], size["BBOX_XMAX"] = cat["bbox_x0"].astype(int), cat["bbox_x1"].astype(int) - 1
    size["BBOX_YMIN"], size["BBOX_YMAX"] = cat["bbox_y0"].astype(int), cat["bbox_y1"].astype(int) - 1
    size["NPIX_DET"] = cat["true_npix"].astype(np.int64)
    size["AREA"] = cat["true_npix"] * area
    photoz = Table(dict(base))
    photoz["EAZY_z_a"], photoz["EAZY_l68"], photoz["EAZY_u68"] = _stand_in_photoz(
        rng, np.nan_to_num(cat["redshift_true"]), cat["true_detection_snr"]
    )
    hdus = [fits.PrimaryHDU()]
    for name, table in (("FLAG", flag), ("SIZE", size), ("CIRC", circ), ("KRON", kron), ("PHOTOZ", photoz)):
        hdu = fits.BinTableHDU(table, name=name)
        if name == "CIRC":
            for k, rad in enumerate(CIRC_RADII_ARCSEC):
                hdu.header[f"CIRC{k}_R"] = (rad, "aperture radius, arcsec")
        hdus.append(hdu)
    return fits.HDUList(hdus)


def specz_catalog_hdul(field, rng: np.random.Generator) -> fits.HDUList:
    """Build the NIRSpec spec-z table (HDU1) of a simulated mosaic field: labels (A-C) and failures (D-E)."""
    cat = field.catalog
    labelled = np.flatnonzero(np.isfinite(cat["redshift"]))
    pool = np.flatnonzero(~np.isfinite(cat["redshift"]) & ~cat["true_is_star"] & np.isfinite(cat["true_mag_F444W"]))
    n_fail = min(len(pool), int(round(FAILED_TARGET_RATIO * len(labelled))))
    weights = np.exp(-(cat["true_mag_F444W"][pool] - 27.0))
    failed = rng.choice(pool, size=n_fail, replace=False, p=weights / weights.sum()) if n_fail else pool[:0]
    rows = np.r_[labelled, np.sort(failed)]
    z = np.r_[cat["redshift"][labelled], rng.uniform(0.0, 8.0, n_fail)]
    flags = np.r_[cat["spec_flag"][labelled].astype(str), rng.choice(["D", "E"], size=n_fail)]
    n = len(rows)
    table = Table(
        {
            "NIRSpec_ID": NIRSPEC_ID_OFFSET + np.arange(n, dtype=np.int64),
            "NIRCam_ID": cat["seg_id"][rows].astype(np.int64),
            "TIER": np.where(cat["true_mag_F444W"][rows] < 27.5, "Deep/JADES", "Medium/JADES"),
            "Field": np.full(n, "GOODS-S"),
            "RA_TARG": cat["ra"][rows],
            "Dec_TARG": cat["dec"][rows],
            "z_Spec": z,
            "z_Spec_flag": flags,
        }
    )
    return fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(table, name="SPECZ")])


def write_photometry_catalog(field, settings, rng, path: str | Path, *, apertures=None) -> Path:
    """Write `photometry_catalog_hdul` atomically to ``path``."""
    return write_fits_atomic(photometry_catalog_hdul(field, settings, rng, apertures=apertures), path)


def write_specz_catalog(field, rng, path: str | Path) -> Path:
    """Write `specz_catalog_hdul` atomically to ``path``."""
    return write_fits_atomic(specz_catalog_hdul(field, rng), path)

"""Small files in the public JADES GOODS-S layouts (docs/real-data.md), written by the tests.

Mosaics: ``hlsp_jades_jwst_nircam_goods-s-deep_{band}_v2.0_drz.fits`` with an empty PRIMARY, ``SCI`` (MJy/sr,
``PIXAR_SR``, ``PIXAR_A2``, WCS), ``ERR`` and optionally ``WHT``; segmentation image in the PRIMARY HDU; the
photometric catalog with ``FLAG``, ``SIZE``, ``CIRC``, ``KRON`` tables (fluxes in nJy); the DR3 NIRSpec table
(byte-string flags); and a tiny SFD dust map in dustmaps' two-file ZEA layout.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

PIXEL_SCALE = 0.03  # arcsec
PIXAR_SR = (PIXEL_SCALE * np.pi / 180 / 3600) ** 2
TO_NJY = PIXAR_SR * 1e15
FIELD_CENTRE = (53.16, -27.78)  # deg, GOODS-S
PREFIX = "hlsp_jades_jwst_nircam_goods-s-deep"


def make_wcs(shape, *, scale=PIXEL_SCALE, centre=FIELD_CENTRE, crpix_shift=(0.0, 0.0)) -> WCS:
    """TAN WCS, north up, ``scale`` arcsec/pix, the centre at the middle of ``shape`` (ny, nx)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(centre)
    w.wcs.crpix = [(shape[1] + 1) / 2 + crpix_shift[1], (shape[0] + 1) / 2 + crpix_shift[0]]
    w.wcs.cd = np.array([[-scale / 3600, 0.0], [0.0, scale / 3600]])
    return w


def mosaic_name(band: str) -> str:
    return f"{PREFIX}_{band.lower()}_v2.0_drz.fits"


def write_mosaic(path, sci_mjysr, wcs: WCS, *, err=None, wht=None, header_extra=None) -> Path:
    """A JADES DR2 band file: PRIMARY (header only), SCI, ERR (and WHT when given)."""
    primary = fits.PrimaryHDU()
    primary.header["TARG_RA"], primary.header["TARG_DEC"] = FIELD_CENTRE
    hdr = wcs.to_header()
    hdr["BUNIT"] = "MJy/sr"
    hdr["PIXAR_SR"] = PIXAR_SR
    hdr["PIXAR_A2"] = PIXEL_SCALE**2
    for k, v in (header_extra or {}).items():
        if v is None:
            del hdr[k]
        else:
            hdr[k] = v
    hdus = [primary, fits.ImageHDU(np.asarray(sci_mjysr, np.float32), hdr, name="SCI")]
    err = np.full(np.shape(sci_mjysr), 0.01, np.float32) if err is None else err
    hdus.append(fits.ImageHDU(np.asarray(err, np.float32), wcs.to_header(), name="ERR"))
    if wht is not None:
        hdus.append(fits.ImageHDU(np.asarray(wht, np.float32), wcs.to_header(), name="WHT"))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return Path(path)


def write_segmentation(path, seg, wcs: WCS) -> Path:
    fits.PrimaryHDU(np.asarray(seg, np.int32), wcs.to_header()).writeto(path, overwrite=True)
    return Path(path)


def write_small_segmentation(folder, shape) -> Path:
    """``seg_segmentation.fits``: objects 7 (3 x 6 px) and 123456 (9 x 2 px), and a stray pixel of label 999."""
    labels = np.zeros(shape, np.int32)
    labels[2:5, 3:9] = 7
    labels[10:19, 20:22] = 123456
    labels[15, 0] = 999  # not in the catalog
    return write_segmentation(Path(folder) / "seg_segmentation.fits", labels, make_wcs(shape))


def write_photometry(
    path, ids, ra, dec, flux_njy: dict, err_njy: dict, *, star=None, err_suffix="_e"
) -> Path:
    """JADES DR2 catalog: FLAG, SIZE, CIRC, KRON tables, row-aligned, fluxes in nJy."""
    n = len(ids)
    star = np.zeros(n, bool) if star is None else np.asarray(star)
    base = [
        fits.Column("ID", "K", array=np.asarray(ids)),
        fits.Column("RA", "D", array=np.asarray(ra)),
        fits.Column("DEC", "D", array=np.asarray(dec)),
    ]
    flag = base + [
        fits.Column("FLAG_ST", "J", array=np.where(star, 1, 32768).astype(np.int32)),
        fits.Column("FLAG_BS", "J", array=np.zeros(n, np.int32)),
    ]
    size = base + [fits.Column("X", "D", array=np.zeros(n)), fits.Column("Y", "D", array=np.zeros(n))]
    kron, circ = list(base), list(base)
    for band, f in flux_njy.items():
        kron += [
            fits.Column(f"{band}_KRON", "D", array=f),
            fits.Column(f"{band}_KRON{err_suffix}", "D", array=err_njy[band]),
            fits.Column(f"{band}_KRON_ei", "D", array=2 * err_njy[band]),
        ]
        for k in range(7):
            circ += [
                fits.Column(f"{band}_CIRC{k}", "D", array=f * (0.5 + 0.05 * k)),
                fits.Column(f"{band}_CIRC{k}_e", "D", array=err_njy[band]),
            ]
    hdus = [fits.PrimaryHDU()] + [
        fits.BinTableHDU.from_columns(cols, name=name)
        for name, cols in (("FLAG", flag), ("SIZE", size), ("CIRC", circ), ("KRON", kron))
    ]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return Path(path)


def write_nirspec(path, ra, dec, z, flags, nircam_id=None) -> Path:
    """JADES DR3 NIRSpec table in HDU1 with byte-string flags."""
    n = len(ra)
    nircam_id = np.arange(n) if nircam_id is None else nircam_id
    cols = [
        fits.Column("NIRSpec_ID", "K", array=np.arange(n) + 10000),
        fits.Column("NIRCam_ID", "K", array=np.asarray(nircam_id)),
        fits.Column("TIER", "10A", array=np.array([b"Deep"] * n)),
        fits.Column("Field", "10A", array=np.array([b"GOODS-S"] * n)),
        fits.Column("RA_TARG", "D", array=np.asarray(ra)),
        fits.Column("Dec_TARG", "D", array=np.asarray(dec)),
        fits.Column("z_Spec", "D", array=np.asarray(z)),
        fits.Column("z_Spec_flag", "2A", array=np.array([f.encode() + b" " for f in flags])),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path, overwrite=True)
    return Path(path)


def sfd_header(pole: str, npix: int) -> fits.Header:
    """Header of an SFD-style ZEA polar map with ``npix`` pixels a side (SFD uses 4096)."""
    scale = 0.0395646818624 * 4096 / npix
    sign = 1 if pole == "ngp" else -1
    hdr = fits.Header()
    hdr["CTYPE1"], hdr["CTYPE2"] = "GLON-ZEA", "GLAT-ZEA"
    hdr["CRPIX1"] = hdr["CRPIX2"] = npix / 2 + 0.5
    hdr["CRVAL1"], hdr["CRVAL2"] = 0.0, 90.0 * sign
    hdr["CD1_1"], hdr["CD1_2"], hdr["CD2_1"], hdr["CD2_2"] = -scale * sign, 0.0, 0.0, -scale
    hdr["LONPOLE"] = 180.0 if pole == "ngp" else 0.0
    hdr["LAM_NSGP"] = sign
    hdr["LAM_SCAL"] = npix // 2
    return hdr


def sfd_values(pole: str, npix: int) -> np.ndarray:
    """Known map: linear in pixel indices (bilinear interpolation is exact), offset per pole."""
    yy, xx = np.mgrid[0:npix, 0:npix]
    return (0.005 + 1e-4 * xx + 2e-4 * yy + (0.5 if pole == "ngp" else 0.0)).astype(np.float32)


def write_sfd_map(folder, npix: int = 64) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for pole in ("ngp", "sgp"):
        fits.PrimaryHDU(sfd_values(pole, npix), sfd_header(pole, npix)).writeto(
            folder / f"SFD_dust_4096_{pole}.fits", overwrite=True
        )
    return folder


@dataclass
class Field:
    """A small test field on disk and its truth."""

    directory: Path
    bands: tuple
    shape: tuple
    wcs: WCS
    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    seg: np.ndarray
    catalog: Path
    segmentation: Path
    specz: Path
    z: np.ndarray
    mosaics: dict = field(default_factory=dict)


def make_field(
    directory,
    *,
    bands=("F115W", "F277W", "F444W"),
    shape=(96, 160),
    n_objects=40,
    seed=3,
    nan_box=(0, 30, 0, 40),
    offset_band="F277W",
    n_specz=24,
) -> Field:
    """Write a JADES-layout field: disk-shaped objects, a NaN gap, one band on an offset (larger) grid.

    ``nan_box`` = (y0, y1, x0, x1) has no coverage in the first band (NaN SCI); a 2x2 patch of ERR == 0 sits
    at (60, 100) in the last band. ``offset_band`` is written on a grid 2 px (y) and 3 px (x) larger on
    each side.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ny, nx = shape
    wcs = make_wcs(shape)
    x = rng.uniform(3, nx - 4, n_objects)
    y = rng.uniform(3, ny - 4, n_objects)
    radius = rng.uniform(1.5, 3.5, n_objects)
    # one large object straddling the labelled-grid boundary x = 40 so that a grid tile cuts it
    x[0], y[0], radius[0] = 40.2, 45.3, 6.0
    ids = rng.choice(np.arange(1000, 100000), n_objects, replace=False)
    seg = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[0:ny, 0:nx]
    order = np.argsort(-radius)  # big ones first, small ones drawn on top
    flux = {b: np.zeros(n_objects) for b in bands}
    images = {b: rng.normal(0, 0.02, shape) for b in bands}
    for i in order:
        disk = (xx - x[i]) ** 2 + (yy - y[i]) ** 2 <= radius[i] ** 2
        seg[disk] = ids[i]
        for k, b in enumerate(bands):
            f = 50.0 * (1 + k) * radius[i]
            flux[b][i] = f
            images[b][disk] += f / disk.sum()
    ra, dec = wcs.pixel_to_world_values(x, y)
    err = {b: flux[b] * 0.05 for b in bands}
    star = np.zeros(n_objects, bool)
    star[5] = True
    catalog = write_photometry(
        directory / f"{PREFIX}_photometry_v2.0_catalog.fits", ids, ra, dec, flux, err, star=star
    )
    segmentation = write_segmentation(directory / f"{PREFIX}_segmentation_v2.0_drz.fits", seg, wcs)
    mosaics = {}
    for k, b in enumerate(bands):
        sci = images[b] / TO_NJY
        err_img = np.full(shape, 0.01, np.float32)
        if k == 0:
            sci[nan_box[0] : nan_box[1], nan_box[2] : nan_box[3]] = np.nan
        if k == len(bands) - 1:
            err_img[60:62, 100:102] = 0.0
        w = wcs
        if b == offset_band:
            sci = np.pad(sci, ((2, 2), (3, 3)), constant_values=np.nan)
            err_img = np.pad(err_img, ((2, 2), (3, 3)))
            w = make_wcs(sci.shape)
        mosaics[b] = write_mosaic(directory / mosaic_name(b), sci, w, err=err_img)
    labelled = rng.choice(n_objects, n_specz, replace=False)
    z = rng.uniform(0.2, 6.0, n_objects)
    specz = write_nirspec(
        directory / "hlsp_jades_jwst_nirspec_goods-s_prism-line-fluxes_v1.1_catalog.fits",
        ra[labelled] + 1e-5 / 3600,
        dec[labelled],
        z[labelled],
        ["A", "B", "C"] * (n_specz // 3) + ["A"] * (n_specz % 3),
    )
    truth_z = np.full(n_objects, np.nan)
    truth_z[labelled] = z[labelled]
    return Field(
        directory,
        tuple(bands),
        shape,
        wcs,
        ids,
        x,
        y,
        ra,
        dec,
        seg,
        catalog,
        segmentation,
        specz,
        truth_z,
        mosaics,
    )


def file_backed(array) -> bool:
    """Whether an array is a view of a memory-mapped file (not data held in memory)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False

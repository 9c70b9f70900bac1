"""Speed and peak memory of ``prepare_tilesets`` on a synthetic JADES-layout field.

A child process writes the field (per-band mosaics in MJy/sr with SCI/ERR, a segmentation image, the
photometric catalog and a NIRSpec spec-z table); the parent then runs the prep and prints wall time, tiles per
second and its own peak RSS next to the size of the mosaics on disk. Peak RSS well below the mosaic size shows
that windows are streamed, not loaded.

    python benchmarks/bench_prep.py --size 512            # smoke run (seconds)
    python benchmarks/bench_prep.py --size 8192 --bands 9  # ~2.4 GB of mosaics, a quiet machine (minutes)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from rail.deepdisc.exceptions import PrepWarning
from rail.deepdisc.memory import peak_rss_mb
from rail.deepdisc.prep.prepare import PrepInputs, PrepSettings, prepare_tilesets
from rail.deepdisc.prep.specz import CompileSettings
from rail.deepdisc.presets import get_preset

PIXEL_SCALE = 0.03
PIXAR_SR = (PIXEL_SCALE * np.pi / 180 / 3600) ** 2
PREFIX = "hlsp_jades_jwst_nircam_goods-s-deep"
OBJECTS_PER_ARCSEC2 = 0.3


def make_wcs(n: int) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [53.16, -27.78]
    w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cd = np.array([[-PIXEL_SCALE / 3600, 0.0], [0.0, PIXEL_SCALE / 3600]])
    return w


def write_field(directory: Path, n: int, bands: tuple[str, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    wcs = make_wcs(n)
    n_obj = int(OBJECTS_PER_ARCSEC2 * (n * PIXEL_SCALE) ** 2)
    x, y = rng.uniform(5, n - 6, n_obj), rng.uniform(5, n - 6, n_obj)
    r = rng.uniform(1.5, 4.0, n_obj)
    ids = np.arange(1, n_obj + 1)
    seg = np.zeros((n, n), np.int32)
    for i in range(n_obj):
        ya, xa = int(y[i] - r[i]), int(x[i] - r[i])
        yy, xx = np.mgrid[ya : int(y[i] + r[i]) + 1, xa : int(x[i] + r[i]) + 1]
        disk = (xx - x[i]) ** 2 + (yy - y[i]) ** 2 <= r[i] ** 2
        seg[yy[disk], xx[disk]] = ids[i]
    fits.PrimaryHDU(seg, wcs.to_header()).writeto(directory / f"{PREFIX}_segmentation_v2.0_drz.fits")
    flux = {}
    for band in bands:
        sci = rng.normal(0, 1e-3, (n, n)).astype(np.float32)
        sci[seg > 0] += 0.05
        hdr = wcs.to_header()
        hdr["BUNIT"], hdr["PIXAR_SR"] = "MJy/sr", PIXAR_SR
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.ImageHDU(sci, hdr, name="SCI"),
                fits.ImageHDU(np.full((n, n), 1e-3, np.float32), wcs.to_header(), name="ERR"),
            ]
        ).writeto(directory / f"{PREFIX}_{band.lower()}_v2.0_drz.fits")
        flux[band] = 0.05 * np.pi * r**2 * PIXAR_SR * 1e15
    ra, dec = wcs.pixel_to_world_values(x, y)
    cols = {"ID": ids, "RA": ra, "DEC": dec}
    for band in bands:
        cols[f"{band}_KRON"], cols[f"{band}_KRON_e"] = flux[band], 0.05 * flux[band]
    hdus = [
        fits.PrimaryHDU(),
        fits.table_to_hdu(Table({"ID": ids, "RA": ra, "DEC": dec, "FLAG_ST": np.zeros(n_obj, np.int32)})),
    ]
    hdus[1].name = "FLAG"
    hdus.append(fits.table_to_hdu(Table(cols)))
    hdus[2].name = "KRON"
    fits.HDUList(hdus).writeto(directory / f"{PREFIX}_photometry_v2.0_catalog.fits")
    lab = rng.random(n_obj) < 0.1
    Table(
        {
            "RA_TARG": ra[lab],
            "Dec_TARG": dec[lab],
            "z_Spec": rng.uniform(0.2, 8, lab.sum()),
            "z_Spec_flag": np.array(["A"] * int(lab.sum())),
        }
    ).write(directory / "nirspec.fits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="mosaic side, pixels")
    parser.add_argument("--bands", type=int, default=3, help="number of JADES9 bands")
    parser.add_argument("--overlap", type=int, default=20, help="full-catalog overlap, pixels")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    bands = get_preset("JADES9")[-args.bands :]
    with tempfile.TemporaryDirectory() as tmp:
        field, out = Path(tmp) / "field", Path(tmp) / "out"
        field.mkdir()
        child = multiprocessing.Process(target=write_field, args=(field, args.size, bands, args.seed))
        child.start()
        child.join()
        disk_mb = sum(p.stat().st_size for p in field.glob("*_drz.fits")) / 2**20
        inputs = PrepInputs.from_directory(
            field,
            bands=bands,
            catalog=next(field.glob("*photometry*")),
            specz=[(field / "nirspec.fits", "jades-dr3")],
        )
        settings = PrepSettings(
            bands=bands,
            overlap_px=args.overlap,
            ebv=0.008,
            progress_bar=False,
            specz=CompileSettings(match_band=bands[-1]),
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrepWarning)
            summary = prepare_tilesets(inputs, out, settings=settings)
        wall = time.perf_counter() - t0
    peak_mb = peak_rss_mb()
    tiles = sum(f["tiles"] for f in summary["files"].values())
    print(
        f"mosaic {args.size}x{args.size} px, {len(bands)} bands, {disk_mb:.0f} MB of mosaics + segmentation"
    )
    print(f"objects {summary['objects']['catalog']}, labelled {summary['objects']['labelled']}")
    for name, f in summary["files"].items():
        print(
            f"  {name:5s} {f['tiles']:6d} tiles {f['primary_objects']:7d} primary {f['labelled_objects']:6d} "
            f"labelled"
        )
    print(f"wall {wall:.1f} s ({tiles / wall:.1f} tiles/s), peak RSS {peak_mb:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"tiles": tiles, "seconds": wall, "tiles_per_s": tiles / wall,
                                               "peak_rss_mb": peak_mb, "mosaic_mb": disk_mb, "size": args.size,
                                               "bands": len(bands)}, indent=1))


if __name__ == "__main__":
    main()

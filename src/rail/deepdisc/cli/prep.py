"""``deepdisc prep``: FITS mosaics + segmentation + catalogs -> train/val/test/full TileSets."""

from __future__ import annotations

import argparse
from pathlib import Path

from rail.deepdisc.prep.prepare import OUTPUTS, SUMMARY_NAME, PrepInputs, PrepSettings, prepare_tilesets
from rail.deepdisc.prep.specz import CompileSettings, specz_sources
from rail.deepdisc.prep.tiling import TILE_SIZE_ARCSEC
from rail.deepdisc.presets import split_band_list
from rail.deepdisc.tileset.io import validate_tileset

HELP = "tile FITS mosaics and catalogs into training, validation, test and full-catalog TileSets"
EXAMPLES = """  deepdisc prep --mosaics jades/ \\
      --catalog jades/hlsp_jades_jwst_nircam_goods-s-deep_photometry_v2.0_catalog.fits \\
      --specz jades/hlsp_jades_jwst_nirspec_goods-s_prism-line-fluxes_v1.1_catalog.fits -o tiles/
  deepdisc prep --mosaics jades/ --catalog phot.fits --specz nirspec.fits muse-hudf:muse_dr1.fits \\
      --preset JADES9 --overlap 20 --dust-map-dir ~/dustmaps/sfd -o tiles/
  deepdisc prep ... --specz generic:compilation.ecsv --specz-columns ra,dec,zspec,qual --specz-min-quality 3
Spec-z catalogs are [FORMAT:]PATH, highest priority first; FORMAT is one of jades-dr3 (default), muse-hudf,
muse-hudf-dr2, astrodeep-gs43, generic (with --specz-columns).
Outputs: OUTDIR/{train,val,test,full}.h5 and prep_summary.json.
The SFD map is fetched once with:
  python -c "import dustmaps.config; dustmaps.config.config['data_dir']='DIR'; \\
             import dustmaps.sfd; dustmaps.sfd.fetch()"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("--mosaics", type=Path, required=True, help="folder of per-band FITS mosaics")
    parser.add_argument("--catalog", type=Path, required=True, help="JADES-style photometric catalog (FITS)")
    parser.add_argument(
        "--specz",
        nargs="+",
        default=[],
        metavar="[FORMAT:]PATH",
        help="spec-z catalogs, highest priority first",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--preset", default="JADES9", help="filter preset or comma-separated bands")
    parser.add_argument("--overlap", type=int, default=0, help="overlap of full-catalog tiles, pixels")
    parser.add_argument(
        "--segmentation",
        type=Path,
        help="segmentation image (default: *segmentation*.fits in the mosaic folder)",
    )
    parser.add_argument(
        "--tile-size",
        type=float,
        nargs=2,
        default=TILE_SIZE_ARCSEC,
        metavar=("W", "H"),
        help="tile width and height, arcsec (default 8.3 7.5)",
    )
    parser.add_argument("--no-recentred", action="store_true", help="no centred cutouts for cut objects")
    parser.add_argument(
        "--max-uncovered",
        type=float,
        default=0.0,
        help="largest fraction of a tile's pixels allowed without coverage (set to 0)",
    )
    parser.add_argument("--test-fraction", type=float, default=0.1, help="test share of labelled tiles")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation share of training tiles")
    parser.add_argument("--seed", type=int, default=1234, help="split seed")
    parser.add_argument("--flux-kind", default="KRON", help="catalog photometry: KRON or CIRC0..CIRC6")
    parser.add_argument("--match-radius", type=float, default=0.5, help="spec-z match radius, arcsec")
    parser.add_argument("--match-band", default="F444W", help="brightest object in this band wins a match")
    parser.add_argument(
        "--max-dz", type=float, default=0.1, help="agreement limit abs(dz)/(1+z) between catalogs"
    )
    parser.add_argument("--jades-flags", default="A,B,C", help="accepted JADES z_Spec_flag values")
    parser.add_argument("--muse-min-confidence", type=float, default=2, help="smallest MUSE CONFID kept")
    parser.add_argument("--specz-columns", help="RA,DEC,Z[,QUALITY] column names of 'generic' catalogs")
    parser.add_argument("--specz-min-quality", type=float, help="smallest quality kept in 'generic' catalogs")
    parser.add_argument("--dust-map-dir", help="folder of SFD_dust_4096_{ngp,sgp}.fits")
    parser.add_argument("--ebv", type=float, help="constant E(B-V) for every object instead of the SFD map")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _specz_sources(args):
    return specz_sources(
        args.specz,
        jades_flags=[f.strip() for f in args.jades_flags.split(",") if f.strip()],
        muse_min_confidence=args.muse_min_confidence,
        generic_columns=[c for c in (args.specz_columns or "").split(",") if c],
        generic_min_quality=args.specz_min_quality,
    )


def run(args: argparse.Namespace) -> int:
    """Build the TileSets and print a short summary."""
    bands = split_band_list(args.preset)
    settings = PrepSettings(
        bands=bands,
        tile_size_arcsec=tuple(args.tile_size),
        overlap_px=args.overlap,
        recentred=not args.no_recentred,
        max_uncovered_fraction=args.max_uncovered,
        test_fraction=args.test_fraction,
        val_fraction=args.val_fraction,
        seed=args.seed,
        flux_kind=args.flux_kind,
        specz=CompileSettings(
            match_radius_arcsec=args.match_radius, match_band=args.match_band.upper(), max_dz=args.max_dz
        ),
        dust_map_dir=args.dust_map_dir,
        ebv=args.ebv,
        progress_bar=not args.no_progress,
    )
    inputs = PrepInputs.from_directory(
        args.mosaics,
        bands=settings.bands,
        catalog=args.catalog,
        specz=_specz_sources(args),
        segmentation=args.segmentation,
    )
    summary = prepare_tilesets(inputs, args.output, settings=settings)
    for name in OUTPUTS:
        print(validate_tileset(summary["files"][name]["path"]).format())
    print(f"summary: {args.output / SUMMARY_NAME}")
    return 0

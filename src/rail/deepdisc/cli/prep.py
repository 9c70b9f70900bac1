"""``deepdisc prep``: FITS mosaics + segmentation + catalogs -> train/val/test/full TileSets."""

from __future__ import annotations

import argparse
from pathlib import Path

from rail.deepdisc.options import build
from rail.deepdisc.prep.prepare import OUTPUTS, SUMMARY_NAME, PrepInputs, PrepSettings, prepare_tilesets
from rail.deepdisc.prep.specz import SpeczSourceOptions
from rail.deepdisc.tileset.validation import validate_tileset

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
    parser.add_argument(
        "--segmentation",
        type=Path,
        help="segmentation image (default: *segmentation*.fits in the mosaic folder)",
    )
    from rail.tools.deepdisc_prep import PREP_OPTIONS

    PREP_OPTIONS.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Build the TileSets and print a short summary."""
    from rail.tools.deepdisc_prep import PREP_OPTIONS

    given = PREP_OPTIONS.from_args(args)
    settings = build(PrepSettings, given)
    inputs = PrepInputs.from_directory(
        args.mosaics,
        bands=settings.bands,
        catalog=args.catalog,
        specz=build(SpeczSourceOptions, given).sources(args.specz),
        segmentation=args.segmentation,
    )
    summary = prepare_tilesets(inputs, args.output, settings=settings)
    for name in OUTPUTS:
        print(validate_tileset(summary["files"][name]["path"]).format())
    print(f"summary: {args.output / SUMMARY_NAME}")
    return 0

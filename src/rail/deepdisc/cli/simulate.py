"""``deepdisc simulate``: simulate JWST/NIRCam deep-field tiles (and optionally JADES-format mosaics)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.options import build
from rail.deepdisc.simulation import SimulationSettings, simulate_mosaics, simulate_tileset
from rail.deepdisc.simulation.settings import SIMULATION_OPTIONS
from rail.deepdisc.tileset.validation import validate_tileset

HELP = "simulate JWST/NIRCam deep-field tiles with known redshifts (and JADES-format mosaics)"
EXAMPLES = """  deepdisc simulate -o tiles.h5                          # 36 tiles of 128x128, JADES9 bands
  deepdisc simulate -o tiles.h5 --tiles 200 --size 256 --seed 3 --label-fraction 0.2
  deepdisc simulate -o tiles.h5 --preset NEXUS6 --depth-offset -1.0 --psf-fwhm-scale 1.1
  deepdisc simulate -o tiles.h5 --mosaic-dir jades_sim/   # also FITS mosaics, segmentation and catalogs;
                                                          # tiles.h5 is then cut from that mosaic
  deepdisc simulate --mosaic-dir jades_sim/ --field-size 9600 --density 2.0   # a JADES-size field (~94,000
                                                          # objects, ~25 arcmin^2), FITS files only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments: the output and a flag for every simulation option."""
    parser.add_argument("-o", "--output", type=Path,
                        help="output TileSet file (.h5); optional with --mosaic-dir (then only the FITS files)")
    SIMULATION_OPTIONS.add_arguments(parser)


def settings_from_args(args: argparse.Namespace) -> SimulationSettings:
    """Build `SimulationSettings` from parsed arguments (raises ConfigError on bad values)."""
    return build(SimulationSettings, SIMULATION_OPTIONS.from_args(args))


def run(args: argparse.Namespace) -> int:
    """Simulate and write the TileSet (and the mosaics); print a one-line summary."""
    if args.output is None and not args.mosaic_dir:
        raise ConfigError("deepdisc simulate: give -o/--output (a TileSet) or --mosaic-dir (FITS mosaics)")
    settings = settings_from_args(args)
    progress_bar = args.progress_bar is not False
    if args.mosaic_dir:
        out = simulate_mosaics(settings, Path(args.mosaic_dir), tileset_path=args.output, progress_bar=progress_bar)
        print(f"wrote {len(out['mosaics'])} mosaics, segmentation and catalogs to {args.mosaic_dir}")
        if args.output is not None:
            print(validate_tileset(args.output).format())
        return 0
    simulate_tileset(settings, path=args.output, progress_bar=progress_bar, in_memory=False)
    print(validate_tileset(args.output).format())
    return 0

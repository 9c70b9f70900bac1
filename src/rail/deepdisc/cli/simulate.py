"""``deepdisc simulate``: simulate JWST/NIRCam deep-field tiles (and optionally JADES-format mosaics)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rail.deepdisc.presets import split_band_list
from rail.deepdisc.simulation import SimulationSettings, simulate_mosaics, simulate_tileset
from rail.deepdisc.tileset.io import validate_tileset

HELP = "simulate JWST/NIRCam deep-field tiles with known redshifts (and JADES-format mosaics)"
EXAMPLES = """  deepdisc simulate -o tiles.h5                          # 36 tiles of 128x128, JADES9 bands
  deepdisc simulate -o tiles.h5 --tiles 200 --size 256 --seed 3 --label-fraction 0.2
  deepdisc simulate -o tiles.h5 --preset NEXUS6 --depth-offset -1.0 --psf-fwhm-scale 1.1
  deepdisc simulate -o tiles.h5 --mosaic-dir jades_sim/   # also FITS mosaics, segmentation and catalogs;
                                                          # tiles.h5 is then cut from that mosaic
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    d = SimulationSettings()
    parser.add_argument("-o", "--output", type=Path, required=True, help="output TileSet file (.h5)")
    parser.add_argument("--tiles", type=int, default=d.n_tiles, help=f"number of tiles (default {d.n_tiles})")
    parser.add_argument(
        "--size", type=int, default=d.tile_size, help=f"tile side, pixels (default {d.tile_size})"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--preset", default="JADES9", help="filter preset or comma-separated band list")
    parser.add_argument(
        "--mosaic-dir",
        type=Path,
        default=None,
        help="also write JADES-format mosaics, segmentation and catalogs here; the TileSet is "
        "then cut from that mosaic",
    )
    parser.add_argument(
        "--field-size",
        type=int,
        default=None,
        help="mosaic side in pixels with --mosaic-dir (default: the area of --tiles tiles)",
    )
    parser.add_argument(
        "--depth",
        type=float,
        default=None,
        help="5-sigma AB depth of every band (default: JADES deep depths per band)",
    )
    parser.add_argument(
        "--depth-offset",
        type=float,
        default=d.depth_offset,
        help="magnitudes added to every depth (> 0 deeper)",
    )
    parser.add_argument(
        "--density",
        type=float,
        default=d.density,
        help=f"galaxies per arcsec^2 brighter than the magnitude limit (default {d.density})",
    )
    parser.add_argument(
        "--label-fraction",
        type=float,
        default=d.label_fraction,
        help=f"fraction of catalogued galaxies with spec-z (default {d.label_fraction})",
    )
    parser.add_argument(
        "--wrong-label-fraction",
        type=float,
        default=d.wrong_label_fraction,
        help=f"fraction of wrong spec-z labels (default {d.wrong_label_fraction})",
    )
    parser.add_argument("--psf-fwhm-scale", type=float, default=d.psf_fwhm_scale, help="PSF width multiplier")
    parser.add_argument("--size-scale", type=float, default=d.size_scale, help="galaxy size multiplier")
    parser.add_argument(
        "--noise-correlation",
        type=float,
        default=d.noise_correlation_px,
        help="noise correlation sigma, pixels (0 = white)",
    )
    parser.add_argument(
        "--emission-line-scale",
        type=float,
        default=d.emission_line_scale,
        help="multiplies every H-alpha equivalent width (0 = no nebular lines)",
    )
    parser.add_argument(
        "--dustmap-dir", default=None, help="directory of the SFD dust maps (dustmaps format)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def settings_from_args(args: argparse.Namespace) -> SimulationSettings:
    """Build `SimulationSettings` from parsed arguments (raises ConfigError on bad values)."""
    bands = split_band_list(args.preset)
    return SimulationSettings(
        n_tiles=args.tiles,
        tile_size=args.size,
        seed=args.seed,
        bands=bands,
        depth=args.depth,
        depth_offset=args.depth_offset,
        density=args.density,
        label_fraction=args.label_fraction,
        wrong_label_fraction=args.wrong_label_fraction,
        psf_fwhm_scale=args.psf_fwhm_scale,
        size_scale=args.size_scale,
        noise_correlation_px=args.noise_correlation,
        emission_line_scale=args.emission_line_scale,
        dustmap_dir=args.dustmap_dir,
        field_size=args.field_size,
    )


def run(args: argparse.Namespace) -> int:
    """Simulate and write the TileSet (and the mosaics); print a one-line summary."""
    settings = settings_from_args(args)
    if args.mosaic_dir is not None:
        out = simulate_mosaics(
            settings, args.mosaic_dir, tileset_path=args.output, progress_bar=not args.no_progress
        )
        print(f"wrote {len(out['mosaics'])} mosaics, segmentation and catalogs to {args.mosaic_dir}")
        print(validate_tileset(args.output).format())
        return 0
    simulate_tileset(settings, path=args.output, progress_bar=not args.no_progress, in_memory=False)
    print(validate_tileset(args.output).format())
    return 0

"""``deepdisc evaluate``: every metric of a photo-z file against its TileSet, written to a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from rail.deepdisc.evaluation.directory import evaluate_files
from rail.deepdisc.evaluation.evaluate import EvaluationSettings
from rail.deepdisc.exceptions import DeepDiscError

HELP = "evaluate a photo-z file against its TileSet (PIT, CDE loss, coverage, paper metrics, peers)"
EXAMPLES = """  deepdisc evaluate pz.hdf5 tiles.h5 -o eval/
  deepdisc evaluate pz.hdf5 tiles.h5 -o eval/ --peer BPZ=bpz.hdf5 --peer EAZY=eazy.hdf5
  deepdisc evaluate pz.hdf5 tiles.h5 -o eval/ --spec-tiles train.h5     # adds the SOM spec_rep flag
  deepdisc evaluate pz.hdf5 tiles.h5 -o eval/ --loss-curves model.losses.json --label JADES9
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    d = EvaluationSettings()
    parser.add_argument("photoz", type=Path, help="estimator output (qp file, one PDF per primary object)")
    parser.add_argument("tiles", type=Path, help="the TileSet the estimator ran on (truth and magnitudes)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="evaluation folder to write")
    parser.add_argument("--peer", action="append", default=[], metavar="NAME=FILE",
                        help="another estimator's qp file on the same objects (repeatable)")
    parser.add_argument("--spec-tiles", type=Path, help="training TileSet: compute the SOM spec_rep flag")
    parser.add_argument("--loss-curves", type=Path, help="training loss-curve JSON to include in the report")
    parser.add_argument("--label", default="", help="name of this run in tables (default: filter preset)")
    parser.add_argument("--point-estimate", default=d.point_estimate, choices=("zmode", "zmean", "zmedian"),
                        help="point estimate column (default: %(default)s)")
    parser.add_argument("--truth", default=d.truth_column,
                        help="truth column: auto, redshift_true or redshift (default: %(default)s)")
    parser.add_argument("--mag-band", default=d.mag_band,
                        help="band of the magnitude bins (default: %(default)s)")
    parser.add_argument("--mag-edges", type=float, nargs="+", default=list(d.mag_edges), metavar="MAG",
                        help="magnitude bin edges")
    parser.add_argument("--z-edges", type=float, nargs="+", default=list(d.z_edges), metavar="Z",
                        help="true-redshift bin edges")
    parser.add_argument("--zmax", type=float, default=d.zmax,
                        help="top of the redshift grid (default: %(default)s)")
    parser.add_argument("--include-stars", action="store_true",
                        help="keep stars (true_is_star or is_star) in the redshift metrics (default: galaxies)")


def _peers(specs: list[str]) -> list[tuple[str, Path]]:
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise DeepDiscError(f"--peer {spec!r}: expected NAME=FILE, e.g. --peer BPZ=bpz.hdf5")
        out.append((name, Path(path)))
    return out


def run(args: argparse.Namespace) -> int:
    """Evaluate and write the folder."""
    settings = EvaluationSettings(point_estimate=args.point_estimate, truth_column=args.truth,
                                  mag_band=args.mag_band.upper(), mag_edges=tuple(args.mag_edges),
                                  z_edges=tuple(args.z_edges), zmax=args.zmax,
                                  galaxies_only=not args.include_stars)
    out = evaluate_files(args.photoz, args.tiles, args.output, settings=settings, peers=_peers(args.peer),
                         spec_tiles=args.spec_tiles, loss_curves=args.loss_curves, label=args.label)
    print(f"evaluation written to {out} (run 'deepdisc report {out}' for figures)")
    return 0

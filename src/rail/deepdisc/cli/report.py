"""``deepdisc report``: PNG figures and a Markdown page from one or more evaluation folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from rail.deepdisc.evaluation.report import build_report

HELP = "make the figures and Markdown report of evaluation folder(s)"
EXAMPLES = """  deepdisc report eval/                           # writes eval/report/report.md and PNGs
  deepdisc report eval/ -o report/ --loss-curves model.losses.json
  deepdisc report eval_JADES9/ eval_NEXUS6/ eval_COSMOSWEB4/ -o report/   # plus a table per preset
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this subcommand's arguments."""
    parser.add_argument("evaldirs", type=Path, nargs="+",
                        help="evaluation folder(s) from 'deepdisc evaluate'; the first is shown in full")
    parser.add_argument("-o", "--output", type=Path, help="report folder (default: EVALDIR/report)")
    parser.add_argument("--tiles", type=Path, help="TileSet for example tiles (default: the evaluated one)")
    parser.add_argument("--loss-curves", type=Path,
                        help="training loss-curve JSON (default: the evaluation folder's)")
    parser.add_argument("--example-tiles", type=int, default=4, help="example tiles to draw (default: 4)")


def run(args: argparse.Namespace) -> int:
    """Build the report."""
    path = build_report(args.evaldirs, args.output, tiles=args.tiles, loss_curves=args.loss_curves,
                        n_tiles=args.example_tiles)
    print(f"report written to {path}")
    return 0

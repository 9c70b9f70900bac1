"""The ``deepdisc`` command line: one subcommand per stage of the workflow.

Each subcommand lives in :mod:`rail.deepdisc.cli` as a module with ``HELP`` (one line), ``EXAMPLES``
(shown by ``--help``), ``add_arguments(parser)`` and ``run(args) -> int``. Input errors are printed as one
line naming the file and the problem, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from rail.deepdisc.exceptions import DeepDiscError
from rail.deepdisc.logs import set_rail_log_level

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

#: Subcommands in workflow order; each is a module of :mod:`rail.deepdisc.cli`.
SUBCOMMANDS = ("simulate", "prep", "pretrain", "train", "distill", "estimate", "peers", "combine", "evaluate", "report",
               "info", "features", "import-detectron2")
EXIT_BAD_INPUT = 2


def _available_commands():
    for name in SUBCOMMANDS:
        module = f"rail.deepdisc.cli.{name.replace('-', '_')}"  # import-detectron2 -> import_detectron2
        try:
            yield name, importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def build_parser() -> argparse.ArgumentParser:
    """Build the ``deepdisc`` argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="deepdisc",
        description="DeepDISC image-based photometric redshifts for JWST deep fields.",
        epilog="Run 'deepdisc COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="also show RAIL's own log lines (-vv: debug output)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           epilog="examples:\n" + module.EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepdisc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    # RAIL's own stage chatter ("Inserting handle into data store", ...) only with -v
    set_rail_log_level(logging.WARNING if not args.verbose else level)
    try:
        return int(args._run(args) or 0)
    except DeepDiscError as err:
        _close_progress_bars()
        print(f"deepdisc {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        _close_progress_bars()
        print(f"deepdisc {args.command}: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _close_progress_bars() -> None:
    """Close the progress bars a failed step left open, so that the error starts a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``deepdisc`` parser as the documentation shows it: each subcommand's examples as a literal block."""

import argparse
import textwrap

from rail.deepdisc.cli import build_parser

__all__ = ["parser"]

_PREFIX = "examples:\n"


def parser() -> argparse.ArgumentParser:
    """Return `rail.deepdisc.cli.build_parser` with RST-literal example epilogs (for sphinx-argparse)."""
    top = build_parser()
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if sub.epilog and sub.epilog.startswith(_PREFIX):
                    sub.epilog = "Examples::\n\n" + textwrap.indent(sub.epilog[len(_PREFIX):], "    ")
    return top

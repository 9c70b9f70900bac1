"""Subcommands of the ``deepdisc`` command line (see :mod:`rail.deepdisc.cli`)."""

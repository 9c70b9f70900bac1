"""How much of RAIL's own logging a session shows.

RAIL stages log through ``structlog``, which prints every level unless it is configured, so each stage call
prints lines such as ``Inserting handle into data store.  input: ...`` (with the repr of in-memory data, a
whole model artifact included). The ``deepdisc`` command line, ``examples/demo.py`` and the tutorial notebook
call `set_rail_log_level` to show RAIL's warnings and errors only; ``deepdisc -v`` shows everything.

This package's own modules log through the standard `logging` module (``rail.deepdisc.*`` loggers) and are
not affected.
"""

from __future__ import annotations

import logging

from rail.deepdisc.exceptions import ConfigError

__all__ = ["set_rail_log_level"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def set_rail_log_level(level: int | str = logging.WARNING) -> int:
    """Show RAIL's (structlog) log lines only from ``level`` up, for the whole process.

    Parameters
    ----------
    level : int or str
        A `logging` level: ``logging.INFO`` or ``"INFO"`` shows RAIL's stage chatter, ``"WARNING"`` (the
        default) only its warnings and errors.

    Returns
    -------
    int
        The level set, as a `logging` number.

    Raises
    ------
    ConfigError
        An unknown level name.

    Examples
    --------
    >>> from rail.deepdisc.logs import set_rail_log_level
    >>> set_rail_log_level("warning")
    30
    """
    import structlog

    if isinstance(level, str):
        if level.upper() not in _LEVELS:
            raise ConfigError(f"unknown log level {level!r}: use one of {', '.join(_LEVELS)}")
        level = getattr(logging, level.upper())
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(int(level)))
    return int(level)

"""Strict option checking for the package's RAIL stages.

ceci and RAIL's ``make_stage`` accept any keyword and silently ignore the ones a stage does not declare, so a
misspelled option (``epoch=5`` for ``epochs``) would train with the default. Our stages call
`check_stage_options` first in their ``__init__`` and `check_options` raises `ConfigError` naming the option
and the closest valid name.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from rail.deepdisc.exceptions import ConfigError

__all__ = ["CECI_KEYS", "INTERACTIVE_KEYS", "check_options", "check_stage_options"]

#: Keys that ceci and RAIL pass to every stage besides its declared options and data tags.
CECI_KEYS = frozenset({
    "config", "name", "aliases", "comm", "log_dir", "mpi", "resume", "pdb", "cprofile", "memmon",
    "dry_run", "threads_per_process", "yes", "output_dir", "connections", "input", "output",
})

#: Keys that ``rail.interactive`` passes to every stage's ``make_stage`` (RAIL's GLOBAL_INTERACTIVE_PARAMETERS).
INTERACTIVE_KEYS = frozenset({"output_mode", "force_exact"})


def _entrypoint_parameters(cls: type) -> list[str]:
    """Parameter names of a stage's entrypoint function: ``rail.interactive`` passes them to ``make_stage`` too."""
    function = getattr(cls, cls.entrypoint_function or "", None)
    if function is None:
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in inspect.signature(function).parameters.values() if p.kind in kinds and p.name != "self"]


def check_options(stage_name: str, given: Mapping | Iterable[str], declared: Iterable[str],
                  tags: Iterable[str] = ()) -> None:
    """Raise if ``given`` holds an option that the stage does not declare.

    Parameters
    ----------
    stage_name : str
        Stage name, for the message.
    given : mapping or iterable of str
        The option names passed by the user.
    declared : iterable of str
        The stage's ``config_options`` keys.
    tags : iterable of str
        The stage's input and output tags (also accepted as keywords).

    Raises
    ------
    ConfigError
        Naming the unknown option(s) and, where one is close, the intended name.

    Examples
    --------
    >>> check_options("DeepDiscInformer", {"epoch": 5}, ["epochs", "members"])
    Traceback (most recent call last):
    ...
    rail.deepdisc.exceptions.ConfigError: DeepDiscInformer: unknown option 'epoch' (did you mean 'epochs'?)
    """
    declared = set(declared)
    known = declared | set(tags) | CECI_KEYS
    unknown = [k for k in given if k not in known]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(declared), n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    noun = "option" if len(unknown) == 1 else "options"
    raise ConfigError(f"{stage_name}: unknown {noun} {', '.join(parts)}")


def check_stage_options(stage: Any, args: Mapping | object, kwargs: Mapping) -> None:
    """Check the options given to a RAIL stage's constructor (``stage.__init__(args, **kwargs)``).

    Call it first thing in the stage's ``__init__``, before ceci merges the options. Accepts the stage's
    declared options, its input/output tags, the names they are aliased to in a pipeline (``aliases``),
    ceci's own keys, and what ``rail.interactive`` adds (`INTERACTIVE_KEYS` and the parameters of the stage's
    entrypoint function, e.g. ``training_data``).

    Parameters
    ----------
    stage : RailStage or RailStage subclass
        Provides ``name``, ``config_options``, ``inputs`` and ``outputs`` (class attributes).
    args : dict or other
        The constructor's positional configuration: a dict (``make_stage``, pipelines) or an argparse
        namespace (ceci's command line, checked by ceci itself), which adds nothing here.
    kwargs : mapping
        The constructor's keyword options.

    Raises
    ------
    ConfigError
        Naming the unknown option(s) and the closest valid name.
    """
    cls = stage if isinstance(stage, type) else type(stage)
    given = dict(args) if isinstance(args, Mapping) else {}
    given.update(kwargs)
    aliases = given.get("aliases") or {}
    tags = [t for t, _ in cls.inputs] + [t for t, _ in cls.outputs] + [str(v) for v in aliases.values()]
    tags += [*INTERACTIVE_KEYS, *_entrypoint_parameters(cls)]
    check_options(cls.name, given, cls.config_options, tags)

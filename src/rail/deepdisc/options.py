"""The option registry: every user option declared once, and strict option checking.

An option is a field of a frozen settings dataclass, declared with `option` (type, default, help with unit,
range or choices, and the names it takes on the command line or in a RAIL stage where those differ)::

    @dataclass(frozen=True)
    class TrainSettings:
        epochs: int = option(20, "training epochs per member", low=1)

        def __post_init__(self) -> None:
            check_fields(self)

Everything else is derived from these declarations:

- `check_fields` (called by ``__post_init__``) converts each value to the declared type and checks it against
  the declared range or choices, raising `ConfigError` naming the option (``epochs must be >= 1, got 0``);
- `OptionSet` gathers the options of several settings classes (a stage's or a command's options) and gives the
  RAIL stage's ``config_options`` (`OptionSet.params`), the argparse flags (`OptionSet.add_arguments`, help
  with the default), the flat defaults (`OptionSet.defaults`), the given options of a stage configuration or an
  argparse namespace (`OptionSet.from_config`, `OptionSet.from_args`) and the unknown-option check
  (`OptionSet.check`);
- `build` makes a settings object (nested settings included) from a flat mapping of options.

Unknown options: ceci and RAIL's ``make_stage`` accept any keyword and silently ignore the ones a stage does
not declare, so a misspelled option (``epoch=5`` for ``epochs``) would train with the default. Our stages
call `check_stage_options` first in their ``__init__``; it and `OptionSet.check` share `check_options`, which
raises `ConfigError` naming the option and the closest valid name.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.option_spec import OPTION_KEY, Option, plain_value

__all__ = [
    "CECI_KEYS",
    "INTERACTIVE_KEYS",
    "Option",
    "OptionSet",
    "option",
    "nested",
    "inherit",
    "options_of",
    "check_fields",
    "values_of",
    "build",
    "check_options",
    "check_stage_options",
    "DEVICE",
    "NUM_THREADS",
    "PROGRESS_BAR",
]

#: Keys that ceci and RAIL pass to every stage besides its declared options and data tags.
CECI_KEYS = frozenset({
    "config", "name", "aliases", "comm", "log_dir", "mpi", "resume", "pdb", "cprofile", "memmon",
    "dry_run", "threads_per_process", "yes", "output_dir", "connections", "input", "output",
})

#: Key of a dataclass field's metadata that holds the settings class nested there.
NESTED_KEY = "rail.deepdisc.nested"

#: Keys that ``rail.interactive`` passes to every stage's ``make_stage`` (RAIL's GLOBAL_INTERACTIVE_PARAMETERS).
INTERACTIVE_KEYS = frozenset({"output_mode", "force_exact"})


def _entrypoint_parameters(cls: type) -> list[str]:
    """Parameter names of a stage's entrypoint function: ``rail.interactive`` passes them to ``make_stage`` too."""
    function = getattr(cls, cls.entrypoint_function or "", None)
    if function is None:
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in inspect.signature(function).parameters.values() if p.kind in kinds and p.name != "self"]


#: Options that several stages and commands share.
DEVICE = Option("device", "auto", "torch device: auto (CUDA when present), cpu, cuda, cuda:N")
NUM_THREADS = Option("num_threads", 0, "torch CPU threads (0 = torch's default)", low=0, flag="threads")
PROGRESS_BAR = Option("progress_bar", True, "show a progress bar", flag="no-progress")


def option(default: Any, help: str, **spec: Any):
    """Declare a settings field as a user option (see `Option` for ``spec``); returns a dataclass field.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Example:
    ...     steps: int = option(4, "extra steps per batch", low=0)
    ...     def __post_init__(self):
    ...         check_fields(self)
    >>> Example(steps="3").steps
    3
    >>> Example(steps=-1)
    Traceback (most recent call last):
    ...
    rail.deepdisc.exceptions.ConfigError: steps must be >= 0, got -1
    """
    return Option(spec.pop("name", ""), default, help, **spec).as_field()


def nested(cls: type):
    """Declare a settings field holding another settings object whose options join the parent's.

    The field defaults to ``cls()``; `build` makes it from the same flat options.
    """
    return dataclasses.field(default_factory=cls, metadata={NESTED_KEY: cls})


def inherit(cls: type, name: str, **changes: Any):
    """A field declaring the option ``name`` of settings class ``cls`` again (same type, help, range).

    Use it where two settings objects take the same option (``seed`` of pretraining and of training), so the
    option is declared once; ``changes`` may give another default or help.
    """
    opt = next((o for o in options_of(cls) if o.name == name), None)
    if opt is None:
        raise KeyError(f"{cls.__name__} declares no option {name!r}")
    return opt.as_field(attr=None, **{"name": "", **changes})


@functools.cache
def options_of(cls: type) -> tuple[Option, ...]:
    """The options of a settings class, in field order (those of `nested` settings at their place)."""
    out: list[Option] = []
    for f in dataclasses.fields(cls):
        if NESTED_KEY in f.metadata:
            out.extend(options_of(f.metadata[NESTED_KEY]))
        elif OPTION_KEY in f.metadata:
            out.append(_field_option(f))
    return tuple(out)


def _field_option(f: dataclasses.Field) -> Option:
    spec = f.metadata[OPTION_KEY]
    return dataclasses.replace(spec, name=spec.name or f.name, attr=f.name)


def check_fields(obj: Any, context: str = "") -> None:
    """Convert and check every option field of a settings object (call it from ``__post_init__``).

    Raises
    ------
    ConfigError
        Naming the first option whose value has the wrong type or lies outside its range or choices.
    """
    for f in dataclasses.fields(obj):
        if OPTION_KEY in f.metadata:
            opt = _field_option(f)
            object.__setattr__(obj, f.name, opt.coerce(getattr(obj, f.name), context))


def values_of(obj: Any) -> dict:
    """Option name -> value of a settings object (nested settings included), as plain data (lists, str)."""
    out = {}
    for f in dataclasses.fields(obj):
        if NESTED_KEY in f.metadata:
            out.update(values_of(getattr(obj, f.name)))
        elif OPTION_KEY in f.metadata:
            out[_field_option(f).name] = plain_value(getattr(obj, f.name))
    return out


def build(cls: type, values: Mapping[str, Any], **fixed: Any):
    """Make the settings object ``cls`` from flat options.

    Parameters
    ----------
    cls : type
        A settings dataclass declared with `option` (and `nested`).
    values : mapping
        Option name -> value; options of ``cls`` that are missing keep their defaults, other keys are ignored.
    **fixed
        Fields given directly (e.g. the bands of a `NetworkConfig`).
    """
    kwargs = dict(fixed)
    for f in dataclasses.fields(cls):
        if f.name in kwargs or not f.init:
            continue
        if NESTED_KEY in f.metadata:
            kwargs[f.name] = build(f.metadata[NESTED_KEY], values)
        elif OPTION_KEY in f.metadata:
            name = _field_option(f).name
            if name in values:
                kwargs[f.name] = values[name]
    return cls(**kwargs)


class OptionSet(Mapping):
    """The options of a stage or a command: settings classes, single `Option` s and other sets, in order.

    Parameters
    ----------
    *parts : settings class, Option or OptionSet
        Their options, in this order; a name may appear only once.
    """

    def __init__(self, *parts: Any) -> None:
        self._options: dict[str, Option] = {}
        for part in parts:
            if isinstance(part, Option):
                items: Iterable[Option] = [part]
            elif isinstance(part, OptionSet):
                items = part.values()
            else:
                items = options_of(part)
            for opt in items:
                if opt.name in self._options:
                    raise ValueError(f"option {opt.name!r} is declared twice")
                self._options[opt.name] = opt

    def __getitem__(self, name: str) -> Option:
        return self._options[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def select(self, *names: str) -> OptionSet:
        """The options ``names`` of this set, in this set's order."""
        missing = sorted(set(names) - set(self._options))
        if missing:
            raise KeyError(f"no option(s) {', '.join(missing)}")
        return OptionSet(*(opt for name, opt in self._options.items() if name in names))

    def without(self, *names: str) -> OptionSet:
        """The options of this set but ``names``."""
        return OptionSet(*(opt for name, opt in self._options.items() if name not in names))

    def defaults(self) -> dict:
        """Option name -> default, as plain data (lists for sequences)."""
        return {name: opt.plain_default for name, opt in self._options.items()}

    def params(self) -> dict:
        """The RAIL stage's ``config_options`` entries (ceci ``StageParameter``), by stage option name."""
        return {opt.stage_name: opt.param() for opt in self._options.values()}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add a flag for every option (see `Option.add_argument`); read them back with `from_args`."""
        for opt in self._options.values():
            opt.add_argument(parser)

    def from_args(self, args: argparse.Namespace) -> dict:
        """The options given on the command line (flags left out are absent: defaults apply later)."""
        given = {name: getattr(args, name, None) for name in self._options}
        return {name: plain_value(value) for name, value in given.items() if value is not None}

    def from_config(self, config: Mapping) -> dict:
        """The options of a RAIL stage's configuration, by option name."""
        return {name: plain_value(config[opt.stage_name]) for name, opt in self._options.items()}

    def coerce(self, values: Mapping) -> dict:
        """The given options converted and checked one by one (`Option.coerce`; names outside the set: as given)."""
        return {name: self._options[name].coerce(v) if name in self._options else v for name, v in values.items()}

    def check(self, given: Mapping, what: str) -> dict:
        """Refuse unknown option names (`check_options`); return the options with the defaults filled in."""
        check_options(what, given, self._options)
        return {**self.defaults(), **given}


def check_options(what: str, given: Mapping | Iterable[str], declared: Iterable[str],
                  tags: Iterable[str] = ()) -> None:
    """Raise if ``given`` holds an option that is not declared.

    Parameters
    ----------
    what : str
        Stage or command name, for the message.
    given : mapping or iterable of str
        The option names passed by the user.
    declared : iterable of str
        The declared option names.
    tags : iterable of str
        Other accepted names (a stage's data tags, ceci's keys).

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
    known = declared | set(tags)
    unknown = [k for k in given if k not in known]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(declared), n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    noun = "option" if len(unknown) == 1 else "options"
    raise ConfigError(f"{what}: unknown {noun} {', '.join(parts)}")


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
    check_options(cls.name, given, cls.config_options, [*tags, *CECI_KEYS])

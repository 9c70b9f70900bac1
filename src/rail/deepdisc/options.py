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
import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from rail.deepdisc.exceptions import ConfigError

__all__ = [
    "CECI_KEYS",
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

OPTION_KEY = "rail.deepdisc.option"
NESTED_KEY = "rail.deepdisc.nested"
_TYPES = (bool, int, float, str, list, dict)
_KIND_TEXT = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
              dict: "a mapping"}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


@dataclasses.dataclass(frozen=True)
class Option:
    """One user option: its name, type, default, help, allowed values and interface names.

    Parameters
    ----------
    name : str
        Option name (a settings field's name unless ``attr`` differs).
    default : object
        Default value (sequences are stored as tuples; ``None`` with ``optional``).
    help : str
        One line, with the unit; the stage's ``msg`` and the flag's help (which adds the default).
    type : {bool, int, float, str, list, dict}, optional
        Inferred from ``default`` when not given.
    item : type, optional
        Type of a list's items (inferred from the default's first item, else float).
    choices : tuple, optional
        Allowed values (of the items, for a list).
    low, high : float, optional
        Bounds of a number (of every item, for a list); ``low_open`` / ``high_open`` exclude them.
    finite : bool
        Numbers must be finite (``inf`` is refused).
    optional : bool
        ``None`` is allowed (unset); a stage spells it ``empty`` (``""``, ``0``, ``{}``) when that is given.
    interval : bool
        A list ``[low, high]`` with ``low <= high``.
    length : int, optional
        Exact number of items of a list.
    nonempty : bool
        A list needs at least one item.
    convert : callable, optional
        Replaces the type conversion (e.g. band presets to band tuples, upper case).
    stage, flag : str, optional
        Name of the RAIL stage option and of the command-line flag (without ``--``; for a bool defaulting to
        True the whole flag, e.g. ``no-progress``) when they differ from ``name``; ``flag=""``: no flag. The
        help of a bool defaulting to True starts with a verb (its flag's help is "do not " + help).
    flag_type, nargs, metavar : optional
        argparse details that differ from the defaults (type, ``+`` for lists, name).
    attr : str, optional
        The settings field holding the option, when its name differs from the option's.
    """

    name: str
    default: Any
    help: str
    type: type | None = None
    item: type | None = None
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    finite: bool = True
    optional: bool = False
    empty: Any = None
    interval: bool = False
    length: int | None = None
    nonempty: bool = False
    convert: Callable[[Any], Any] | None = None
    stage: str | None = None
    flag: str | None = None
    flag_type: type | None = None
    nargs: str | int | None = None
    metavar: str | tuple[str, ...] | None = None
    attr: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.default, list):
            set_(self, "default", tuple(self.default))
        if self.type is None:
            kind = next((t for t in _TYPES if isinstance(self.default, t)), None)
            if isinstance(self.default, tuple):
                kind = list
            if kind is None:
                raise TypeError(f"option {self.name!r}: give type= (default {self.default!r})")
            set_(self, "type", kind)
        if self.type is list and self.item is None:
            set_(self, "item", type(self.default[0]) if self.default else float)
        if self.choices is not None:
            set_(self, "choices", tuple(self.choices))
        if self.interval:
            set_(self, "length", 2)

    # --- interfaces ---------------------------------------------------------------------------------------

    @property
    def stage_name(self) -> str:
        """Name of the RAIL stage option."""
        return self.stage or self.name

    @property
    def plain_default(self) -> Any:
        """The default as plain data for a configuration (lists for tuples, ``empty`` for None)."""
        if self.default is None:
            return _plain(self.empty)
        return _plain(self.default)

    @property
    def default_text(self) -> str:
        """The default as a command line shows it ("" for none)."""
        return _shown(self.default)

    def param(self):
        """The ceci ``StageParameter`` of this option."""
        from ceci.config import StageParameter

        default = self.plain_default
        return StageParameter(self.type, default, required=False if default is None else None, msg=self.help)

    def flag_name(self) -> str:
        """The command-line flag (with ``--``), or "" for none."""
        if self.flag == "":
            return ""
        if self.flag is not None:
            return "--" + self.flag
        name = self.name.replace("_", "-")
        return f"--no-{name}" if self.type is bool and self.default else f"--{name}"

    def add_argument(self, parser: argparse.ArgumentParser) -> None:
        """Add this option's flag to ``parser`` (destination ``name``, default None = not given)."""
        flag = self.flag_name()
        if not flag:
            return
        text = self.help.replace("%", "%%")
        if self.type is bool:
            if self.default:
                parser.add_argument(flag, dest=self.name, action="store_false", default=None,
                                    help=f"do not {text}")
            else:
                parser.add_argument(flag, dest=self.name, action="store_true", default=None, help=text)
            return
        kwargs: dict[str, Any] = {"dest": self.name, "default": None}
        kind = self.flag_type or (self.item if self.type is list else self.type)
        if kind is not str:
            kwargs["type"] = kind
        if self.type is list and self.flag_type is None:
            kwargs["nargs"] = self.length or "+"
        if self.nargs is not None:
            kwargs["nargs"] = self.nargs
        if self.choices is not None:
            kwargs["choices"] = self.choices
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        shown = self.default_text
        kwargs["help"] = text + (f" (default {shown})" if shown != "" else "")
        parser.add_argument(flag, **kwargs)

    def as_field(self, **changes: Any):
        """A dataclass field declaring this option (with ``changes``, e.g. another default)."""
        spec = dataclasses.replace(self, **changes)
        return dataclasses.field(default=spec.default, metadata={OPTION_KEY: spec})

    # --- values -------------------------------------------------------------------------------------------

    def coerce(self, value: Any, context: str = "") -> Any:
        """Return ``value`` converted to this option's type, or raise `ConfigError` naming the option.

        Parameters
        ----------
        value : object
            The given value.
        context : str
            Prefix of the message (e.g. the settings class), if any.
        """
        where = f"{context}: " if context else ""
        if self.optional and (value is None or (self.empty is not None and _same(value, self.empty))):
            return None
        if self.convert is not None:
            try:
                value = self.convert(value)
            except ConfigError:
                raise
            except (TypeError, ValueError):
                raise ConfigError(f"{where}{self.name} must be {_KIND_TEXT[self.type]}, got {value!r}") from None
        elif self.type is list:
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
                raise ConfigError(f"{where}{self.name} must be a list, got {value!r}")
            value = tuple(self._scalar(self.item, v, where) for v in value)
        elif self.type is dict:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}{self.name} must be a mapping, got {value!r}")
            value = dict(value)
        else:
            value = self._scalar(self.type, value, where)
        self._check(value, where)
        return value

    def _scalar(self, kind: type, value: Any, where: str) -> Any:
        if kind is bool:
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            if isinstance(value, numbers.Integral) and int(value) in (0, 1):
                return bool(value)
            raise ConfigError(f"{where}{self.name} must be {_KIND_TEXT[bool]}, got {value!r}")
        if kind is int:
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                return int(value)
            if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where}{self.name} must be an integer, got {value!r}")
        if kind is float:
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where}{self.name} must be a number, got {value!r}")
        if kind is str:
            if isinstance(value, (str, os.PathLike)):
                return os.fspath(value)
            raise ConfigError(f"{where}{self.name} must be a string, got {value!r}")
        return value

    def _check(self, value: Any, where: str) -> None:
        if isinstance(value, tuple) and self.type is list:
            if self.interval and (len(value) != 2 or (_numbers(value) and value[0] > value[1])):
                raise ConfigError(f"{where}{self.name} must be a [low, high] range with low <= high, "
                                  f"got {list(value)}")
            if self.length is not None and len(value) != self.length:
                raise ConfigError(f"{where}{self.name} must list {self.length} values, got {list(value)}")
            if self.nonempty and not value:
                raise ConfigError(f"{where}{self.name} must list at least one value, got []")
            if self.choices is not None and (any(v not in self.choices for v in value)
                                             or len(set(value)) != len(value)):
                raise ConfigError(f"{where}{self.name} must list distinct values among "
                                  f"{', '.join(map(str, self.choices))}, got {list(value)}")
            if any(not self._in_range(v) for v in value):
                raise ConfigError(f"{where}{self.name} values must be {self._range_text() or 'finite'}, "
                                  f"got {list(value)}")
            return
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where}{self.name} must be one of {', '.join(map(str, self.choices))}, "
                              f"got {value!r}")
        if not self._in_range(value):
            text = self._range_text() or "finite"
            raise ConfigError(f"{where}{self.name} must be {text}, got {value!r}")

    def _in_range(self, value: Any) -> bool:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return True
        if self.finite and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def _range_text(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"in {'(' if self.low_open else '['}{low:g}, {high:g}{')' if self.high_open else ']'}"
        if low is not None:
            return f"{'>' if self.low_open else '>='} {low:g}"
        if high is not None:
            return f"{'<' if self.high_open else '<='} {high:g}"
        return ""


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
            out[_field_option(f).name] = _plain(getattr(obj, f.name))
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
        return {name: _plain(getattr(args, name)) for name in self._options if getattr(args, name, None) is not None}

    def from_config(self, config: Mapping) -> dict:
        """The options of a RAIL stage's configuration, by option name."""
        return {name: _plain(config[opt.stage_name]) for name, opt in self._options.items()}

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
    declared options, its input/output tags, the names they are aliased to in a pipeline (``aliases``), and
    ceci's own keys.

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
    check_options(cls.name, given, cls.config_options, [*tags, *CECI_KEYS])


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _same(value: Any, empty: Any) -> bool:
    if isinstance(empty, bool) or isinstance(value, bool):
        return False
    try:
        return type(value) is type(empty) and value == empty
    except Exception:  # noqa: BLE001 - arrays and odd types are never the empty spelling
        return False


def _numbers(value: tuple) -> bool:
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)


def _shown(default: Any) -> str:
    if default is None:
        return ""
    if isinstance(default, tuple):
        return " ".join(map(str, default)) if default else "none"
    if isinstance(default, str):
        return default if default else ""
    return f"{default:g}" if isinstance(default, float) else str(default)

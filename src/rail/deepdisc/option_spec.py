"""One user option (`Option`): its declaration, its command-line and RAIL forms, and the checks of its values.

The registry that gathers options into settings classes and option sets is `rail.deepdisc.options`; this module
holds what one option knows of itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rail.deepdisc.exceptions import ConfigError

__all__ = ["Option", "OPTION_KEY", "plain_value"]

#: Key of a dataclass field's metadata that holds its `Option`.
OPTION_KEY = "rail.deepdisc.option"
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
            return plain_value(self.empty)
        return plain_value(self.default)

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
        if kind in (int, float):
            number = value
            if isinstance(value, str):
                try:
                    number = kind(value)
                except ValueError:
                    number = None
            if isinstance(number, numbers.Real) and not isinstance(number, bool):
                if kind is float:
                    return float(number)
                if float(number).is_integer():
                    return int(number)
            raise ConfigError(f"{where}{self.name} must be {_KIND_TEXT[kind]}, got {value!r}")
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


def plain_value(value: Any) -> Any:
    """Plain data for a configuration: lists for tuples, str for paths."""
    if isinstance(value, tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, list):
        return [plain_value(v) for v in value]
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

"""Every setting an experiment takes, declared once: name, type (choices, lists), default, range, unit, one-line
help. The CLI's options, the app's sliders and input checks, API validation and `repro`'s settings from JSON are
all derived from these declarations, so a default or a range is written in one place.

Two ways to declare, both keeping the declaration next to the code that uses it:

* a settings dataclass field: `budget: float = setting(8 / 255, "...", low=0, high=1, unit="[0,1] pixels")`;
  `params_of(cls)` reads them (the matching modes, `probe.matching`);
* a function's keyword arguments: `declare(fn, name=Param(...), ...)` takes each default from the signature, so it
  is written there only (the geometry experiments).

`Param.check(value)` converts and validates one value with a message that names the setting and its range.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from probe.errors import ProbeError

KINDS = (int, float, str, bool)


@dataclass(frozen=True)
class Param:
    help: str
    kind: type = float
    low: float | None = None
    high: float | None = None
    open_low: bool = False          # low itself excluded
    open_high: bool = False         # high itself excluded
    choices: tuple = ()
    many: bool = False              # a list of `kind` (comma-separated on the command line)
    optional: bool = False          # None (and for a list, no values) is allowed (its meaning is in the help)
    unit: str = ""
    cli: str = ""                   # the command-line flag when it is not --name-with-dashes
    name: str = ""
    default: Any = None

    def named(self, name: str, default: Any) -> "Param":
        return dataclasses.replace(self, name=name, default=default)

    @property
    def flag(self) -> str:
        return self.cli or "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is None and self.high is None:
            return ""
        def show(v):
            return str(int(v)) if self.kind is int else f"{v:g}"
        low = "-inf" if self.low is None else show(self.low)
        high = "inf" if self.high is None else show(self.high)
        return f"{'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"

    def describe(self, default: Any = None) -> str:
        """One line: the help, unit, range and default."""
        shown = self.default if default is None else default
        bits = [b for b in (self.unit, self.range_text()) if b]
        default_text = _show(shown) if shown is not None else "derived (see the help)"
        return f"{self.help} ({'; '.join(bits + [f'default {default_text}'])})"

    def _one(self, value: Any) -> Any:
        if self.kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if self.kind is int:
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if self.kind is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        return str(value).strip()

    def check(self, value: Any) -> Any:
        """`value` converted to the declared type and checked against the range; a ProbeError naming the setting
        otherwise."""
        if value is None:
            if self.optional:
                return None
            raise ProbeError(f"{self.name} is required: {self.describe()}")
        items = _split(value) if self.many else [value]
        out = []
        for item in items:
            try:
                converted = self._one(item)
            except (TypeError, ValueError):
                kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(self.kind, "text")
                raise ProbeError(f"{self.name} must be {kind}, got {item!r}") from None
            if self.choices and converted not in self.choices:
                raise ProbeError(f"{self.name} must be {self.range_text()}, got {item!r}")
            if self.kind in (int, float) and not self._in_range(converted):
                raise ProbeError(f"{self.name} must be in {self.range_text()}"
                                 f"{' ' + self.unit if self.unit else ''}, got {item!r}")
            out.append(converted)
        if self.many and not out and not self.optional:
            raise ProbeError(f"{self.name} needs at least one value")
        return out if self.many else out[0]

    def _in_range(self, number: float) -> bool:
        if self.low is not None and (number <= self.low if self.open_low else number < self.low):
            return False
        return self.high is None or (number < self.high if self.open_high else number <= self.high)


def _split(value: Any) -> list:
    if isinstance(value, str):
        return [v for v in (part.strip() for part in value.split(",")) if v]
    return list(value)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v) for v in value)
    return str(value)


def setting(default: Any, help: str, **declaration) -> Any:
    """A dataclass field with its declaration (see `params_of`)."""
    return dataclasses.field(default=default, metadata={"param": Param(help, **declaration)})


def params_of(cls) -> dict[str, Param]:
    """The declared settings of a dataclass, with their defaults."""
    return {f.name: f.metadata["param"].named(f.name, f.default) for f in dataclasses.fields(cls)
            if "param" in f.metadata}


def check_fields(instance) -> None:
    """Check every declared field of a settings dataclass (in `__post_init__`)."""
    for name, param in params_of(type(instance)).items():
        value = param.check(getattr(instance, name))
        object.__setattr__(instance, name, tuple(value or ()) if param.many else value)


def declare(function: Callable, **params: Param) -> dict[str, Param]:
    """The declared keyword arguments of `function`, each default read from its signature."""
    signature = inspect.signature(function)
    missing = [name for name in params if name not in signature.parameters]
    if missing:
        raise TypeError(f"{function.__name__} has no argument {missing}")
    return {name: p.named(name, signature.parameters[name].default) for name, p in params.items()}


def check_call(params: dict[str, Param], **values: Any) -> None:
    """Check a call's arguments against their declarations (the first thing a declared function does)."""
    for name, value in values.items():
        params[name].check(value)


def check_options(params: dict[str, Param], options: dict[str, Any], what: str) -> dict[str, Any]:
    """Options checked against their declarations; an unknown name is an error listing the known ones."""
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ProbeError(f"{what} has no setting {', '.join(unknown)} (settings: {', '.join(sorted(params))})")
    return {name: params[name].check(value) for name, value in options.items()}


# --- the command line ---------------------------------------------------------------------------------


def _argparse_type(param: Param) -> Callable[[str], Any]:
    def parse(text: str):
        try:
            return param.check(text)
        except ProbeError as err:
            raise argparse.ArgumentTypeError(str(err).replace(param.name, param.flag, 1)) from None
    return parse


def add_options(parser: argparse.ArgumentParser, params: Iterable[Param], defaults: dict[str, str] | None = None,
                skip: Iterable[str] = ()) -> None:
    """One `--name` option per declared setting. Defaults stay None on the parser (the declaration fills them
    in, so that "not given" is known); `defaults` replaces a setting's default text in the help (e.g. per mode)."""
    defaults = defaults or {}
    for param in params:
        if param.name in skip:
            continue
        help_text = param.describe()
        if param.name in defaults:
            help_text = help_text.rsplit("default ", 1)[0] + f"default {defaults[param.name]})"
        parser.add_argument(param.flag, dest=param.name, type=_argparse_type(param), default=None,
                            help=help_text.replace("%", "%%"), metavar=param.name.upper())


def given(args: argparse.Namespace, params: Iterable[Param]) -> dict[str, Any]:
    """The declared settings the user gave on the command line."""
    return {p.name: getattr(args, p.name) for p in params if getattr(args, p.name, None) is not None}

"""Every value from outside (an address's query parameter, a CLI argument) parsed once, by declared type.

A page declares its query parameters as `Param`s and reads them with `read_query`: a missing value takes the
default, a bad one takes the default too and becomes one message naming the parameter (never an exception,
never another record in the place of a requested one: an id's default is "none chosen"). The CLI's numeric
arguments use the same bounds through `argument_type`. The fuzz tests walk `PAGE_PARAMS` and the CLI's parser,
so a parameter declared here is fuzzed without another line of test.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_ID = 2**63 - 1  # the largest id SQLite and PostgreSQL store (signed 64-bit)
MAX_TEXT = 100_000  # characters of free text an address may carry
# ASCII digits only: str.isdigit() accepts "²" and other digits int() refuses.
_INTEGER = re.compile(r"-?[0-9]+")
MAX_DIGITS = 30
_DECIMAL = re.compile(r"-?(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})")


KINDS = ("id", "int", "float", "text", "choice", "names")


class ParamError(ValueError):
    """A value that does not parse; the message is one sentence a person can act on. `usable`: what can still
    be used of it (the known names of a list), or None."""

    def __init__(self, message: str, usable: Any = None) -> None:
        super().__init__(message)
        self.usable = usable


@dataclass(frozen=True)
class Param:
    """One external value: its name, type ("id", "int", "float", "text", "choice", "names"), bounds, default."""

    name: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    # "choice": the allowed values; "names": the allowed names in a comma-separated list. A callable is asked
    # each time (a registry, the configured models).
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    max_length: int = MAX_TEXT
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown parameter kind {self.kind!r}")

    def allowed(self) -> list[str]:
        choices = self.choices() if callable(self.choices) else self.choices
        return list(choices or [])

    def parse(self, raw: str) -> Any:
        """The value `raw` stands for, or ParamError naming this parameter."""
        if not isinstance(raw, str):
            raise ParamError(f"'{self.name}' is not a single value.")
        if self.kind == "id":
            return parse_int(raw, 1, MAX_ID, what=f"'{self.name}' (an id)")
        if self.kind == "int":
            return parse_int(raw, _bound(self.minimum, -MAX_ID), _bound(self.maximum, MAX_ID), what=f"'{self.name}'")
        if self.kind == "float":
            return parse_float(raw, self.minimum, self.maximum, what=f"'{self.name}'")
        if len(raw) > self.max_length:
            raise ParamError(f"'{self.name}' is longer than {self.max_length:,} characters.")
        if self.kind == "choice":
            if raw not in self.allowed():
                raise ParamError(f"'{self.name}' must be one of {', '.join(self.allowed()) or '(none available)'}.")
            return raw
        if self.kind == "names":
            names = [n.strip() for n in raw.split(",") if n.strip()]
            unknown = [n for n in names if n not in self.allowed()]
            if unknown:
                known = [n for n in names if n in self.allowed()]
                raise ParamError(f"'{self.name}' names unknown values ({', '.join(_shown(n) for n in unknown[:5])}); "
                                 "they are left out.", known or None)
            return names
        return raw


def _bound(value: float | None, fallback: int) -> int:
    return fallback if value is None else int(value)


def _shown(value: str, at_most: int = 40) -> str:
    """A value quoted back in a message: cut short, control characters written as escapes (one line)."""
    value = value if len(value) <= at_most else value[:at_most] + "…"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def parse_int(raw: str, minimum: int = -MAX_ID, maximum: int = MAX_ID, *, what: str = "the value") -> int:
    """A whole number in [minimum, maximum] written in ASCII digits, or ParamError."""
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise ParamError(f"{what} must be a whole number, not '{_shown(raw)}'.")
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ParamError(f"{what} must be between {minimum:,} and {maximum:,}, not a {len(text):,}-digit number.")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ParamError(f"{what} must be between {minimum:,} and {maximum:,}, not {_shown(text)}.")
    return value


def parse_float(raw: str, minimum: float | None = None, maximum: float | None = None, *,
                what: str = "the value") -> float:
    """A decimal number (no exponent, no inf or nan) within the bounds given, or ParamError."""
    text = raw.strip()
    if not _DECIMAL.fullmatch(text):
        raise ParamError(f"{what} must be a decimal number, not '{_shown(raw)}'.")
    value = float(text)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParamError(f"{what} must be between {minimum} and {maximum}, not {_shown(text)}.")
    return value


@dataclass
class Query:
    """What `read_query` found: a value for every declared parameter, and one message per bad value."""

    values: dict[str, Any]
    problems: list[str]
    given: set[str]  # the parameters the address carried (good or bad)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def read_query(declared: Sequence[Param], query: Mapping[str, Any]) -> Query:
    """Every declared parameter from `query`: parsed, or its default with a message naming it."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for param in declared:
        raw = query.get(param.name)
        if isinstance(raw, list):  # a repeated parameter: the last one, as browsers and Streamlit do
            raw = raw[-1] if raw else None
        if raw is None or raw == "":
            values[param.name] = param.default
            continue
        try:
            values[param.name] = param.parse(raw)
        except ParamError as exc:
            if exc.usable is not None:
                values[param.name] = exc.usable
                problems.append(f"In this address, {exc}")
                continue
            values[param.name] = param.default
            fallback = "none is chosen" if param.default is None else f"the default ({param.default}) is used"
            problems.append(f"In this address, {exc} {fallback[0].upper()}{fallback[1:]}.")
    return Query(values, problems, {p.name for p in declared if query.get(p.name) not in (None, "")})


def argument_type(param: Param) -> Callable[[str], Any]:
    """An argparse `type=` for `param`: the CLI refuses what the pages refuse, in one line."""
    def convert(raw: str) -> Any:
        try:
            return param.parse(raw)
        except ParamError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = param.kind  # argparse names the type in its message
    return convert


def id_argument(name: str = "id") -> Callable[[str], int]:
    return argument_type(Param(name, "id"))


def int_argument(name: str, minimum: int, maximum: int) -> Callable[[str], int]:
    return argument_type(Param(name, "int", minimum=minimum, maximum=maximum))


def float_argument(name: str, minimum: float, maximum: float) -> Callable[[str], float]:
    return argument_type(Param(name, "float", minimum=minimum, maximum=maximum))

"""Values with units, converted once at the edge of the program.

Scenario files carry units so that a reader never has to guess: ``250ms``, ``15m``,
``120/s``, ``99.9%``. Everything inside the simulator is in seconds, requests per
second and fractions. These parsers are the only place where that conversion happens.
"""

from __future__ import annotations

import re

__all__ = [
    "UnitError",
    "parse_duration",
    "parse_rate",
    "parse_fraction",
    "parse_quantity",
    "format_duration",
]


class UnitError(ValueError):
    """A value whose unit is missing, unknown or out of range."""


_DURATION_UNITS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-z]+)\s*$")
_RATE_RE = re.compile(rf"^\s*({_NUMBER})\s*/\s*([a-z]+)\s*$")
_PERCENT_RE = re.compile(rf"^\s*({_NUMBER})\s*%\s*$")


def parse_duration(value: object) -> float:
    """Return seconds for ``"250ms"``, ``"15m"``, ``"1.5s"``, ``"2h"``.

    A bare number is refused (except 0), because ``timeout: 5`` is ambiguous.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a duration such as 250ms or 15m, got {value!r}")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise UnitError(f"duration {value!r} needs a unit, e.g. {value}s or {value}ms")
    if not isinstance(value, str):
        raise UnitError(f"expected a duration such as 250ms or 15m, got {value!r}")
    if value.strip() == "0":
        return 0.0
    match = _DURATION_RE.match(value)
    if not match or match.group(2) not in _DURATION_UNITS:
        raise UnitError(f"invalid duration {value!r}: use a number and one of us, ms, s, m, h, d")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise UnitError(f"duration {value!r} is negative")
    return seconds


def parse_rate(value: object) -> float:
    """Return events per second for ``"120/s"``, ``"600/m"``, ``"5/h"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    if not isinstance(value, str):
        raise UnitError(f"expected a rate such as 120/s or 600/m, got {value!r}")
    match = _RATE_RE.match(value)
    unit = match.group(2) if match else ""
    if not match or unit not in _DURATION_UNITS:
        raise UnitError(f"invalid rate {value!r}: use a number per s, m, h or d, e.g. 120/s")
    rate = float(match.group(1)) / _DURATION_UNITS[unit]
    if rate < 0:
        raise UnitError(f"rate {value!r} is negative")
    return rate


def parse_fraction(value: object) -> float:
    """Return a fraction in [0, 1] for ``"99.9%"``; a bare number must already be in [0, 1]."""
    if isinstance(value, bool):
        raise UnitError(f"expected a percentage such as 5% or 99.9%, got {value!r}")
    if isinstance(value, (int, float)):
        fraction = float(value)
    elif isinstance(value, str) and (match := _PERCENT_RE.match(value)):
        fraction = float(match.group(1)) / 100.0
    else:
        raise UnitError(f"expected a percentage such as 5% or 99.9%, got {value!r}")
    if not 0.0 <= fraction <= 1.0:
        raise UnitError(f"{value!r} is not between 0% and 100%")
    return fraction


def parse_quantity(value: object) -> float:
    """Parse a check threshold: a duration, a rate, a percentage or a plain number."""
    if isinstance(value, bool):
        raise UnitError(f"expected a number, duration or percentage, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            match = _PERCENT_RE.match(text)
            if match:
                return float(match.group(1)) / 100.0
        elif "/" in text:
            return parse_rate(text)
        elif _DURATION_RE.match(text):
            return parse_duration(text)
        else:
            try:
                return float(text)
            except ValueError:
                pass
    raise UnitError("expected a number, duration (1.5s), rate (10/s) or percentage (1%), "
                    f"got {value!r}")


def format_duration(seconds: float) -> str:
    """Readable duration for reports: ``0.25s`` → ``250ms``, ``840`` → ``14m 0s``."""
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60.0:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m {rest:.0f}s"

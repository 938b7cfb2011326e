"""Numbers as people read them in a verdict: ``4m20s``, ``259,200``, ``1.68 fetches/key``.

One function, :func:`human`, formats a metric's value by the metric's kind (a duration,
a fraction, a per-key ratio, a count, a rate); :func:`human_duration` formats seconds.
The machine-readable ``summary.json`` keeps the raw numbers; this is for terminals and
the HTML report only.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

from rich.console import Console

__all__ = ["FILE_WIDTH", "human", "human_duration", "human_interval", "is_duration",
           "is_fraction", "make_console", "unit_of"]

#: Columns of a table written to a file or a pipe (a CI log, ``> out.txt``): rich's default
#: 80 broke the verdict tables' words across lines ("thresho / ld"). A terminal's own width,
#: or ``$COLUMNS``, still decides when there is one.
FILE_WIDTH = 120


def make_console(stderr: bool = False, **kwargs: Any) -> Console:
    """The lab's rich console on stdout (or stderr): a terminal's width, else
    ``$COLUMNS``, else :data:`FILE_WIDTH`."""
    stream = sys.stderr if stderr else sys.stdout
    wide = stream.isatty() or bool(os.environ.get("COLUMNS"))
    return Console(stderr=stderr, width=None if wide else FILE_WIDTH, **kwargs)

_FRACTIONS = ("availability", "slo_window_compliance", "cache.hit_ratio")


def human_duration(seconds: float | None) -> str:
    """``0.00042`` → ``420µs``, ``0.25`` → ``250ms``, ``4.2`` → ``4.2s``, ``260`` → ``4m20s``,
    ``7530`` → ``2h05m``, ``604800`` → ``7d``."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if math.isinf(seconds):
        return "∞"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s == 0:
        return "0s"
    if s < 1e-3:
        return f"{sign}{s * 1e6:.0f}µs"
    if s < 1.0:
        return f"{sign}{s * 1e3:.3g}ms"
    if s < 60.0:
        return f"{sign}{s:.3g}s"
    if s < 3600.0:
        minutes, rest = divmod(round(s), 60)
        return f"{sign}{minutes}m{rest:02d}s" if rest else f"{sign}{minutes}m"
    if s < 86400.0:
        hours, rest = divmod(round(s / 60), 60)
        return f"{sign}{hours}h{rest:02d}m" if rest else f"{sign}{hours}h"
    days, rest = divmod(round(s / 3600), 24)
    return f"{sign}{days:,}d{rest}h" if rest else f"{sign}{days:,}d"


def _registry_unit(metric: str) -> str | None:
    """The unit the metric registry gives ``metric`` (``s``, ``fraction``...), if known."""
    from labcore.registry import lookup

    entry = lookup(metric.split("@")[0])
    return None if entry is None else entry.unit


def is_duration(metric: str) -> bool:
    """Metrics in seconds: the registry's unit ``s``; else latencies, waits, ``*_seconds``."""
    unit = _registry_unit(metric)
    if unit is not None:
        return unit == "s"
    last = metric.rsplit(".", 1)[-1]
    return (last.startswith("latency_") or last.endswith("_seconds") or
            last.startswith("queue_wait") or last == "at")


def is_fraction(metric: str) -> bool:
    """Metrics between 0 and 1: the registry's unit ``fraction``; else error rates, ratios,
    utilisation, shares (names the registry does not know, e.g. table columns)."""
    unit = _registry_unit(metric)
    if unit is not None:
        return unit in ("fraction", "bool")  # a bool's mean over replications is a rate
    last = metric.rsplit(".", 1)[-1]
    return (metric in _FRACTIONS or metric.startswith("errors.") or last in (
        "error_rate", "utilization", "wait_probability", "hit_ratio", "connector_share",
        "rolled_back", "promoted", "window_error_se"))


def unit_of(metric: str) -> str:
    """The unit word written after a plain number (``fetches/key``, ``/s``, ``x``)."""
    last = metric.rsplit(".", 1)[-1].removesuffix("_peak")  # a peak has its metric's unit
    if last.endswith("_per_key"):
        return last.removesuffix("_per_key") + "/key"
    if last in ("throughput", "request_rate"):
        return "/s"
    if last == "retry_amplification":
        return "x"
    return ""


def human(value: float | None, metric: str) -> str:
    """``value`` of ``metric`` for a person: a duration, a percentage or a number with unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if is_duration(metric):
        return human_duration(value)
    if is_fraction(metric):
        return _percent(value)
    unit = unit_of(metric)
    if unit == "x":
        return f"{value:.2f}x"
    if float(value).is_integer() and abs(value) >= 1 and not unit:
        return f"{value:,.0f}"
    text = f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip() if unit != "/s" else f"{text}/s"


def human_interval(low: float | None, high: float | None, metric: str) -> str:
    """``1.5–1.9 fetches/key``: both bounds in ``metric``'s units, the unit word once."""
    if low is None or high is None:
        return ""
    unit = unit_of(metric)
    first = human(low, metric)
    if unit and unit != "/s" and first.endswith(unit):
        first = first.removesuffix(unit).strip()
    return f"{first}–{human(high, metric)}"


def _percent(value: float) -> str:
    pct = value * 100.0
    if pct == 0 or abs(pct) >= 10:
        return f"{pct:.1f}%"
    if abs(pct) >= 0.1:
        return f"{pct:.2f}%"
    return f"{pct:.3f}%"

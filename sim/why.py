"""Why a run missed its SLO: the windows, the tier, the outcome, what was going on.

Built from replication 0's windows (:func:`sim.metrics.window_table`, the run the plot
shows), so that every sentence can be checked against ``timeseries.csv``:

``breach``
    The first stretch of measured windows that miss the SLO (error rate or P95), from its
    first window's start to its last window's end, and how many windows it holds.
``worst_windows``
    Up to three measured windows that miss the SLO, worst first (highest error rate, then
    highest P95), with their error rate and P95 (of successful requests: ``None`` when no
    request succeeded).
``first_saturated``
    The tier (gateway, engine, connector) whose utilisation or queue rose first: the first
    window, from the last healthy window before the breach on, where its utilisation
    reaches 90% or its mean queue wait exceeds both 10 ms and ten times its median over
    the healthy windows before. Ties go to the more utilised tier. ``None`` if no tier did.
``dominant_outcome``
    The error outcome (timeout, overload, rate_limited...) with the most failed requests
    over the breach, and its share of them.
``active``
    The faults and mitigations under way at the breach's start (or during it).

``None`` for a run that never missed the SLO in a measured window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from labcore.facts import WindowFacts
from labcore.metrics import window_table

from .humanize import human, human_duration

__all__ = ["SATURATED", "explain", "why_lines"]

#: Utilisation from which a tier counts as saturated.
SATURATED = 0.9
_QUEUE_FLOOR = 0.010
_QUEUE_RISE = 10.0


def explain(result: WindowFacts) -> dict[str, Any] | None:
    """The ``why`` of ``summary.json`` for one run (see the module docstring)."""
    df = window_table(result)
    window = result.scenario.run.window
    measured = df[df["measured"]]
    missed = measured[~measured["meets_slo"].astype(bool)]
    if missed.empty:
        return None
    start, end, count = _first_stretch(missed.index.to_numpy())
    stretch = df.loc[start:end]
    begin, finish = float(df.at[start, "time"]), float(df.at[end, "time"]) + window
    return {
        "breach": {"from": begin, "to": finish, "windows": count},
        "worst_windows": _worst(missed, window),
        "first_saturated": _first_saturated(df, start, end),
        "dominant_outcome": _dominant(stretch),
        "active": _active(result, begin, finish),
        "replication": 0,
    }


def _first_stretch(index: np.ndarray) -> tuple[int, int, int]:
    """First run of consecutive window indices: (first, last, count)."""
    first = last = int(index[0])
    for i in index[1:]:
        if int(i) != last + 1:
            break
        last = int(i)
    return first, last, last - first + 1


def _worst(missed: pd.DataFrame, window: float) -> list[dict[str, Any]]:
    ranked = missed.assign(_e=missed["error_rate"].fillna(1.0),
                           _p=missed["latency_p95"].fillna(math.inf))
    ranked = ranked.sort_values(["_e", "_p", "time"], ascending=[False, False, True]).head(3)
    return [{"from": float(r.time), "to": float(r.time) + window,
             "error_rate": _num(r.error_rate), "latency_p95": _num(r.latency_p95)}
            for r in ranked.itertuples()]


def _first_saturated(df: pd.DataFrame, start: int, end: int) -> dict[str, Any] | None:
    """The tier whose utilisation or queue rose first, looking from before the breach."""
    healthy = df.loc[: start - 1]
    healthy = healthy[healthy["measured"] & healthy["meets_slo"].astype(bool)]
    look_from = int(healthy.index[-1]) if not healthy.empty else start
    span = df.loc[look_from:end]
    found = []
    for tier in [c.removesuffix(".utilization") for c in df.columns if c.endswith(".utilization")]:
        util, wait = span[f"{tier}.utilization"], span[f"{tier}.queue_wait_mean"]
        calm = healthy[f"{tier}.queue_wait_mean"].median() if not healthy.empty else 0.0
        calm = 0.0 if calm is None or math.isnan(calm) else float(calm)
        rose = (util >= SATURATED) | ((wait > _QUEUE_FLOOR) & (wait > _QUEUE_RISE * calm))
        if rose.any():
            at = int(rose.idxmax())
            found.append((at, -_num(util[at], 0.0), tier))
    if not found:
        return None
    at, _, tier = min(found)
    return {"tier": tier, "at": float(df.at[at, "time"]),
            "utilization": _num(df.at[at, f"{tier}.utilization"]),
            "queue_wait": _num(df.at[at, f"{tier}.queue_wait_mean"])}


def _dominant(stretch: pd.DataFrame) -> dict[str, Any] | None:
    causes = {c.removeprefix("errors."): int(stretch[c].sum())
              for c in stretch.columns if c.startswith("errors.")}
    failed = sum(causes.values())
    if not failed:
        return None
    outcome = max(sorted(causes), key=lambda c: causes[c])
    return {"outcome": outcome, "requests": causes[outcome], "failed": failed,
            "share": causes[outcome] / failed}


def _active(result: WindowFacts, begin: float, finish: float) -> list[dict[str, Any]]:
    """Faults and mitigations overlapping [begin, finish)."""
    active = []
    for mark in result.marks:
        end = mark.end if mark.end is not None and mark.end > mark.start else None
        if mark.start < finish and (end is None or end > begin):
            active.append({"type": "fault", "kind": mark.kind, "detail": mark.detail,
                           "start": mark.start, "end": end})
    for entry in result.logs.get("mitigations", []):
        lifted = entry.get("lifted")
        if entry["start"] < finish and (lifted is None or lifted > begin):
            active.append({"type": "mitigation", "kind": entry["kind"],
                           "detail": entry.get("detail", entry["kind"]),
                           "start": entry["start"], "end": lifted})
    return active


def _num(value: Any, default: float | None = None) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return float(value)


def why_lines(why: dict[str, Any] | None) -> list[str]:
    """The ``why`` as a few sentences for the terminal and the HTML report."""
    if why is None:
        return ["why: every measured window met the SLO"]
    b = why["breach"]
    lines = [f"why: the SLO was missed from {human_duration(b['from'])} to "
             f"{human_duration(b['to'])} ({b['windows']} window(s), replication 0)"]
    for w in why["worst_windows"]:
        p95 = ("none (no request succeeded)" if w["latency_p95"] is None  # success latency
               else human(w["latency_p95"], "latency_p95"))
        lines.append(f"  worst window {human_duration(w['from'])}–{human_duration(w['to'])}: "
                     f"errors {human(w['error_rate'], 'error_rate')}, P95 {p95}")
    tier = why["first_saturated"]
    if tier is not None:
        lines.append(f"  rose first: {tier['tier']} at {human_duration(tier['at'])} "
                     f"(utilisation {human(tier['utilization'], 'utilization')}, queue wait "
                     f"{human(tier['queue_wait'], 'queue_wait_mean')})")
    outcome = why["dominant_outcome"]
    if outcome is not None:
        lines.append(f"  dominant error: {outcome['outcome']} ({outcome['share']:.0%} of "
                     f"{outcome['failed']:,} failed requests)")
    for item in why["active"]:
        until = human_duration(item["end"]) if item["end"] is not None else "the end"
        lines.append(f"  {item['type']} active: {item['detail']} "
                     f"({human_duration(item['start'])} to {until})")
    return lines

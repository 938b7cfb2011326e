"""The resilience report, in the spirit of AWS Resilience Hub, and the release report.

**Resilience.** For each disruption type (software, hardware, AZ, region) the scenario's
RTO and RPO targets (``resilience:``, the guide's 15 min and 5 min by default), the
estimate (the P95 across replications, nearest rank from above, so that it is never
below the data) and a status:

* ``PolicyMet`` / ``PolicyBreached``: the type is exercised by this scenario and both
  estimates are within / one is beyond its target. A replication that never recovered
  (or lost metadata without bound) has no value, and breaches.
* ``NotApplicable``: the scenario does not exercise this type (the RTO it measures is
  that of its *first* disruption: a release is software, ``az_loss`` AZ,
  ``region_loss`` region; no fault of the model is a hardware one yet).
* ``MissingPolicy``: the type is exercised but the policy has no target for it.

Next to each estimate, the fraction of replications within target with a 95% Wilson
interval: P(RTO < 15 min) and P(RPO < 5 min). A run without a metadata loss lost no
metadata: its RPO is 0.

**Release.** For a canary: the decisions over replications, the rollback rate with its
Wilson interval read as the false-rollback rate of a good version or (one minus it) the
missed-detection rate of a bad one, and the analysis windows of replication 0 with the
per-window standard error of the error-rate difference next to the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from labcore.scenario import AzLoss, Canary, RegionLoss, Scenario

from .run import RunResult

__all__ = [
    "DISRUPTION_TYPES",
    "disruption_type",
    "release_report",
    "release_table",
    "resilience_report",
    "resilience_table",
    "wilson",
]

DISRUPTION_TYPES = ("software", "hardware", "az", "region")
_FAULT_TYPES = {AzLoss: "az", RegionLoss: "region"}


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion (95% by default)."""
    if n == 0:
        return None, None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def disruption_type(scenario: Scenario) -> str | None:
    """The type of the scenario's first disruption, or ``None`` (none, or unclassified)."""
    events: list[tuple[float, str | None]] = [
        (f.at, _FAULT_TYPES.get(type(f))) for f in scenario.faults
    ]
    if scenario.release is not None:
        events.append((scenario.release.at, "software"))
    return min(events, key=lambda e: e[0])[1] if events else None


def _p95(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None or math.isnan(v) for v in values):
        return None
    return float(np.percentile(np.asarray(values, dtype=float), 95, method="higher"))


def _within(values: Sequence[float | None], target: float) -> dict[str, Any]:
    ok = sum(1 for v in values if v is not None and not math.isnan(v) and v < target)
    low, high = wilson(ok, len(values))
    return {"p": ok / len(values) if values else None, "ci_low": low, "ci_high": high,
            "n": len(values)}


def resilience_report(scenario: Scenario, per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """``summary.json``'s ``resilience``: one row per disruption type."""
    exercised = disruption_type(scenario)
    rows = {}
    for kind in DISRUPTION_TYPES:
        target = getattr(scenario.resilience, kind)
        row: dict[str, Any] = {"rto_target": target.rto if target else None,
                               "rpo_target": target.rpo if target else None}
        if kind != exercised:
            rows[kind] = dict(row, status="NotApplicable")
            continue
        rto = [run.get("rto_seconds") for run in per_run]
        rpo = [run.get("rpo_seconds", 0.0) if "rpo_seconds" in run else 0.0 for run in per_run]
        row.update(rto_estimate=_p95(rto), rpo_estimate=_p95(rpo))
        if target is None:
            rows[kind] = dict(row, status="MissingPolicy")
            continue
        row.update(rto_within=_within(rto, target.rto), rpo_within=_within(rpo, target.rpo))
        met = all(est is not None and est < goal for est, goal in (
            (row["rto_estimate"], target.rto), (row["rpo_estimate"], target.rpo)))
        rows[kind] = dict(row, status="PolicyMet" if met else "PolicyBreached")
    return {"estimate": "P95 across replications", "replications": len(per_run),
            "types": rows}


def release_report(scenario: Scenario, per_run: list[dict[str, Any]],
                   results: list[RunResult]) -> dict[str, Any] | None:
    """``summary.json``'s ``release`` for a canary (``None`` otherwise)."""
    spec = scenario.release
    if not isinstance(spec, Canary):
        return None
    n = len(per_run)
    rolled = sum(1 for run in per_run if run.get("canary.rolled_back") == 1.0)
    promoted = sum(1 for run in per_run if run.get("canary.promoted") == 1.0)
    bad = spec.new_version.bad
    # A bad version not rolled back (promoted, or undecided at the end) was missed.
    wrong = n - rolled if bad else rolled
    low, high = wilson(wrong, n)
    return {
        "version": spec.version,
        "ground_truth": "bad" if bad else "good",
        "replications": n,
        "decisions": {"rolled_back": rolled, "promoted": promoted,
                      "undecided": n - rolled - promoted},
        "rate_name": "missed_detection_rate" if bad else "false_rollback_rate",
        "rate": {"value": wrong / n if n else None, "ci_low": low, "ci_high": high,
                 "interval": "Wilson 95%"},
        "threshold": {"error_increase": spec.analysis.error_increase,
                      "error_reading": spec.analysis.error_reading,
                      "latency_p95": spec.analysis.latency_p95},
        "windows": results[0].logs.get("canary_windows", []),
    }


def _fmt(seconds: float | None) -> str:
    from labcore.units import format_duration

    return "—" if seconds is None else format_duration(seconds)


def _share(within: dict[str, Any] | None) -> str:
    if not within or within["p"] is None:
        return ""
    return f"{within['p']:.0%} [{within['ci_low']:.0%}–{within['ci_high'] * 100:.0f}]"


def resilience_table(report: dict[str, Any]) -> Any:
    """A rich table of the resilience report."""
    from rich.table import Table

    table = Table(title=f"Resilience: estimate = {report['estimate']} "
                        f"(n={report['replications']}), P(< target) with Wilson 95%")
    for column in ("type", "RTO target", "RTO P95", "P(RTO<T)", "RPO target", "RPO P95",
                   "P(RPO<T)", "status"):
        table.add_column(column, no_wrap=True)
    colours = {"PolicyMet": "green", "PolicyBreached": "bold red"}
    for kind in DISRUPTION_TYPES:
        row = report["types"][kind]
        status = row["status"]
        colour = colours.get(status, "dim")
        table.add_row(kind, _fmt(row["rto_target"]), _fmt(row.get("rto_estimate")),
                      _share(row.get("rto_within")), _fmt(row["rpo_target"]),
                      _fmt(row.get("rpo_estimate")), _share(row.get("rpo_within")),
                      f"[{colour}]{status}[/{colour}]")
    return table


def release_table(release: dict[str, Any]) -> Any:
    """A rich table of the canary's analysis windows (replication 0) and its rates."""
    from rich.table import Table

    rate, threshold = release["rate"], release["threshold"]
    d = release["decisions"]
    reading = "relative" if threshold["error_reading"] == "relative" else "points"
    title = (f"Canary {release['version']} ({release['ground_truth']} version): "
             f"{d['rolled_back']} rolled back, {d['promoted']} promoted, {d['undecided']} "
             f"undecided of {release['replications']}; {release['rate_name'].replace('_', ' ')} "
             f"{rate['value']:.0%} [{rate['ci_low']:.0%}–{rate['ci_high']:.0%}] (Wilson 95%). "
             f"Windows of replication 0; fail when diff > {threshold['error_increase']:.2%} "
             f"({reading}) or P95 > {_fmt(threshold['latency_p95'])}; SE = standard error "
             f"of diff")
    table = Table(title=title)
    for column in ("t", "share", "n", "canary", "base", "diff", "SE", "P95", "P99", "verdict"):
        table.add_column(column, justify="right", no_wrap=True)
    for w in release["windows"]:
        def pct(key: str, w: dict = w) -> str:
            return f"{w[key]:.2%}" if w.get(key) is not None else "—"

        table.add_row(f"{w['time'] / 60:.0f}m", f"{w['share']:.0%}", f"{w['canary_n']:,}",
                      pct("canary_error_rate"), pct("baseline_error_rate"), pct("difference"),
                      pct("difference_se"), _fmt(w.get("canary_p95")),
                      _fmt(w.get("canary_p99")), w["verdict"])
    return table

"""Reports: ``summary.json``, the time series, plots and the verdict table.

A run folder holds:

``summary.json``
    scenario, seed, seeds, replications, passed, checks (name, metric, op, threshold,
    observed, ci_low, ci_high, passed, over; ``p_pass``: the share of replications that
    pass on their own, ``rule``: ``mean`` or ``p_pass >= 0.9`` (the check's ``require``),
    ``measured``/``missing``: replications with and without a value, ``measured_mean``,
    ``missing_means``: what a missing value means, e.g. ``did not recover before the end
    of the run (20m)``, so a run that never recovered is never read as an RTO),
    metrics (name → mean, ci_low, ci_high),
    faults (kind, start, end, detail) of replication 0, mitigations (kind, start, end,
    detail) of replication 0, and ``top_tenants``: every tenant ranked by provider 429s
    then connector worker-seconds, as the runbook's dashboard would name a noisy tenant
    (SOP-101), ``resilience`` (RTO/RPO targets, P95 estimates and statuses per disruption
    type) and ``release`` (a canary's decisions, error rates and analysis windows; null
    without a canary): see :mod:`sim.resilience`. ``why``: when and where replication 0
    missed the SLO (the breach, worst windows, the tier that rose first, the dominant error
    outcome, the faults and mitigations then; null if it never did): see :mod:`sim.why`.
    A metric whose Student-t interval left
    its domain carries ``ci_method: bootstrap`` (see :mod:`sim.intervals`). Same scenario
    and seed give the same bytes: no clock, no host, keys sorted.
``scenario.yaml``
    the effective scenario (after ``--profile`` and ``--set``), units kept.
``timeseries.csv``
    one row per window and replication (see :func:`labcore.metrics.window_table`).
``replications.csv``
    one row per replication: its seed and every metric (what ``python -m sim compare``
    tests differences on).
``report.html``
    one self-contained page to share: the verdict, why, the plots (embedded), every
    replication and the effective scenario (see :mod:`sim.html_report`).
``overview.png``
    latency percentiles, error rate by cause (in %), tier utilisation, and connector calls,
    429s and retries over time, SLO thresholds drawn, the warm-up band and fault windows
    shaded (in the legend; simultaneous faults share one band and one label),
    mitigations and recovery (RTO) marked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from labcore.checks import evaluate_checks, scoped_metrics
from labcore.facts import WindowFacts
from labcore.metrics import aggregate, recovery, window_table
from labcore.scenario import Scenario
from labcore.units import format_duration

from .intervals import bound_estimates
from .resilience import release_report, resilience_report
from .run import RunResult
from .verdict import missing_means, tenant_table, verdict_table
from .why import explain

__all__ = ["build_summary", "write_run", "verdict_table", "plot_overview", "overview_figure",
           "timeseries", "json_safe",
           "top_tenants", "tenant_table", "per_run_metrics", "replication_table"]


def per_run_metrics(scenario: Scenario, results: Sequence[WindowFacts],
                    ) -> list[dict[str, float | None]]:
    """Every metric of every replication, with ``metric@scope`` for the checks' scopes."""
    return [scoped_metrics(r, scenario.checks) for r in results]


def build_summary(
    scenario: Scenario, results: list[RunResult], source: str | None = None,
    profile: str | None = None, overrides: tuple[str, ...] = (),
    per_run: list[dict[str, float | None]] | None = None,
) -> dict[str, Any]:
    """The content of ``summary.json`` for the replications of one scenario."""
    per_run = per_run_metrics(scenario, results) if per_run is None else per_run
    estimates: dict[str, dict[str, Any]] = {
        name: est.as_dict() for name, est in aggregate(per_run).items()}
    bound_estimates(estimates, per_run)  # no interval outside the metric's domain
    checks = [_with_missing(c.as_dict(), scenario.run.duration)
              for c in evaluate_checks(scenario.checks, estimates, per_run)]
    return {
        "scenario": scenario.name,
        "description": scenario.description.strip(),
        "source": source,
        "profile": profile,
        "overrides": list(overrides),
        "seed": results[0].seed,
        "seeds": [r.seed for r in results],
        "replications": len(results),
        "duration_seconds": scenario.run.duration,
        "warmup_seconds": scenario.run.warmup,
        "window_seconds": scenario.run.window,
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "metrics": estimates,
        "faults": [
            {"kind": m.kind, "start": m.start, "end": m.end, "detail": m.detail}
            for m in results[0].marks
        ],
        "mitigations": [dict(entry) for entry in results[0].logs.get("mitigations", [])],
        "top_tenants": top_tenants(estimates, list(results[0].tenants)),
        "resilience": resilience_report(scenario, per_run),
        "release": release_report(scenario, per_run, results),
        "why": explain(results[0]),
    }


def _with_missing(check: dict[str, Any], duration: float) -> dict[str, Any]:
    """A check's entry, with what its replications without a value mean (``did not
    recover before the end of the run (20m)``), told apart from a measured value."""
    check["missing_means"] = missing_means(check, duration) if check["missing"] else None
    return check


def top_tenants(estimates: dict[str, dict[str, float | None]],
                tenants: list[str]) -> list[dict[str, Any]]:
    """Tenants ranked by provider 429s, then connector worker-seconds (means over runs)."""
    def mean(name: str) -> float:
        value = estimates.get(name, {}).get("mean")
        return 0.0 if value is None or math.isnan(value) else float(value)

    rows = [
        {
            "tenant": t,
            "rate_limited": mean(f"tenant.{t}.rate_limited"),
            "connector_seconds": mean(f"tenant.{t}.connector_seconds"),
            "connector_share": mean(f"tenant.{t}.connector_share"),
            "requests": mean(f"tenant.{t}.requests"),
            "error_rate": mean(f"tenant.{t}.error_rate"),
            "latency_p95": mean(f"tenant.{t}.latency_p95"),
        }
        for t in tenants
    ]
    return sorted(rows, key=lambda r: (-r["rate_limited"], -r["connector_seconds"], r["tenant"]))


def json_safe(value: Any) -> Any:
    """``value`` as JSON can hold it: NaN and infinities as None, numpy scalars (a
    ``numpy.bool_`` or ``int64`` that json rejects) as Python's."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def timeseries(results: Sequence[WindowFacts]) -> pd.DataFrame:
    return pd.concat([window_table(r, i) for i, r in enumerate(results)], ignore_index=True)


def write_run(
    out: Path, summary: dict[str, Any], results: Sequence[WindowFacts], data: dict[str, Any],
    plots: bool = True, per_run: list[dict[str, float | None]] | None = None,
) -> None:
    """Write the run folder (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(summary), indent=2, sort_keys=True, allow_nan=False)
    (out / "summary.json").write_text(text + "\n")
    scenario_text = yaml.safe_dump(data, sort_keys=False)
    (out / "scenario.yaml").write_text(scenario_text)
    timeseries(results).to_csv(out / "timeseries.csv", index=False)
    if per_run is None:
        per_run = per_run_metrics(results[0].scenario, results)
    replications = replication_table(summary, per_run)
    replications.to_csv(out / "replications.csv", index=False)
    if plots:
        plot_overview(results[0], out / "overview.png")
    from .html_report import write_html

    write_html(out / "report.html", summary, replications, scenario_text,
               [out / "overview.png"] if plots else [])


def replication_table(summary: dict[str, Any],
                      per_run: list[dict[str, float | None]]) -> pd.DataFrame:
    """One row per replication (its seed, then every metric): ``replications.csv``."""
    frame = pd.DataFrame(per_run)
    frame.insert(0, "seed", summary["seeds"])
    frame.insert(0, "replication", range(len(per_run)))
    return frame


def _plot_workers(ax: Any, minutes: Any, df: Any) -> None:
    """Issue 14: workers of autoscaled pools on a second axis of the utilisation panel."""
    columns = [c for c in df.columns if c.endswith(".workers")]
    if not columns:
        return
    twin = ax.twinx()
    for col in columns:
        twin.plot(minutes, df[col], ls="-.", lw=1.2, label=col)
    twin.set_ylabel("workers (all zones)")
    twin.set_ylim(bottom=0)
    twin.legend(loc="upper right", fontsize=7)


def plot_overview(result: WindowFacts, path: Path) -> None:
    """Latency, errors and utilisation over time, with SLOs, faults and RTO marked."""
    import matplotlib.pyplot as plt

    fig = overview_figure(result)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def overview_figure(result: WindowFacts) -> Any:
    """The figure of :func:`plot_overview` (open: the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = window_table(result)
    scenario = result.scenario
    minutes = (df["time"] + scenario.run.window / 2) / 60.0
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True, constrained_layout=True)
    lat, err, util, calls = axes
    for q, style in (("latency_p50", ":"), ("latency_p95", "-"), ("latency_p99", "--")):
        lat.plot(minutes, df[q], style, label=q.replace("latency_", ""))
    lat.axhline(scenario.slo.latency_p95, color="crimson", lw=1, label="P95 SLO")
    lat.set_yscale("log")
    lat.set_ylabel("latency of successes (s)")  # failures: the error-rate panel
    causes = [c for c in df.columns if c.startswith("errors.") and df[c].sum() > 0]
    if causes:  # percentages: an error rate reads as "2%", not "0.02"
        shares = df[causes].div(df["requests"].where(df["requests"] > 0), axis=0).fillna(0)
        err.stackplot(minutes, 100.0 * shares.T.to_numpy(), labels=[c[7:] for c in causes],
                      alpha=0.8)
    err.plot(minutes, 100.0 * df["error_rate"].fillna(0), color="black", lw=1,
             label="error rate")
    err.axhline(100.0 * scenario.slo.error_rate, color="crimson", lw=1, label="error SLO")
    err.set_ylabel("error rate (%)")
    err.set_ylim(bottom=0)
    for col in [c for c in df.columns if c.endswith(".utilization")]:
        if df[col].notna().any():
            util.plot(minutes, df[col], label=col)
    util.plot(minutes, df["cache.hit_ratio"], color="gray", ls="--", label="cache hit ratio")
    util.axhline(2 / 3, color="orange", lw=1, ls=":", label="static stability (2/3)")
    util.set_ylabel("fraction")
    util.set_ylim(0, 1.05)
    _plot_workers(util, minutes, df)
    for col, label in (("connector.calls", "connector calls/s"),
                       ("connector.rate_limited", "provider 429s/s"),
                       ("client.retries", "client retries/s")):
        calls.plot(minutes, df[col] / scenario.run.window, label=label)
    calls.set_ylabel("per second")
    calls.set_ylim(bottom=0)
    calls.set_xlabel("simulated time (min)")
    _mark_timeline(axes, result)
    _mark_mitigations(axes, result)
    for ax in axes:
        ax.legend(loc="upper left", fontsize=7, ncol=4)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{scenario.name} (seed {result.seed})")
    return fig


def _mark_timeline(axes: Any, result: WindowFacts) -> None:
    duration = result.scenario.run.duration
    labelled: dict[tuple[float, float | None], list[str]] = {}
    for mark in result.marks:
        end = mark.end if mark.end is not None and mark.end > mark.start else None
        labelled.setdefault((mark.start, end), []).append(mark.detail)
    for n, ((start, end), details) in enumerate(sorted(labelled.items(), key=lambda i: i[0][0])):
        for ax in axes:  # simultaneous faults: one band, one label naming them all
            label = "fault" if n == 0 and ax is axes[0] else None
            if end is None:
                ax.axvline(start / 60.0, color="purple", lw=1.5, alpha=0.6, label=label)
            else:
                ax.axvspan(start / 60.0, min(end, duration) / 60.0, color="purple",
                           alpha=0.12, label=label)
        axes[0].annotate(" + ".join(dict.fromkeys(details)), (start / 60.0, 1.0),
                         xycoords=("data", "axes fraction"), fontsize=7, va="bottom",
                         color="purple")
    rec = recovery(result)
    if result.scenario.run.warmup > 0:
        for ax in axes:
            ax.axvspan(0, result.scenario.run.warmup / 60.0, color="gray", alpha=0.1,
                       label="warm-up (not measured)" if ax is axes[0] else None)
    if rec.fault_start is not None:
        label = (f"RTO {format_duration(rec.rto)}" if rec.rto is not None
                 else "not recovered by the end of the run")
        x = (rec.recovered_at if rec.recovered_at is not None else duration) / 60.0
        for ax in axes:
            ax.axvline(x, color="green", ls="--", lw=1.2)
        axes[1].annotate(label, (x, 0.9), xycoords=("data", "axes fraction"), fontsize=8,
                         color="green")


def _mark_mitigations(axes: Any, result: WindowFacts) -> None:
    """Each mitigation: a line when applied, a band until fully in effect."""
    for entry in result.logs.get("mitigations", []):
        start, end = entry["start"] / 60.0, entry["end"] / 60.0
        for ax in axes:
            ax.axvline(start, color="teal", ls="-.", lw=1.2)
            if end > start:
                ax.axvspan(start, end, color="teal", alpha=0.08)
            if "lifted" in entry:
                ax.axvline(entry["lifted"] / 60.0, color="teal", ls=":", lw=1.2)
        axes[2].annotate(entry["detail"], (start, 0.05), xycoords=("data", "axes fraction"),
                         fontsize=7, color="teal", rotation=90, va="bottom")


"""Reports: ``summary.json``, the time series, plots and the verdict table.

A run folder holds:

``summary.json``
    scenario, seed, seeds, replications, passed, checks (name, metric, op, threshold,
    observed, ci_low, ci_high, passed, over), metrics (name → mean, ci_low, ci_high),
    faults (kind, start, end, detail) of replication 0, mitigations (kind, start, end,
    detail) of replication 0, and ``top_tenants``: every tenant ranked by provider 429s
    then connector worker-seconds, as the runbook's dashboard would name a noisy tenant
    (SOP-101), ``resilience`` (RTO/RPO targets, P95 estimates and statuses per disruption
    type) and ``release`` (a canary's decisions, error rates and analysis windows; null
    without a canary): see :mod:`sim.resilience`. Same scenario and seed give the same
    bytes: no clock, no host, keys sorted.
``scenario.yaml``
    the effective scenario (after ``--profile`` and ``--set``), units kept.
``timeseries.csv``
    one row per window and replication (see :func:`labcore.metrics.window_table`).
``overview.png``
    latency percentiles, error rate by cause, tier utilisation, and connector calls,
    429s and retries over time, SLO thresholds drawn, fault windows shaded, mitigations
    and recovery (RTO) marked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from labcore.checks import evaluate_checks
from labcore.metrics import aggregate, compute_metrics, recovery, window_table
from labcore.scenario import Scenario
from labcore.units import format_duration

from .resilience import release_report, resilience_report
from .run import RunResult

__all__ = ["build_summary", "write_run", "verdict_table", "plot_overview", "timeseries",
           "top_tenants", "tenant_table"]


def _scoped_metrics(result: RunResult, scenario: Scenario) -> dict[str, float | None]:
    metrics = compute_metrics(result)
    for over in sorted({c.over for c in scenario.checks if c.over != "run"}):
        scoped = compute_metrics(result, over)  # type: ignore[arg-type]
        for check in scenario.checks:
            if check.over == over and check.metric in scoped:
                metrics[f"{check.metric}@{over}"] = scoped[check.metric]
    return metrics


def build_summary(
    scenario: Scenario, results: list[RunResult], source: str | None = None,
    profile: str | None = None, overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The content of ``summary.json`` for the replications of one scenario."""
    per_run = [_scoped_metrics(r, scenario) for r in results]
    estimates = {name: est.as_dict() for name, est in aggregate(per_run).items()}
    checks = evaluate_checks(scenario.checks, estimates)
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
        "passed": all(c.passed for c in checks),
        "checks": [c.as_dict() for c in checks],
        "metrics": estimates,
        "faults": [
            {"kind": m.kind, "start": m.start, "end": m.end, "detail": m.detail}
            for m in results[0].marks
        ],
        "mitigations": [dict(entry) for entry in results[0].logs.get("mitigations", [])],
        "top_tenants": top_tenants(estimates, list(results[0].tenants)),
        "resilience": resilience_report(scenario, per_run),
        "release": release_report(scenario, per_run, results),
    }


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


def tenant_table(summary: dict[str, Any]) -> Any:
    """A rich table: the top tenants by 429s and connector time (SOP-101's dashboard)."""
    from rich.table import Table

    table = Table(title="top tenants by 429s and connector time")
    for column in ("tenant", "429s", "connector time", "share", "requests", "error rate", "P95"):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for row in summary["top_tenants"]:
        table.add_row(row["tenant"], f"{row['rate_limited']:,.0f}",
                      f"{row['connector_seconds']:,.0f} s",
                      f"{row['connector_share']:.1%}", f"{row['requests']:,.0f}",
                      _fmt(row["error_rate"], "error_rate"),
                      _fmt(row["latency_p95"], "latency_p95"))
    return table


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def timeseries(results: list[RunResult]) -> pd.DataFrame:
    return pd.concat([window_table(r, i) for i, r in enumerate(results)], ignore_index=True)


def write_run(
    out: Path, summary: dict[str, Any], results: list[RunResult], data: dict[str, Any],
    plots: bool = True,
) -> None:
    """Write the run folder (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_json_safe(summary), indent=2, sort_keys=True, allow_nan=False)
    (out / "summary.json").write_text(text + "\n")
    (out / "scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    timeseries(results).to_csv(out / "timeseries.csv", index=False)
    if plots:
        plot_overview(results[0], out / "overview.png")


def _fmt(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric.startswith("latency") or "latency_p" in metric or metric.endswith("_seconds") or (
        "queue_wait" in metric
    ):
        return format_duration(value)
    if "rate" in metric or "ratio" in metric or "utilization" in metric or metric in (
        "availability",
        "slo_window_compliance",
    ):
        return f"{value:.3%}" if value < 0.01 else f"{value:.2%}"
    return f"{value:,.4g}"


def verdict_table(summary: dict[str, Any]) -> Any:
    """A rich table: check, threshold, observed (with CI over replications), verdict."""
    from rich.table import Table

    table = Table(title=f"{summary['scenario']}: {summary['replications']} replication(s), "
                        f"seed {summary['seed']}")
    table.add_column("check")
    table.add_column("threshold", justify="right")
    table.add_column("observed", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("verdict")
    for check in summary["checks"]:
        metric = check["metric"]
        ci = (
            f"{_fmt(check['ci_low'], metric)} – {_fmt(check['ci_high'], metric)}"
            if check["ci_low"] is not None else ""
        )
        verdict = "[green]pass[/green]" if check["passed"] else "[bold red]FAIL[/bold red]"
        table.add_row(check["name"], f"{check['op']} {_fmt(check['threshold'], metric)}",
                      _fmt(check["observed"], metric), ci, verdict)
    return table


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


def plot_overview(result: RunResult, path: Path) -> None:
    """Latency, errors and utilisation over time, with SLOs, faults and RTO marked."""
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
    lat.set_ylabel("latency (s)")
    causes = [c for c in df.columns if c.startswith("errors.") and df[c].sum() > 0]
    if causes:
        shares = df[causes].div(df["requests"].where(df["requests"] > 0), axis=0).fillna(0)
        err.stackplot(minutes, shares.T.to_numpy(), labels=[c[7:] for c in causes], alpha=0.8)
    err.plot(minutes, df["error_rate"].fillna(0), color="black", lw=1, label="error rate")
    err.axhline(scenario.slo.error_rate, color="crimson", lw=1, label="error SLO")
    err.set_ylabel("error rate")
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mark_timeline(axes: Any, result: RunResult) -> None:
    duration = result.scenario.run.duration
    for mark in result.marks:
        end = mark.end if mark.end is not None and mark.end > mark.start else None
        for ax in axes:
            if end is None:
                ax.axvline(mark.start / 60.0, color="purple", lw=1.5, alpha=0.6)
            else:
                ax.axvspan(mark.start / 60.0, min(end, duration) / 60.0, color="purple",
                           alpha=0.12)
        axes[0].annotate(mark.detail, (mark.start / 60.0, 1.0), xycoords=("data", "axes fraction"),
                         fontsize=7, va="bottom", color="purple")
    rec = recovery(result)
    if result.scenario.run.warmup > 0:
        for ax in axes:
            ax.axvspan(0, result.scenario.run.warmup / 60.0, color="gray", alpha=0.1)
    if rec.fault_start is not None:
        label = (f"RTO {format_duration(rec.rto)}" if rec.rto is not None
                 else "not recovered by the end of the run")
        x = (rec.recovered_at if rec.recovered_at is not None else duration) / 60.0
        for ax in axes:
            ax.axvline(x, color="green", ls="--", lw=1.2)
        axes[1].annotate(label, (x, 0.9), xycoords=("data", "axes fraction"), fontsize=8,
                         color="green")


def _mark_mitigations(axes: Any, result: RunResult) -> None:
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

